from __future__ import annotations

from typing import Any

import pytest

from asyncinfer.components.queue import Queue, QueueArgs
from asyncinfer.components.schedule_scaler import ScheduleScaler, ScheduleScalerArgs
from asyncinfer.components.worker_pool import (
    CustomMetric,
    GpuWorkerPool,
    GpuWorkerPoolArgs,
    PoolConfigError,
    backlog_filter,
)
from asyncinfer.core.gce import BACKLOG_METRIC, METRIC_LAG_S, METRIC_PERIOD_S, STOP_TIMEOUT_S
from asyncinfer.core.policy import ScalingPolicy
from asyncinfer.core.schedules import MAX_SCHEDULES, MIN_DURATION_S, BusinessCalendar, parse_cron
from asyncinfer.core.validation import gpu_shape
from tests.components.conftest import PROJECT, SCHEDULE_START, Engine

TEMPLATE = "gcp:compute/instanceTemplate:InstanceTemplate"
MIG = "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager"
AUTOSCALER = "gcp:compute/regionAutoscaler:RegionAutoscaler"
REGION = "asia-northeast1"


def pool_args(**overrides: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "project": PROJECT,
        "region": REGION,
        "distribution_policy_zones": [f"{REGION}-a"],
        "model": "symbols",
        "subscription_name": "symbols-requests-workers",
        "results_topic_name": "symbols-results",
        "source_image": "projects/test-project/global/images/asyncinfer-gpu-0123456789ab",
        "worker_image": "asia-northeast1-docker.pkg.dev/test-project/asyncinfer/symbols:1",
    }
    args.update(overrides)
    return args


def build_pool(**overrides: Any) -> GpuWorkerPool:
    """A pool wired to a real Queue, so its filters come from the subscription's name output."""
    queue = Queue("q", QueueArgs.for_model(overrides.pop("queue_name", "symbols"), project=PROJECT))
    calendar = overrides.pop("calendar", BusinessCalendar(business_min_replicas=2))
    schedules = ScheduleScaler("s", ScheduleScalerArgs(calendar=calendar, start=SCHEDULE_START))
    args = pool_args(
        subscription_name=queue.requests_subscription_name,
        results_topic_name=queue.results_topic_name,
        schedules=schedules,
        **overrides,
    )
    return GpuWorkerPool("pool", GpuWorkerPoolArgs(**args))


def test_graph_one_regional_group_and_autoscaler_over_the_zones(engine: Engine) -> None:
    zones = [f"{REGION}-a", f"{REGION}-c"]
    graph = engine.run(lambda: build_pool(distribution_policy_zones=zones))
    assert graph.count(TEMPLATE) == 1
    # One group, one autoscaler, whatever the zone count: one waiting message asks for one VM.
    group, autoscaler = graph.one(MIG), graph.one(AUTOSCALER)
    assert group.inputs["distributionPolicyZones"] == zones
    assert group.inputs["distributionPolicyTargetShape"] == "ANY"
    assert group.inputs["region"] == REGION and autoscaler.inputs["region"] == REGION
    assert autoscaler.inputs["target"] == group.id
    assert graph.count("gcp:compute/instanceGroupManager:InstanceGroupManager") == 0
    assert graph.count("gcp:compute/autoscaler:Autoscaler") == 0
    pool = graph.one("asyncinfer:index:GpuWorkerPool")
    children = graph.children_of(pool)
    assert {r.type for r in children} >= {TEMPLATE, MIG, AUTOSCALER, "gcp:serviceaccount/account:Account"}
    assert group.parent == pool.urn and autoscaler.parent == pool.urn


def test_every_gpu_template_is_spot_and_terminates(engine: Engine) -> None:
    graph = engine.run(lambda: build_pool())
    for template in graph.of_type(TEMPLATE):
        scheduling = template.inputs["scheduling"]
        assert scheduling["provisioningModel"] == "SPOT"
        assert scheduling["preemptible"] is True
        assert scheduling["automaticRestart"] is False
        assert scheduling["instanceTerminationAction"] == "DELETE"
        assert scheduling["onHostMaintenance"] == "TERMINATE"
        assert template.inputs["guestAccelerators"] == [{"count": 1, "type": "nvidia-l4"}]
        assert template.inputs["machineType"] == "g2-standard-4"
        disk = template.inputs["disks"][0]
        assert disk["boot"] is True and disk["sourceImage"].endswith("asyncinfer-gpu-0123456789ab")


