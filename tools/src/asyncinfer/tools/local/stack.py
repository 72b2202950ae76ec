"""The local stack: emulator + queue topology + autoscaled worker processes, on one machine.

Used in the foreground by `asyncinfer local up`, and in-process by the demo, the load tests and the
integration tests. A state file lets `asyncinfer local status`, `submit` and `loadtest` find it.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog

from asyncinfer.core.lanes import LaneSet, fallback_assignments, lane_policies, shared_assignments
from asyncinfer.core.policy import ScalingPolicy
from asyncinfer.core.topology import QueueTopology
from asyncinfer.core.worker_settings import LaneSubscription, worker_environment
from asyncinfer.tools.local.backlog import BacklogMeter
from asyncinfer.tools.local.controller import PoolController
from asyncinfer.tools.local.emulator import PubSubEmulator
from asyncinfer.tools.local.topology_admin import ensure_topology
from drawing_symbols import HANDLER as SYMBOLS_HANDLER

log = structlog.get_logger("asyncinfer.local")

DEFAULT_STATE_DIR = Path(".asyncinfer/local")
EMULATOR_ENV = "PUBSUB_EMULATOR_HOST"


@dataclass(frozen=True, kw_only=True)
class LocalStackConfig:
    project: str = "asyncinfer-local"
    queue: str = "symbols"
    handler: str = SYMBOLS_HANDLER
    min_workers: int = 0
    max_workers: int = 2
    #: Backlog one worker should own; small locally so scale-out shows within a demo.
    backlog_per_worker: float = 64
    scale_in_stabilization_s: float = 10.0
    max_batch_size: int = 32
    max_wait_ms: float = 10.0
    drain_timeout_s: float = 25.0
    #: Locally redelivery should be quick; the cloud default backoff is 10-600 s.
    min_retry_backoff_s: int = 1
    max_retry_backoff_s: int = 10
    max_delivery_attempts: int = 5
    #: Workers extend leases within 2 s of a pull, so a short first deadline is safe; it bounds how
    #: long a SIGKILLed worker's freshly pulled messages stay invisible (60 s with the cloud default).
    ack_deadline_s: int = 10
    state_dir: Path = DEFAULT_STATE_DIR
    extra_worker_env: dict[str, str] = field(default_factory=dict)
    #: Priority lanes: a requests topic and worker subscription per lane (the default lane keeps the
    #: queue's original ones), one backlog signal per lane. None: one queue, as before lanes.
    lanes: LaneSet | None = field(default_factory=LaneSet.defaults)
    #: The on-demand fallback pool's cap; 0: no fallback pool.
    fallback_max_workers: int = 0
    #: Hold the (Spot) pool at zero from the start, as a regional Spot stockout would: its workers
    #: never start, and only the fallback pool answers.
    spot_stockout: bool = False

    @property
    def topology(self) -> QueueTopology:
        return QueueTopology(
            name=self.queue,
            ack_deadline_s=self.ack_deadline_s,
            min_retry_backoff_s=self.min_retry_backoff_s,
            max_retry_backoff_s=self.max_retry_backoff_s,
            max_delivery_attempts=self.max_delivery_attempts,
        )

    @property
    def policy(self) -> ScalingPolicy:
        return ScalingPolicy(
            min_replicas=self.min_workers,
            max_replicas=self.max_workers,
            single_instance_assignment=self.backlog_per_worker,
            scale_in_stabilization_s=self.scale_in_stabilization_s,
        )

    def lane_assignments(self) -> dict[str, float]:
        """The pool's per-lane assignments: its backlog_per_worker shared among the lanes."""
        assert self.lanes is not None
        return shared_assignments(self.lanes, self.backlog_per_worker)

    @property
    def fallback_policy(self) -> ScalingPolicy:
        return ScalingPolicy(
            min_replicas=0,
            max_replicas=max(1, self.fallback_max_workers),
            single_instance_assignment=self.backlog_per_worker * self.fallback_factor,
            scale_in_stabilization_s=self.scale_in_stabilization_s,
        )

    @property
    def fallback_factor(self) -> float:
        """The fallback owns what the whole pool owns at its largest (at least twice one worker's)."""
        return max(self.max_workers, 2)

    def fallback_assignments(self) -> dict[str, float]:
        return fallback_assignments(self.lane_assignments(), self.fallback_factor)


