"""The whole stack, its configuration, `asyncinfer plan`, and the component conventions."""

from __future__ import annotations

import argparse
import ast
from pathlib import Path
from typing import Any

import pytest

from asyncinfer.components.model_stack import ModelStackArgs, program
from asyncinfer.components.stack_config import StackConfigError, parse_stack_config
from asyncinfer.tools.commands import plan_command
from asyncinfer.tools.commands.plan_command import read_stack_file
from tests.components.conftest import SCHEDULE_START, Engine

REPO = Path(__file__).resolve().parents[2]
IMAGE = "asia-northeast1-docker.pkg.dev/p/asyncinfer/symbols:1"
MINIMAL = {"asyncinfer:image": IMAGE, "gcp:project": "test-project"}


def config(**extra: Any) -> dict[str, str]:
    return {**MINIMAL, **{f"asyncinfer:{k}": str(v) for k, v in extra.items()}}


def test_defaults_from_one_key() -> None:
    parsed = parse_stack_config(MINIMAL, stack="symbols")
    assert parsed.model_name == "symbols"
    assert parsed.region == "asia-northeast1"
    # Not `{region}-a` blindly: every zone of the region that offers the GPU (the zone table).
    assert parsed.pool_zones == ["asia-northeast1-a", "asia-northeast1-c"]
    assert (parsed.gpu_type, parsed.machine_type, parsed.gpu_count) == ("nvidia-l4", "g2-standard-4", 1)
    assert (parsed.min_replicas, parsed.max_replicas, parsed.latency_goal_s, parsed.throughput_per_replica) == (
        0,
        4,
        600,
        10,
    )
    # 10 drawings/s for what is left of 600 s after 60 s sampling + 120 s lag + 90 s baked boot.
    assert parsed.reaction_s == 270
    assert parsed.policy().reaction_s == 270
    assert parsed.policy().assignment == 10 * (600 - 270) == 3300
    assert (parsed.network, parsed.subnetwork, parsed.create_nat) == ("default", None, True)
    calendar = parsed.calendar()
    assert (calendar.country, calendar.time_zone, calendar.weekdays) == ("JP", "Asia/Tokyo", (0, 1, 2, 3, 4))
    assert (calendar.business_start_hour, calendar.business_end_hour, calendar.business_min_replicas) == (9, 18, 1)
    assert parsed.handler is None


def test_gcp_zone_and_structured_values() -> None:
    parsed = parse_stack_config({**MINIMAL, "gcp:region": "us-central1", "gcp:zone": "us-central1-b"}, stack="ocr")
    assert parsed.pool_zones == ["us-central1-b"]
    parsed = parse_stack_config(
        {
            **MINIMAL,
            "asyncinfer:distributionPolicyZones": '["asia-northeast1-a", "asia-northeast1-c"]',
            "asyncinfer:maxReplicas": "6",
        },
        stack="ocr",
    )
    assert parsed.pool_zones == ["asia-northeast1-a", "asia-northeast1-c"] and parsed.max_replicas == 6
    comma = parse_stack_config(
        {**MINIMAL, "asyncinfer:distributionPolicyZones": "asia-northeast1-a,asia-northeast1-c"}, "x-y"
    )
    assert comma.distribution_policy_zones == ["asia-northeast1-a", "asia-northeast1-c"]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (config(minReplicas=5, maxReplicas=2), "asyncinfer:minReplicas (5) is greater than asyncinfer:maxReplicas (2)"),
        (config(gpuType="nvidia-tesla-k80"), "asyncinfer:gpuType 'nvidia-tesla-k80' is not known"),
        (config(gpuType="nvidia-tesla-a100"), "cannot carry nvidia-tesla-a100"),
        (config(timeZone="Mars/Olympus"), "is not an IANA time zone"),
        (config(cpuUtilizationTarget=0.6), "cannot scale to zero"),
        (
            config(distributionPolicyZones="us-central1-a"),
            "asyncinfer:distributionPolicyZones: 'us-central1-a' is not a zone of asia-northeast1",
        ),
        (config(maxReplica=3), "asyncinfer:maxReplica: unknown key; did you mean asyncinfer:maxReplicas?"),
        (config(maxVms=3), "asyncinfer:maxVms: renamed to asyncinfer:maxReplicas"),
        (config(businessDays="mon,funday"), "asyncinfer:businessDays"),
        (config(drainTimeoutS=40), "asyncinfer:drainTimeoutS"),
        (config(model="Bad_Name"), "queue name 'Bad_Name'"),
        (
            {"gcp:project": "p"},
            "asyncinfer:image: required and missing; set it with `pulumi config set asyncinfer:image",
        ),
        ({"asyncinfer:image": IMAGE}, "gcp:project: required and missing"),
        (
            config(latencyGoalS=240),
            "asyncinfer:latencyGoalS (240 s) is not longer than the pool's reaction time (270 s = 60 s metric "
            "sampling + 120 s metric lag + 90 s asyncinfer:bootToReadyS (assumed for a baked image)",
        ),
        (config(existingFamily="dlvm", imageBaked="false"), "asyncinfer:imageBaked: false is not supported"),
        (config(imageBaked="false"), "asyncinfer:imageBaked: false is not supported"),
    ],
)
def test_bad_configuration_names_the_key_and_creates_nothing(
    engine: Engine, values: dict[str, str], expected: str
) -> None:
    with pytest.raises(StackConfigError) as info:
        engine.run(program, config=values)
    assert expected in str(info.value)
    assert engine.graph.resources == []


