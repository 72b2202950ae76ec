"""Start one worker process: the one way the local stack, the bench and the tests do it.

A local worker is the same entry point a VM's container runs (`python -m asyncinfer.worker`), with its
settings passed as ASYNCINFER_* variables built by `worker_environment`, its output in a log file.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

WORKER_COMMAND = (sys.executable, "-m", "asyncinfer.worker", "--json-logs")


def spawn_worker(
    env: Mapping[str, str], log_path: Path, *, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """A worker process with `env` over this process's environment, stdout and stderr in `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            list(WORKER_COMMAND),
            cwd=cwd,
            env={**os.environ, **env},
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
