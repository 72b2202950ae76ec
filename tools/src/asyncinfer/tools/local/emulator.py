"""Start and stop Google's official Pub/Sub emulator on a free loopback port.

gcloud starts a Java child, so the emulator runs in its own process group and is stopped by killing
that group: never by process name, which could hit another session's emulator.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL_HINT = (
    "The Pub/Sub emulator is missing. Install it with:\n"
    "  sudo apt-get install -y google-cloud-cli-pubsub-emulator default-jre-headless\n"
    "(from Google's Cloud SDK apt repository), or point PUBSUB_EMULATOR_HOST at a running emulator."
)


class EmulatorError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PubSubEmulator:
    def __init__(self, project: str, port: int | None = None, data_dir: Path | None = None) -> None:
        self.project = project
        self.port = port or free_port()
        self.host = f"127.0.0.1:{self.port}"
        self._data_dir = data_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log_path: Path | None = None

    def start(self, timeout_s: float = 60.0) -> None:
        gcloud = shutil.which("gcloud")
        if gcloud is None:
            raise EmulatorError(INSTALL_HINT)
        if self._data_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="asyncinfer-emulator-")
            self._data_dir = Path(self._tmp.name)
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._log_path = self._data_dir / "emulator.log"
        with self._log_path.open("wb") as log_file:
            self._process = subprocess.Popen(
                [
                    gcloud, "beta", "emulators", "pubsub", "start",
                    f"--host-port={self.host}", f"--project={self.project}", f"--data-dir={self._data_dir}",
                ],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._wait_ready(timeout_s)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                raise EmulatorError(f"the emulator exited early:\n{self.log_tail()}\n{INSTALL_HINT}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
                if "Server started" in self.log_tail():
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise EmulatorError(f"the emulator did not answer within {timeout_s:.0f} s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        if self._log_path is None or not self._log_path.exists():
            return ""
        return "\n".join(self._log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGTERM)
                self._process.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self._process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self._process.wait(timeout=10)
        self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> PubSubEmulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
