"""The lane and fallback policy: pure functions, checked on plain numbers."""

from __future__ import annotations

import dataclasses
import math

import pytest

from asyncinfer.core.lanes import (
    DEFAULT_LANE,
    Lane,
    LaneError,
    LaneSet,
    Waiting,
    choose_batch,
    fallback_assignments,
    lane_assignments,
    lane_policies,
    recommended_for_lanes,
    validate_for_pool,
)
from asyncinfer.core.policy import ScalingPolicy, recommended_workers, single_instance_assignment
from asyncinfer.core.topology import QueueTopology

LANES = LaneSet.defaults()


def test_defaults_are_interactive_over_bulk_with_bulk_as_default() -> None:
    assert LANES.names == ("interactive", "bulk")
    assert DEFAULT_LANE == "bulk"
    assert LANES.get("interactive").priority > LANES.get("bulk").priority
    assert LANES.get("interactive").latency_goal_s < LANES.get("bulk").latency_goal_s


def test_every_request_lands_in_exactly_one_lane() -> None:
    assert LANES.lane_for().name == "bulk"
    assert LANES.lane_for(priority=0).name == "bulk"
    assert LANES.lane_for(priority=1).name == "interactive"
    assert LANES.lane_for(lane="interactive").name == "interactive"
    assert LANES.lane_for(lane="bulk", priority=0).name == "bulk"


@pytest.mark.parametrize(
    ("lane", "priority", "names"),
    [("urgent", None, "unknown lane 'urgent'"), (None, 7, "no lane has priority 7"), ("bulk", 1, "not 1")],
)
def test_unknown_or_contradictory_lanes_are_refused_naming_the_valid_ones(
    lane: str | None, priority: int | None, names: str
) -> None:
    with pytest.raises(LaneError) as caught:
        LANES.lane_for(lane=lane, priority=priority)
    assert names in str(caught.value)
    assert "interactive (priority 1)" in str(caught.value)
    assert "bulk (priority 0, default)" in str(caught.value)


def test_default_lane_keeps_the_original_topic_and_others_get_their_own() -> None:
    topology = QueueTopology(name="symbols")
    assert LANES.requests_topic(topology, "bulk") == "symbols-requests"
    assert LANES.requests_subscription(topology, "bulk") == "symbols-requests-workers"
    assert LANES.requests_topic(topology, "interactive") == "symbols-requests-interactive"
    assert LANES.requests_subscription(topology, "interactive") == "symbols-requests-interactive-workers"
    names = [LANES.requests_subscription(topology, lane) for lane in LANES.names]
    assert len(set(names)) == len(names)


@pytest.mark.parametrize(
    ("lanes", "default", "fragment"),
    [
        ((), "bulk", "lanes is empty"),
        ((Lane(name="Bulk", priority=0, latency_goal_s=600),), "Bulk", "lowercase"),
        ((Lane(name="bulk_1", priority=0, latency_goal_s=600),), "bulk_1", "lowercase"),
        ((Lane(name="a" * 21, priority=0, latency_goal_s=600),), "a" * 21, "1-20"),
        ((Lane(name="bulk-", priority=0, latency_goal_s=600),), "bulk-", "not ending with '-'"),
        ((Lane(name="bulk", priority=10, latency_goal_s=600),), "bulk", "0 to 9"),
        ((Lane(name="a", priority=0, latency_goal_s=600), Lane(name="b", priority=0, latency_goal_s=60)), "a",
         "repeat the priority 0"),
        ((Lane(name="a", priority=0, latency_goal_s=600), Lane(name="a", priority=1, latency_goal_s=60)), "a",
         "repeat the name a"),
        ((Lane(name="bulk", priority=0, latency_goal_s=600),), "other", "default lane 'other'"),
        ((Lane(name="a", priority=1, latency_goal_s=600, backlog_share=0.7),
          Lane(name="b", priority=0, latency_goal_s=600, backlog_share=0.7)), "a", "sums to 1.4"),
        ((Lane(name="a", priority=1, latency_goal_s=600, backlog_share=1.0),
          Lane(name="b", priority=0, latency_goal_s=600)), "a", "leave room"),
    ],
)
def test_lane_configurations_pubsub_gce_or_the_policy_would_reject_fail_at_once(
    lanes: tuple[Lane, ...], default: str, fragment: str
) -> None:
    with pytest.raises(LaneError) as caught:
        LaneSet(lanes, default)
    assert fragment in str(caught.value)


