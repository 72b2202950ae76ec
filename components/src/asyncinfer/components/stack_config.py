"""The configuration of one model's stack, validated before any resource is created.

Read from `pulumi.Config("asyncinfer")` plus `gcp:project`, `gcp:region` and `gcp:zone`. The only
key a new model must set is `asyncinfer:image` (its worker container image); everything else has a
default that works. A bad value fails with a message that names the key and the fix, instead of a
half-created stack or an autoscaler that silently scales on nothing.
"""

from __future__ import annotations

import datetime as dt
import difflib
import json
import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.alias_generators import to_camel

from asyncinfer.components.worker_pool import (
    BAKED_BOOT_TO_READY_S,
    METRIC_LAG_S,
    METRIC_PERIOD_S,
    STOP_TIMEOUT_S,
    UNBAKED_EXTRA_S,
    CustomMetric,
    PoolConfigError,
    reaction_time_s,
    validate_gpu,
)
from asyncinfer.core.policy import PolicyError, ScalingPolicy
from asyncinfer.core.schedules import BusinessCalendar, ScheduleError
from asyncinfer.core.topology import QueueTopology

NAMESPACE = "asyncinfer"
GCP_KEYS = ("gcp:project", "gcp:region", "gcp:zone")
DEFAULT_REGION = "asia-northeast1"
_DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class StackConfigError(ValueError):
    """The stack's configuration cannot work; `str()` lists every problem with its key and fix."""


class CustomMetricConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    target: float
    type: str = "GAUGE"
    filter: str | None = None


