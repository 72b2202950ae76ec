"""The one scaling policy: pure functions, checked on plain numbers."""

from __future__ import annotations

import pytest

from asyncinfer.core.policy import (
    PolicyError,
    ScaleInStabilizer,
    ScalingPolicy,
    recommended_workers,
    single_instance_assignment,
    zonal_share,
)


def test_assignment_turns_a_latency_goal_into_backlog_per_worker() -> None:
    assert single_instance_assignment(throughput_per_worker=10, target_latency_s=600) == 6000
    assert ScalingPolicy(throughput_per_worker=2, target_latency_s=30).single_instance_assignment == 60
    assert ScalingPolicy(backlog_per_worker=7).single_instance_assignment == 7


def test_one_waiting_message_starts_the_first_worker() -> None:
    policy = ScalingPolicy(min_workers=0, max_workers=5, backlog_per_worker=1000)
    assert recommended_workers(0, policy) == 0
    assert recommended_workers(1, policy) == 1


@pytest.mark.parametrize(("backlog", "expected"), [(99, 1), (100, 1), (101, 2), (450, 5), (10_000, 5)])
def test_workers_follow_backlog_within_bounds(backlog: int, expected: int) -> None:
    policy = ScalingPolicy(min_workers=0, max_workers=5, backlog_per_worker=100)
    assert recommended_workers(backlog, policy) == expected


def test_schedule_floor_raises_but_never_beyond_max() -> None:
    policy = ScalingPolicy(min_workers=1, max_workers=3, backlog_per_worker=100)
    assert recommended_workers(0, policy, floor=2) == 2
    assert recommended_workers(0, policy, floor=10) == 3
    assert recommended_workers(0, policy, floor=0) == 1


def test_scale_in_waits_out_the_stabilization_window() -> None:
    stabilizer = ScaleInStabilizer(window_s=600)
    assert stabilizer.target(0, 4) == 4
    assert stabilizer.target(300, 0) == 4  # the dip is ignored
    assert stabilizer.target(599, 1) == 4
    assert stabilizer.target(601, 1) == 1  # the peak left the window
    assert stabilizer.target(602, 6) == 6  # scale-out is immediate


def test_zones_share_the_backlog_without_multiplying_vms() -> None:
    policy = ScalingPolicy(min_workers=1, max_workers=5, backlog_per_worker=100)
    share = zonal_share(policy, zone_count=2)
    assert share.single_instance_assignment == 200
    assert (share.min_workers, share.max_workers) == (1, 3)
    backlog = 1000
    per_zone = recommended_workers(backlog, ScalingPolicy(
        min_workers=share.min_workers, max_workers=share.max_workers,
        backlog_per_worker=share.single_instance_assignment))
    assert 2 * per_zone <= policy.max_workers + 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_workers": 3, "max_workers": 2}, "greater than max_workers"),
        ({"max_workers": 0}, "at least 1"),
        ({"throughput_per_worker": 0}, "throughput_per_worker"),
        ({"backlog_per_worker": -1}, "backlog_per_worker"),
    ],
)
def test_bad_policies_say_what_to_fix(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        ScalingPolicy(**kwargs)  # type: ignore[arg-type]


def test_reaction_time_is_taken_out_of_the_latency_goal() -> None:
    # 10 req/s for 600 s would be 6000, but 270 s pass before a new VM serves: 10 * 330.
    assert single_instance_assignment(10, 600, reaction_s=270) == 3300
    policy = ScalingPolicy(throughput_per_worker=10, target_latency_s=600, reaction_s=270)
    assert policy.single_instance_assignment == 3300
    with pytest.raises(PolicyError, match="reaction time"):
        ScalingPolicy(throughput_per_worker=10, target_latency_s=200, reaction_s=270)
