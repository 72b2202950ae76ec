"""What a simulation run is told: one model of an asyncinfer pool, or of the synchronous fleet.

Configuration files are JSON, or YAML where PyYAML is installed. A file holds one configuration, a
list of them, or {"configs": [...]}; `kind` says which design each is: "async" (our pool, the
default; with `waker` and/or `standby` for the faster-wake designs), "sync" (always-on servers),
"gke-keda" (GKE, Spot GPU node pool, KEDA) or "cloud-run" (Cloud Run GPU behind a push
subscription). Every field has a default, so `{"name": "x", "max_vms": 4}` is a whole configuration.
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


class WakerConfig(_Strict):
    """A push subscription on the requests topic to a tiny service that raises the autoscaler's
    min_replicas to 1 the moment a message arrives at an empty pool (autoscalers.patch: the MIG's own
    size cannot be set while the autoscaler owns it), and lowers it again after `hold_s`, once the
    backlog metric has caught up."""

    delay_s: float = Field(default=assumed.WAKER_DELAY_S.value, ge=0)
    hold_s: float = Field(default=assumed.METRIC_PERIOD_S.value + assumed.METRIC_LAG_S.value, ge=0)
    usd_per_million: float = Field(default=assumed.WAKER_USD_PER_MILLION.value, ge=0)


class StandbyConfig(_Strict):
    """A MIG standby pool of stopped VMs (standbyPolicy mode SCALE_OUT_POOL): a scale-out starts one of
    them instead of creating a VM, and the MIG replenishes the pool afterwards (a new VM boots and
    stops). Whether standby pools take Spot GPU VMs was not found documented: unverified."""

    size: int = Field(default=1, ge=1)
    start_s: float = Field(default=assumed.STANDBY_START_S.value, ge=0)
    disk_gb: float = Field(default=100.0, gt=0)
    disk_usd_per_gb_month: float = Field(default=assumed.DISK_USD_PER_GB_MONTH.value, ge=0)

    @property
    def usd_per_hour(self) -> float:
        """Disks of the stopped VMs: what the pool costs while nobody uses it (730 h a month)."""
        return self.size * self.disk_gb * self.disk_usd_per_gb_month / 730.0


class AsyncConfig(_Strict):
    """A pool of pull-based GPU workers in one MIG with one autoscaler (the components deploy one
    regional MIG), scaled by GCE on the subscription backlog."""

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
    #: Faster wake from an empty pool: a waker (push subscription + min_replicas) and/or a standby pool.
    waker: WakerConfig | None = None
    standby: StandbyConfig | None = None
    #: Fixed costs per hour whatever the load (a cluster fee, a system node).
    overhead_usd_per_hour: float = Field(default=0.0, ge=0)
    #: A removed worker's machine stays billed this long (GKE: the node waits to be unneeded).
    billing_tail_s: float = Field(default=0.0, ge=0)
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


class GkeKedaConfig(_Strict):
    """GKE with a Spot L4 node pool that scales to zero and KEDA's gcp-pubsub scaler on the pods.

    Modelled with the pool's engine, because its mechanics are the same shape: KEDA polls the same
    Cloud Monitoring backlog metric (60 s sampling, up to 120 s late) every 30 s, pods ask for GPU
    nodes, and the cluster autoscaler creates a node (assumed 300 s to a ready pod). Pods leave after
    KEDA's 300 s cooldown (and the HPA's 300 s scale-down stabilization); a node is removed 600 s
    after it is unneeded and billed until then. The cluster fee and an always-on system node are
    fixed costs. One pod per node (one L4 each), batching like the pool's workers.
    """

    kind: Literal["gke-keda"]
    name: str = "gke-keda-spot"
    spot: bool = True
    gpu: str = "nvidia-l4"
    #: KEDA minReplicaCount (pods, hence GPU nodes, kept when idle).
    min_nodes: int = Field(default=0, ge=0)
    max_nodes: int = Field(default=10, ge=1)
    latency_goal_s: float = Field(default=600.0, gt=0)
    #: KEDA's target messages per replica; None: our pool's own assignment for the same goal and
    #: batch timing (1,056 by default), so that the two designs differ only in their mechanics.
    messages_per_replica: float | None = Field(default=None, gt=0)
    batch: BatchTiming = BatchTiming()
    node_ready_s: float = Field(default=assumed.GKE_NODE_READY_S.value, ge=0)
    polling_interval_s: float = Field(default=assumed.KEDA_POLLING_INTERVAL_S.value, ge=0)
    cooldown_s: float = Field(default=assumed.KEDA_COOLDOWN_S.value, ge=0)
    scale_down_unneeded_s: float = Field(default=assumed.GKE_SCALE_DOWN_UNNEEDED_S.value, ge=0)
    cluster_fee_usd_per_hour: float = Field(default=assumed.GKE_CLUSTER_FEE_USD_PER_H.value, ge=0)
    system_node_usd_per_hour: float = Field(default=assumed.GKE_SYSTEM_NODE_USD_PER_H.value, ge=0)
    preemptions_per_vm_hour: float = Field(default=assumed.PREEMPTIONS_PER_VM_HOUR.value, ge=0)
    price_per_hour: float | None = Field(default=None, ge=0)
    seed: int = 0

    def as_pool(self) -> AsyncConfig:
        """The same mechanics in the pool's terms: KEDA's poll adds half an interval to the metric's
        lag on average; KEDA's cooldown is the scale-in stabilization; no GCE scale-in control."""
        per_replica = self.messages_per_replica or AsyncConfig(
            latency_goal_s=self.latency_goal_s, batch=self.batch
        ).policy().assignment
        return AsyncConfig(
            name=self.name, gpu=self.gpu, spot=self.spot, min_vms=self.min_nodes, max_vms=self.max_nodes,
            latency_goal_s=self.latency_goal_s, backlog_per_vm=per_replica, batch=self.batch,
            boot_s=self.node_ready_s, metric_lag_s=assumed.METRIC_LAG_S.value + self.polling_interval_s / 2,
            stabilization_s=self.cooldown_s, scale_in_max_vms=None, billing_tail_s=self.scale_down_unneeded_s,
            overhead_usd_per_hour=self.cluster_fee_usd_per_hour + self.system_node_usd_per_hour,
            preemptions_per_vm_hour=self.preemptions_per_vm_hour, price_per_hour=self.price_per_hour,
            seed=self.seed,
        )


