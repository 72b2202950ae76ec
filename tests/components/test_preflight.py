"""The preflight: what GCE would refuse (or silently misread) is refused before any resource exists.

A catalogue of bad configurations, each refused with a message that names the key and the fix and
with zero resources registered; and the two stacks of the issue's "done when" planned under mocks
from their stack files: the example (two zones) and the longest model name the config accepts in a
region without a zone a, with no zone given.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from asyncinfer.components.model_stack import program
from asyncinfer.components.stack_config import StackConfigError, parse_stack_config
from asyncinfer.components.testing import RecordedResource
from asyncinfer.core import gce
from asyncinfer.tools.commands import plan_command
from tests.components.conftest import SCHEDULE_START, Engine

REPO = Path(__file__).resolve().parents[2]
IMAGE = "us-east1-docker.pkg.dev/p/asyncinfer/symbols:1"
MINIMAL = {"asyncinfer:image": IMAGE, "gcp:project": "test-project"}
#: QueueTopology accepts 3-42 characters: the longest model name the config accepts.
LONGEST_MODEL = "m" + "x" * 40 + "z"


def config(**extra: Any) -> dict[str, str]:
    values = dict(MINIMAL)
    for key, value in extra.items():
        full = key if ":" in key else f"asyncinfer:{key}"
        values[full] = value if isinstance(value, str) else json.dumps(value)
    return values


#: (configuration, fragments the message must contain: the key, and the fix).
CATALOGUE: list[tuple[str, dict[str, str], tuple[str, ...]]] = [
    (
        "min above max",
        config(minReplicas=5, maxReplicas=2),
        ("asyncinfer:minReplicas (5)", "raise asyncinfer:maxReplicas"),
    ),
    (
        "business floor above max",
        config(businessMinReplicas=6, maxReplicas=4),
        ("asyncinfer:businessMinReplicas (6)", "lower asyncinfer:businessMinReplicas"),
    ),
    (
        "CPU signal cannot reach zero",
        config(cpuUtilizationTarget=0.6),
        ("asyncinfer:cpuUtilizationTarget", "set asyncinfer:minReplicas to 1 or more"),
    ),
    (
        "custom signal cannot reach zero",
        config(customMetrics=[{"name": "custom.googleapis.com/gpu", "target": 0.8}]),
        ("asyncinfer:customMetrics", "cannot scale to zero"),
    ),
    (
        "metric filter value not double-quoted",
        config(minReplicas=1, customMetrics=[{"name": "m", "target": 1, "filter": "metric.labels.gpu = 0"}]),
        ("asyncinfer:customMetrics[0].filter", "double-quoted value"),
    ),
    (
        "metric filter with OR",
        config(
            minReplicas=1,
            customMetrics=[{"name": "m", "target": 1, "filter": 'metric.labels.a = "1" OR metric.labels.a = "2"'}],
        ),
        ("asyncinfer:customMetrics[0].filter", "joined by AND"),
    ),
    (
        "zone of another region",
        config(distributionPolicyZones=["us-central1-a"], **{"gcp:region": "asia-northeast1"}),
        ("asyncinfer:distributionPolicyZones: 'us-central1-a' is not a zone of asia-northeast1", "its zones are"),
    ),
    (
        "zone a that us-east1 does not have",
        config(distributionPolicyZones=["us-east1-a"], **{"gcp:region": "us-east1"}),
        ("'us-east1-a' is not a zone of us-east1", "us-east1-b, us-east1-c, us-east1-d"),
    ),
    (
        "GPU not offered in the zone",
        config(distributionPolicyZones=["asia-northeast1-b"]),
        ("nvidia-l4 is not offered in asia-northeast1-b", "it is offered in asia-northeast1-a, asia-northeast1-c"),
    ),
    (
        "region not in the zone table",
        config(**{"gcp:region": "mars-central1"}),
        ("gcp:region 'mars-central1' is not in the zone table", "add the region's row"),
    ),
    ("unknown GPU", config(gpuType="nvidia-tesla-k80"), ("asyncinfer:gpuType 'nvidia-tesla-k80'", "use one of")),
    (
        "N1 vCPU-per-GPU limit (one V100: 12 vCPUs)",
        config(
            gpuType="nvidia-tesla-v100",
            machineType="n1-standard-16",
            **{"gcp:region": "us-central1"},
        ),
        ("asyncinfer:machineType n1-standard-16 has 16 vCPUs", "at most 12 on N1", "raise asyncinfer:gpuCount to 2"),
    ),
    (
        "G2 shape with the wrong GPU count",
        config(machineType="g2-standard-24"),
        ("comes with 2 x nvidia-l4", "set asyncinfer:gpuCount to 2"),
    ),
    (
        "EVEN target shape",
        config(distributionPolicyTargetShape="EVEN"),
        ("asyncinfer:distributionPolicyTargetShape 'EVEN'", "use ANY or BALANCED"),
    ),
    (
        "latency goal inside the reaction time",
        config(latencyGoalS=240),
        ("asyncinfer:latencyGoalS (240 s)", "Raise asyncinfer:latencyGoalS above 270"),
    ),
    (
        "drain longer than docker stop",
        config(drainTimeoutS=25),
        ("asyncinfer:drainTimeoutS is 25", "below 25 s"),
    ),
    (
        "model name GCE cannot take",
        config(model="Bad_Name"),
        ("asyncinfer:model", "lowercase letters, digits or '-'"),
    ),
    (
        "model name longer than the config accepts",
        config(model=LONGEST_MODEL + "q"),
        ("asyncinfer:model", "must be 3-42 lowercase letters"),
    ),
    ("old key", config(minVms=1), ("asyncinfer:minVms: renamed to asyncinfer:minReplicas", "rename the key")),
    (
        "misspelt key",
        config(maxReplica=3),
        ("asyncinfer:maxReplica: unknown key", "did you mean asyncinfer:maxReplicas?"),
    ),
    (
        "gcp:zone outside gcp:region",
        {**MINIMAL, "gcp:region": "us-east1", "gcp:zone": "europe-west1-b"},
        ("gcp:zone 'europe-west1-b' is not in gcp:region 'us-east1'", "pick a zone of that region"),
    ),
    (
        "schedule window: time zone",
        config(timeZone="Mars/Olympus"),
        ("asyncinfer:timeZone", "use a name such as 'Asia/Tokyo'"),
    ),
    (
        "schedule window: hours",
        config(businessStartHour=18, businessEndHour=9),
        ("business hours 18-9", "0 <= start < end <= 24"),
    ),
    (
        "a zone listed twice",
        config(distributionPolicyZones=["asia-northeast1-a", "asia-northeast1-a"]),
        ("asyncinfer:distributionPolicyZones lists a zone twice", "list each zone once"),
    ),
    (
        "unbaked without an image",
        config(imageBaked="false"),
        ("asyncinfer:imageBaked: false is not supported", "let the stack bake its image"),
    ),
]


def test_the_catalogue_is_at_least_fifteen_configurations() -> None:
    assert len(CATALOGUE) >= 15
    assert len({name for name, _, _ in CATALOGUE}) == len(CATALOGUE)


@pytest.mark.parametrize(("values", "fragments"), [(v, f) for _, v, f in CATALOGUE], ids=[n for n, _, _ in CATALOGUE])
def test_bad_configuration_is_refused_before_any_resource(
    engine: Engine, values: dict[str, str], fragments: tuple[str, ...]
) -> None:
    # The Pulumi program itself: the preflight runs before the first resource is declared.
    with pytest.raises(StackConfigError) as info:
        engine.run(lambda: program(SCHEDULE_START), config=values)
    for fragment in fragments:
        assert fragment in str(info.value), str(info.value)
    assert engine.graph.resources == []
    # `asyncinfer plan` validates with the same parse before its mock engine exists.
    with pytest.raises(StackConfigError):
        parse_stack_config(values, stack="symbols")


def gce_names(graph: list[RecordedResource]) -> dict[str, list[str]]:
    """Every Compute Engine name (or prefix) in a planned graph, by the limit it must meet."""
    found: dict[str, list[str]] = {"name": [], "namePrefix": [], "accountId": [], "baseInstanceName": []}
    for r in graph:
        if r.type.startswith("gcp:compute/") or r.type == "gcp:serviceaccount/account:Account":
            for field in found:
                if r.inputs.get(field):
                    found[field].append(str(r.inputs[field]))
    return found


def assert_valid_gce_names(graph: list[RecordedResource]) -> None:
    names = gce_names(graph)
    assert names["name"] and names["namePrefix"] and names["accountId"] and names["baseInstanceName"]
    for name in names["name"]:
        assert gce.is_valid_name(name), name
    for prefix in names["namePrefix"]:
        assert gce.is_valid_name(prefix.rstrip("-"), gce.MAX_TEMPLATE_PREFIX_LENGTH - 1), prefix
    for account in names["accountId"]:
        assert gce.is_valid_name(account, 30) and len(account) >= 6, account
    for base in names["baseInstanceName"]:
        assert gce.is_valid_name(base, gce.MAX_BASE_INSTANCE_NAME_LENGTH), base
    # Nothing is left to Pulumi's auto-naming (`<logical name>-<7 hex>`, which broke 63 chars).
    for r in graph:
        if r.type.startswith("gcp:compute/") and r.type != "gcp:compute/instanceTemplate:InstanceTemplate":
            assert r.inputs.get("name"), f"{r.type} {r.name} has no explicit name"


def plan_stack_file(tmp_path: Path, stack: str, text: str) -> list[RecordedResource]:
    (tmp_path / f"Pulumi.{stack}.yaml").write_text(text)
    values = plan_command.read_stack_file(tmp_path / f"Pulumi.{stack}.yaml")
    return plan_command.plan(values, stack, SCHEDULE_START)


def test_the_longest_model_name_in_us_east1_with_no_zone_plans_cleanly(tmp_path: Path) -> None:
    assert parse_stack_config(config(model=LONGEST_MODEL), "s").model_name == LONGEST_MODEL
    graph = plan_stack_file(
        tmp_path,
        "longest",
        "config:\n  gcp:project: test-project\n  gcp:region: us-east1\n"
        f"  asyncinfer:image: {IMAGE}\n  asyncinfer:model: {LONGEST_MODEL}\n",
    )
    assert_valid_gce_names(graph)
    group = next(r for r in graph if r.type == "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager")
    # No zone given: every us-east1 zone that offers L4s, and no us-east1-a (it does not exist).
    assert group.inputs["distributionPolicyZones"] == ["us-east1-b", "us-east1-c", "us-east1-d"]
    assert set(group.inputs["distributionPolicyZones"]) <= set(gce.region_zones("us-east1") or ())
    assert all(len(n) <= 63 for n in gce_names(graph)["name"])
    # The long names were shortened with a hash, so they stay distinct from each other.
    assert len(set(gce_names(graph)["name"])) == len(gce_names(graph)["name"])


def test_the_example_stack_plans_cleanly() -> None:
    graph = plan_command.plan(plan_command.read_stack_file(REPO / "Pulumi.symbols.yaml"), "symbols", SCHEDULE_START)
    assert_valid_gce_names(graph)
    group = next(r for r in graph if r.type == "gcp:compute/regionInstanceGroupManager:RegionInstanceGroupManager")
    assert group.inputs["distributionPolicyZones"] == ["asia-northeast1-a", "asia-northeast1-c"]


@pytest.mark.parametrize(
    ("stack", "text"),
    [
        ("symbols", None),
        (
            "longest",
            "config:\n  gcp:project: test-project\n  gcp:region: us-east1\n"
            f"  asyncinfer:image: {IMAGE}\n  asyncinfer:model: {LONGEST_MODEL}\n",
        ),
    ],
)
def test_asyncinfer_plan_command_line(tmp_path: Path, stack: str, text: str | None) -> None:
    """`asyncinfer plan --stack S --no-png`, the command the issue names, exits 0 for both stacks."""
    directory = REPO
    if text is not None:
        directory = tmp_path
        (tmp_path / f"Pulumi.{stack}.yaml").write_text(text)
    run = subprocess.run(
        [
            str(Path(sys.executable).with_name("asyncinfer")),
            "plan",
            "--stack",
            stack,
            "--no-png",
            "--dir",
            str(directory),
            "--out",
            str(tmp_path / "plan"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert "gcp:compute/regionAutoscaler:RegionAutoscaler" in run.stdout
