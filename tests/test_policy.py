"""The one scaling policy: pure functions, checked on plain numbers."""

from __future__ import annotations

import pytest

from asyncinfer.core.policy import (
    PolicyError,
    ScaleInStabilizer,
    ScalingPolicy,
    recommended_workers,
    single_instance_assignment,
)


def test_assignment_turns_a_latency_goal_into_single_instance_assignment() -> None:
    assert single_instance_assignment(throughput_per_replica=10, latency_goal_s=600) == 6000
    assert ScalingPolicy(throughput_per_replica=2, latency_goal_s=30).assignment == 60
    assert ScalingPolicy(single_instance_assignment=7).assignment == 7


def test_one_waiting_message_starts_the_first_worker() -> None:
    policy = ScalingPolicy(min_replicas=0, max_replicas=5, single_instance_assignment=1000)
    assert recommended_workers(0, policy) == 0
    assert recommended_workers(1, policy) == 1


@pytest.mark.parametrize(("backlog", "expected"), [(99, 1), (100, 1), (101, 2), (450, 5), (10_000, 5)])
def test_workers_follow_backlog_within_bounds(backlog: int, expected: int) -> None:
    policy = ScalingPolicy(min_replicas=0, max_replicas=5, single_instance_assignment=100)
    assert recommended_workers(backlog, policy) == expected


def test_schedule_floor_raises_but_never_beyond_max() -> None:
    policy = ScalingPolicy(min_replicas=1, max_replicas=3, single_instance_assignment=100)
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


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"min_replicas": 3, "max_replicas": 2}, "greater than max_replicas"),
        ({"max_replicas": 0}, "at least 1"),
        ({"throughput_per_replica": 0}, "throughput_per_replica"),
        ({"single_instance_assignment": -1}, "single_instance_assignment"),
    ],
)
def test_bad_policies_say_what_to_fix(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        ScalingPolicy(**kwargs)  # type: ignore[arg-type]


def test_reaction_time_is_taken_out_of_the_latency_goal() -> None:
    # 10 req/s for 600 s would be 6000, but 270 s pass before a new VM serves: 10 * 330.
    assert single_instance_assignment(10, 600, reaction_s=270) == 3300
    policy = ScalingPolicy(throughput_per_replica=10, latency_goal_s=600, reaction_s=270)
    assert policy.assignment == 3300
    with pytest.raises(PolicyError, match="reaction time"):
        ScalingPolicy(throughput_per_replica=10, latency_goal_s=200, reaction_s=270)
