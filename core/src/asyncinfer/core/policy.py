"""The one scaling policy (docs/COMPONENTS.md "How the pool scales").

Pure functions over plain data. Three consumers derive their behaviour from here:
- the Pulumi components (the regional autoscaler's min/max replicas and single_instance_assignment),
- the local pool controller (how many worker processes to run now),
- the simulator (what GCE's autoscaler would do over a traffic trace).

Nothing here knows about Pub/Sub, GCE or processes.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from asyncinfer.core import gce, validation
from asyncinfer.core.validation import ConfigProblem


def reaction_time_s(
    boot_to_ready_s: float, metric_period_s: float = gce.METRIC_PERIOD_S, metric_lag_s: float = gce.METRIC_LAG_S
) -> float:
    """How long new backlog waits before a new worker can take it: the next metric sample, the
    metric's lag, then the worker's boot to ready. The components and the simulator both use this."""
    return metric_period_s + metric_lag_s + boot_to_ready_s


class PolicyError(ConfigProblem):
    """A scaling configuration that cannot work; the message names the setting and the fix."""


@dataclass(frozen=True, kw_only=True)
class ScalingPolicy:
    """How a pool of replicas (VMs, or local worker processes) follows its backlog.

    The names are GCE's autoscaler's: min_replicas / max_replicas bound the pool (a schedule can
    raise the floor for a while but never lower it); single_instance_assignment is the backlog one
    replica should own. Not given, it is throughput_per_replica (requests/s one replica sustains)
    times what is left of latency_goal_s (how long a request may wait) after the pool's reaction.
    """

    min_replicas: int = 0
    max_replicas: int = 4
    throughput_per_replica: float = 10.0
    latency_goal_s: float = 600.0
    #: GCE waits this long before removing VMs; the local controller uses a shorter window.
    scale_in_stabilization_s: float = gce.SCALE_IN_STABILIZATION_S
    #: Given directly, it replaces throughput_per_replica x (latency_goal_s - reaction_s).
    single_instance_assignment: float | None = None
    #: How long the pool takes to react to new backlog: metric sampling and lag plus the time a new
    #: replica needs to become ready. The backlog a replica may own must be cleared in what is left of
    #: the latency goal after that (the simulator showed the goal missed by ~4.5 min without it).
    reaction_s: float = 0.0

    def __post_init__(self) -> None:
        validate_policy(self)

    @property
    def assignment(self) -> float:
        """The backlog one replica owns: single_instance_assignment as given, or derived from the goal."""
        if self.single_instance_assignment is not None:
            return self.single_instance_assignment
        return single_instance_assignment(self.throughput_per_replica, self.latency_goal_s, self.reaction_s)


def validate_policy(policy: ScalingPolicy) -> None:
    problems = validation.replica_bounds(policy.min_replicas, policy.max_replicas)
    if policy.throughput_per_replica <= 0:
        problems.append("throughput_per_replica must be > 0 (requests per second one replica sustains).")
    if policy.single_instance_assignment is not None and policy.single_instance_assignment <= 0:
        problems.append("single_instance_assignment must be > 0 when given (messages one replica should own).")
    if policy.scale_in_stabilization_s < 0:
        problems.append("scale_in_stabilization_s must be 0 or more.")
    if policy.reaction_s < 0:
        problems.append("reaction_s must be 0 or more.")
    problems += validation.latency_goal_beyond_reaction(
        policy.latency_goal_s,
        policy.reaction_s,
        None,
        assignment_given=policy.single_instance_assignment is not None,
    )
    validation.require(problems, PolicyError)


def single_instance_assignment(throughput_per_replica: float, latency_goal_s: float, reaction_s: float = 0.0) -> float:
    """Backlog one replica should own so that the last request in it waits at most latency_goal_s.

    A replica that drains `throughput_per_replica` requests/s clears `throughput * time` requests in
    `time`; the time it has is the latency goal less the pool's reaction time (new work waits that
    long before the replica that will take it exists). More backlog per replica misses the goal.
    """
    if throughput_per_replica <= 0 or latency_goal_s <= 0:
        raise PolicyError(["throughput_per_replica and latency_goal_s must both be > 0."])
    if reaction_s >= latency_goal_s:
        raise PolicyError(["the latency goal must be longer than the reaction time (metric lag + boot)."])
    return throughput_per_replica * (latency_goal_s - reaction_s)


def recommended_workers(backlog: float, policy: ScalingPolicy, floor: int = 0) -> int:
    """Workers the backlog asks for right now, before scale-in stabilization.

    Scale from zero is immediate: one waiting message asks for one worker (the trap where the first
    VM starts late or never).
    """
    lower = max(policy.min_replicas, min(floor, policy.max_replicas))
    if backlog <= 0:
        return lower
    wanted = max(1, math.ceil(backlog / policy.assignment))
    return max(lower, min(policy.max_replicas, wanted))


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
