"""Priority lanes and the capacity fallback: the one policy, as pure functions over plain data.

A lane is a class of requests with its own latency goal. Every lane has its own requests topic and
worker subscription (names from QueueTopology), so a message lands in exactly one lane by
construction: Pub/Sub subscription filters could split one topic instead, but the emulator ignores
filters (both halves of a partition received every message), so that design could not be tested
locally and would behave differently in the cloud. The default lane keeps the topology's original
`{name}-requests` topic, so publishers that know nothing of lanes keep working.

What this module decides, for the components, the local stack, the worker and the simulator alike:
- which lane a request belongs to (by lane name or by its `priority`), refusing unknown ones;
- the order in which a worker serves what it holds: higher priority first, with an age boost so a
  lower-lane message about to miss its own goal is served ahead of fresh higher-lane work;
- the backlog one VM owns per lane (one autoscaler metric per lane), sized for the gap between the
  autoscaler's largest recommendation and the sum the lanes really need;
- the fallback (on-demand) pool's assignment: larger than the Spot pool's, so it grows only when the
  backlog outruns what the Spot pool can own, and shrinks as soon as Spot catches up.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from asyncinfer.core import gce
from asyncinfer.core.policy import ScalingPolicy, recommended_workers, single_instance_assignment
from asyncinfer.core.topology import QueueTopology

#: A lane's name goes into topic and subscription names (`{queue}-requests-{lane}-workers`) and
#: into message attributes and labels: GCE's name alphabet, short enough to leave room for the rest.
LANE_NAME = re.compile(r"^[a-z](?:[a-z0-9-]{0,18}[a-z0-9])?$")
MAX_LANE_NAME_LENGTH = 20
#: The contract's priority range (InferenceRequest.priority).
PRIORITIES = range(0, 10)
#: The message attribute that names a request's lane (set by the client, checked by the worker).
LANE_ATTRIBUTE = "lane"
#: A held message is boosted once it has waited this share of its lane's goal: the other half is
#: left for whatever is still ahead of it (the rest of the backlog, a batch, the publish).
AT_RISK_SHARE_OF_GOAL = 0.5
#: While fresh higher-lane work waits, boosted lower-lane messages take at most this share of a
#: batch: a lower lane that is wholly overdue (a long bulk backlog) must not starve the upper lanes
#: in turn; it still gets half of every batch, so it drains as well.
MAX_BOOSTED_SHARE_OF_BATCH = 0.5


class LaneError(ValueError):
    """A lane configuration or a lane choice that cannot work; the message names what and the fix."""


@dataclass(frozen=True, kw_only=True)
class Lane:
    """A class of requests: its name, its priority (higher is served first) and its latency goal.

    backlog_share: the part of the pool this lane's backlog metric is sized to own (see
    lane_assignments); None splits what the other lanes leave equally.
    """

    name: str
    priority: int
    latency_goal_s: float
    backlog_share: float | None = None

    @property
    def boost_after_s(self) -> float:
        """Age (since publish) after which a held message of this lane is at risk of its goal."""
        return self.latency_goal_s * AT_RISK_SHARE_OF_GOAL


#: Existing publishers send priority 0 to `{name}-requests`: that is the bulk lane, with the
#: 10-minute goal every request had before lanes. Interactive requests opt in with priority 1 (or
#: the lane's name) and are sized for a shorter goal.
DEFAULT_LANES: tuple[Lane, ...] = (
    Lane(name="interactive", priority=1, latency_goal_s=420.0),
    Lane(name="bulk", priority=0, latency_goal_s=600.0),
)
DEFAULT_LANE = "bulk"


@dataclass(frozen=True)
class LaneSet:
    """A model's lanes, highest priority first, and the lane a request without one goes to."""

    lanes: tuple[Lane, ...]
    default: str

    def __post_init__(self) -> None:
        problems = lane_problems(self.lanes, self.default)
        if problems:
            raise LaneError("\n".join(problems))
        object.__setattr__(self, "lanes", tuple(sorted(self.lanes, key=lambda lane: -lane.priority)))

    @classmethod
    def defaults(cls) -> LaneSet:
        return cls(DEFAULT_LANES, DEFAULT_LANE)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(lane.name for lane in self.lanes)

    def get(self, name: str) -> Lane:
        for lane in self.lanes:
            if lane.name == name:
                return lane
        raise LaneError(f"unknown lane {name!r}; the lanes are {self.describe()}.")

    def describe(self) -> str:
        """'interactive (priority 1), bulk (priority 0, default)': what an error message lists."""
        return ", ".join(
            f"{lane.name} (priority {lane.priority}{', default' if lane.name == self.default else ''})"
            for lane in self.lanes
        )

    def lane_for(self, lane: str | None = None, priority: int | None = None) -> Lane:
        """The lane a request goes to: by name, by priority, or the default when neither is given.

        Both given must agree. An unknown name or a priority no lane has is refused, naming the
        valid ones: a request must never land in a lane its sender did not mean.
        """
        by_name = self.get(lane) if lane is not None else None
        by_priority = None
        if priority is not None:
            by_priority = next((x for x in self.lanes if x.priority == priority), None)
            if by_priority is None:
                raise LaneError(f"no lane has priority {priority}; the lanes are {self.describe()}.")
        if by_name and by_priority and by_name != by_priority:
            raise LaneError(
                f"lane {by_name.name!r} has priority {by_name.priority}, not {priority}; give one of them, "
                f"or a matching pair. The lanes are {self.describe()}."
            )
        return by_name or by_priority or self.get(self.default)

    def requests_topic(self, topology: QueueTopology, lane: str) -> str:
        """The default lane keeps `{name}-requests`; every other lane gets `{name}-requests-{lane}`."""
        self.get(lane)
        return topology.requests_topic if lane == self.default else topology.lane_requests_topic(lane)

    def requests_subscription(self, topology: QueueTopology, lane: str) -> str:
        self.get(lane)
        return (
            topology.requests_subscription if lane == self.default else topology.lane_requests_subscription(lane)
        )

    def shares(self) -> dict[str, float]:
        """Each lane's backlog_share, the unset ones splitting what the set ones leave equally."""
        given = {lane.name: lane.backlog_share for lane in self.lanes if lane.backlog_share is not None}
        rest = [lane.name for lane in self.lanes if lane.backlog_share is None]
        left = 1.0 - sum(given.values())
        return {lane.name: given.get(lane.name, left / len(rest) if rest else 0.0) for lane in self.lanes}


