"""The configuration of one model's stack, checked by a preflight before any resource is declared.

Read from `pulumi.Config("asyncinfer")` plus `gcp:project`, `gcp:region` and `gcp:zone`. The only
key a new model must set is `asyncinfer:image` (its worker container image); everything else has a
default that works. Each key is the component argument of the same name in camelCase, and GCE's own
name where GCE has one (`minReplicas`, `singleInstanceAssignment`, `distributionPolicyZones`).

The preflight (`StackConfig`'s validator) runs the rules of `asyncinfer.core.validation`: every GCE
name the pool will declare, zones that exist in the region and offer the GPU, N1 vCPU-per-GPU limits,
schedule windows, the backlog filter's syntax, signals that cannot reach zero. A bad value fails with
a message that names the key and the fix, instead of a half-created stack or an autoscaler that
silently scales on nothing. `asyncinfer plan` and the Pulumi program both run it first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import json
from collections.abc import Callable, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from asyncinfer.components.gpu_driver import (
    DEFAULT_DRIVER_BRANCH,
    DEFAULT_IMAGE_CUDA,
    DriverMismatchError,
    check_driver_branch,
)
from asyncinfer.components.queue import QueueArgs
from asyncinfer.components.worker_pool import CustomMetric, GpuWorkerPoolArgs
from asyncinfer.core import gce, validation
from asyncinfer.core.lanes import (
    DEFAULT_LANES,
    Lane,
    LaneError,
    LaneSet,
    fallback_assignments,
    lane_problems,
    validate_for_pool,
)
from asyncinfer.core.policy import ScalingPolicy, reaction_time_s
from asyncinfer.core.schedules import BusinessCalendar, compile_schedules
from asyncinfer.core.topology import QueueTopology
from asyncinfer.core.worker_settings import WorkerSettings

NAMESPACE = "asyncinfer"
GCP_KEYS = ("gcp:project", "gcp:region", "gcp:zone")
DEFAULT_REGION = "asia-northeast1"
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: Keys that were renamed to the components' (and GCE's) names: an old key fails naming the new one.
RENAMED_KEYS = {
    "minVms": "minReplicas",
    "maxVms": "maxReplicas",
    "throughputPerVm": "throughputPerReplica",
    "backlogPerVm": "singleInstanceAssignment",
    "cpuTarget": "cpuUtilizationTarget",
    "scaleInMaxVms": "maxScaledInReplicas",
    "scaleInMaxPercent": "maxScaledInPercent",
    "businessMinVms": "businessMinReplicas",
    "bootDiskGb": "diskSizeGb",
    "secureBoot": "enableSecureBoot",
    "exactlyOnce": "exactlyOnceDelivery",
    "zones": "distributionPolicyZones",
}


def _worker_default(name: str) -> Any:
    # The worker's own defaults are the stack's: written once, in WorkerSettings.
    return WorkerSettings.model_fields[name].default


def _default(owner: type, name: str) -> Any:
    """The default of a component argument or core dataclass field: each default is written once,
    where the setting lives (ScalingPolicy, GpuWorkerPoolArgs, BusinessCalendar, QueueTopology)."""
    for item in dataclasses.fields(owner):
        if item.name == name:
            if item.default is not dataclasses.MISSING:
                return item.default
            if item.default_factory is not dataclasses.MISSING:
                return item.default_factory()
    raise KeyError(f"{owner.__name__}.{name} has no default")


class StackConfigError(validation.ConfigProblem):
    """The stack's configuration cannot work; `str()` lists every problem with its key and fix."""


class CustomMetricConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    target: float
    type: str = "GAUGE"
    filter: str | None = None