def test_template_is_replaced_create_before_delete(engine: Engine) -> None:
    graph = engine.run(lambda: build_pool())
    template = graph.one(TEMPLATE)
    assert "name" not in template.inputs and template.inputs["namePrefix"] == "symbols-gpu-"
    assert template.delete_before_replace is False
    assert template.replace_on_changes == ["*"]
    group = graph.one(MIG)
    assert group.inputs["versions"][0]["instanceTemplate"] == template.outputs["selfLinkUnique"]
    # The group's update returns once every VM runs the new template, so the old one is free when
    # Pulumi deletes it (create-before-delete deletes last).
    assert group.inputs["waitForInstances"] is True
    assert group.inputs["waitForInstancesStatus"] == "UPDATED"
    # A roll stalled by a Spot stockout fails the update after a bound, leaving the old template.
    assert group.custom_timeouts == {"create": "45m", "update": "45m"}


def test_no_external_ip_by_default_and_shielded(engine: Engine) -> None:
    graph = engine.run(lambda: build_pool())
    template = graph.one(TEMPLATE).inputs
    assert all(not nic.get("accessConfigs") for nic in template["networkInterfaces"])
    assert template["shieldedInstanceConfig"] == {
        "enableSecureBoot": False,
        "enableVtpm": True,
        "enableIntegrityMonitoring": True,
    }


def test_external_ip_only_when_asked(engine: Engine) -> None:
    graph = engine.run(lambda: build_pool(external_ip=True))
    assert graph.one(TEMPLATE).inputs["networkInterfaces"][0]["accessConfigs"] == [{}]


def test_startup_and_shutdown_scripts(engine: Engine) -> None:
    graph = engine.run(lambda: build_pool(max_batch_size=16, drain_timeout_s=20))
    metadata = graph.one(TEMPLATE).inputs["metadata"]
    startup = metadata["startup-script"]
    for line in (
        f"ASYNCINFER_PROJECT={PROJECT}",
        "ASYNCINFER_SUBSCRIPTION=symbols-requests-workers",
        "ASYNCINFER_RESULTS_TOPIC=symbols-results",
        "ASYNCINFER_MAX_BATCH_SIZE=16",
        "ASYNCINFER_MAX_WAIT_MS=10.0",
        "ASYNCINFER_DRAIN_TIMEOUT_S=20",
        "ASYNCINFER_HEALTH_PORT=8080",
    ):
        assert f"\n{line}\n" in startup
    assert "--gpus all" in startup and "@@" not in startup
    # The image names its own handler unless the stack overrides it.
    assert "ASYNCINFER_HANDLER" not in startup
    assert "asia-northeast1-docker.pkg.dev/test-project/asyncinfer/symbols:1" in startup
    assert f"docker stop -t {STOP_TIMEOUT_S} asyncinfer-worker" in metadata["shutdown-script"]
    assert "@@" not in metadata["shutdown-script"]


def test_a_stack_may_override_the_images_handler(engine: Engine) -> None:
    graph = engine.run(lambda: build_pool(handler="my_model.serve:build"))
    assert "\nASYNCINFER_HANDLER=my_model.serve:build\n" in graph.one(TEMPLATE).inputs["metadata"]["startup-script"]


def test_health_check_and_update_policy(engine: Engine) -> None:
    graph = engine.run(
        lambda: build_pool(distribution_policy_zones=[f"{REGION}-a", f"{REGION}-c"], boot_to_ready_s=120)
    )
    health = graph.one("gcp:compute/healthCheck:HealthCheck")
    assert health.inputs["httpHealthCheck"] == {"port": 8080, "requestPath": "/healthz"}
    firewall = graph.one("gcp:compute/firewall:Firewall").inputs
    assert firewall["allows"] == [{"protocol": "tcp", "ports": ["8080"]}]
    assert firewall["targetTags"] == graph.one(TEMPLATE).inputs["tags"]
    group = graph.one(MIG)
    assert group.inputs["autoHealingPolicies"] == {"healthCheck": health.id, "initialDelaySec": 120}
    policy = group.inputs["updatePolicy"]
    assert policy["type"] == "PROACTIVE"
    # GCE: a regional group's fixed surge is 0 or at least its zone count; non-EVEN shapes need
    # proactive redistribution off.
    assert (policy["maxSurgeFixed"], policy["maxUnavailableFixed"]) == (2, 0)
    assert policy["instanceRedistributionType"] == "NONE"
    assert graph.one(AUTOSCALER).inputs["autoscalingPolicy"]["cooldownPeriod"] == 120


