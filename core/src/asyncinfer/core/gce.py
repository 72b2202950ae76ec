"""Compute Engine facts that asyncinfer's components, preflight and simulator rest on, in one place.

Each number says whether it is GCE's (with where it is documented; docs/COMPONENTS.md "GCE facts"
lists the pages) or asyncinfer's own choice, and an ASSUMED value says so. The zone and GPU tables
live in `data/gce_zones.json` with their source, date and confidence.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any

# --- Pub/Sub metrics as the autoscaler sees them (Pub/Sub monitoring docs)
#: subscription/num_undelivered_messages is sampled every 60 s ...
METRIC_PERIOD_S = 60
#: ... and a sample may reach the autoscaler up to about 2 min later.
METRIC_LAG_S = 120
#: The per-group metric a worker pool scales on.
BACKLOG_METRIC = "pubsub.googleapis.com/subscription/num_undelivered_messages"

# --- Spot VMs and shutdown
#: Spot preemption: about 30 s from the ACPI soft-off (the shutdown script starts) to the power-off.
SPOT_NOTICE_S = 30
#: asyncinfer's choice: `docker stop -t` (SIGTERM, then SIGKILL) ends within the notice.
STOP_TIMEOUT_S = 25
#: asyncinfer's choice: the worker's own drain bound, the default everywhere (WorkerSettings, the
#: stack's config, the pool); it must stay below STOP_TIMEOUT_S or `docker stop` kills the drain.
DRAIN_TIMEOUT_S = 20

# --- boot to ready (ASSUMED, not measured here: no GCP project)
#: VM start to worker ready with the baked image. ASSUMPTION: the 7 min the talk's team saved by
#: baking left about 1.5 min of VM boot; measure it (`asyncinfer:bootToReadyS`) before trusting it.
BOOT_TO_READY_ASSUMED_S = 90
#: What an unbaked image adds at every boot. ASSUMPTION: the talk's measured 3.5 min driver install
#: + 3.5 min container pull, not measured here.
UNBAKED_EXTRA_ASSUMED_S = 420

# --- autoscaler (Autoscaler fundamentals, Scale based on Monitoring metrics, Scaling schedules)
#: Scale-in waits out this stabilization period.
SCALE_IN_STABILIZATION_S = 600
#: Monitoring-metric signals per autoscaler.
MAX_METRIC_SIGNALS = 5
MAX_SCALING_SCHEDULES = 128
MIN_SCHEDULE_DURATION_S = 300

# --- names (RFC 1035 for every Compute Engine resource name)
MAX_NAME_LENGTH = 63
NAME_PATTERN = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")
#: The provider appends a 26-character suffix to an instance template's name_prefix; longer
#: prefixes get a shorter, collision-prone suffix.
MAX_TEMPLATE_PREFIX_LENGTH = 37
#: A MIG appends "-xxxx" to its base instance name.
MAX_BASE_INSTANCE_NAME_LENGTH = 58
#: Service account ids: 6-30 characters, same alphabet.
SERVICE_ACCOUNT_ID_LENGTH = (6, 30)

# --- GPUs (GPU machine types page)
#: GPU type -> machine-type prefixes it can be attached to (or comes with).
GPU_MACHINE_SERIES: dict[str, tuple[str, ...]] = {
    "nvidia-tesla-t4": ("n1-",),
    "nvidia-tesla-v100": ("n1-",),
    "nvidia-tesla-p4": ("n1-",),
    "nvidia-l4": ("g2-standard-",),
    "nvidia-tesla-a100": ("a2-highgpu-", "a2-megagpu-"),
    "nvidia-a100-80gb": ("a2-ultragpu-",),
    "nvidia-h100-80gb": ("a3-highgpu-",),
}
#: N1: GPU count -> the most vCPUs the VM may have with that many GPUs of that type.
N1_MAX_VCPUS: dict[str, dict[int, int]] = {
    "nvidia-tesla-t4": {1: 48, 2: 48, 4: 96},
    "nvidia-tesla-p4": {1: 24, 2: 48, 4: 96},
    "nvidia-tesla-v100": {1: 12, 2: 24, 4: 48, 8: 96},
}
#: G2: vCPUs -> the L4 GPUs that come with the shape.
G2_GPU_COUNTS = {4: 1, 8: 1, 12: 1, 16: 1, 24: 2, 32: 1, 48: 4, 96: 8}

# --- regional managed instance groups (Regional MIG target distribution shape)
#: Shapes that move a scale-out to the zones that have capacity; EVEN keeps asking a zone that has
#: none, ANY_SINGLE_ZONE puts the whole pool in one zone.
TARGET_SHAPES = ("ANY", "BALANCED")
DEFAULT_TARGET_SHAPE = "ANY"

#: Source ranges of Google's health checkers; without a firewall rule for them every VM looks dead.
HEALTH_CHECK_RANGES = ("35.191.0.0/16", "130.211.0.0/22")


def gce_name(*parts: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """`parts` joined with '-', shortened to `max_length` with a hash of the whole when too long, so
    two long names that share a prefix stay distinct."""
    full = "-".join(p.strip("-") for p in parts if p)
    if len(full) <= max_length:
        return full
    digest = hashlib.sha256(full.encode()).hexdigest()[:6]
    return f"{full[: max_length - len(digest) - 1].rstrip('-')}-{digest}"


def is_valid_name(name: str, max_length: int = MAX_NAME_LENGTH) -> bool:
    return len(name) <= max_length and NAME_PATTERN.fullmatch(name) is not None


@dataclass(frozen=True)
class PoolNames:
    """Every Compute Engine name a model's worker pool declares, explicit and within GCE's limits.

    The preflight checks these same names before any resource exists, and the components use them,
    so what was checked is what is created.
    """

    model: str

    @property
    def service_account_id(self) -> str:
        return gce_name(self.model, "worker", max_length=SERVICE_ACCOUNT_ID_LENGTH[1])

    @property
    def template_prefix(self) -> str:
        return gce_name(self.model, "gpu", max_length=MAX_TEMPLATE_PREFIX_LENGTH - 1) + "-"

    @property
    def base_instance_name(self) -> str:
        return gce_name(self.model, "w", max_length=MAX_BASE_INSTANCE_NAME_LENGTH)

    @property
    def network_tag(self) -> str:
        return gce_name("asyncinfer", self.model, "worker")

    @property
    def health_check(self) -> str:
        return gce_name(self.model, "health")

    @property
    def firewall(self) -> str:
        return gce_name(self.model, "allow-health-checks")

    @property
    def instance_group_manager(self) -> str:
        return gce_name(self.model, "workers")

    @property
    def autoscaler(self) -> str:
        return gce_name(self.model, "workers-autoscaler")

    @property
    def router(self) -> str:
        return gce_name(self.model, "router")

    @property
    def nat(self) -> str:
        return gce_name(self.model, "nat")

    def all(self) -> dict[str, str]:
        """Resource kind -> name, template prefix without its trailing '-' (the provider adds the rest)."""
        return {
            "service account id": self.service_account_id,
            "instance template name_prefix": self.template_prefix.rstrip("-"),
            "base instance name": self.base_instance_name,
            "network tag": self.network_tag,
            "health check": self.health_check,
            "firewall rule": self.firewall,
            "instance group manager": self.instance_group_manager,
            "autoscaler": self.autoscaler,
            "Cloud Router": self.router,
            "Cloud NAT": self.nat,
        }


def name_limit(kind: str) -> int:
    return {
        "service account id": SERVICE_ACCOUNT_ID_LENGTH[1],
        "instance template name_prefix": MAX_TEMPLATE_PREFIX_LENGTH,
        "base instance name": MAX_BASE_INSTANCE_NAME_LENGTH,
    }.get(kind, MAX_NAME_LENGTH)


# --- the zone and GPU tables


@functools.cache
def _zone_table() -> dict[str, Any]:
    text = resources.files("asyncinfer.core").joinpath("data", "gce_zones.json").read_text()
    table: dict[str, Any] = json.loads(text)
    return table


def zone_table_as_of() -> str:
    return str(_zone_table()["as_of"])


def known_regions() -> tuple[str, ...]:
    return tuple(sorted(_zone_table()["regions"]))


def region_zones(region: str) -> tuple[str, ...] | None:
    """The zones of `region`, or None for a region the table does not have."""
    zones = _zone_table()["regions"].get(region)
    return tuple(zones) if zones is not None else None


def gpu_zones(gpu_type: str, region: str) -> tuple[str, ...]:
    """Zones of `region` that offer `gpu_type` (empty when none does, or the table has no row)."""
    return tuple(_zone_table()["gpus"].get(gpu_type, {}).get(region, ()))


# --- machine shapes


def machine_vcpus(machine_type: str) -> int | None:
    """vCPUs of a predefined or custom machine type (n1-standard-8 -> 8, n1-custom-8-30720 -> 8)."""
    match = re.fullmatch(r"[a-z0-9]+-(?:[a-z]+-)?(\d+)(?:-\d+)?(?:-ext)?", machine_type)
    if machine_type.startswith(("a2-", "a3-")):
        return None
    return int(match.group(1)) if match else None


def attached_gpu_count(machine_type: str) -> int | None:
    """GPUs that come with an accelerator-optimized machine type; None for N1 (GPUs are chosen)."""
    if machine_type.startswith("g2-standard-"):
        vcpus = machine_type.rsplit("-", 1)[-1]
        return G2_GPU_COUNTS.get(int(vcpus)) if vcpus.isdigit() else None
    match = re.fullmatch(r"a[23]-(?:highgpu|megagpu|ultragpu)-(\d+)g", machine_type)
    return int(match.group(1)) if match else None


# --- autoscaler metric filters ("Scale based on Monitoring metrics": AND only, '=' only, no
# functions, every value in double quotes)

_SELECTOR = r"(?:metric\.type|resource\.type|(?:metric|resource)\.labels\.[a-z_][a-z0-9_]*)"
_CLAUSE = rf'{_SELECTOR}\s*=\s*"[^"\\]*"'
_FILTER = re.compile(rf"\s*{_CLAUSE}(?:\s+AND\s+{_CLAUSE})*\s*")


def backlog_filter(subscription_name: str) -> str:
    """The autoscaler's filter for one subscription, every value double-quoted."""
    return f'resource.type = "pubsub_subscription" AND resource.labels.subscription_id = "{subscription_name}"'


def metric_filter_problem(text: str) -> str | None:
    """Why GCE's autoscaler would reject (or silently misread) `text`, or None when it is well formed."""
    if not _FILTER.fullmatch(text):
        return (
            f'filter {text!r} is not `selector = "value"` clauses joined by AND: the autoscaler takes only '
            "metric.type, resource.type, metric.labels.X and resource.labels.X compared with = to a double-quoted "
            'value, e.g. resource.type = "gce_instance" AND metric.labels.gpu = "0"'
        )
    return None
