from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncinfer.tools.simulator.config import AsyncConfig, ConfigError, SyncConfig, load_configs, parse_configs
from asyncinfer.tools.simulator.prices import PRICE_TABLE, billed_seconds, price_per_hour


def test_a_file_may_hold_several_designs(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"configs": [{"name": "a", "max_vms": 3}, {"kind": "sync", "name": "b"}]}))
    a, b = load_configs(path)
    assert isinstance(a, AsyncConfig) and a.max_vms == 3 and a.spot
    assert isinstance(b, SyncConfig) and not b.spot


def test_yaml(tmp_path: Path) -> None:
    # PyYAML is a dependency of asyncinfer-tools: the YAML claim is tested, never skipped.
    path = tmp_path / "c.yaml"
    path.write_text("name: y\nbaked: false\nlatency_goal_s: 900\ncalendar:\n  business_min_vms: 2\n")
    (config,) = load_configs(path)
    assert isinstance(config, AsyncConfig)
    assert config.ready_after_s == 90 + 420
    assert config.calendar is not None and config.calendar.business_min_vms == 2


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"name": "x", "max_vm": 3}, "max_vm"),  # a typo must not fall back to a default
        ({"name": "x", "min_vms": 5, "max_vms": 2}, "min_replicas"),  # the shared policy's own check
        ({"name": "x", "gpu": "tpu-v9"}, "price_per_hour"),
        ({"name": "x", "calendar": {"time_zone": "Mars/Olympus"}}, "IANA"),
        ({"kind": "serverless"}, "kind"),
        # 60 s sampling + 120 s lag + 90 s boot + 420 s unbaked: a 10-minute goal cannot be met.
        ({"name": "x", "baked": False}, r"reaction time \(690 s = metric_period_s 60 \+ metric_lag_s 120"),
    ],
)
def test_bad_configurations_name_the_key(document: dict[str, object], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        parse_configs(document, "bad.json")


def test_prices() -> None:
    for price in PRICE_TABLE.values():
        assert 0 < price.spot_usd_per_hour < price.on_demand_usd_per_hour
    assert price_per_hour("nvidia-l4", spot=True) == PRICE_TABLE["nvidia-l4"].spot_usd_per_hour
    assert price_per_hour("anything", spot=False, override=1.25) == 1.25
    assert billed_seconds(10) == 60 and billed_seconds(61.5) == 61.5


@pytest.mark.parametrize(
    ("settings", "reaction", "assignment"),
    [
        ({}, 270, 3.2 * (600 - 270)),
        ({"baked": False, "latency_goal_s": 900}, 690, 3.2 * (900 - 690)),
        ({"metric_lag_s": 0}, 150, 3.2 * (600 - 150)),
        ({"backlog_per_vm": 1440}, 270, 1440),
    ],
)
def test_assignment_leaves_the_reaction_time_out_of_the_goal(
    settings: dict[str, object], reaction: float, assignment: float
) -> None:
    config = AsyncConfig.model_validate({"name": "x", **settings})
    assert config.reaction_s == reaction
    assert config.policy().reaction_s == reaction
    assert config.policy().assignment == pytest.approx(assignment)


def test_simulator_and_components_derive_the_same_policy() -> None:
    """docs/PLATFORM.md: one policy. The default pool of the simulator and of a stack, at the same
    throughput and goal, must hand GCE the same assignment. The components are a dependency of
    asyncinfer-tools: if they cannot be imported this test fails, it never skips."""
    from asyncinfer.components.stack_config import parse_stack_config

    for baked, goal in ((True, 600.0), (False, 900.0)):
        sim = AsyncConfig(name="x", baked=baked, latency_goal_s=goal)
        values = {"asyncinfer:image": "r/i:1", "gcp:project": "p", "asyncinfer:latencyGoalS": str(goal),
                  "asyncinfer:throughputPerReplica": str(sim.batch.full_batch_throughput)}
        if not baked:
            # The stack only deploys baked images; an image that boots slower says so in bootToReadyS.
            values |= {"asyncinfer:bootToReadyS": str(int(sim.ready_after_s))}
        stack = parse_stack_config(values, stack="symbols")
        assert stack.reaction_s == sim.reaction_s
        assert stack.policy().assignment == pytest.approx(sim.policy().assignment)


def test_every_input_figure_is_labelled_and_the_doc_carries_the_table() -> None:
    """One place for the assumed figures: the code's constants, printed into docs/CAPACITY.md."""
    from pathlib import Path

    from asyncinfer.tools.simulator import assumptions

    assert {f.basis for f in assumptions.FIGURES} <= {"assumed", "documented", "configured"}
    config = AsyncConfig()
    assert config.boot_s == assumptions.BAKED_BOOT_S.value and assumptions.BAKED_BOOT_S.basis == "assumed"
    assert config.preemptions_per_vm_hour == assumptions.PREEMPTIONS_PER_VM_HOUR.value
    assert PRICE_TABLE["nvidia-l4"].spot_usd_per_hour == assumptions.GPU_PRICES.value
    doc = (Path(__file__).parents[2] / "docs" / "CAPACITY.md").read_text()
    assert assumptions.markdown_table() in doc, "regenerate: python -m asyncinfer.tools.simulator.assumptions"
    assert "measured" not in " ".join(f.source for f in assumptions.FIGURES).replace("not measured", "")
