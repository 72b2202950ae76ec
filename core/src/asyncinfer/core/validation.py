"""Every rule a worker pool's settings must pass, written once, with one wording.

A rule takes plain values and returns the problems it finds (empty when none), each naming the
setting and the fix. `key` turns a setting's name into what the caller's user typed: the stack's
config shows `asyncinfer:minReplicas`, a component's Args show `min_replicas`; the names are the
same setting in both (one name from config key to component argument), so one wording serves both.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from asyncinfer.core import gce

Key = Callable[[str], str]


def plain(name: str) -> str:
    """The setting's own (snake-case) name: how component arguments are spelt."""
    return name


class ConfigProblem(ValueError):
    """Settings that cannot work; `problems` lists each with its setting and fix, `str()` joins them."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def require(problems: Iterable[str], error: type[ConfigProblem] = ConfigProblem) -> None:
    found = list(problems)
    if found:
        raise error(found)


def replica_bounds(
    min_replicas: int, max_replicas: int, business_min_replicas: int | None = None, key: Key = plain
) -> list[str]:
    problems = []
    if min_replicas < 0:
        problems.append(f"{key('min_replicas')} is {min_replicas}; it must be 0 or more.")
    if max_replicas < 1:
        problems.append(f"{key('max_replicas')} is {max_replicas}; it must be at least 1 for work to be done.")
    if min_replicas > max_replicas:
        problems.append(
            f"{key('min_replicas')} ({min_replicas}) is greater than {key('max_replicas')} ({max_replicas}); "
            f"raise {key('max_replicas')} or lower {key('min_replicas')}."
        )
    if business_min_replicas is not None and business_min_replicas > max_replicas:
        problems.append(
            f"{key('business_min_replicas')} ({business_min_replicas}) is greater than {key('max_replicas')} "
            f"({max_replicas}); raise {key('max_replicas')} or lower {key('business_min_replicas')}."
        )
    return problems


def signals_reach_zero(
    min_replicas: int, cpu_utilization_target: float | None, custom_metric_count: int, key: Key = plain
) -> list[str]:
    """Only per-group metrics (the backlog) can take a group to zero; CPU and per-instance metrics need a VM."""
    if min_replicas == 0 and (cpu_utilization_target is not None or custom_metric_count):
        return [
            f"{key('cpu_utilization_target')} / {key('custom_metrics')}: CPU and per-instance metric signals "
            f"cannot scale to zero; set {key('min_replicas')} to 1 or more, or remove them and scale on the "
            "backlog alone."
        ]
    return []


def metric_signals(custom_metric_filters: Sequence[str | None], key: Key = plain) -> list[str]:
    problems = []
    if len(custom_metric_filters) > gce.MAX_METRIC_SIGNALS - 1:
        problems.append(
            f"{key('custom_metrics')} has {len(custom_metric_filters)} entries; GCE allows "
            f"{gce.MAX_METRIC_SIGNALS} metric signals and the backlog is one: keep at most "
            f"{gce.MAX_METRIC_SIGNALS - 1}."
        )
    for index, text in enumerate(custom_metric_filters):
        if text is None:
            continue
        problem = gce.metric_filter_problem(text)
        if problem is None and "resource.labels." in text:
            problem = (
                f"filter {text!r} filters on resource labels: a per-instance signal's series are the VMs' "
                "own (gce_instance), whose resource labels the autoscaler cannot filter; use metric labels"
            )
        if problem is not None:
            problems.append(f"{key('custom_metrics')}[{index}].filter: {problem}.")
    return problems


def latency_goal_beyond_reaction(
    latency_goal_s: float,
    reaction_s: float,
    boot_to_ready_s: float | None,
    assignment_given: bool,
    key: Key = plain,
    boot_note: str = "",
) -> list[str]:
    """A single_instance_assignment derived from the goal needs time left after the pool reacts."""
    if latency_goal_s <= 0:
        return [f"{key('latency_goal_s')} must be > 0 (how long a request may wait for its answer)."]
    if assignment_given or latency_goal_s > reaction_s:
        return []
    parts = (
        f"{gce.METRIC_PERIOD_S} s metric sampling + {gce.METRIC_LAG_S} s metric lag + {boot_to_ready_s:g} s "
        f"{key('boot_to_ready_s')}{boot_note}"
        if boot_to_ready_s is not None
        else "metric sampling, metric lag and boot"
    )
    return [
        f"{key('latency_goal_s')} ({latency_goal_s:g} s) is not longer than the pool's reaction time "
        f"({reaction_s:g} s = {parts}): no assignment can meet it. Raise "
        f"{key('latency_goal_s')} above {reaction_s:g}, shorten the boot (bake the image), or set "
        f"{key('single_instance_assignment')} together with {key('min_replicas')} >= 1."
    ]


def drain_before_stop(drain_timeout_s: float, key: Key = plain) -> list[str]:
    if 0 < drain_timeout_s < gce.STOP_TIMEOUT_S:
        return []
    return [
        f"{key('drain_timeout_s')} is {drain_timeout_s:g}; it must be above 0 and below {gce.STOP_TIMEOUT_S} s "
        f"so the worker finishes draining before `docker stop -t {gce.STOP_TIMEOUT_S}` kills it within the "
        f"~{gce.SPOT_NOTICE_S} s Spot notice (default {gce.DRAIN_TIMEOUT_S})."
    ]


def scale_in_controls(max_scaled_in_replicas: int, max_scaled_in_percent: int | None, key: Key = plain) -> list[str]:
    problems = []
    if max_scaled_in_replicas < 1:
        problems.append(f"{key('max_scaled_in_replicas')} must be at least 1, or no VM could ever leave.")
    if max_scaled_in_percent is not None and not 0 < max_scaled_in_percent <= 100:
        problems.append(f"{key('max_scaled_in_percent')} must be between 1 and 100.")
    return problems


def gpu_shape(gpu_type: str, machine_type: str, gpu_count: int, key: Key = plain) -> list[str]:
    """GPU type, machine type and count as GCE accepts them, N1's vCPU-per-GPU limits included."""
    series = gce.GPU_MACHINE_SERIES.get(gpu_type)
    if series is None:
        return [f"{key('gpu_type')} {gpu_type!r} is not known; use one of {', '.join(gce.GPU_MACHINE_SERIES)}."]
    if not machine_type.startswith(series):
        return [
            f"{key('machine_type')} {machine_type!r} cannot carry {gpu_type}; use a "
            f"{' or '.join(s + '*' for s in series)} machine type (e.g. g2-standard-4 for nvidia-l4, a2-highgpu-1g "
            "for nvidia-tesla-a100, n1-standard-8 for nvidia-tesla-t4)."
        ]
    if machine_type.startswith("n1-"):
        limits = gce.N1_MAX_VCPUS[gpu_type]
        if gpu_count not in limits:
            return [f"{key('gpu_count')} {gpu_count} is not possible for {gpu_type} on N1; use one of {tuple(limits)}."]
        vcpus = gce.machine_vcpus(machine_type)
        if vcpus is None:
            return [f"{key('machine_type')} {machine_type!r} is not an N1 shape GCE knows; check its name."]
        if vcpus > limits[gpu_count]:
            fewest = min((n for n, most in limits.items() if most >= vcpus), default=None)
            more = f"raise {key('gpu_count')} to {fewest}" if fewest else "use fewer vCPUs"
            return [
                f"{key('machine_type')} {machine_type} has {vcpus} vCPUs, but {gpu_count} x {gpu_type} allows at "
                f"most {limits[gpu_count]} on N1; pick a machine type with at most {limits[gpu_count]} vCPUs or "
                f"{more}."
            ]
        return []
    fixed = gce.attached_gpu_count(machine_type)
    if fixed is None:
        return [f"{key('machine_type')} {machine_type!r} is not a known {gpu_type} shape; check its name."]
    if gpu_count != fixed:
        return [
            f"{key('machine_type')} {machine_type} comes with {fixed} x {gpu_type}, but {key('gpu_count')} is "
            f"{gpu_count}; set {key('gpu_count')} to {fixed} or pick another machine type."
        ]
    return []


