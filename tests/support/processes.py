"""Worker processes for tests that need them for longer than one test (module-scoped fixtures)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from asyncinfer.core.topology import QueueTopology
from asyncinfer.tools.local.worker_process import spawn_worker as spawn_worker_process

REPO = Path(__file__).resolve().parents[2]


def spawn_worker(
    emulator_host: str, project: str, topology: QueueTopology, handler: str, log_path: Path, **env: str
) -> subprocess.Popen[bytes]:
    full_env = {
        **os.environ,
        "PUBSUB_EMULATOR_HOST": emulator_host,
        "ASYNCINFER_PROJECT": project,
        "ASYNCINFER_SUBSCRIPTION": topology.requests_subscription,
        "ASYNCINFER_RESULTS_TOPIC": topology.results_topic,
        "ASYNCINFER_HANDLER": handler,
        "ASYNCINFER_HEALTH_PORT": "0",
        "ASYNCINFER_TORCH_THREADS": "1",
        **env,
    }
    process = spawn_worker_process(full_env, log_path, cwd=REPO)
    process.log_path = log_path  # type: ignore[attr-defined]
    return process


def wait_started(process: subprocess.Popen[bytes], timeout_s: float = 60) -> None:
    """Until the worker logs that it is pulling; fails with its log if it dies first."""
    log_path: Path = process.log_path  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        if "worker started" in text:
            return
        if process.poll() is not None:
            raise AssertionError(f"worker exited with {process.returncode} before serving:\n{text[-3000:]}")
        time.sleep(0.1)
    raise AssertionError(f"worker did not start within {timeout_s} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGKILL)
        process.wait()