def test_each_autoscaler_filter_names_its_own_subscription(engine: Engine) -> None:
    def build() -> None:
        build_pool(distribution_policy_zones=[f"{REGION}-a", f"{REGION}-c"])
        queue = Queue("other-q", QueueArgs.for_model("ocr", project=PROJECT))
        GpuWorkerPool(
            "other-pool",
            GpuWorkerPoolArgs(
                **pool_args(
                    model="ocr",
                    subscription_name=queue.requests_subscription_name,
                    results_topic_name=queue.results_topic_name,
                )
            ),
        )

    graph = engine.run(build)
    autoscalers = graph.of_type(AUTOSCALER)
    assert len(autoscalers) == 2
    for autoscaler in autoscalers:
        subscription = (
            "ocr-requests-workers" if autoscaler.name.startswith("other-pool") else "symbols-requests-workers"
        )
        metric = autoscaler.inputs["autoscalingPolicy"]["metrics"][0]
        assert metric["name"] == BACKLOG_METRIC
        assert metric["filter"] == backlog_filter(subscription)
        assert f'resource.labels.subscription_id = "{subscription}"' in metric["filter"]


def test_scale_to_zero_uses_only_the_per_group_metric(engine: Engine) -> None:
    graph = engine.run(lambda: build_pool())
    for autoscaler in graph.of_type(AUTOSCALER):
        policy = autoscaler.inputs["autoscalingPolicy"]
        assert policy["minReplicas"] == 0
        assert policy["mode"] == "ON"
        assert "cpuUtilization" not in policy
        assert [m["name"] for m in policy["metrics"]] == [BACKLOG_METRIC]
        assert all("singleInstanceAssignment" in m and "target" not in m for m in policy["metrics"])
        assert policy["scaleInControl"] == {"maxScaledInReplicas": {"fixed": 2}, "timeWindowSec": 600}


@pytest.mark.parametrize(
    "signals",
    [{"cpu_utilization_target": 0.6}, {"custom_metrics": [CustomMetric(name="custom.googleapis.com/gpu", target=0.8)]}],
)
def test_cpu_and_custom_signals_refuse_min_zero_before_any_resource(engine: Engine, signals: dict[str, Any]) -> None:
    with pytest.raises(PoolConfigError, match="cannot scale to zero"):
        GpuWorkerPoolArgs(**pool_args(**signals))
    assert engine.graph.resources == []


def test_cpu_and_custom_signals_with_a_floor(engine: Engine) -> None:
    graph = engine.run(
        lambda: build_pool(
            policy=ScalingPolicy(min_replicas=1, max_replicas=4),
            calendar=BusinessCalendar(business_min_replicas=2, min_replicas=1),
            cpu_utilization_target=0.6,
            custom_metrics=[CustomMetric(name="custom.googleapis.com/gpu", target=0.8)],
            max_scaled_in_percent=50,
        )
    )
    policy = graph.one(AUTOSCALER).inputs["autoscalingPolicy"]
    assert policy["minReplicas"] == 1
    assert policy["cpuUtilization"]["target"] == 0.6
    assert policy["metrics"][1] == {"name": "custom.googleapis.com/gpu", "target": 0.8, "type": "GAUGE"}
    assert policy["scaleInControl"]["maxScaledInReplicas"] == {"percent": 50}


@pytest.mark.parametrize("zones", [1, 2])
def test_the_zone_count_changes_nothing_in_the_autoscaler(engine: Engine, zones: int) -> None:
    policy = ScalingPolicy(min_replicas=1, max_replicas=5, throughput_per_replica=10, latency_goal_s=600)
    zone_names = [f"{REGION}-{c}" for c in "ac"[:zones]]
    graph = engine.run(
        lambda: build_pool(
            distribution_policy_zones=zone_names,
            policy=policy,
            calendar=BusinessCalendar(business_min_replicas=3, min_replicas=1),
        )
    )
    scaling = graph.one(AUTOSCALER).inputs["autoscalingPolicy"]
    # One autoscaler sees the backlog once: 10/s for the 600 s goal less 60 s sampling + 120 s lag +
    # 90 s boot, the pool's own bounds, the calendar's own floor; no per-zone split or rounding.
    assert scaling["metrics"][0]["singleInstanceAssignment"] == 3300
    assert (scaling["minReplicas"], scaling["maxReplicas"]) == (1, 5)
    assert {s["minRequiredReplicas"] for s in scaling["scalingSchedules"]} == {3}


