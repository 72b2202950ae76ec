"""The one scaling policy (DESIGN.md section 3).

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

    def __post_init__(self) -> None:
        validate_policy(self)

    @property
    def single_instance_assignment(self) -> float:
        if self.backlog_per_worker is not None:
            return self.backlog_per_worker
        return single_instance_assignment(self.throughput_per_worker, self.target_latency_s)


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


def single_instance_assignment(throughput_per_worker: float, target_latency_s: float) -> float:
    """Backlog one worker should own so that the last request in it waits at most target_latency_s.

    A worker that drains `throughput_per_worker` requests/s clears `throughput * latency` requests
    within the latency goal; more backlog than that per worker means the goal is missed.
    """
    if throughput_per_worker <= 0 or target_latency_s <= 0:
        raise PolicyError("throughput_per_worker and target_latency_s must both be > 0.")
    return throughput_per_worker * target_latency_s


def recommended_workers(backlog: float, policy: ScalingPolicy, floor: int = 0) -> int:
    """Workers the backlog asks for right now, before scale-in stabilization.

    Scale from zero is immediate: one waiting message asks for one worker (the trap in DESIGN.md
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


def zonal_share(policy: ScalingPolicy, zone_count: int) -> ZonalShare:
    """Split a pool across `zone_count` zonal MIGs that all watch the same subscription.

    Every zonal autoscaler sees the whole backlog B. With assignment A each would start B/A VMs,
    N*B/A in all; giving each zone N*A brings the total back to B/A. Min and max are split and
    rounded up so the pool can still reach its bounds, which can cost up to N-1 extra VMs.
    """
    if zone_count < 1:
        raise PolicyError("a pool needs at least one zone.")
    return ZonalShare(
        min_workers=math.ceil(policy.min_workers / zone_count),
        max_workers=max(1, math.ceil(policy.max_workers / zone_count)),
        single_instance_assignment=policy.single_instance_assignment * zone_count,
    )
