"""What a simulation run is told: one model of an asyncinfer pool, or of the synchronous fleet.

Configuration files are JSON, or YAML where PyYAML is installed. A file holds one configuration, a
list of them, or {"configs": [...]}; `kind` says which design each is ("async", the default, or
"sync"). Every field has a default, so `{"name": "x", "max_vms": 4}` is a whole configuration.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from asyncinfer.core.policy import PolicyError, ScalingPolicy, reaction_time_s
from asyncinfer.core.schedules import BusinessCalendar, ScheduleError
from asyncinfer.tools.simulator import assumptions as assumed
from asyncinfer.tools.simulator.prices import price_per_hour


class ConfigError(ValueError):
    """A configuration file that cannot be read; the message names the file and the key."""


class _Strict(BaseModel):
    # A misspelt key must fail loudly instead of silently simulating the default.
    model_config = ConfigDict(extra="forbid", frozen=True)


class BatchTiming(_Strict):
    """A batch of n items takes fixed_s + n * per_item_s on one GPU (assumed figures: `assumptions`)."""

    max_batch: int = Field(default=int(assumed.MAX_BATCH.value), ge=1)
    fixed_s: float = Field(default=assumed.BATCH_FIXED_S.value, ge=0)
    per_item_s: float = Field(default=assumed.BATCH_PER_ITEM_S.value, gt=0)

    def duration_s(self, items: int) -> float:
        return self.fixed_s + items * self.per_item_s

    @property
    def full_batch_throughput(self) -> float:
        """Requests/s one VM sustains while its batches are full."""
        return self.max_batch / self.duration_s(self.max_batch)


class CalendarConfig(_Strict):
    """Business hours raise the floor; nights, weekends and holidays run at the pool's min_vms."""

    country: str = "JP"
    subdivision: str | None = None
    time_zone: str = "Asia/Tokyo"
    business_start_hour: int = 9
    business_end_hour: int = 18
    weekdays: tuple[int, ...] = (0, 1, 2, 3, 4)
    business_min_vms: int = Field(default=1, ge=0)
    extra_holidays: tuple[dt.date, ...] = ()

    def business_calendar(self, off_hours_min_vms: int) -> BusinessCalendar:
        return BusinessCalendar(
            time_zone=self.time_zone,
            country=self.country,
            subdivision=self.subdivision,
            business_start_hour=self.business_start_hour,
            business_end_hour=self.business_end_hour,
            weekdays=self.weekdays,
            business_min_replicas=self.business_min_vms,
            min_replicas=off_hours_min_vms,
            extra_holidays=self.extra_holidays,
        )


class AsyncConfig(_Strict):
    """A pool of pull-based GPU workers in one zonal MIG, scaled by GCE on the subscription backlog."""

    kind: Literal["async"] = "async"
    name: str = "async"
    gpu: str = "nvidia-l4"
    spot: bool = True
    #: The autoscaler's own min_replicas: the floor at night, on weekends and holidays.
    min_vms: int = Field(default=0, ge=0)
    max_vms: int = Field(default=10, ge=1)
    #: The goal: requests answered within this many seconds count as meeting the SLO.
    latency_goal_s: float = Field(default=600.0, gt=0)
    #: single_instance_assignment given directly; otherwise throughput_per_vm * (latency_goal_s -
    #: reaction_s), as the components derive it.
    backlog_per_vm: float | None = Field(default=None, gt=0)
    #: Requests/s one VM sustains; defaults to what full batches give.
    throughput_per_vm: float | None = Field(default=None, gt=0)
    batch: BatchTiming = BatchTiming()
    calendar: CalendarConfig | None = None

    baked: bool = True
    #: VM request to worker ready with the baked image (assumed 90 s, not measured: `assumptions`).
    boot_s: float = Field(default=assumed.BAKED_BOOT_S.value, ge=0)
    #: What an unbaked image adds at every scale-out (assumed: the seed's reported 3.5 + 3.5 min).
    driver_install_s: float = Field(default=assumed.DRIVER_INSTALL_S.value, ge=0)
    container_pull_s: float = Field(default=assumed.CONTAINER_PULL_S.value, ge=0)
    #: GCE's initialization period; defaults to the boot-to-ready time, as docs/PLATFORM.md explains.
    initialization_period_s: float | None = Field(default=None, ge=0)

    #: Spot preemptions per VM-hour (ignored for on-demand VMs); assumed, no published rate.
    preemptions_per_vm_hour: float = Field(default=assumed.PREEMPTIONS_PER_VM_HOUR.value, ge=0)
    preemption_notice_s: float = Field(default=assumed.PREEMPTION_NOTICE_S.value, ge=0)
    #: Probability that one VM creation fails for lack of capacity; the MIG retries after a while.
    stockout_probability: float = Field(default=assumed.STOCKOUT_PROBABILITY.value, ge=0, lt=1)
    stockout_retry_s: float = Field(default=assumed.STOCKOUT_RETRY_S.value, gt=0)

    #: num_undelivered_messages is sampled this often and reaches the autoscaler this late.
    metric_period_s: float = Field(default=assumed.METRIC_PERIOD_S.value, gt=0)
    metric_lag_s: float = Field(default=assumed.METRIC_LAG_S.value, ge=0)
    stabilization_s: float = Field(default=assumed.STABILIZATION_S.value, ge=0)
    #: GCE's scale-in control as the components deploy it: the target never drops more than this
    #: many VMs below the highest target of the trailing window (None: no control).
    scale_in_max_vms: int | None = Field(default=int(assumed.SCALE_IN_MAX_VMS.value), ge=1)
    scale_in_window_s: float = Field(default=assumed.SCALE_IN_WINDOW_S.value, gt=0)
    max_delivery_attempts: int = Field(default=5, ge=1)

    price_per_hour: float | None = Field(default=None, ge=0)
    seed: int = 0
    #: How long past the trace's end the pool may keep draining before what is left counts as lost.
    drain_limit_s: float = Field(default=86_400.0, ge=0)

    @model_validator(mode="after")
    def _check_with_shared_rules(self) -> AsyncConfig:
        # The policy and the calendar validate themselves; surface their messages at load time.
        if self.backlog_per_vm is None and self.reaction_s >= self.latency_goal_s:
            raise ValueError(
                f"latency_goal_s ({self.latency_goal_s:g}) is not longer than the pool's reaction time "
                f"({self.reaction_s:g} s = metric_period_s {self.metric_period_s:g} + metric_lag_s "
                f"{self.metric_lag_s:g} + {self.ready_after_s:g} s to ready"
                f"{'' if self.baked else ' unbaked'}): raise latency_goal_s, bake the image (baked: true), "
                "or give backlog_per_vm."
            )
        try:
            self.policy()
            if self.calendar is not None:
                self.calendar.business_calendar(self.min_vms)
            price_per_hour(self.gpu, self.spot, self.price_per_hour)
        except (PolicyError, ScheduleError, KeyError) as exc:
            raise ValueError(str(exc)) from exc
        return self

    def policy(self) -> ScalingPolicy:
        return ScalingPolicy(
            min_replicas=self.min_vms,
            max_replicas=self.max_vms,
            throughput_per_replica=self.throughput_per_vm or self.batch.full_batch_throughput,
            latency_goal_s=self.latency_goal_s,
            scale_in_stabilization_s=self.stabilization_s,
            single_instance_assignment=self.backlog_per_vm,
            reaction_s=self.reaction_s,
        )

    @property
    def reaction_s(self) -> float:
        """New backlog waits this long before a new VM serves it: the next metric sample, the metric's
        lag, the boot to ready (baked or not): the same shared sum the components use."""
        return reaction_time_s(self.ready_after_s, self.metric_period_s, self.metric_lag_s)

    @property
    def ready_after_s(self) -> float:
        """VM request to worker ready: what baking the image changes."""
        return self.boot_s + (0.0 if self.baked else self.driver_install_s + self.container_pull_s)

    @property
    def initialization_s(self) -> float:
        return self.ready_after_s if self.initialization_period_s is None else self.initialization_period_s

    @property
    def hourly_price(self) -> float:
        return price_per_hour(self.gpu, self.spot, self.price_per_hour)