class LocalStack:
    def __init__(self, config: LocalStackConfig) -> None:
        self.config = config
        self.topology = config.topology
        self.emulator: PubSubEmulator | None = None
        self.emulator_host = os.environ.get(EMULATOR_ENV, "")
        self.meter: BacklogMeter | None = None
        self.controller: PoolController | None = None
        #: The on-demand fallback pool (config.fallback_max_workers > 0).
        self.fallback: PoolController | None = None
        self.state_file = config.state_dir / "stack.json"
        self._started_at = 0.0
        self._state_lock = threading.Lock()

    def start(self) -> LocalStack:
        self._started_at = time.time()
        if not self.emulator_host:
            self.emulator = PubSubEmulator(self.config.project, data_dir=self.config.state_dir / "emulator")
            self.emulator.start()
            self.emulator_host = self.emulator.host
            log.info("emulator started", host=self.emulator_host)
        # The client libraries read this; set it before any client is made in this process.
        os.environ[EMULATOR_ENV] = self.emulator_host
        lanes = self.config.lanes
        ensure_topology(self.config.project, self.topology, lanes=lanes)
        self.meter = BacklogMeter(self.config.project, self.topology, lanes)
        self.meter.start()
        cores = os.cpu_count() or 1
        lane_settings = {}
        if lanes is not None:
            lane_settings["lanes"] = [
                LaneSubscription(
                    name=lane.name,
                    priority=lane.priority,
                    latency_goal_s=lane.latency_goal_s,
                    subscription=lanes.requests_subscription(self.topology, lane.name),
                )
                for lane in lanes.lanes
            ]
        processes = self.config.max_workers + self.config.fallback_max_workers
        worker_env = {
            EMULATOR_ENV: self.emulator_host,
            **worker_environment(
                project=self.config.project,
                subscription=self.topology.requests_subscription,
                results_topic=self.topology.results_topic,
                handler=self.config.handler,
                max_batch_size=self.config.max_batch_size,
                max_wait_ms=self.config.max_wait_ms,
                drain_timeout_s=self.config.drain_timeout_s,
                health_port=0,
                # processes x threads must not exceed the cores, or every worker slows the others.
                torch_threads=max(1, cores // max(1, processes)),
                file_root=self.blob_root.resolve(),
                results_uri_prefix=f"file://{(self.config.state_dir / 'results').resolve()}",
                **lane_settings,
            ),
            **self.config.extra_worker_env,
        }
        self.blob_root.mkdir(parents=True, exist_ok=True)
        meter = self.meter
        by_lane: dict[str, object] = {}
        if lanes is not None:
            by_lane = {
                "lane_policies": lane_policies(self.config.policy, self.config.lane_assignments()),
                "lane_backlogs": meter.backlogs,
            }
        self.controller = PoolController(
            self.config.policy,
            meter.backlog,
            worker_env,
            self.config.state_dir / "logs",
            drain_timeout_s=self.config.drain_timeout_s,
            on_tick=lambda _: self.write_state(),
            **by_lane,  # type: ignore[arg-type]
        )
        if self.config.spot_stockout:
            self.controller.hold_at_zero.set()
        if self.config.fallback_max_workers > 0:
            fallback_lanes: dict[str, object] = {}
            if lanes is not None:
                fallback_lanes = {
                    "lane_policies": lane_policies(self.config.fallback_policy, self.config.fallback_assignments()),
                    "lane_backlogs": meter.backlogs,
                }
            self.fallback = PoolController(
                self.config.fallback_policy,
                meter.backlog,
                worker_env,
                self.config.state_dir / "logs",
                drain_timeout_s=self.config.drain_timeout_s,
                name="fallback",
                **fallback_lanes,  # type: ignore[arg-type]
            )
            self.fallback.start()
        self.controller.start()
        self.write_state()
        return self

    @property
    def blob_root(self) -> Path:
        return self.config.state_dir / "blobs"

    def status(self) -> dict[str, Any]:
        topology = self.topology
        workers = self.controller.workers() if self.controller else []
        lanes = self.config.lanes
        fallback = self.fallback
        return {
            "emulator_host": self.emulator_host,
            "project": self.config.project,
            "requests_topic": topology.requests_topic,
            "requests_subscription": topology.requests_subscription,
            "results_topic": topology.results_topic,
            "dead_letter_topic": topology.dead_letter_topic,
            "dead_letter_subscription": topology.dead_letter_subscription,
            "blob_root": str(self.blob_root.resolve()),
            "controller_pid": os.getpid(),
            "started_at": self._started_at,
            "backlog": self.controller.last_backlog if self.controller else 0,
            "target_workers": self.controller.target if self.controller else 0,
            "peak_workers": self.controller.stats.peak_workers if self.controller else 0,
            "replaced_workers": self.controller.stats.replaced if self.controller else 0,
            "workers": [{"pid": w.pid, "state": w.state} for w in workers],
            "lanes": [
                {
                    "name": lane.name,
                    "priority": lane.priority,
                    "latency_goal_s": lane.latency_goal_s,
                    "requests_topic": lanes.requests_topic(topology, lane.name),
                    "requests_subscription": lanes.requests_subscription(topology, lane.name),
                }
                for lane in lanes.lanes
            ]
            if lanes is not None
            else [],
            "default_lane": lanes.default if lanes is not None else None,
            "lane_backlogs": self.meter.backlogs() if self.meter is not None else {},
            "spot_held_at_zero": bool(self.controller and self.controller.hold_at_zero.is_set()),
            "fallback": None
            if fallback is None
            else {
                "max_workers": self.config.fallback_max_workers,
                "target_workers": fallback.target,
                "peak_workers": fallback.stats.peak_workers,
                "workers": [{"pid": w.pid, "state": w.state} for w in fallback.workers()],
            },
        }

    def write_state(self) -> None:
        # Written from the controller's thread and the caller's: one writer at a time, and an
        # atomic replace so readers never see half a file.
        with self._state_lock:
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.state_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.status(), indent=2))
            tmp.replace(self.state_file)

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
        if self.fallback is not None:
            self.fallback.stop()
        if self.meter is not None:
            self.meter.stop()
        if self.emulator is not None:
            self.emulator.stop()
            os.environ.pop(EMULATOR_ENV, None)
        self.state_file.unlink(missing_ok=True)
        log.info("local stack stopped")

    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_state(state_dir: Path = DEFAULT_STATE_DIR) -> dict[str, Any]:
    """The running stack's status, with each worker's state re-checked against the process table."""
    state_file = state_dir / "stack.json"
    if not state_file.exists():
        raise FileNotFoundError(
            f"no local stack is running here ({state_file} is missing); start one with `asyncinfer local up`"
        )
    state: dict[str, Any] = json.loads(state_file.read_text())
    for worker in state.get("workers", []):
        if not _alive(worker["pid"]):
            worker["state"] = "exited"
    state["controller_alive"] = _alive(int(state.get("controller_pid", 0)))
    return state


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