@pytest.mark.parametrize(
    ("extra", "reaction", "assignment"),
    [
        ({}, 270, 3300),
        ({"bootToReadyS": 150}, 330, 2700),
        # A goal shorter than the reaction is possible only with the assignment given outright.
        ({"latencyGoalS": 240, "singleInstanceAssignment": 500, "minReplicas": 1}, 270, 500),
    ],
)
def test_reaction_time_comes_out_of_the_latency_goal(extra: dict[str, Any], reaction: float, assignment: float) -> None:
    parsed = parse_stack_config(config(**extra), stack="symbols")
    assert parsed.reaction_s == reaction
    assert parsed.policy().assignment == assignment


def test_stack_pool_agrees_with_its_config(engine: Engine) -> None:
    values = config(bootToReadyS=150)
    graph = engine.run(lambda: program(SCHEDULE_START), config=values)
    autoscaler = graph.one("gcp:compute/regionAutoscaler:RegionAutoscaler").inputs["autoscalingPolicy"]
    assert autoscaler["metrics"][0]["singleInstanceAssignment"] == 2700
    assert autoscaler["cooldownPeriod"] == 150


@pytest.mark.parametrize(
    ("extra", "nat"), [({}, True), ({"createNat": "false"}, False), ({"externalIp": "true"}, False)]
)
def test_stack_nat_follows_config(engine: Engine, extra: dict[str, Any], nat: bool) -> None:
    graph = engine.run(lambda: program(SCHEDULE_START), config=config(**extra))
    assert graph.count("gcp:compute/routerNat:RouterNat") == int(nat)
    assert graph.count("gcp:compute/router:Router") == int(nat)


def symbols_config() -> dict[str, str]:
    return read_stack_file(REPO / "Pulumi.symbols.yaml")


def test_whole_stack_graph(engine: Engine) -> None:
    graph = engine.run(lambda: program(SCHEDULE_START), config=symbols_config())
    # The bake's own resources are tested with BakedImage; here, everything around it.
    bake = graph.one("asyncinfer:index:BakedImage")
    outside_bake = [r for r in graph.resources if r.parent != bake.urn]
    counts = {t: sum(r.type == t for r in outside_bake) for t in {r.type for r in outside_bake}}
    assert counts == {
        "asyncinfer:index:ModelStack": 1,
        "asyncinfer:index:Queue": 1,
        "asyncinfer:index:BakedImage": 1,
        "asyncinfer:index:ScheduleScaler": 1,
        "asyncinfer:index:GpuWorkerPool": 1,
        "asyncinfer:index:Monitoring": 1,
        "asyncinfer:index:ClaimCheckBucket": 1,
        "gcp:storage/bucket:Bucket": 1,
        "gcp:storage/bucketIAMMember:BucketIAMMember": 2,
        "gcp:artifactregistry/repositoryIamMember:RepositoryIamMember": 1,
        "gcp:pubsub/topic:Topic": 3,
        "gcp:pubsub/subscription:Subscription": 2,
        "gcp:pubsub/topicIAMMember:TopicIAMMember": 2,
        "gcp:pubsub/subscriptionIAMMember:SubscriptionIAMMember": 2,
        "gcp:projects/serviceIdentity:ServiceIdentity": 1,
        "gcp:serviceaccount/account:Account": 1,
        "gcp:projects/iAMMember:IAMMember": 2,
        "gcp:compute/instanceTemplate:InstanceTemplate": 1,
        "gcp:compute/healthCheck:HealthCheck": 1,
        "gcp:compute/firewall:Firewall": 1,
        "gcp:compute/router:Router": 1,
        "gcp:compute/routerNat:RouterNat": 1,
        "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager": 1,
        "gcp:compute/regionAutoscaler:RegionAutoscaler": 1,
        "gcp:monitoring/dashboard:Dashboard": 1,
        "gcp:monitoring/alertPolicy:AlertPolicy": 3,
    }
    root = graph.one("asyncinfer:index:ModelStack")
    assert {r.type for r in graph.children_of(root)} == {
        f"asyncinfer:index:{n}"
        for n in ("Queue", "BakedImage", "ScheduleScaler", "ClaimCheckBucket", "GpuWorkerPool", "Monitoring")
    }
    # Every cloud resource hangs under a component: nothing is created loose in the stack.
    components = {r.urn for r in graph.components()}
    assert all(r.parent in components for r in graph.custom())
    template = graph.one("gcp:compute/instanceTemplate:InstanceTemplate").inputs
    image = graph.one("command:local:Command").inputs["environment"]["PKR_VAR_image_name"]
    assert template["disks"][0]["sourceImage"].endswith(f"/global/images/{image}")
    group = graph.one("gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager").inputs
    assert group["distributionPolicyZones"] == ["asia-northeast1-a", "asia-northeast1-c"]
    policy = graph.one("gcp:compute/regionAutoscaler:RegionAutoscaler").inputs["autoscalingPolicy"]
    # One regional autoscaler over both zones: the pool's own 3300 (10/s x (600 s goal - 270 s
    # reaction)) and the pool's own bounds.
    assert policy["metrics"][0]["singleInstanceAssignment"] == 3300
    assert (policy["minReplicas"], policy["maxReplicas"]) == (0, 4)
    assert policy["metrics"][0]["filter"] == (
        'resource.type = "pubsub_subscription" AND resource.labels.subscription_id = "symbols-requests-workers"'
    )


