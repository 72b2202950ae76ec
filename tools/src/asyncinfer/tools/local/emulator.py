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

from asyncinfer.tools.proc_cpu import stat_fields

INSTALL_HINT = (
    "The Pub/Sub emulator is missing. Install it with:\n"
    "  sudo apt-get install -y google-cloud-cli-pubsub-emulator default-jre-headless\n"
    "(from Google's Cloud SDK apt repository), or point PUBSUB_EMULATOR_HOST at a running emulator."
)


#: JVM options for the emulator, unless ASYNCINFER_EMULATOR_JAVA_OPTIONS says otherwise (empty: the
#: JVM's defaults). The emulator shares a few cores with the workers, the load and the tests; its
#: C2 JIT compiles and G1's concurrent threads spent about half of its CPU in the first ~50,000
#: messages of a run, i.e. for the whole of a bench or a test session. With the C1 JIT only and the
#: serial collector it used 31-46 us of CPU per message (publish, pull, ack of 2.8 KB) instead of
#: 80-100 us, and 110-132 instead of 170-190 in the first 5,000 (`python -m
#: asyncinfer.tools.local.emulator_cost`, docs/PERFORMANCE.md). The emulator keeps every message a
#: subscription has seen until the subscription is deleted, so nearly everything a young collection
#: finds survives and is copied, and the collection stops the emulator, pulls and publishes alike:
#: 60-110 ms every ~2 s under the bench's load with the serial collector, 27-270 ms with the
#: parallel one as the default young generation grew, longer than a worker's flow control covers.
#: The parallel collector (two threads) on a fixed 32 MB young generation copies a little at a
#: time: pauses of 9-11 ms (median), 27-44 ms at most, more often, for about the same CPU; the
#: 1 GB initial heap keeps the old generation from growing by full collections (and raises the
#: maximum to match on a machine with less memory). docs/results/round7/ab-emulator-young/.
DEFAULT_JAVA_OPTIONS = "-XX:+UseParallelGC -XX:ParallelGCThreads=2 -XX:TieredStopAtLevel=1 -Xmn32m -Xms1g"
JAVA_OPTIONS_ENV = "ASYNCINFER_EMULATOR_JAVA_OPTIONS"


class EmulatorError(RuntimeError):
    pass


def emulator_environment(base: dict[str, str] | None = None) -> dict[str, str]:
    """The emulator process's environment: `base` (default: this process's) with the JVM options in
    JAVA_TOOL_OPTIONS, ahead of any already there (the later of two options wins, so the caller's own
    JAVA_TOOL_OPTIONS still decide)."""
    env = dict(os.environ if base is None else base)
    options = env.get(JAVA_OPTIONS_ENV, DEFAULT_JAVA_OPTIONS).strip()
    existing = env.get("JAVA_TOOL_OPTIONS", "").strip()
    combined = " ".join(part for part in (options, existing) if part)
    if combined:
        env["JAVA_TOOL_OPTIONS"] = combined
    return env


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
                env=emulator_environment(),
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

    def pids(self) -> list[int]:
        """The emulator's processes (gcloud's Python and its Java child), while it runs."""
        return process_group(self._process.pid) if self._process is not None else []

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


def process_group(pgid: int) -> list[int]:
    """Every process in a process group (the emulator: gcloud's Python and its Java child)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if int(stat_fields((entry / "stat").read_text())[2]) == pgid:
                found.append(int(entry.name))
        except (OSError, ValueError, IndexError):
            continue
    return found