class CloudRunConfig(_Strict):
    """Cloud Run with one L4 GPU per instance behind a Pub/Sub push subscription.

    Each message is one HTTP request; an instance takes up to `concurrency` at once and batches them
    like a pool worker. Cloud Run adds instances to keep concurrency at 60 % of the maximum, starts one
    in ~5 s (+ the model's load), bills it whole (instance-based billing: GPU + at least 4 vCPU and
    16 GiB) from start until it has been idle `idle_s`, on demand only. Messages that find no free
    instance wait in the subscription (push retries are not modelled: generous to this design).
    """

    kind: Literal["cloud-run"]
    name: str = "cloud-run-gpu"
    max_instances: int = Field(default=10, ge=1)
    min_instances: int = Field(default=0, ge=0)
    #: Requests one instance takes at once; None: the batch size.
    concurrency: int | None = Field(default=None, ge=1)
    target_concurrency: float = Field(default=assumed.CLOUD_RUN_TARGET_CONCURRENCY.value, gt=0, le=1)
    batch: BatchTiming = BatchTiming()
    latency_goal_s: float = Field(default=600.0, gt=0)
    start_s: float = Field(default=assumed.CLOUD_RUN_GPU_START_S.value + assumed.CLOUD_RUN_MODEL_LOAD_S.value, ge=0)
    idle_s: float = Field(default=assumed.CLOUD_RUN_IDLE_S.value, ge=0)
    vcpu: int = Field(default=int(assumed.CLOUD_RUN_MIN_VCPU.value), ge=int(assumed.CLOUD_RUN_MIN_VCPU.value))
    memory_gib: float = Field(default=assumed.CLOUD_RUN_MIN_MEMORY_GIB.value, ge=assumed.CLOUD_RUN_MIN_MEMORY_GIB.value)
    gpu_usd_per_s: float = Field(default=assumed.CLOUD_RUN_L4_USD_PER_S.value, ge=0)

    @property
    def max_batch(self) -> int:
        return self.concurrency or self.batch.max_batch

    @property
    def hourly_price(self) -> float:
        per_s = (
            self.gpu_usd_per_s
            + self.vcpu * assumed.CLOUD_RUN_VCPU_USD_PER_S.value
            + self.memory_gib * assumed.CLOUD_RUN_MEMORY_USD_PER_S.value
        )
        return per_s * 3600.0


AnyConfig = Annotated[AsyncConfig | SyncConfig | GkeKedaConfig | CloudRunConfig, Field(discriminator="kind")]
Design = AsyncConfig | SyncConfig | GkeKedaConfig | CloudRunConfig
_CONFIGS = TypeAdapter(list[AnyConfig])


def _with_kind(item: Any) -> Any:
    # `kind` defaults to async, but the discriminator needs it spelt out.
    if isinstance(item, dict) and "kind" not in item:
        return {"kind": "async", **item}
    return item


def parse_configs(document: Any, source: str = "<config>") -> list[Design]:
    items = document.get("configs", document) if isinstance(document, dict) else document
    if isinstance(items, dict):
        items = [items]
    if not isinstance(items, list):
        raise ConfigError(f"{source}: expected a configuration, a list of them or {{'configs': [...]}}.")
    try:
        return _CONFIGS.validate_python([_with_kind(i) for i in items])
    except ValidationError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_configs(path: Path) -> list[Design]:
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
