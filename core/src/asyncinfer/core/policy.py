"""The one scaling policy (docs/PLATFORM.md).

Pure functions over plain data. Three consumers derive their behaviour from here:
- the Pulumi components (GCE autoscaler settings: single_instance_assignment, per-zone limits),
- the local pool controller (how many worker processes to run now),
- the simulator (what GCE's autoscaler would do over a traffic trace).

Nothing here knows about Pub/Sub, GCE or processes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

#: GCE samples subscription/num_undelivered_messages every 60 s and the autoscaler may see a sample up
#: to 2 min late (docs/PLATFORM.md): new backlog waits this long before any VM is even asked for.
GCE_METRIC_PERIOD_S = 60.0
GCE_METRIC_LAG_S = 120.0


def reaction_time_s(
    boot_to_ready_s: float, metric_period_s: float = GCE_METRIC_PERIOD_S, metric_lag_s: float = GCE_METRIC_LAG_S
) -> float:
    """How long new backlog waits before a new worker can take it: the next metric sample, the
    metric's lag, then the worker's boot to ready. The components and the simulator both use this."""
    return metric_period_s + metric_lag_s + boot_to_ready_s


class PolicyError(ValueError):
    """A scaling configuration that cannot work; the message names the setting and the fix."""


@dataclass(frozen=True, kw_only=True)
class ScalingPolicy:
    """How a pool of workers follows its backlog.

    min_workers / max_workers bound the pool; the floor of a schedule can raise min_workers for a
    while but never lower it. throughput_per_worker (requests/s one worker sustains) times
    target_latency_s (how long a request may wait) gives the backlog one worker should own.
    """

    min_workers: int = 0
    max_workers: int = 4
    throughput_per_worker: float = 10.0
    target_latency_s: float = 600.0
    #: GCE waits this long before removing VMs; the local controller uses a shorter window.
    scale_in_stabilization_s: float = 600.0
    #: Given directly, it overrides throughput_per_worker * target_latency_s.
    backlog_per_worker: float | None = None
    #: How long the pool takes to react to new backlog: metric sampling and lag plus the time a new
    #: worker needs to become ready. The backlog a worker may own must be cleared in what is left of
    #: the latency goal after that (the simulator showed the goal missed by ~4.5 min without it).
    reaction_s: float = 0.0

    def __post_init__(self) -> None:
        validate_policy(self)

    @property
    def single_instance_assignment(self) -> float:
        if self.backlog_per_worker is not None:
            return self.backlog_per_worker
        return single_instance_assignment(self.throughput_per_worker, self.target_latency_s, self.reaction_s)


def validate_policy(policy: ScalingPolicy) -> None:
    if policy.min_workers < 0:
        raise PolicyError(f"min_workers is {policy.min_workers}; it must be 0 or more.")
    if policy.max_workers < 1:
        raise PolicyError(f"max_workers is {policy.max_workers}; it must be at least 1 for work to be done.")
    if policy.min_workers > policy.max_workers:
        raise PolicyError(
            f"min_workers ({policy.min_workers}) is greater than max_workers ({policy.max_workers}); "
            "raise max_workers or lower min_workers."
        )
    if policy.throughput_per_worker <= 0:
        raise PolicyError("throughput_per_worker must be > 0 (requests per second one worker sustains).")
    if policy.target_latency_s <= 0:
        raise PolicyError("target_latency_s must be > 0 (how long a request may wait for its answer).")
    if policy.backlog_per_worker is not None and policy.backlog_per_worker <= 0:
        raise PolicyError("backlog_per_worker must be > 0 when given (messages one worker should own).")
    if policy.scale_in_stabilization_s < 0:
        raise PolicyError("scale_in_stabilization_s must be 0 or more.")
    if policy.reaction_s < 0:
        raise PolicyError("reaction_s must be 0 or more.")
    if policy.backlog_per_worker is None and policy.reaction_s >= policy.target_latency_s:
        raise PolicyError(
            f"target_latency_s ({policy.target_latency_s:g}) is not longer than the pool's reaction time "
            f"({policy.reaction_s:g} s of metric lag and boot): no amount of scaling can meet it. Raise the "
            "latency goal, bake the image to shorten boot, or keep min_workers > 0 and give backlog_per_worker."
        )


def single_instance_assignment(
    throughput_per_worker: float, target_latency_s: float, reaction_s: float = 0.0
) -> float:
    """Backlog one worker should own so that the last request in it waits at most target_latency_s.

    A worker that drains `throughput_per_worker` requests/s clears `throughput * time` requests in
    `time`; the time it has is the latency goal less the pool's reaction time (new work waits that
    long before the worker that will take it exists). More backlog per worker misses the goal.
    """
    if throughput_per_worker <= 0 or target_latency_s <= 0:
        raise PolicyError("throughput_per_worker and target_latency_s must both be > 0.")
    if reaction_s >= target_latency_s:
        raise PolicyError("the latency goal must be longer than the reaction time (metric lag + boot).")
    return throughput_per_worker * (target_latency_s - reaction_s)


def recommended_workers(backlog: float, policy: ScalingPolicy, floor: int = 0) -> int:
    """Workers the backlog asks for right now, before scale-in stabilization.

    Scale from zero is immediate: one waiting message asks for one worker (the trap docs/PLATFORM.md
    section 2 where the first VM starts late or never).
    """
    lower = max(policy.min_workers, min(floor, policy.max_workers))
    if backlog <= 0:
        return lower
    wanted = max(1, math.ceil(backlog / policy.single_instance_assignment))
    return max(lower, min(policy.max_workers, wanted))


class ScaleInStabilizer:
    """GCE's scale-in rule: the size is the largest recommendation seen during the stabilization
    window, so a dip in backlog does not remove workers that are needed again a minute later.
    Scale-out takes effect at once."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._history: deque[tuple[float, int]] = deque()

    def target(self, now_s: float, recommendation: int) -> int:
        self._history.append((now_s, recommendation))
        while self._history and self._history[0][0] < now_s - self._window_s:
            self._history.popleft()
        return max(r for _, r in self._history)


@dataclass(frozen=True)
class ZonalShare:
    """What one zonal MIG's autoscaler gets when a pool spans several zones."""

    min_workers: int
    max_workers: int
    single_instance_assignment: float


def zonal_floor(min_workers: int, zone_count: int) -> int:
    """A pool-wide minimum split across zonal MIGs, rounded up so the zones together reach it."""
    if zone_count < 1:
        raise PolicyError("a pool needs at least one zone.")
    return math.ceil(min_workers / zone_count)


def zonal_share(policy: ScalingPolicy, zone_count: int) -> ZonalShare:
    """Split a pool across `zone_count` zonal MIGs that all watch the same subscription.

    Every zonal autoscaler sees the whole backlog B. With assignment A each would start B/A VMs,
    N*B/A in all; giving each zone N*A brings the total back to B/A. Min and max are split and
    rounded up so the pool can still reach its bounds, which can cost up to N-1 extra VMs.
    """
    if zone_count < 1:
        raise PolicyError("a pool needs at least one zone.")
    return ZonalShare(
        min_workers=zonal_floor(policy.min_workers, zone_count),
        max_workers=max(1, math.ceil(policy.max_workers / zone_count)),
        single_instance_assignment=policy.single_instance_assignment * zone_count,
    )