def lane_problems(lanes: Sequence[Lane], default: str) -> list[str]:
    """What Pub/Sub or GCE would reject, or what could not work; empty when the lanes are fine."""
    problems: list[str] = []
    if not lanes:
        return ["lanes is empty; declare at least one lane (the default has interactive and bulk)."]
    for lane in lanes:
        if not LANE_NAME.match(lane.name):
            problems.append(
                f"lane name {lane.name!r} must be 1-{MAX_LANE_NAME_LENGTH} lowercase letters, digits or '-', "
                "starting with a letter and not ending with '-' (it goes into topic and subscription names)."
            )
        if lane.priority not in PRIORITIES:
            problems.append(f"lane {lane.name!r}: priority {lane.priority} must be 0 to 9 (the request's range).")
        if not lane.latency_goal_s > 0:
            problems.append(f"lane {lane.name!r}: latency_goal_s must be > 0.")
        if lane.backlog_share is not None and not 0 < lane.backlog_share <= 1:
            problems.append(f"lane {lane.name!r}: backlog_share {lane.backlog_share} must be in (0, 1].")
    for what, values in (("name", [x.name for x in lanes]), ("priority", [str(x.priority) for x in lanes])):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            problems.append(
                f"lanes repeat the {what} {', '.join(repeated)}; every lane needs its own {what} "
                "(a request's priority must name exactly one lane)."
            )
    if default not in [x.name for x in lanes]:
        problems.append(f"default lane {default!r} is not one of the lanes ({', '.join(x.name for x in lanes)}).")
    given = [x.backlog_share for x in lanes if x.backlog_share is not None]
    unset = len(lanes) - len(given)
    if sum(given) > 1 + 1e-9 or (unset and sum(given) >= 1):
        problems.append(
            f"backlog_share sums to {sum(given):g} with {unset} lane(s) unset; the shares must sum to at most 1 "
            "and leave room for unset lanes, or the pool is sized below what the lanes need together."
        )
    return problems