def test_schedules_within_gce_limits(engine: Engine) -> None:
    graph = engine.run(lambda: build_pool(distribution_policy_zones=[f"{REGION}-a", f"{REGION}-c"]))
    for autoscaler in graph.of_type(AUTOSCALER):
        schedules = autoscaler.inputs["autoscalingPolicy"]["scalingSchedules"]
        assert 0 < len(schedules) <= MAX_SCHEDULES
        assert len({s["name"] for s in schedules}) == len(schedules)
        for s in schedules:
            assert s["durationSec"] >= MIN_DURATION_S
            assert s["timeZone"] == "Asia/Tokyo"
            parse_cron(s["schedule"])
        # 2025-01-01 is a holiday in Japan: the January schedule leaves it out.
        january = next(s for s in schedules if s["name"] == "business-2025-01")
        assert january["schedule"].split()[2].split(",")[0] != "1"


def test_least_privilege(engine: Engine) -> None:
    graph = engine.run(lambda: build_pool())
    email = graph.one("gcp:serviceaccount/account:Account").outputs["email"]
    member = f"serviceAccount:{email}"
    grants = [r for r in graph.resources if "role" in r.inputs and r.inputs["member"] == member]
    roles = sorted(r.inputs["role"] for r in grants)
    assert roles == sorted(
        [
            "roles/pubsub.subscriber",
            "roles/pubsub.publisher",
            "roles/monitoring.metricWriter",
            "roles/logging.logWriter",
            "roles/artifactregistry.reader",
        ]
    )
    subscriber = graph.one("gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember", "pool-subscriber").inputs
    assert subscriber["subscription"] == "symbols-requests-workers"
    publisher = graph.one("gcp:pubsub/topicIAMMember:TopicIAMMember", "pool-results-publisher").inputs
    assert publisher["topic"] == "symbols-results"
    project_roles = {r.inputs["role"] for r in graph.of_type("gcp:projects/iAMMember:IAMMember")}
    assert project_roles == {"roles/monitoring.metricWriter", "roles/logging.logWriter"}
    # Registry read on the image's own repository (the project its reference names), not project-wide.
    reader = graph.one("gcp:artifactregistry/repositoryIamMember:RepositoryIamMember").inputs
    assert (reader["project"], reader["repository"], reader["member"]) == ("test-project", "asyncinfer", member)
    for r in graph.resources:
        role = str(r.inputs.get("role", ""))
        assert role not in ("roles/editor", "roles/owner") and not role.lower().endswith("admin")
    assert graph.one(TEMPLATE).inputs["serviceAccount"]["email"] == email


@pytest.mark.parametrize(
    ("gpu", "machine", "count", "message"),
    [
        ("nvidia-tesla-k80", "n1-standard-8", 1, "not known"),
        ("nvidia-l4", "n1-standard-8", 1, "cannot carry"),
        ("nvidia-tesla-a100", "g2-standard-4", 1, "cannot carry"),
        ("nvidia-h100-80gb", "a3-highgpu-8g", 1, "comes with 8"),
        ("nvidia-l4", "g2-standard-24", 1, "comes with 2"),
        ("nvidia-tesla-t4", "n1-standard-8", 3, "not possible"),
        # N1's vCPU-per-GPU limit: one V100 allows at most 12 vCPUs.
        ("nvidia-tesla-v100", "n1-standard-16", 1, "allows at most 12"),
        ("nvidia-tesla-p4", "n1-highmem-32", 1, "allows at most 24"),
    ],
)
def test_gpu_validation(gpu: str, machine: str, count: int, message: str) -> None:
    problems = gpu_shape(gpu, machine, count)
    assert len(problems) == 1 and message in problems[0]


@pytest.mark.parametrize(
    ("gpu", "machine", "count"),
    [
        ("nvidia-l4", "g2-standard-4", 1),
        ("nvidia-tesla-t4", "n1-standard-8", 2),
        ("nvidia-tesla-v100", "n1-standard-8", 1),
        ("nvidia-tesla-v100", "n1-custom-12-46080", 1),
        ("nvidia-tesla-a100", "a2-highgpu-1g", 1),
        ("nvidia-a100-80gb", "a2-ultragpu-2g", 2),
        ("nvidia-h100-80gb", "a3-highgpu-8g", 8),
    ],
)
def test_gpu_combinations_that_work(gpu: str, machine: str, count: int) -> None:
    assert gpu_shape(gpu, machine, count) == []


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"distribution_policy_zones": ["us-central1-a"]}, "is not a zone of asia-northeast1"),
        ({"distribution_policy_zones": []}, "distribution_policy_zones is empty"),
        ({"distribution_policy_zones": [f"{REGION}-b"]}, "nvidia-l4 is not offered in asia-northeast1-b"),
        ({"distribution_policy_target_shape": "EVEN"}, "use ANY or BALANCED"),
        ({"drain_timeout_s": 30}, "drain_timeout_s"),
        (
            {"policy": ScalingPolicy(max_replicas=1), "calendar": BusinessCalendar(business_min_replicas=3)},
            r"business_min_replicas \(3\) is greater than max_replicas \(1\)",
        ),
    ],
)
def test_bad_pool_settings_fail_before_any_resource(engine: Engine, overrides: dict[str, Any], message: str) -> None:
    calendar = overrides.pop("calendar", None)
    schedules = ScheduleScaler("s", ScheduleScalerArgs(calendar=calendar, start=SCHEDULE_START)) if calendar else None
    if schedules is None:
        with pytest.raises(PoolConfigError, match=message):
            GpuWorkerPoolArgs(**pool_args(**overrides))
        assert engine.graph.resources == []
    else:
        with pytest.raises(PoolConfigError, match=message):
            GpuWorkerPoolArgs(**pool_args(schedules=schedules, **overrides))