class LaneConfig(BaseModel):
    """One priority lane (asyncinfer.core.lanes.Lane) as the stack's config writes it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    name: str
    priority: int
    latency_goal_s: float
    backlog_share: float | None = None


class StackConfig(BaseModel):
    """Every key of a model's stack. Keys are camelCase in Pulumi config (`asyncinfer:maxReplicas`)."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)

    # --- gcp namespace
    project: str = Field(alias="gcp:project", min_length=1)
    region: str = Field(default=DEFAULT_REGION, alias="gcp:region")
    zone: str | None = Field(default=None, alias="gcp:zone")

    # --- the one required key
    image: str = Field(min_length=1)

    # --- identity
    model: str | None = None
    handler: str | None = None

    # --- GPU VMs
    #: Unset: [gcp:zone], or every zone of the region that offers gpuType (the zone table).
    distribution_policy_zones: list[str] | None = None
    distribution_policy_target_shape: str = _default(GpuWorkerPoolArgs, "distribution_policy_target_shape")
    machine_type: str = _default(GpuWorkerPoolArgs, "machine_type")
    gpu_type: str = _default(GpuWorkerPoolArgs, "gpu_type")
    gpu_count: int = _default(GpuWorkerPoolArgs, "gpu_count")
    disk_size_gb: int = Field(default=_default(GpuWorkerPoolArgs, "disk_size_gb"), ge=50, le=2000)
    network: str = _default(GpuWorkerPoolArgs, "network")
    subnetwork: str | None = None
    external_ip: bool = _default(GpuWorkerPoolArgs, "external_ip")
    create_nat: bool = _default(GpuWorkerPoolArgs, "create_nat")
    enable_secure_boot: bool = _default(GpuWorkerPoolArgs, "enable_secure_boot")
    #: Unset: the ASSUMED 90 s with a baked image, 90 + 420 s without (see `image_baked`).
    boot_to_ready_s: int = Field(default=gce.BOOT_TO_READY_ASSUMED_S, ge=1, le=3600)
    #: Only true is supported: the VMs install nothing at boot (false is refused with the fix).
    image_baked: bool = True

    # --- scaling (GCE's autoscaler names)
    min_replicas: int = Field(default=_default(ScalingPolicy, "min_replicas"), ge=0)
    max_replicas: int = Field(default=_default(ScalingPolicy, "max_replicas"), ge=1)
    latency_goal_s: float = Field(default=_default(ScalingPolicy, "latency_goal_s"), gt=0)
    throughput_per_replica: float = Field(default=_default(ScalingPolicy, "throughput_per_replica"), gt=0)
    single_instance_assignment: float | None = Field(default=None, gt=0)
    cpu_utilization_target: float | None = Field(default=None, gt=0, le=1)
    custom_metrics: list[CustomMetricConfig] = Field(default_factory=list)
    max_scaled_in_replicas: int = Field(default=_default(GpuWorkerPoolArgs, "max_scaled_in_replicas"), ge=1)
    max_scaled_in_percent: int | None = Field(default=None, ge=1, le=100)

    # --- priority lanes and the fallback pool (docs/LANES.md)
    #: Unset: one requests topic, as before lanes. A list: a topic, subscription and backlog metric
    #: per lane (e.g. [{"name": "interactive", "priority": 1, "latencyGoalS": 420},
    #: {"name": "bulk", "priority": 0, "latencyGoalS": 600}]); "default": exactly those two.
    lanes: list[LaneConfig] | None = None
    #: The lane of requests that name none (it keeps the queue's own topic).
    default_lane: str = "bulk"
    #: An on-demand fallback pool behind the Spot pool, at most this many VMs; 0: none.
    fallback_max_replicas: int = Field(default=0, ge=0)
    #: The fallback VMs' price per hour (USD, on-demand); unset: the assumed table price.
    fallback_price_per_hour_usd: float | None = Field(default=None, ge=0)
    #: The fallback's assignments are this times the Spot pool's; unset: maxReplicas (it grows only
    #: with backlog beyond what the full Spot pool owns).
    fallback_assignment_factor: float | None = None
    #: The lanes the fallback watches; unset: every lane.
    fallback_lanes: list[str] | None = None

    # --- business calendar
    time_zone: str = _default(BusinessCalendar, "time_zone")
    country: str = _default(BusinessCalendar, "country")
    subdivision: str | None = None
    business_start_hour: int = Field(default=_default(BusinessCalendar, "business_start_hour"), ge=0, le=23)
    business_end_hour: int = Field(default=_default(BusinessCalendar, "business_end_hour"), ge=1, le=24)
    business_days: list[str] = Field(
        default_factory=lambda: [_DAY_NAMES[d] for d in _default(BusinessCalendar, "weekdays")]
    )
    business_min_replicas: int = Field(default=_default(BusinessCalendar, "business_min_replicas"), ge=0)
    extra_holidays: list[dt.date] = Field(default_factory=list)

    # --- queue (QueueTopology's names)
    ack_deadline_s: int = _default(QueueTopology, "ack_deadline_s")
    max_delivery_attempts: int = _default(QueueTopology, "max_delivery_attempts")
    min_retry_backoff_s: int = _default(QueueTopology, "min_retry_backoff_s")
    max_retry_backoff_s: int = _default(QueueTopology, "max_retry_backoff_s")
    message_retention_s: int = _default(QueueTopology, "message_retention_s")
    exactly_once_delivery: bool = _default(QueueTopology, "exactly_once_delivery")
    results_subscription: bool = _default(QueueArgs, "results_subscription")

    # --- worker (WorkerSettings' names and defaults)
    max_batch_size: int = Field(default=_worker_default("max_batch_size"), ge=1, le=1024)
    max_wait_ms: float = Field(default=_worker_default("max_wait_ms"), ge=0)
    drain_timeout_s: float = Field(default=_worker_default("drain_timeout_s"))
    health_port: int = Field(default=_worker_default("health_port"), ge=1, le=65535)
    worker_env: dict[str, str] = Field(default_factory=dict)

    # --- image (unset driver branch: BakedImageArgs' default)
    driver_branch: str | None = Field(default=None, pattern=r"^\d+$")
    #: CUDA major.minor of the worker image: the driver branch must be new enough (gpu_driver's table).
    image_cuda_version: str = DEFAULT_IMAGE_CUDA
    existing_image: str | None = None
    existing_family: str | None = None
    #: The bake VM's service account (email); unset: one is created per model.
    bake_service_account: str | None = None
    #: Grant registry read on the image's repository (wherever it lives) to the bake and the workers;
    #: false when the registry's owners grant it themselves.
    grant_registry_read: bool = True

    # --- claim-check storage (gs:// inputs, large outputs)
    #: An existing bucket's name; unset: the stack creates `<model>-claims-<hash>`.
    storage_bucket: str | None = None
    claim_retention_days: int = Field(default=7, ge=1, le=3650)

    # --- monitoring
    notification_channels: list[str] = Field(default_factory=list)

    # --- cost and the results export (docs/OPERATIONS.md)
    #: The pool's VM price per hour (USD); the workers put each result's share of it into the result.
    #: Unset: the assumed table price of this VM shape (asyncinfer.core.prices), labelled as assumed;
    #: a shape the table lacks gets none (every cost 0).
    price_per_hour_usd: float | None = Field(default=None, ge=0)
    #: Where that price comes from (the pool runs Spot VMs: a Spot price, list or negotiated).
    price_basis: str = Field(default="spot, configured", min_length=1)
    #: A BigQuery dataset to export every result into (a Pub/Sub BigQuery subscription); unset: none.
    results_bigquery_dataset: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_]{1,1024}$")
    results_bigquery_table: str = Field(default="results", pattern=r"^[A-Za-z0-9_]{1,1024}$")
    #: The dataset's location; unset: BigQuery's default. Keep it near gcp:region.
    results_bigquery_location: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _unbaked_boot(cls, data: Any) -> Any:
        # An unbaked image installs the driver and pulls the worker at every boot: its assumed
        # boot-to-ready is longer, unless the stack gives a measured one.
        if isinstance(data, dict) and not any(k in data for k in ("bootToReadyS", "boot_to_ready_s")):
            baked = data.get("imageBaked", data.get("image_baked", True))
            if str(baked).lower() in ("false", "0", "no"):
                return {**data, "boot_to_ready_s": gce.BOOT_TO_READY_ASSUMED_S + gce.UNBAKED_EXTRA_ASSUMED_S}
        return data

    @field_validator("distribution_policy_zones", "business_days", "notification_channels", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        # `pulumi config set asyncinfer:distributionPolicyZones a,b` stores one string; a YAML list arrives as JSON.
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("business_days")
    @classmethod
    def _day_names(cls, value: list[str]) -> list[str]:
        days = [str(d).strip().lower()[:3] for d in value]
        unknown = [d for d in days if d not in _DAY_NAMES]
        if unknown or not days:
            raise ValueError(f"unknown day(s) {unknown}; use names such as mon, tue, wed, thu, fri, sat, sun")
        return days

    @field_validator("lanes", mode="before")
    @classmethod
    def _default_lanes(cls, value: Any) -> Any:
        # `asyncinfer:lanes: default` is the two lanes every local stack has (core.lanes.DEFAULT_LANES).
        if isinstance(value, str) and value.strip().lower() == "default":
            return [
                {"name": lane.name, "priority": lane.priority, "latency_goal_s": lane.latency_goal_s}
                for lane in DEFAULT_LANES
            ]
        return value

    @field_validator("image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        if any(c.isspace() for c in value) or value.startswith("-"):
            raise ValueError(
                f"{value!r} is not a container image reference; use e.g. REGION-docker.pkg.dev/PROJECT/REPO/NAME:TAG"
            )
        return value

    @model_validator(mode="after")
    def _preflight(self) -> StackConfig:
        # Every rule, before any resource: what would fail inside a resource, or at GCE, fails here.
        key = stack_key
        problems: list[str] = []

        def check(prefix: str, action: Callable[[], object]) -> None:
            try:
                action()
            except ValueError as exc:
                problems.append(f"{prefix}: {exc}")

        problems += validation.replica_bounds(self.min_replicas, self.max_replicas, self.business_min_replicas, key)
        problems += validation.signals_reach_zero(
            self.min_replicas, self.cpu_utilization_target, len(self.custom_metrics), key
        )
        problems += validation.metric_signals([m.filter for m in self.custom_metrics], key)
        problems += validation.drain_before_stop(self.drain_timeout_s, key)
        problems += validation.scale_in_controls(self.max_scaled_in_replicas, self.max_scaled_in_percent, key)
        problems += validation.gpu_shape(self.gpu_type, self.machine_type, self.gpu_count, key)
        problems += validation.target_shape(self.distribution_policy_target_shape, key)
        if self.zone is not None and not self.zone.startswith(f"{self.region}-"):
            problems.append(f"gcp:zone {self.zone!r} is not in gcp:region {self.region!r}; pick a zone of that region.")
        zone_problems = validation.zones_of_region(self.region, self.pool_zones, key)
        known_region = gce.region_zones(self.region) is not None
        if known_region and self.distribution_policy_zones is None and self.zone is None and not self.pool_zones:
            zone_problems = [
                f"{key('gpu_type')}: no zone of {self.region} offers {self.gpu_type} (GPU table as of "
                f"{gce.zone_table_as_of()}); choose another gcp:region or {key('gpu_type')}."
            ]
        problems += zone_problems or validation.gpu_offered(self.gpu_type, self.region, self.pool_zones, key)
        if self.existing_image and self.existing_family:
            problems.append(f"{key('existing_image')} and {key('existing_family')}: set one of them, not both.")
        try:
            check_driver_branch(self.driver_branch or DEFAULT_DRIVER_BRANCH, self.image_cuda_version)
        except DriverMismatchError as exc:
            problems.append(str(exc))
        if not self.image_baked:
            # The startup script installs nothing: a VM from an unbaked image would only report itself
            # unhealthy (no Docker, no driver) and be recreated by the autohealer, forever.
            problems.append(
                f"{key('image_baked')}: false is not supported: the VMs install no NVIDIA driver, Docker or "
                "NVIDIA container toolkit at boot. Remove the key and let the stack bake its image, or bake "
                f"{key('existing_image')} / {key('existing_family')} with asyncinfer.components' bake/ "
                "(Packer template and scripts)."
            )
        problems += validation.latency_goal_beyond_reaction(
            self.latency_goal_s,
            self.reaction_s,
            self.boot_to_ready_s,
            assignment_given=self.single_instance_assignment is not None,
            key=key,
            boot_note=self._boot_note(),
        )
        if self.model is not None:
            check(f"{key('model')} (defaults to the stack name)", lambda: QueueTopology(name=self.model_name))
            check(f"{NAMESPACE} (queue settings)", self.topology)
            problems += validation.gce_names(gce.PoolNames(self.model).all(), key)
            if not problems:
                problem = gce.metric_filter_problem(gce.backlog_filter(self.topology().requests_subscription))
                problems += [f"{key('model')}: the backlog {problem}"] if problem else []
        problems += self._lane_problems()
        check(f"{key('time_zone')} / business hours / {key('country')}", self.calendar)
        if not problems:
            # The schedule windows GCE will get: at most 128, each >= 300 s, valid cron with a year.
            check(
                f"{key('business_days')} / business hours", lambda: compile_schedules(self.calendar(), dt.date.today())
            )
            check(f"{key('min_replicas')} / {key('max_replicas')} / {key('latency_goal_s')}", self.policy)
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def _lane_problems(self) -> list[str]:
        key = stack_key
        if self.fallback_max_replicas and not self.fallback_factor > 1:
            return [
                f"{key('fallback_assignment_factor')} is {self.fallback_factor:g}; the fallback's assignment factor "
                f"must be > 1 so it grows only when the backlog outruns the Spot pool (unset: {key('max_replicas')}, "
                f"which must then be 2 or more)."
            ]
        if self.lanes is None:
            if self.fallback_lanes is not None:
                return [f"{key('fallback_lanes')} needs {key('lanes')}: without lanes there is one backlog to watch."]
            return []
        lanes = [Lane(**lane.model_dump()) for lane in self.lanes]
        found = [f"{key('lanes')}: {p}" for p in lane_problems(lanes, self.default_lane)]
        if found:
            return found
        lane_set = LaneSet(tuple(lanes), self.default_lane)
        try:
            validate_for_pool(lane_set, self.reaction_s, other_metric_signals=len(self.custom_metrics))
            if self.fallback_max_replicas:
                fallback_assignments(
                    {lane: 1.0 for lane in lane_set.names}, self.fallback_factor, self.fallback_lanes
                )
        except LaneError as exc:
            found += [f"{key('lanes')}: {line}" for line in str(exc).splitlines()]
        if self.fallback_max_replicas and self.model is not None:
            found += validation.gce_names(gce.PoolNames(f"{self.model}-fallback").all(), key)
        return found

    def _boot_note(self) -> str:
        if self.boot_to_ready_s == gce.BOOT_TO_READY_ASSUMED_S:
            return " (assumed for a baked image)"
        if not self.image_baked and self.boot_to_ready_s == gce.BOOT_TO_READY_ASSUMED_S + gce.UNBAKED_EXTRA_ASSUMED_S:
            return f" (assumed for an unbaked image: {stack_key('image_baked')} false)"
        return ""

    # --- derived settings
    @property
    def model_name(self) -> str:
        if not self.model:
            raise StackConfigError(
                [
                    "asyncinfer:model is not set; give it, or let ModelStack take the model's name from its "
                    "resource name."
                ]
            )
        return self.model

    def named(self, model: str) -> StackConfig:
        """This configuration for a model called `model` when it names none itself, checked again (the
        model's name decides every resource name)."""
        if self.model is not None:
            return self
        try:
            return StackConfig.model_validate({**self.model_dump(exclude_unset=True), "model": model})
        except ValidationError as exc:
            raise StackConfigError(_format_errors(exc)) from None

    @property
    def pool_zones(self) -> list[str]:
        """The regional MIG's zones: as listed, gcp:zone alone, or every zone offering the GPU."""
        if self.distribution_policy_zones is not None:
            return list(self.distribution_policy_zones)
        if self.zone is not None:
            return [self.zone]
        # Not `{region}-a`: us-east1 and europe-west1 have no zone a, and a zone without the GPU
        # would only ever stock out.
        return list(gce.gpu_zones(self.gpu_type, self.region))

    def topology(self) -> QueueTopology:
        return QueueTopology(
            name=self.model_name,
            ack_deadline_s=self.ack_deadline_s,
            max_delivery_attempts=self.max_delivery_attempts,
            min_retry_backoff_s=self.min_retry_backoff_s,
            max_retry_backoff_s=self.max_retry_backoff_s,
            message_retention_s=self.message_retention_s,
            exactly_once_delivery=self.exactly_once_delivery,
        )

    @property
    def reaction_s(self) -> float:
        """Metric sampling + metric lag + boot: how long new backlog waits before a new VM serves it."""
        return reaction_time_s(self.boot_to_ready_s)

    def policy(self) -> ScalingPolicy:
        return ScalingPolicy(
            min_replicas=self.min_replicas,
            max_replicas=self.max_replicas,
            throughput_per_replica=self.throughput_per_replica,
            latency_goal_s=self.latency_goal_s,
            single_instance_assignment=self.single_instance_assignment,
            reaction_s=self.reaction_s,
        )

    def calendar(self) -> BusinessCalendar:
        return BusinessCalendar(
            time_zone=self.time_zone,
            country=self.country,
            subdivision=self.subdivision,
            business_start_hour=self.business_start_hour,
            business_end_hour=self.business_end_hour,
            weekdays=tuple(_DAY_NAMES.index(d) for d in self.business_days),
            business_min_replicas=self.business_min_replicas,
            # One key for the floor: the pool's minimum is also what nights and holidays keep.
            min_replicas=self.min_replicas,
            extra_holidays=tuple(self.extra_holidays),
        )

    def lane_set(self) -> LaneSet | None:
        if self.lanes is None:
            return None
        return LaneSet(tuple(Lane(**lane.model_dump()) for lane in self.lanes), self.default_lane)

    @property
    def fallback_factor(self) -> float:
        return self.fallback_assignment_factor if self.fallback_assignment_factor is not None else self.max_replicas

    def fallback_policy(self) -> ScalingPolicy:
        """The on-demand fallback pool: no floor (it stands by only while there is backlog), its own cap."""
        return ScalingPolicy(
            min_replicas=0,
            max_replicas=max(1, self.fallback_max_replicas),
            throughput_per_replica=self.throughput_per_replica,
            latency_goal_s=self.latency_goal_s,
            single_instance_assignment=self.single_instance_assignment,
            reaction_s=self.reaction_s,
        )

    def custom_metric_signals(self) -> list[CustomMetric]:
        return [CustomMetric(name=m.name, target=m.target, type=m.type, filter=m.filter) for m in self.custom_metrics]


def config_key(alias: str) -> str:
    return alias if ":" in alias else f"{NAMESPACE}:{alias}"


def stack_key(name: str) -> str:
    """A setting's name as the stack's config spells it: `min_replicas` -> `asyncinfer:minReplicas`."""
    field = StackConfig.model_fields.get(name)
    return config_key(field.alias if field is not None and field.alias else to_camel(name))


_ALIASES = {(f.alias or name): name for name, f in StackConfig.model_fields.items()}


def _decode(value: Any) -> Any:
    # Pulumi hands every config value over as a string; objects and lists arrive JSON-encoded.
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _format_errors(error: ValidationError) -> list[str]:
    lines = []
    for item in error.errors():
        loc = item["loc"]
        message = str(item.get("ctx", {}).get("error", item["msg"])) if item["type"] == "value_error" else item["msg"]
        if not loc:
            lines.extend(message.split("\n"))
            continue
        key = config_key(str(loc[0]))
        suffix = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
        if item["type"] == "missing":
            fix = (
                "set it with `pulumi config set asyncinfer:image REGION-docker.pkg.dev/PROJECT/REPO/NAME:TAG`"
                if key == "asyncinfer:image"
                else f"set it with `pulumi config set {key} VALUE`"
            )
            lines.append(f"{key}{suffix}: required and missing; {fix}.")
        elif item["type"] == "extra_forbidden" and str(loc[0]) in RENAMED_KEYS and not loc[1:]:
            new = config_key(RENAMED_KEYS[str(loc[0])])
            lines.append(f"{key}: renamed to {new} (the component's and GCE's name); rename the key to {new}.")
        elif item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[0]), list(_ALIASES), n=1)
            hint = f"did you mean {config_key(close[0])}?" if close else "see docs/COMPONENTS.md for the keys."
            lines.append(f"{key}{suffix}: unknown key; {hint}")
        else:
            lines.append(f"{key}{suffix}: {message} (got {item.get('input')!r}).")
    return lines