def test_goals_within_the_reaction_time_and_too_many_metrics_are_refused() -> None:
    validate_for_pool(LANES, reaction_s=270)
    with pytest.raises(LaneError, match="not longer than the pool's reaction"):
        validate_for_pool(LANES, reaction_s=420)
    five = LaneSet(tuple(Lane(name=f"l{p}", priority=p, latency_goal_s=900) for p in range(5)), "l0")
    validate_for_pool(five, reaction_s=270)
    with pytest.raises(LaneError, match="GCE allows 5"):
        validate_for_pool(five, reaction_s=270, other_metric_signals=1)


def test_lane_assignments_come_from_the_shared_policy_times_each_lanes_share() -> None:
    assignments = lane_assignments(LANES, throughput_per_replica=3.2, reaction_s=270)
    assert assignments["interactive"] == pytest.approx(0.5 * single_instance_assignment(3.2, 420, 270))
    assert assignments["bulk"] == pytest.approx(0.5 * single_instance_assignment(3.2, 600, 270))
    weighted = LaneSet(
        (Lane(name="interactive", priority=1, latency_goal_s=420, backlog_share=0.2),
         Lane(name="bulk", priority=0, latency_goal_s=600)), "bulk")
    assert weighted.shares() == pytest.approx({"interactive": 0.2, "bulk": 0.8})


@pytest.mark.parametrize("backlogs", [(0, 5000), (300, 0), (240, 528), (1000, 3000), (7, 13)])
def test_the_largest_lane_recommendation_covers_the_sum_of_what_the_lanes_need(backlogs: tuple[int, int]) -> None:
    """GCE follows the largest metric; with shares the largest is never below the lanes' sum."""
    base = ScalingPolicy(min_replicas=0, max_replicas=1000, throughput_per_replica=3.2, reaction_s=270)
    policies = lane_policies(base, lane_assignments(LANES, 3.2, 270))
    interactive, bulk = backlogs
    needed = interactive / single_instance_assignment(3.2, 420, 270) + bulk / single_instance_assignment(3.2, 600, 270)
    got = recommended_for_lanes({"interactive": interactive, "bulk": bulk}, policies)
    assert got >= math.ceil(needed - 1e-9)


def test_lanes_sized_alone_fall_short_of_the_sum_when_both_hold_work() -> None:
    base = ScalingPolicy(min_replicas=0, max_replicas=1000, throughput_per_replica=3.2, reaction_s=270)
    alone = lane_policies(
        base, {lane.name: single_instance_assignment(3.2, lane.latency_goal_s, 270) for lane in LANES.lanes}
    )
    needed = 1000 / single_instance_assignment(3.2, 420, 270) + 3000 / single_instance_assignment(3.2, 600, 270)
    assert recommended_for_lanes({"interactive": 1000, "bulk": 3000}, alone) < math.ceil(needed)


def test_lane_recommendation_keeps_the_floor_and_the_cap_and_needs_every_backlog() -> None:
    base = ScalingPolicy(min_replicas=0, max_replicas=4, throughput_per_replica=3.2, reaction_s=270)
    policies = lane_policies(base, lane_assignments(LANES, 3.2, 270))
    assert recommended_for_lanes({"interactive": 0, "bulk": 0}, policies, floor=2) == 2
    assert recommended_for_lanes({"interactive": 0, "bulk": 10**6}, policies) == 4
    assert recommended_for_lanes({"interactive": 1, "bulk": 0}, policies) == 1
    with pytest.raises(LaneError, match="no backlog given for lane"):
        recommended_for_lanes({"bulk": 3}, policies)


