"""The bench measures a worker only once its intake processes are up, also a worker from another
checkout (--worker-path), and says so when a worker exits or never gets there."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from asyncinfer.tools import bench
from asyncinfer.tools.bench import BenchError, wait_for_intake


class LoggingWorker:
    """A real child process and a log that gains "intake ready" after `ready_after_s` (never if None)."""

    def __init__(self, ready_after_s: float | None, lives_s: float = 30) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", f"import time; time.sleep({lives_s})"])
        self._ready_at = None if ready_after_s is None else time.monotonic() + ready_after_s

    def log_event_s(self, event: str) -> float | None:
        assert event == "intake ready"
        if self._ready_at is None or time.monotonic() < self._ready_at:
            return None
        return 1.0

    def log_tail(self) -> str:
        return "the log's last lines"


@pytest.fixture
def workers() -> Iterator[list[LoggingWorker]]:
    started: list[LoggingWorker] = []
    yield started
    for worker in started:
        worker.process.kill()
        worker.process.wait()


def _worker(workers: list[LoggingWorker], ready_after_s: float | None, lives_s: float = 30) -> LoggingWorker:
    worker = LoggingWorker(ready_after_s, lives_s)
    workers.append(worker)
    return worker


@pytest.mark.parametrize("old_worker_allowed", [False, True])
def test_waits_until_intake_is_ready(workers: list[LoggingWorker], old_worker_allowed: bool) -> None:
    worker = _worker(workers, ready_after_s=0.5)
    started = time.monotonic()
    wait_for_intake(worker, 30, old_worker_allowed=old_worker_allowed)  # type: ignore[arg-type]
    assert time.monotonic() - started >= 0.5
    assert worker.log_event_s("intake ready") is not None


def test_a_worker_that_exits_first_is_an_error_with_its_log(workers: list[LoggingWorker]) -> None:
    worker = _worker(workers, ready_after_s=None, lives_s=0)
    with pytest.raises(BenchError, match="exited before its intake was ready:\nthe log's last lines"):
        wait_for_intake(worker, 30, old_worker_allowed=True)  # type: ignore[arg-type]


def test_a_worker_that_never_gets_ready_is_an_error(workers: list[LoggingWorker]) -> None:
    worker = _worker(workers, ready_after_s=None)
    with pytest.raises(BenchError, match=r"did not get ready within 0\.3 s"):
        wait_for_intake(worker, 0.3, old_worker_allowed=False)  # type: ignore[arg-type]


def test_an_old_worker_that_never_logs_it_is_measured_after_a_short_wait(
    workers: list[LoggingWorker], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bench, "OLD_WORKER_INTAKE_WAIT_S", 0.3)
    worker = _worker(workers, ready_after_s=None)
    started = time.monotonic()
    wait_for_intake(worker, 30, old_worker_allowed=True)  # type: ignore[arg-type]
    assert 0.3 <= time.monotonic() - started < 5
    assert worker.process.poll() is None
