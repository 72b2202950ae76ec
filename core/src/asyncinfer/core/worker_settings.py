"""Worker settings, from the environment (prefix ASYNCINFER_), the same on a VM and locally."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from asyncinfer.core.gce import DRAIN_TIMEOUT_S
from asyncinfer.core.lanes import Lane, LaneSet


class LaneSubscription(BaseModel):
    """One priority lane a worker pulls: core.lanes.Lane plus the subscription that carries it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    priority: int
    latency_goal_s: float
    subscription: str = Field(description="subscription name or projects/P/subscriptions/S path")


class WorkerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASYNCINFER_", extra="ignore")  # == ENV_PREFIX

    project: str = "asyncinfer-local"
    subscription: str = Field(description="subscription name or projects/P/subscriptions/S path")
    results_topic: str = Field(description="topic name or projects/P/topics/T path")
    #: "module:function" returning a ModelHandler; a model's container image sets it.
    handler: str = Field(description="the model handler factory, 'package.module:function'")
    max_batch_size: int = Field(32, ge=1, le=1024)
    #: The wait starts at a batch's first message, so an idle worker answers one request promptly.
    max_wait_ms: float = Field(10.0, ge=0)
    #: Preemption gives ~30 s and `docker stop` kills at 25 s: finish or hand back what is held within
    #: this bound (gce.DRAIN_TIMEOUT_S, the same default the components use and accept).
    drain_timeout_s: float = Field(DRAIN_TIMEOUT_S, ge=0)
    #: Leases are extended by the client up to this long; a batch must never take longer.
    max_lease_s: float = Field(600.0, ge=10)
    #: After a failed model load, report unhealthy this long before exiting 1.
    load_failure_exit_s: float = Field(30.0, ge=0)
    health_host: str = "0.0.0.0"
    #: 0 disables the endpoint (local workers are watched by their controller instead).
    health_port: int = Field(8080, ge=0, le=65535)
    max_inline_bytes: int = Field(8_000_000, ge=1)
    #: file:// inputs must live under this folder.
    file_root: Path = Path(".asyncinfer/blobs")
    #: Outputs larger than this travel by URI (claim check) under results_uri_prefix.
    max_inline_output_bytes: int = Field(1_000_000, ge=1)
    results_uri_prefix: str = "file://.asyncinfer/results"
    #: 0 lets torch decide; the local controller sets it so processes x threads <= cores.
    torch_threads: int = Field(0, ge=0)
    device: str = "auto"
    worker_id: str = Field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    #: Request ids remembered so a redelivery is answered again without a second inference.
    result_cache_size: int = Field(10_000, ge=0)
    #: Processes that read and decode requests off the worker's interpreter, so decode scales with
    #: vCPUs; -1 picks one per core beyond the first (1 to 4), 0 reads in threads of the worker itself.
    intake_processes: int = Field(-1, ge=-1, le=64)
    #: How much lower the intake processes' CPU priority is than the worker's (Unix nice, 0-19): on
    #: busy cores the thread that feeds the model runs first and decode, which has a batch or two of
    #: slack in the ready queue, waits a moment. 0: the same priority.
    intake_niceness: int = Field(10, ge=0, le=19)
    #: Messages held at most, in batches: one in the model, one staged, two being answered (held
    #: until their publish is done), and four to cover the refill behind them (the publish, the next
    #: pull of two batches' room, intake reading it) and to ride out a broker stall of a few batch
    #: times (the emulator's collector pauses 35-40 ms; Pub/Sub's pull latency has a tail too).
    #: With 5 the GPU stand-in's ratio was 0.952 instead of 0.971, with 3 its model was busy 78 %
    #: of a round instead of 93 % (docs/PERFORMANCE.md, rounds 5 and 3).
    flow_control_batches: int = Field(8, ge=1, le=16)
    #: Cut and stack the next full batch on a thread of its own while the model runs the current one,
    #: so the model is called again as soon as it returns (asyncinfer.worker.staging). Off: the run
    #: loop cuts every batch after the model returns, as before round 5. The lane worker never stages.
    stage_next_batch: bool = True
    #: The gRPC message size limit of the worker's Pub/Sub channels under the emulator; -1 (default)
    #: is none, as on the real service. A smaller value reproduces a message the worker cannot receive.
    pubsub_max_message_bytes: int = Field(-1, ge=-1)
    #: The VM's price per hour (USD), which each result's cost estimate uses; 0: none given. The
    #: stack sets it from its config; see docs/OPERATIONS.md for the price table (assumed list prices).
    price_per_hour_usd: float = Field(0.0, ge=0)
    #: Where the price came from (Spot or on-demand, configured or assumed), copied into every cost.
    price_basis: str = "unset"
    #: How often the worker logs its `usage` line (inference vs idle time and cost); 0 turns it off.
    usage_log_interval_s: float = Field(60.0, ge=0)

    #: Priority lanes (JSON list of LaneSubscription): the worker pulls every lane's subscription and
    #: serves them in priority order; `subscription` must be one of them (the default lane's). Empty:
    #: the worker pulls `subscription` alone, as before lanes.
    lanes: list[LaneSubscription] = Field(default_factory=list)

    @model_validator(mode="after")
    def _lease_covers_batch(self) -> WorkerSettings:
        if self.drain_timeout_s >= self.max_lease_s:
            raise ValueError("drain_timeout_s must be shorter than max_lease_s")
        if self.lanes:
            self.lane_set()  # a lane configuration that cannot work fails here, naming the lane
        return self

    def lane_set(self) -> LaneSet:
        """The lanes as core.lanes sees them; the default lane is the one on `subscription`."""
        paths = self.lane_subscription_paths()
        defaults = [name for name, path in paths.items() if path == self.subscription_path()]
        if len(defaults) != 1:
            raise ValueError(
                f"subscription {self.subscription!r} must be the subscription of exactly one lane "
                f"(lanes: {', '.join(f'{x.name}={x.subscription}' for x in self.lanes)})."
            )
        lanes = tuple(Lane(name=x.name, priority=x.priority, latency_goal_s=x.latency_goal_s) for x in self.lanes)
        return LaneSet(lanes, defaults[0])

    def lane_subscription_paths(self) -> dict[str, str]:
        return {x.name: _qualify(x.subscription, self.project, "subscriptions") for x in self.lanes}

    @property
    def flow_control_max_messages(self) -> int:
        # flow_control_batches batches held at most: enough to keep the GPU busy, little enough
        # that a spike grows the backlog on Pub/Sub and not this process's memory.
        return self.flow_control_batches * self.max_batch_size

    @property
    def min_pull_messages(self) -> int:
        # Under load, pull again only once three batches' room is free (two in a window of fewer than
        # six): fewer, fuller pulls, since most of a pull's CPU is per call, not per message, while the
        # rest of the window still feeds the model. Measured at the default window of 8 against 2
        # and 4 (docs/PERFORMANCE.md, round 6); at most the whole window. An idle worker, holding
        # nothing, pulls at once.
        batches = 3 if self.flow_control_batches >= 6 else 2
        return min(batches * self.max_batch_size, self.flow_control_max_messages)

    def subscription_path(self) -> str:
        return _qualify(self.subscription, self.project, "subscriptions")

    def results_topic_path(self) -> str:
        return _qualify(self.results_topic, self.project, "topics")


def _qualify(name: str, project: str, kind: str) -> str:
    return name if name.startswith("projects/") else f"projects/{project}/{kind}/{name}"


ENV_PREFIX = "ASYNCINFER_"


def worker_environment(**values: object) -> dict[str, str]:
    """The ASYNCINFER_* variables that configure a worker process, from WorkerSettings field names.

    Everything that starts a worker (the VM's startup script, the local controller, the benchmark,
    the tests) builds its environment here, so a misspelt setting fails where it is written instead
    of being silently ignored by the worker.
    """
    unknown = sorted(set(values) - set(WorkerSettings.model_fields))
    if unknown:
        raise ValueError(f"not worker settings: {', '.join(unknown)}; WorkerSettings lists the names")
    return {f"{ENV_PREFIX}{name.upper()}": _env_value(value) for name, value in values.items()}


def _env_value(value: object) -> str:
    # pydantic-settings reads list and dict settings as JSON.
    if isinstance(value, list | tuple | dict):
        return json.dumps([_plain(v) for v in value] if not isinstance(value, dict) else value)
    return str(value)


def _plain(value: object) -> object:
    return value.model_dump() if isinstance(value, BaseModel) else value