def test_fallback_grows_only_beyond_what_the_full_spot_pool_owns_and_shrinks_when_spot_catches_up() -> None:
    spot = lane_assignments(LANES, 3.2, 270)
    fallback = fallback_assignments(spot, factor=20)
    base = ScalingPolicy(min_replicas=0, max_replicas=10, throughput_per_replica=3.2, reaction_s=270)
    spot_policy = lane_policies(dataclasses.replace(base, max_replicas=20), spot)
    fallback_policy = lane_policies(base, fallback)
    within_spot = {"interactive": 10, "bulk": 19 * spot["bulk"]}  # the Spot pool can own it (19 of 20 VMs)
    assert recommended_for_lanes(within_spot, spot_policy) == 19
    assert recommended_for_lanes(within_spot, fallback_policy) == 1  # GCE's one-VM rule: the standby
    outrun = {"interactive": 10, "bulk": 3.5 * 20 * spot["bulk"]}  # Spot cannot be had: backlog piles up
    assert recommended_for_lanes(outrun, fallback_policy) == 4
    assert recommended_for_lanes({"interactive": 0, "bulk": 0}, fallback_policy) == 0
    assert recommended_workers(0, fallback_policy["bulk"]) == 0
    with pytest.raises(LaneError, match="must be > 1"):
        fallback_assignments(spot, 1)


def _w(priority: int, published_at: float, goal: float = 600.0) -> Waiting:
    return Waiting(priority=priority, latency_goal_s=goal, published_at=published_at)


def test_higher_priority_first_then_oldest() -> None:
    held = [_w(0, 1.0), _w(1, 5.0, 420), _w(0, 0.5), _w(1, 2.0, 420)]
    assert choose_batch(held, now=10.0, max_batch=3) == [3, 1, 2]


def test_a_lower_lane_message_at_risk_of_its_goal_overtakes_fresh_higher_lane_work() -> None:
    now = 1000.0
    held = [_w(1, now - 1, 420), _w(1, now - 2, 420), _w(0, now - 301), _w(0, now - 10)]
    batch = choose_batch(held, now=now, max_batch=2)
    assert batch[0] == 2  # bulk, 301 s old of its 600 s goal: at risk
    assert batch[1] == 1  # then the oldest fresh interactive
    assert 3 not in choose_batch(held, now=now, max_batch=3)


def test_boosted_messages_take_at_most_half_a_batch_while_higher_lanes_wait() -> None:
    now = 5000.0
    held = [_w(0, now - 400 - i) for i in range(20)] + [_w(1, now - 1, 420) for _ in range(20)]
    batch = choose_batch(held, now=now, max_batch=8)
    assert sum(1 for i in batch if held[i].priority == 0) == 4
    assert sum(1 for i in batch if held[i].priority == 1) == 4
    # Without higher-lane work the boosted messages fill the batch.
    assert len(choose_batch(held[:20], now=now, max_batch=8)) == 8
    # With little higher-lane work, the rest of the batch goes to boosted messages again.
    few = held[:20] + held[20:21]
    batch = choose_batch(few, now=now, max_batch=8)
    assert len(batch) == 8 and 20 in batch


def test_choose_batch_edges() -> None:
    assert choose_batch([], now=0.0, max_batch=4) == []
    with pytest.raises(ValueError):
        choose_batch([_w(0, 0.0)], now=0.0, max_batch=0)


def test_a_batch_takes_the_oldest_of_every_lane_even_past_the_boost_quota() -> None:
    now = 5000.0
    boosted = [_w(0, now - 500 - i) for i in range(10)]
    fresh_bulk = [_w(0, now - 5 - i) for i in range(5)]
    held = [*boosted, _w(1, now - 1, 420), *fresh_bulk]
    batch = choose_batch(held, now=now, max_batch=8)
    assert 10 in batch  # the interactive one
    bulk = sorted(held[i].published_at for i in batch if held[i].priority == 0)
    oldest_seven = sorted(w.published_at for w in held if w.priority == 0)[:7]
    assert bulk == oldest_seven


def test_a_fallback_can_watch_some_lanes_only() -> None:
    spot = lane_assignments(LANES, 3.2, 270)
    assert fallback_assignments(spot, 20, watched=["interactive"]) == {"interactive": 20 * spot["interactive"]}
    with pytest.raises(LaneError, match="must watch one or more of the lanes"):
        fallback_assignments(spot, 20, watched=["urgent"])
    with pytest.raises(LaneError, match="must watch one or more"):
        fallback_assignments(spot, 20, watched=[])


def test_a_given_assignment_is_shared_among_the_lanes() -> None:
    from asyncinfer.core.lanes import shared_assignments

    assert shared_assignments(LANES, 64) == {"interactive": 32.0, "bulk": 32.0}
    with pytest.raises(LaneError):
        shared_assignments(LANES, 0)