def validate_for_pool(lanes: LaneSet, reaction_s: float, other_metric_signals: int = 0) -> None:
    """The checks that need the pool: goals beyond the reaction time, GCE's metric limit.

    Every lane is one backlog metric on each autoscaler (the Spot pool's and the fallback's, each
    holding the same set), next to `other_metric_signals` the autoscaler already has.
    """
    problems = []
    for lane in lanes.lanes:
        if lane.latency_goal_s <= reaction_s:
            problems.append(
                f"lane {lane.name!r}: latency_goal_s {lane.latency_goal_s:g} is not longer than the pool's reaction "
                f"time ({reaction_s:g} s of metric sampling, lag and boot): no scaling can meet it. Raise the goal "
                "or shorten the boot."
            )
    total = len(lanes.lanes) + other_metric_signals
    if total > gce.MAX_METRIC_SIGNALS:
        problems.append(
            f"{len(lanes.lanes)} lanes + {other_metric_signals} other metric signal(s) = {total} metrics per "
            f"autoscaler; GCE allows {gce.MAX_METRIC_SIGNALS}. Merge lanes or drop custom metrics."
        )
    if problems:
        raise LaneError("\n".join(problems))


# --- scaling ----------------------------------------------------------------------------------


def lane_assignments(lanes: LaneSet, throughput_per_replica: float, reaction_s: float) -> dict[str, float]:
    """The backlog one VM owns in each lane: the shared policy's assignment for the lane's goal,
    times the lane's share.

    GCE's autoscaler follows the LARGEST recommendation among its metrics, and one per-group metric
    cannot sum several subscriptions (a metric filter joins only equality selectors with AND). But
    the lowest lane waits for all the others, so the pool must cover the SUM of the lanes' needs
    B_l / A_l. With shares s_l summing to at most 1 and assignments s_l * A_l:
    sum_l B_l / A_l = sum_l s_l * (B_l / (s_l * A_l)) <= max_l B_l / (s_l * A_l),
    so the largest recommendation always covers the sum. The price: when one lane holds all the
    backlog, the pool is 1 / s_l times what that lane alone needs (the simulator shows the cost).
    """
    shares = lanes.shares()
    return {
        lane.name: shares[lane.name]
        * single_instance_assignment(throughput_per_replica, lane.latency_goal_s, reaction_s)
        for lane in lanes.lanes
    }


def shared_assignments(lanes: LaneSet, single_instance_assignment: float) -> dict[str, float]:
    """Per-lane assignments when the pool's assignment is given directly (the local stack, or a
    stack that sets single_instance_assignment): each lane gets its share of it, so the largest
    lane recommendation still covers the sum (see lane_assignments)."""
    if not single_instance_assignment > 0:
        raise LaneError("single_instance_assignment must be > 0.")
    return {name: share * single_instance_assignment for name, share in lanes.shares().items()}


def lane_policies(base: ScalingPolicy, assignments: Mapping[str, float]) -> dict[str, ScalingPolicy]:
    """One policy per lane metric: the pool's bounds and stabilization, the lane's assignment."""
    return {name: dataclasses.replace(base, single_instance_assignment=a) for name, a in assignments.items()}