class SyncConfig(_Strict):
    """The design asyncinfer replaced: always-on servers behind a load balancer, answering while
    the caller waits. They batch like the pool's workers (same `batch`) unless `batching` is false."""

    kind: Literal["sync"]
    name: str = "sync"
    gpu: str = "nvidia-l4"
    spot: bool = False
    #: None sizes the fleet for the trace's busiest minute at full-batch throughput.
    servers: int | None = Field(default=None, ge=1)
    batch: BatchTiming = BatchTiming()
    #: False: one request at a time per server (a batch of one each), the seed's old API.
    batching: bool = True
    #: The caller gives up after this long (an error); None: the latency goal, the same bound the
    #: pool's answers are judged by, so both designs count misses alike.
    timeout_s: float | None = Field(default=None, gt=0)
    #: Requests that may wait per server; beyond that the load balancer rejects (HTTP 503).
    queue_limit_per_server: int = Field(default=32, ge=0)
    latency_goal_s: float = Field(default=600.0, gt=0)
    price_per_hour: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _check_price(self) -> SyncConfig:
        try:
            price_per_hour(self.gpu, self.spot, self.price_per_hour)
        except KeyError as exc:
            raise ValueError(str(exc)) from exc
        return self

    @property
    def max_batch(self) -> int:
        return self.batch.max_batch if self.batching else 1

    def batch_duration_s(self, items: int) -> float:
        return self.batch.duration_s(items)

    @property
    def throughput_per_server(self) -> float:
        """Requests/s one server sustains while its batches are full."""
        return self.max_batch / self.batch.duration_s(self.max_batch)

    @property
    def client_timeout_s(self) -> float:
        return self.latency_goal_s if self.timeout_s is None else self.timeout_s

    @property
    def hourly_price(self) -> float:
        return price_per_hour(self.gpu, self.spot, self.price_per_hour)


AnyConfig = Annotated[AsyncConfig | SyncConfig, Field(discriminator="kind")]
_CONFIGS = TypeAdapter(list[AnyConfig])


def _with_kind(item: Any) -> Any:
    # `kind` defaults to async, but the discriminator needs it spelt out.
    if isinstance(item, dict) and "kind" not in item:
        return {"kind": "async", **item}
    return item


def parse_configs(document: Any, source: str = "<config>") -> list[AsyncConfig | SyncConfig]:
    items = document.get("configs", document) if isinstance(document, dict) else document
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise ConfigError(f"{source}: expected a configuration, a list of them or {{'configs': [...]}}.")
    try:
        return _CONFIGS.validate_python([_with_kind(i) for i in items])
    except ValidationError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_configs(path: Path) -> list[AsyncConfig | SyncConfig]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(f"{path}: YAML needs PyYAML (pip install pyyaml); or write the file as JSON.") from None
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    else:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}: not valid JSON (line {exc.lineno}): {exc.msg}") from None
    return parse_configs(document, str(path))
