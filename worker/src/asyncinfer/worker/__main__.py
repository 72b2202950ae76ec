import sys

from asyncinfer.worker.main import main

sys.exit(main())