def recommended_for_lanes(backlogs: Mapping[str, float], policies: Mapping[str, ScalingPolicy], floor: int = 0) -> int:
    """What GCE's autoscaler does with one metric per lane: each recommends, the largest wins."""
    missing = sorted(set(policies) - set(backlogs))
    if missing:
        raise LaneError(f"no backlog given for lane(s) {', '.join(missing)}.")
    return max(recommended_workers(backlogs[name], policy, floor) for name, policy in policies.items())


def fallback_assignments(
    spot_assignments: Mapping[str, float], factor: float, watched: Iterable[str] | None = None
) -> dict[str, float]:
    """The fallback pool's assignment per lane: `factor` times the Spot pool's.

    Both pools watch the same lane metrics; the fallback recommends 1 / factor of what the Spot
    pool recommends. With factor = the Spot pool's max_replicas, the fallback's recommendation
    ceil(B / (max_spot * A)) stays at one VM while the full Spot pool could own the backlog, and
    grows only with backlog beyond that, which piles up when Spot cannot be had (a stockout) or a
    spike exceeds the Spot pool's cap; it shrinks as soon as Spot drains the backlog again. A
    smaller factor gives the fallback a share of every spike, and the lower lanes more capacity
    during a stockout (docs/CAPACITY.md compares both).

    The one VM is GCE's rule (any backlog asks for at least one VM, so a pool can scale from zero):
    it is the fallback's standby, so the upper lanes have a worker the moment Spot goes away, and
    it is most of what the fallback costs when nothing goes wrong. `watched` limits the fallback to
    some lanes (e.g. only `interactive`): its standby then runs only while those lanes hold work.
    """
    if not factor > 1:
        raise LaneError(
            f"the fallback's assignment factor is {factor}; it must be > 1 so the fallback grows only when "
            "the backlog outruns the Spot pool (the Spot pool's max_replicas is the strict choice)."
        )
    names = list(spot_assignments) if watched is None else list(watched)
    unknown = sorted(set(names) - set(spot_assignments))
    if unknown or not names:
        raise LaneError(
            f"the fallback must watch one or more of the lanes ({', '.join(spot_assignments)}); got "
            f"{', '.join(unknown) or 'none'}."
        )
    return {name: spot_assignments[name] * factor for name in names}


# --- serving order ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Waiting:
    """What the serving order needs of one held message."""

    priority: int
    latency_goal_s: float
    #: When it was published (seconds, any clock the caller also passes as `now`).
    published_at: float

    def at_risk(self, now: float) -> bool:
        return now - self.published_at >= self.latency_goal_s * AT_RISK_SHARE_OF_GOAL


def choose_batch(held: Sequence[Waiting], now: float, max_batch: int) -> list[int]:
    """Which held messages go into the next batch (indices into `held`), in serving order.

    Higher priority first, oldest first within a lane. A message of a lower lane that has waited
    long enough to risk its goal is boosted ahead of fresh higher-lane work, oldest first, up to
    MAX_BOOSTED_SHARE_OF_BATCH of the batch; boosted messages beyond that keep their own lane's
    place. Within a lane the order stays oldest first, so a batch takes a prefix of every lane.
    Lanes share a batch (measured: docs/CAPACITY.md "Priority lanes"): a batch that is not full
    wastes the GPU's per-batch cost, and one model serves every lane.
    """
    if max_batch < 1:
        raise ValueError("max_batch must be at least 1.")
    top = max((w.priority for w in held), default=0)
    boosted = sorted(
        (i for i, w in enumerate(held) if w.priority < top and w.at_risk(now)), key=lambda i: held[i].published_at
    )
    first = boosted[: max(1, math.floor(max_batch * MAX_BOOSTED_SHARE_OF_BATCH))]
    taken = set(first)
    rest = sorted(
        (i for i in range(len(held)) if i not in taken), key=lambda i: (-held[i].priority, held[i].published_at)
    )
    return (first + rest)[:max_batch]


def lanes_in_order(lanes: Iterable[Lane]) -> list[Lane]:
    """Highest priority first: the order a worker asks its lanes' subscriptions for messages."""
    return sorted(lanes, key=lambda lane: -lane.priority)
