import sys

from asyncinfer.worker.main import main

# Guarded: intake processes are spawned, and spawning re-imports the parent's __main__ module.
if __name__ == "__main__":
    sys.exit(main())