class StackConfig(BaseModel):
    """Every key of a model's stack. Keys are camelCase in Pulumi config (`asyncinfer:maxVms`)."""

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
    zones: list[str] | None = None
    machine_type: str = "g2-standard-4"
    gpu_type: str = "nvidia-l4"
    gpu_count: int = 1
    boot_disk_gb: int = Field(default=100, ge=50, le=2000)
    network: str = "default"
    subnetwork: str | None = None
    external_ip: bool = False
    create_nat: bool = True
    secure_boot: bool = False
    #: Unset: 90 s with a baked image, 90 + 420 s without (see `image_baked`).
    boot_to_ready_s: int | None = Field(default=None, ge=1, le=3600)
    #: False for an existingImage/existingFamily that lacks the driver or the worker image, so every
    #: new VM installs and pulls them at boot.
    image_baked: bool = True

    # --- scaling
    min_vms: int = Field(default=0, ge=0)
    max_vms: int = Field(default=4, ge=1)
    latency_goal_s: float = Field(default=600.0, gt=0)
    throughput_per_vm: float = Field(default=10.0, gt=0)
    backlog_per_vm: float | None = Field(default=None, gt=0)
    cpu_target: float | None = Field(default=None, gt=0, le=1)
    custom_metrics: list[CustomMetricConfig] = Field(default_factory=list, max_length=4)
    scale_in_max_vms: int = Field(default=2, ge=1)
    scale_in_max_percent: int | None = Field(default=None, ge=1, le=100)

    # --- business calendar
    time_zone: str = "Asia/Tokyo"
    country: str = "JP"
    subdivision: str | None = None
    business_start_hour: int = Field(default=9, ge=0, le=23)
    business_end_hour: int = Field(default=18, ge=1, le=24)
    business_days: list[str] = Field(default_factory=lambda: ["mon", "tue", "wed", "thu", "fri"])
    business_min_vms: int = Field(default=1, ge=0)
    extra_holidays: list[dt.date] = Field(default_factory=list)

    # --- queue
    ack_deadline_s: int = 60
    max_delivery_attempts: int = 5
    min_retry_backoff_s: int = 10
    max_retry_backoff_s: int = 600
    message_retention_s: int = 7 * 24 * 3600
    exactly_once: bool = False
    results_subscription: bool = False

    # --- worker
    max_batch_size: int = Field(default=32, ge=1, le=1024)
    max_wait_ms: int = Field(default=10, ge=0)
    drain_timeout_s: int = Field(default=20, gt=0, lt=STOP_TIMEOUT_S)
    health_port: int = Field(default=8080, ge=1, le=65535)
    worker_env: dict[str, str] = Field(default_factory=dict)

    # --- image
    driver_branch: str = Field(default="570", pattern=r"^\d+$")
    existing_image: str | None = None
    existing_family: str | None = None

    # --- monitoring
    notification_channels: list[str] = Field(default_factory=list)

    @field_validator("zones", "business_days", "notification_channels", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        # `pulumi config set asyncinfer:zones a,b` stores one string; a YAML list arrives as JSON.
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

    @field_validator("image")
    @classmethod
    def _image_reference(cls, value: str) -> str:
        if any(c.isspace() for c in value) or value.startswith("-"):
            raise ValueError(
                f"{value!r} is not a container image reference; use e.g. REGION-docker.pkg.dev/PROJECT/REPO/NAME:TAG"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> StackConfig:
        # Build every domain object now, so what would fail inside a resource fails here instead.
        problems: list[str] = []

        def check(key: str, action: Any) -> None:
            try:
                action()
            except (PolicyError, ScheduleError, PoolConfigError, ValueError) as exc:
                problems.append(f"{key}: {exc}")

        if self.min_vms > self.max_vms:
            problems.append(
                f"asyncinfer:minVms ({self.min_vms}) is greater than asyncinfer:maxVms ({self.max_vms}); "
                "raise maxVms or lower minVms."
            )
        if self.business_min_vms > self.max_vms:
            problems.append(
                f"asyncinfer:businessMinVms ({self.business_min_vms}) is greater than asyncinfer:maxVms "
                f"({self.max_vms}); raise maxVms or lower businessMinVms."
            )
        if (self.cpu_target is not None or self.custom_metrics) and self.min_vms == 0:
            problems.append(
                "asyncinfer:cpuTarget / asyncinfer:customMetrics: CPU and custom metric signals cannot scale to "
                "zero; set asyncinfer:minVms to 1 or more, or remove them and scale on the backlog alone."
            )
        if self.existing_image and self.existing_family:
            problems.append("asyncinfer:existingImage and asyncinfer:existingFamily: set one of them, not both.")
        check(
            "asyncinfer:gpuType / asyncinfer:machineType / asyncinfer:gpuCount",
            lambda: validate_gpu(self.gpu_type, self.machine_type, self.gpu_count),
        )
        if self.model is not None:
            check("asyncinfer:model (defaults to the stack name)", lambda: QueueTopology(name=self.model_name))
            check("asyncinfer (queue settings)", self.topology)
        check("asyncinfer:timeZone / business hours / country", self.calendar)
        if not self.image_baked and not (self.existing_image or self.existing_family):
            problems.append(
                "asyncinfer:imageBaked: false only describes an asyncinfer:existingImage / existingFamily; "
                "without one the stack bakes its own image. Remove the key or name the image."
            )
        if self.backlog_per_vm is None and self.latency_goal_s <= self.reaction_s:
            boot_key = "asyncinfer:bootToReadyS" if self.boot_to_ready_s is not None else (
                "asyncinfer:bootToReadyS (default for "
                + ("a baked image)" if self.image_baked else "an unbaked image: asyncinfer:imageBaked false)")
            )
            problems.append(
                f"asyncinfer:latencyGoalS ({self.latency_goal_s:g} s) is not longer than the pool's reaction time "
                f"({self.reaction_s:g} s = {METRIC_PERIOD_S} s metric sampling + {METRIC_LAG_S} s metric lag + "
                f"{self.boot_to_ready} s {boot_key}): no assignment can meet it. Raise asyncinfer:latencyGoalS "
                f"above {self.reaction_s:g}, shorten the boot (bake the image), or set asyncinfer:backlogPerVm "
                "together with asyncinfer:minVms >= 1."
            )
        if not problems:
            check("asyncinfer:minVms / maxVms / throughputPerVm / latencyGoalS", self.policy)
        if self.zone is not None and not self.zone.startswith(f"{self.region}-"):
            problems.append(f"gcp:zone {self.zone!r} is not in gcp:region {self.region!r}; pick a zone of that region.")
        for zone in self.zones or []:
            if not re.fullmatch(re.escape(self.region) + r"-[a-z]", zone):
                problems.append(
                    f"asyncinfer:zones: {zone!r} is not a zone of gcp:region {self.region!r}; "
                    f"use zones such as {self.region}-a, {self.region}-b."
                )
        if self.zones is not None and len(set(self.zones)) != len(self.zones):
            problems.append("asyncinfer:zones lists a zone twice; list each zone once.")
        if self.zones is not None and not self.zones:
            problems.append(f"asyncinfer:zones is empty; leave it out or list zones such as {self.region}-a.")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    # --- derived settings
    @property
    def model_name(self) -> str:
        if not self.model:
            raise StackConfigError(
                "asyncinfer:model is not set; give it, or let ModelStack take the model's name from its resource name."
            )
        return self.model

    def named(self, model: str) -> StackConfig:
        """This configuration for a model called `model` when it names none itself, validated again (the
        model's name decides every resource name)."""
        if self.model is not None:
            return self
        try:
            return StackConfig.model_validate({**self.model_dump(exclude_unset=True), "model": model})
        except ValidationError as exc:
            raise StackConfigError(_format_errors(exc)) from None

    @property
    def pool_zones(self) -> list[str]:
        if self.zones:
            return list(self.zones)
        return [self.zone or f"{self.region}-a"]

    def topology(self) -> QueueTopology:
        return QueueTopology(
            name=self.model_name,
            ack_deadline_s=self.ack_deadline_s,
            max_delivery_attempts=self.max_delivery_attempts,
            min_retry_backoff_s=self.min_retry_backoff_s,
            max_retry_backoff_s=self.max_retry_backoff_s,
            message_retention_s=self.message_retention_s,
            exactly_once_delivery=self.exactly_once,
        )

    @property
    def boot_to_ready(self) -> int:
        """VM start to worker ready: the measured value if given, else the baked or unbaked default."""
        if self.boot_to_ready_s is not None:
            return self.boot_to_ready_s
        return BAKED_BOOT_TO_READY_S + (0 if self.image_baked else UNBAKED_EXTRA_S)

    @property
    def reaction_s(self) -> float:
        """Metric sampling + metric lag + boot: how long new backlog waits before a new VM serves it."""
        return reaction_time_s(self.boot_to_ready)

    def policy(self) -> ScalingPolicy:
        return ScalingPolicy(
            min_workers=self.min_vms,
            max_workers=self.max_vms,
            throughput_per_worker=self.throughput_per_vm,
            target_latency_s=self.latency_goal_s,
            backlog_per_worker=self.backlog_per_vm,
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
            business_min_workers=self.business_min_vms,
            # One key for the floor: the pool's minimum is also what nights and holidays keep.
            off_hours_min_workers=self.min_vms,
            extra_holidays=tuple(self.extra_holidays),
        )

    def custom_metric_signals(self) -> list[CustomMetric]:
        return [CustomMetric(name=m.name, target=m.target, type=m.type, filter=m.filter) for m in self.custom_metrics]


def config_key(alias: str) -> str:
    return alias if ":" in alias else f"{NAMESPACE}:{alias}"


_ALIASES = {(f.alias or name): name for name, f in StackConfig.model_fields.items()}


def _decode(value: Any) -> Any:
    # Pulumi hands every config value over as a string; objects and lists arrive JSON-encoded.
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _format_errors(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        loc = item["loc"]
        message = str(item.get("ctx", {}).get("error", item["msg"])) if item["type"] == "value_error" else item["msg"]
        if not loc:
            lines.append(message)
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
        elif item["type"] == "extra_forbidden":
            close = difflib.get_close_matches(str(loc[0]), list(_ALIASES), n=1)
            hint = f"did you mean {config_key(close[0])}?" if close else "see docs/COMPONENTS.md for the keys."
            lines.append(f"{key}: unknown key; {hint}")
        else:
            lines.append(f"{key}{suffix}: {message} (got {item.get('input')!r}).")
    return "\n".join(lines)


def parse_stack_config(values: Mapping[str, Any], stack: str | None) -> StackConfig:
    """Validate a flat map of full config keys (`asyncinfer:maxVms`, `gcp:project`) as Pulumi passes them.

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