ROUTER = "gcp:compute/router:Router"
NAT = "gcp:compute/routerNat:RouterNat"


def test_cloud_nat_for_the_pool_region_and_network_by_default(engine: Engine) -> None:
    graph = engine.run(lambda: build_pool(distribution_policy_zones=[f"{REGION}-a", f"{REGION}-c"]))
    router = graph.one(ROUTER)
    nat = graph.one(NAT)
    pool = graph.one("asyncinfer:index:GpuWorkerPool")
    assert router.parent == pool.urn and nat.parent == pool.urn
    assert (router.inputs["region"], router.inputs["network"]) == (REGION, "default")
    assert nat.inputs["region"] == REGION and nat.inputs["router"] == router.outputs["name"]
    assert nat.inputs["natIpAllocateOption"] == "AUTO_ONLY"
    # Only the pool's subnet (the default network's `default` subnet in the region), not the region.
    assert nat.inputs["sourceSubnetworkIpRangesToNat"] == "LIST_OF_SUBNETWORKS"
    assert nat.inputs["subnetworks"] == [
        {"name": f"projects/{PROJECT}/regions/{REGION}/subnetworks/default", "sourceIpRangesToNats": ["ALL_IP_RANGES"]}
    ]
    # No VM boots before its egress exists.
    for mig in graph.of_type(MIG):
        assert nat.urn in mig.dependencies


def test_cloud_nat_follows_a_custom_subnetwork(engine: Engine) -> None:
    graph = engine.run(lambda: build_pool(network="workers", subnetwork="workers-tokyo"))
    assert graph.one(ROUTER).inputs["network"] == "workers"
    assert graph.one(NAT).inputs["subnetworks"][0]["name"].endswith(f"/regions/{REGION}/subnetworks/workers-tokyo")


def test_cloud_nat_on_a_custom_network_without_a_subnet_serves_the_region(engine: Engine) -> None:
    graph = engine.run(lambda: build_pool(network="workers"))
    assert graph.one(NAT).inputs["sourceSubnetworkIpRangesToNat"] == "ALL_SUBNETWORKS_ALL_IP_RANGES"


@pytest.mark.parametrize("overrides", [{"create_nat": False}, {"external_ip": True}])
def test_no_nat_when_disabled_or_with_external_ips(engine: Engine, overrides: dict[str, Any]) -> None:
    graph = engine.run(lambda: build_pool(**overrides))
    assert graph.count(ROUTER) == 0 and graph.count(NAT) == 0


def test_reaction_time_is_sampling_lag_and_boot() -> None:
    args = GpuWorkerPoolArgs(**pool_args(boot_to_ready_s=150))
    assert args.reaction_s == METRIC_PERIOD_S + METRIC_LAG_S + 150 == 330
    assert args.single_instance_assignment == 10 * (600 - 330)
    # A policy that states its own reaction time keeps it.
    explicit = GpuWorkerPoolArgs(**pool_args(policy=ScalingPolicy(reaction_s=100)))
    assert explicit.single_instance_assignment == 10 * (600 - 100)


def test_latency_goal_shorter_than_reaction_fails_before_any_resource(engine: Engine) -> None:
    with pytest.raises(PoolConfigError, match=r"reaction time \(690 s = 60 s metric sampling"):
        GpuWorkerPoolArgs(**pool_args(boot_to_ready_s=510))
    assert engine.graph.resources == []
    # Given outright, the assignment needs no room for the reaction.
    args = GpuWorkerPoolArgs(**pool_args(boot_to_ready_s=510, policy=ScalingPolicy(single_instance_assignment=800)))
    assert args.single_instance_assignment == 800
