"""Lanes and the fallback pool in the cloud, under Pulumi's mocks: a topic and subscription per lane,
one backlog metric per lane on each autoscaler, and an on-demand fallback MIG + autoscaler."""

from __future__ import annotations

import json
from typing import Any

import pytest

from asyncinfer.components.model_stack import program
from asyncinfer.components.queue import Queue, QueueArgs
from asyncinfer.components.stack_config import StackConfigError, parse_stack_config
from asyncinfer.core.gce import BACKLOG_METRIC, backlog_filter
from asyncinfer.core.lanes import LaneSet
from asyncinfer.core.topology import QueueTopology
from tests.components.conftest import PROJECT, SCHEDULE_START, Engine

TOPIC = "gcp:pubsub/topic:Topic"
SUBSCRIPTION = "gcp:pubsub/subscription:Subscription"
TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
MIG = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
AUTOSCALER = "gcp:compute/regionAutoscaler:RegionAutoscaler"
IMAGE = "asia-northeast1-docker.pkg.dev/p/asyncinfer/symbols:1"
LANES = json.dumps([
    {"name": "interactive", "priority": 1, "latencyGoalS": 420},
    {"name": "bulk", "priority": 0, "latencyGoalS": 600},
])


def config(**extra: Any) -> dict[str, str]:
    values = {"asyncinfer:image": IMAGE, "gcp:project": PROJECT}
    values.update({f"asyncinfer:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in extra.items()})
    return values


def test_the_queue_declares_a_topic_and_subscription_per_lane_with_the_shared_dead_letter(engine: Engine) -> None:
    lanes = LaneSet.defaults()
    graph = engine.run(lambda: Queue("q", QueueArgs(topology=QueueTopology(name="symbols"), project=PROJECT,
                                                     lanes=lanes)))
    topics = {r.inputs["name"] for r in graph.of_type(TOPIC)}
    assert topics == {"symbols-requests", "symbols-requests-interactive", "symbols-results", "symbols-dead-letter"}
    subscriptions = {r.inputs["name"]: r.inputs for r in graph.of_type(SUBSCRIPTION)}
    assert set(subscriptions) == {"symbols-requests-workers", "symbols-requests-interactive-workers",
                                  "symbols-dead-letter-hold"}
    default = subscriptions["symbols-requests-workers"]
    interactive = subscriptions["symbols-requests-interactive-workers"]
    # Same delivery settings, the same (shared) dead-letter topic.
    for key in ("ackDeadlineSeconds", "retryPolicy", "deadLetterPolicy", "messageRetentionDuration"):
        assert interactive[key] == default[key], key
    assert interactive["deadLetterPolicy"]["deadLetterTopic"].endswith("/topics/symbols-dead-letter")
    assert interactive["topic"].endswith("/topics/symbols-requests-interactive")
    # The Pub/Sub agent may forward each lane's dead letters.
    grants = [r.inputs for r in graph.of_type("gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember")]
    assert {g["subscription"] for g in grants} >= {"symbols-requests-workers", "symbols-requests-interactive-workers"}


def test_the_stack_scales_on_one_backlog_metric_per_lane(engine: Engine) -> None:
    graph = engine.run(lambda: program(SCHEDULE_START), config=config(lanes=LANES, throughputPerReplica=3.2))
    policy = graph.one(AUTOSCALER).inputs["autoscalingPolicy"]
    metrics = {m["filter"]: m for m in policy["metrics"]}
    assert set(metrics) == {backlog_filter("symbols-requests-interactive-workers"),
                            backlog_filter("symbols-requests-workers")}
    assert all(m["name"] == BACKLOG_METRIC for m in metrics.values())
    # Each lane's share (0.5) of the shared policy's assignment for its goal (reaction 270 s).
    assert metrics[backlog_filter("symbols-requests-interactive-workers")]["singleInstanceAssignment"] == pytest.approx(
        0.5 * 3.2 * (420 - 270))
    assert metrics[backlog_filter("symbols-requests-workers")]["singleInstanceAssignment"] == pytest.approx(
        0.5 * 3.2 * (600 - 270))
    template = graph.one(TEMPLATE).inputs
    startup = template["metadata"]["startup-script"]
    assert "ASYNCINFER_LANES" in startup and "symbols-requests-interactive-workers" in startup
    subscriber_grants = {
        r.inputs["subscription"] for r in graph.of_type("gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember")
        if r.inputs["role"] == "roles/pubsub.subscriber" and "serviceAccount:symbols-worker" in str(r.inputs["member"])
    }
    assert subscriber_grants == {"symbols-requests-workers", "symbols-requests-interactive-workers"}


def test_a_fallback_pool_is_an_on_demand_mig_with_its_own_autoscaler_on_the_same_lanes(engine: Engine) -> None:
    graph = engine.run(
        lambda: program(SCHEDULE_START),
        config=config(lanes=LANES, throughputPerReplica=3.2, maxReplicas="20", fallbackMaxReplicas="5",
                      fallbackPricePerHourUsd="0.71"),
    )
    assert graph.count(MIG) == 2 and graph.count(AUTOSCALER) == 2 and graph.count(TEMPLATE) == 2
    templates = {r.inputs["scheduling"]["provisioningModel"]: r.inputs for r in graph.of_type(TEMPLATE)}
    assert set(templates) == {"SPOT", "STANDARD"}
    assert templates["STANDARD"]["scheduling"]["preemptible"] is False
    autoscalers = sorted((r.inputs["autoscalingPolicy"] for r in graph.of_type(AUTOSCALER)),
                         key=lambda p: p["maxReplicas"])
    fallback, spot = autoscalers
    assert (fallback["minReplicas"], fallback["maxReplicas"]) == (0, 5)
    assert fallback.get("scalingSchedules") in (None, [])
    spot_by_filter = {m["filter"]: m["singleInstanceAssignment"] for m in spot["metrics"]}
    fallback_by_filter = {m["filter"]: m["singleInstanceAssignment"] for m in fallback["metrics"]}
    assert set(fallback_by_filter) == set(spot_by_filter)
    # The fallback's assignment is what the whole Spot pool owns at its largest (20 VMs).
    for lane_filter, assignment in spot_by_filter.items():
        assert fallback_by_filter[lane_filter] == pytest.approx(20 * assignment)
    names = {r.inputs["name"] for r in graph.of_type(MIG)}
    assert len(names) == 2
    startups = [r.inputs["metadata"]["startup-script"] for r in graph.of_type(TEMPLATE)]
    assert any("ASYNCINFER_PRICE_PER_HOUR_USD=0.71" in s or "0.71" in s for s in startups)


def test_a_fallback_may_watch_only_some_lanes(engine: Engine) -> None:
    graph = engine.run(
        lambda: program(SCHEDULE_START),
        config=config(lanes=LANES, fallbackMaxReplicas="2", fallbackLanes='["interactive"]'),
    )
    fallback = min((r.inputs["autoscalingPolicy"] for r in graph.of_type(AUTOSCALER)), key=lambda p: p["maxReplicas"])
    assert [m["filter"] for m in fallback["metrics"]] == [backlog_filter("symbols-requests-interactive-workers")]


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        ({"lanes": json.dumps([{"name": "Bulk", "priority": 0, "latencyGoalS": 600}]), "defaultLane": "Bulk"},
         "lowercase"),
        ({"lanes": json.dumps([{"name": "a", "priority": 0, "latencyGoalS": 600},
                               {"name": "b", "priority": 0, "latencyGoalS": 600}]), "defaultLane": "a"},
         "repeat the priority 0"),
        ({"lanes": json.dumps([{"name": "fast", "priority": 1, "latencyGoalS": 200},
                               {"name": "bulk", "priority": 0, "latencyGoalS": 600}])},
         "not longer than the pool's reaction"),
        ({"lanes": LANES, "defaultLane": "urgent"}, "default lane 'urgent'"),
        ({"lanes": LANES, "fallbackMaxReplicas": "2", "fallbackAssignmentFactor": "1"}, "must be > 1"),
        ({"lanes": LANES, "fallbackMaxReplicas": "2", "fallbackLanes": '["urgent"]'}, "must watch one or more"),
    ],
)
def test_a_lane_configuration_gce_or_pubsub_would_reject_fails_before_any_resource(
    engine: Engine, extra: dict[str, str], fragment: str
) -> None:
    with pytest.raises(StackConfigError) as info:
        engine.run(lambda: program(SCHEDULE_START), config=config(**extra))
    assert fragment in str(info.value)
    assert engine.graph.resources == []