def parse_stack_config(values: Mapping[str, Any], stack: str | None) -> StackConfig:
    """Validate a flat map of full config keys (`asyncinfer:maxReplicas`, `gcp:project`) as Pulumi passes them.

    The model's name defaults to `stack` (a stack is one model); with `stack=None` and no
    `asyncinfer:model`, the model is named later by `StackConfig.named` (ModelStack's resource name).
    Keys of other namespaces (`gcp:credentials`, `pulumi:...`) are not ours and are ignored.
    """
    data: dict[str, Any] = {} if stack is None else {"model": stack}
    for key, value in values.items():
        if key in GCP_KEYS:
            data[key] = _decode(value)
        elif key.startswith(f"{NAMESPACE}:"):
            data[key.split(":", 1)[1]] = _decode(value)
    try:
        return StackConfig.model_validate(data)
    except ValidationError as exc:
        raise StackConfigError(_format_errors(exc)) from None


def pulumi_config_values() -> dict[str, Any]:
    """Every config key of the running program, as the language host or the mocks set them."""
    from pulumi.runtime import config as runtime_config

    # The CLI passes config through PULUMI_CONFIG; mocks and tests through set_all_config.
    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return merged


def load_stack_config() -> StackConfig:
    """The running stack's configuration, validated; raises StackConfigError before any resource exists."""
    import pulumi

    return parse_stack_config(pulumi_config_values(), pulumi.get_stack())