def zones_of_region(region: str, zones: Sequence[str], key: Key = plain) -> list[str]:
    """Every zone exists in the region (per the zone table), each listed once, at least one."""
    known = gce.region_zones(region)
    if known is None:
        return [
            f"{key('region')} {region!r} is not in the zone table (asyncinfer/core/data/gce_zones.json, as of "
            f"{gce.zone_table_as_of()}); use one of {', '.join(gce.known_regions())}, or add the region's row "
            "from `gcloud compute zones list`."
        ]
    problems = []
    if not zones:
        problems.append(
            f"{key('distribution_policy_zones')} is empty; leave it out or list zones of {region} such as {known[0]}."
        )
    if len(set(zones)) != len(zones):
        problems.append(f"{key('distribution_policy_zones')} lists a zone twice; list each zone once.")
    for zone in zones:
        if zone not in known:
            problems.append(
                f"{key('distribution_policy_zones')}: {zone!r} is not a zone of {region}; its zones are "
                f"{', '.join(known)}."
            )
    return problems


def gpu_offered(gpu_type: str, region: str, zones: Sequence[str], key: Key = plain) -> list[str]:
    """Every zone offers the GPU type (per the GPU table); only meaningful once the zones exist."""
    if gce.region_zones(region) is None or gpu_type not in gce.GPU_MACHINE_SERIES:
        return []
    offered = gce.gpu_zones(gpu_type, region)
    missing = [z for z in zones if z in (gce.region_zones(region) or ()) and z not in offered]
    if not missing:
        return []
    where = f"it is offered in {', '.join(offered)}" if offered else f"no zone of {region} offers it"
    return [
        f"{key('distribution_policy_zones')}: {gpu_type} is not offered in {', '.join(missing)} ({where}, per "
        "the GPU table as of "
        f"{gce.zone_table_as_of()}); choose zones that offer it, another {key('gpu_type')}, or leave "
        f"{key('distribution_policy_zones')} out to use every zone of {region} that offers it."
    ]


def target_shape(shape: str, key: Key = plain) -> list[str]:
    if shape in gce.TARGET_SHAPES:
        return []
    return [
        f"{key('distribution_policy_target_shape')} {shape!r}: use ANY or BALANCED. EVEN keeps asking a zone that "
        "is out of Spot capacity instead of taking the VM elsewhere, and ANY_SINGLE_ZONE puts the whole pool "
        "in one zone."
    ]


def gce_names(names: dict[str, str], key: Key = plain) -> list[str]:
    """Explicit names fit GCE's length and RFC 1035 (lowercase letter first, letters, digits, '-')."""
    problems = []
    for kind, name in names.items():
        limit = gce.name_limit(kind)
        if not gce.is_valid_name(name, limit):
            problems.append(
                f"{key('model')}: the {kind} name {name!r} would not be a valid GCE name (at most {limit} "
                "characters, a lowercase letter first, then lowercase letters, digits or '-'); choose a model "
                "name of lowercase letters, digits and '-'."
            )
    return problems