def test_lanes_are_parsed_from_the_stack_config() -> None:
    parsed = parse_stack_config(config(lanes=LANES), stack="symbols")
    lanes = parsed.lane_set()
    assert lanes is not None and lanes.names == ("interactive", "bulk") and lanes.default == "bulk"
    assert parse_stack_config(config(), stack="symbols").lane_set() is None


def test_a_fallback_without_lanes_watches_the_one_backlog_with_a_larger_assignment(engine: Engine) -> None:
    graph = engine.run(lambda: program(SCHEDULE_START), config=config(fallbackMaxReplicas="2", maxReplicas="4"))
    policies = [r.inputs["autoscalingPolicy"] for r in graph.of_type(AUTOSCALER)]
    fallback, spot = sorted(policies, key=lambda p: p["maxReplicas"])
    assert len(fallback["metrics"]) == len(spot["metrics"]) == 1
    one_backlog = backlog_filter("symbols-requests-workers")
    assert fallback["metrics"][0]["filter"] == spot["metrics"][0]["filter"] == one_backlog
    spot_assignment = spot["metrics"][0]["singleInstanceAssignment"]
    assert fallback["metrics"][0]["singleInstanceAssignment"] == pytest.approx(4 * spot_assignment)


def test_a_fallback_behind_a_one_vm_pool_needs_a_factor_above_one(engine: Engine) -> None:
    with pytest.raises(StackConfigError, match="must be > 1"):
        engine.run(lambda: program(SCHEDULE_START), config=config(fallbackMaxReplicas="2", maxReplicas="1"))
    assert engine.graph.resources == []


def test_the_lanes_setting_survives_the_vms_docker_env_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The startup script writes the workers' settings into a docker env file (KEY=VALUE, literal):
    ASYNCINFER_LANES is one line of JSON that the worker reads back into the same lanes."""
    from asyncinfer.components.boot_scripts import render_env_file
    from asyncinfer.components.lanes import lane_subscriptions_setting
    from asyncinfer.core.worker_settings import WorkerSettings, worker_environment

    lanes = LaneSet.defaults()
    subscriptions = {"interactive": "symbols-requests-interactive-workers", "bulk": "symbols-requests-workers"}
    env = worker_environment(
        subscription="symbols-requests-workers", results_topic="symbols-results", handler="m:f",
        lanes=lane_subscriptions_setting(lanes, subscriptions),
    )
    for line in render_env_file(env).splitlines():
        key, _, value = line.partition("=")
        monkeypatch.setenv(key, value)
    settings = WorkerSettings()  # type: ignore[call-arg]
    assert settings.lane_set() == lanes
    paths = settings.lane_subscription_paths()
    assert paths["interactive"].endswith("/subscriptions/symbols-requests-interactive-workers")


def test_lanes_default_names_the_two_default_lanes() -> None:
    parsed = parse_stack_config(config(lanes="default"), stack="symbols")
    assert parsed.lane_set() == LaneSet.defaults()