def test_every_component_registers_its_outputs(engine: Engine) -> None:
    graph = engine.run(lambda: program(SCHEDULE_START), config=symbols_config())
    assert len(graph.components()) == 7
    assert all(r.registered_outputs for r in graph.components())


def component_classes() -> list[tuple[Path, ast.ClassDef]]:
    found = []
    for path in sorted((REPO / "components" / "src" / "asyncinfer" / "components").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(ast.unparse(b).endswith("ComponentResource") for b in node.bases):
                found.append((path, node))
    return found


def test_register_outputs_is_the_last_statement_of_every_component() -> None:
    classes = component_classes()
    assert {c.name for _, c in classes} >= {
        "Queue",
        "GpuWorkerPool",
        "BakedImage",
        "ScheduleScaler",
        "ModelStack",
        "Monitoring",
    }
    for path, cls in classes:
        init = next(n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == "__init__")
        last = init.body[-1]
        assert isinstance(last, ast.Expr) and isinstance(last.value, ast.Call), f"{path.name}:{cls.name}"
        assert ast.unparse(last.value.func) == "self.register_outputs", f"{path.name}:{cls.name}"
        super_calls = [
            n for n in ast.walk(init) if isinstance(n, ast.Call) and ast.unparse(n.func) == "super().__init__"
        ]
        assert len(super_calls) == 1 and isinstance(super_calls[0].args[0], ast.Constant), cls.name
        assert super_calls[0].args[0].value == f"asyncinfer:index:{cls.name}", f"{cls.name} must use its own type"


def test_model_stack_args_in_one_line(engine: Engine) -> None:
    from asyncinfer.components.model_stack import ModelStack

    def build() -> ModelStack:
        # The one line a Pulumi program needs for a new model.
        return ModelStack("ocr", ModelStackArgs.of(image=IMAGE, project="test-project", model="ocr", max_replicas=2))

    graph = engine.run(build)
    assert graph.count("gcp:compute/regionAutoscaler:RegionAutoscaler") == 1
    args = ModelStackArgs.of(
        image=IMAGE, project="test-project", model="ocr", max_replicas=2, distribution_policy_zones="asia-northeast1-c"
    )
    assert (args.config.model_name, args.config.max_replicas, args.config.pool_zones) == (
        "ocr",
        2,
        ["asia-northeast1-c"],
    )


def test_two_model_stacks_in_one_program_take_their_names_from_the_resources() -> None:
    from asyncinfer.components.model_stack import ModelStack
    from asyncinfer.components.testing import run_under_mocks

    def build() -> list[ModelStack]:
        # A consumer's program called `dev`: the models are named after their resources, not the stack.
        return [ModelStack(name, ModelStackArgs.of(image=IMAGE, project="test-project")) for name in ("ocr", "symbols")]

    graph = run_under_mocks(build, project="test-project", stack="dev")
    urns = [r.urn for r in graph]
    assert len(urns) == len(set(urns))
    # Every name GCP sees is unique across the two models, and none is named after the stack.
    cloud_names = [str(r.inputs["name"]) for r in graph if r.custom and r.inputs.get("name")]
    assert len(cloud_names) == len(set(cloud_names)), cloud_names
    topics = sorted(str(r.inputs["name"]) for r in graph if r.type == "gcp:pubsub/topic:Topic")
    assert topics == sorted(f"{m}-{t}" for m in ("ocr", "symbols") for t in ("requests", "dead-letter", "results"))
    assert not any(name.startswith("dev-") for name in cloud_names)
    accounts = sorted(str(r.inputs["accountId"]) for r in graph if r.type == "gcp:serviceaccount/account:Account")
    assert accounts == ["ocr-bake", "ocr-worker", "symbols-bake", "symbols-worker"]


def test_a_model_named_in_the_arguments_keeps_its_name() -> None:
    args = ModelStackArgs.of(image=IMAGE, project="test-project", model="drawings")
    assert args.config.named("ignored").model_name == "drawings"
    assert ModelStackArgs.of(image=IMAGE, project="test-project").config.named("ocr").model_name == "ocr"


def plan_args(tmp_path: Path, stack: str = "symbols", directory: Path = REPO) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    plan_command.add_arguments(parser)
    return parser.parse_args(["--stack", stack, "--out", str(tmp_path / "plan"), "--dir", str(directory), "--no-png"])


def test_plan_renders_the_default_stack(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_command.run(plan_args(tmp_path)) == 0
    out = capsys.readouterr().out
    assert "symbols-requests-workers" in out and "SPOT/DELETE" in out
    dot = (tmp_path / "plan" / "symbols.dot").read_text()
    assert dot.startswith('digraph "symbols"') and "gcp:compute/regionAutoscaler:RegionAutoscaler" in dot
    assert dot.count(" -> ") >= 25


def test_plan_png(tmp_path: Path) -> None:
    graph = plan_command.plan(symbols_config(), "symbols", SCHEDULE_START)
    png = tmp_path / "graph.png"
    plan_command._render_png_matplotlib(graph, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plan_reports_bad_configuration(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "Pulumi.bad.yaml").write_text(
        "config:\n  gcp:project: p\n  asyncinfer:image: x/y:1\n"
        "  asyncinfer:minReplicas: 5\n  asyncinfer:maxReplicas: 2\n"
    )
    assert plan_command.run(plan_args(tmp_path, stack="bad", directory=tmp_path)) == 2
    err = capsys.readouterr().err
    assert "asyncinfer:minReplicas (5) is greater than asyncinfer:maxReplicas (2)" in err
    assert not (tmp_path / "plan").exists()
    assert plan_command.run(plan_args(tmp_path, stack="missing", directory=tmp_path)) == 2


def test_each_default_is_written_once_where_the_setting_lives() -> None:
    """The stack's defaults are the components', the policy's, the calendar's, the topology's and
    the worker's own: change one there and the stack follows."""
    import dataclasses

    from asyncinfer.components.stack_config import StackConfig
    from asyncinfer.components.worker_pool import GpuWorkerPoolArgs
    from asyncinfer.core.policy import ScalingPolicy
    from asyncinfer.core.schedules import BusinessCalendar
    from asyncinfer.core.topology import QueueTopology
    from asyncinfer.core.worker_settings import WorkerSettings

    fields = StackConfig.model_fields
    for owner in (GpuWorkerPoolArgs, ScalingPolicy, BusinessCalendar, QueueTopology):
        for item in dataclasses.fields(owner):
            # Scalar defaults (collections are empty either way; pool-only fields have none here).
            if item.name in fields and isinstance(item.default, str | int | float | bool):
                assert fields[item.name].default == item.default, f"{owner.__name__}.{item.name}"
    for name in ("max_batch_size", "max_wait_ms", "drain_timeout_s", "health_port"):
        assert (
            fields[name].default
            == WorkerSettings.model_fields[name].default
            == GpuWorkerPoolArgs.__dataclass_fields__[name].default
        )
    # The worker's own drain default is one the components accept.
    parse_stack_config(MINIMAL, stack="symbols")
    GpuWorkerPoolArgs(
        project="p",
        region="asia-northeast1",
        distribution_policy_zones=["asia-northeast1-a"],
        model="symbols",
        subscription_name="s",
        results_topic_name="t",
        source_image="i",
        worker_image="w",
        drain_timeout_s=WorkerSettings.model_fields["drain_timeout_s"].default,
    )
