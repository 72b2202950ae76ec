"""The local pool controller: what GCE's autoscaler and MIG do in the cloud, for worker processes.

It reads the backlog, asks the shared policy how many workers that calls for, starts processes to
scale out, sends SIGTERM to scale in (the same drain path as a Spot preemption), and replaces
workers that die.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from asyncinfer.core.lanes import recommended_for_lanes
from asyncinfer.core.policy import ScaleInStabilizer, ScalingPolicy, recommended_workers
from asyncinfer.tools.local.worker_process import spawn_worker

log = structlog.get_logger("asyncinfer.controller")

#: A worker that dies this soon after starting counts as a crash at start.
CRASH_WINDOW_S = 20.0


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    started_at: float
    log_path: Path
    draining_since: float | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def state(self) -> str:
        if self.process.poll() is not None:
            return "exited"
        return "draining" if self.draining_since is not None else "running"


@dataclass
class ControllerStats:
    scale_ups: int = 0
    scale_downs: int = 0
    replaced: int = 0
    peak_workers: int = 0
    exits: dict[int, int] = field(default_factory=dict)  # exit code -> count


class PoolController:
    def __init__(
        self,
        policy: ScalingPolicy,
        backlog: Callable[[], int],
        worker_env: dict[str, str],
        log_dir: Path,
        *,
        tick_s: float = 0.25,
        drain_timeout_s: float = 25.0,
        on_tick: Callable[[PoolController], None] | None = None,
        lane_policies: Mapping[str, ScalingPolicy] | None = None,
        lane_backlogs: Callable[[], Mapping[str, int]] | None = None,
        name: str = "worker",
    ) -> None:
        """With `lane_policies` and `lane_backlogs`, the pool follows one signal per lane and takes
        the largest recommendation, as GCE's autoscaler does with one metric per lane."""
        if (lane_policies is None) != (lane_backlogs is None):
            raise ValueError("give both lane_policies and lane_backlogs, or neither.")
        self.policy = policy
        self.name = name
        self.stats = ControllerStats()
        self._lane_policies = lane_policies
        self._lane_backlogs = lane_backlogs
        #: Set: the pool is held at zero, like a MIG that cannot get capacity (a Spot stockout): its
        #: workers get SIGTERM (the preemption path) and none is started until it is cleared.
        self.hold_at_zero = threading.Event()
        self._backlog = backlog
        self._worker_env = worker_env
        self._log_dir = log_dir
        self._tick_s = tick_s
        self._drain_timeout_s = drain_timeout_s
        self._on_tick = on_tick
        self._stabilizer = ScaleInStabilizer(policy.scale_in_stabilization_s)
        self._workers: list[WorkerProcess] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sequence = 0
        # Like a MIG, back off when new workers crash at start (bad image, missing weights) instead
        # of spinning up a process four times a second.
        self._crash_streak = 0
        self._spawn_not_before = 0.0
        self.last_backlog = 0
        self.target = 0

    # --- public ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._log_dir.mkdir(parents=True, exist_ok=True)
        self._thread = threading.Thread(target=self._loop, name="pool-controller", daemon=True)
        self._thread.start()

    def workers(self) -> list[WorkerProcess]:
        with self._lock:
            return list(self._workers)

    def stop(self) -> None:
        """Stop scaling, then drain every worker (SIGTERM) and kill what outlives the bound."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            workers = [w for w in self._workers if w.process.poll() is None]
        for worker in workers:
            self._terminate(worker)
        deadline = time.monotonic() + self._drain_timeout_s + 5
        for worker in workers:
            try:
                worker.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("worker outlived its drain bound; killing", pid=worker.pid)
                worker.process.kill()
                worker.process.wait()
        self._reap()

    # --- loop -----------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self._step(time.monotonic())
                if self._on_tick is not None:
                    self._on_tick(self)
            except Exception:  # the controller must outlive one bad tick
                log.exception("controller tick failed")
            self._stop.wait(self._tick_s)

    def _step(self, now: float) -> None:
        self._reap()
        backlog = self._backlog()
        if self._lane_policies is not None and self._lane_backlogs is not None:
            recommendation = recommended_for_lanes(self._lane_backlogs(), self._lane_policies)
        else:
            recommendation = recommended_workers(backlog, self.policy)
        target = self._stabilizer.target(now, recommendation)
        if self.hold_at_zero.is_set():
            target = 0
        self.last_backlog, self.target = backlog, target
        with self._lock:
            serving = [w for w in self._workers if w.state == "running"]
        if len(serving) < target and now >= self._spawn_not_before:
            for _ in range(target - len(serving)):
                self._spawn()
            self.stats.scale_ups += 1
            log.info("scaled out", backlog=backlog, workers=target)
        elif len(serving) > target:
            # Newest first: the oldest workers have warm caches and proven health.
            for worker in sorted(serving, key=lambda w: w.started_at, reverse=True)[: len(serving) - target]:
                self._terminate(worker)
            self.stats.scale_downs += 1
            log.info("scaled in", backlog=backlog, workers=target)
        with self._lock:
            alive = sum(1 for w in self._workers if w.process.poll() is None)
        self.stats.peak_workers = max(self.stats.peak_workers, alive)

    def _spawn(self) -> None:
        self._sequence += 1
        log_path = self._log_dir / f"{self.name}-{self._sequence}.log"
        process = spawn_worker(self._worker_env, log_path)
        with self._lock:
            self._workers.append(WorkerProcess(process=process, started_at=time.monotonic(), log_path=log_path))

    def _terminate(self, worker: WorkerProcess) -> None:
        if worker.draining_since is None:
            worker.draining_since = time.monotonic()
            try:
                worker.process.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass

    def _reap(self) -> None:
        with self._lock:
            for worker in list(self._workers):
                code = worker.process.poll()
                if code is None:
                    if worker.draining_since and time.monotonic() - worker.draining_since > self._drain_timeout_s + 5:
                        worker.process.kill()
                    continue
                self._workers.remove(worker)
                self.stats.exits[code] = self.stats.exits.get(code, 0) + 1
                lived_s = time.monotonic() - worker.started_at
                if code != 0 and worker.draining_since is None and lived_s < CRASH_WINDOW_S:
                    self._crash_streak += 1
                    self._spawn_not_before = time.monotonic() + min(30.0, 0.5 * 2**self._crash_streak)
                else:
                    self._crash_streak = 0
                if worker.draining_since is None:
                    # Died without being asked to (SIGKILL, crash): the next tick starts a
                    # replacement because the serving count fell below the target.
                    self.stats.replaced += 1
                    log.warning("worker died; replacing", pid=worker.pid, exit_code=code, log=str(worker.log_path))
