from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncinfer.simulator.config import AsyncConfig, ConfigError, SyncConfig, load_configs, parse_configs
from asyncinfer.simulator.prices import PRICE_TABLE, billed_seconds, price_per_hour


def test_a_file_may_hold_several_designs(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"configs": [{"name": "a", "max_vms": 3}, {"kind": "sync", "name": "b"}]}))
    a, b = load_configs(path)
    assert isinstance(a, AsyncConfig) and a.max_vms == 3 and a.spot
    assert isinstance(b, SyncConfig) and not b.spot


def test_yaml(tmp_path: Path) -> None:
    pytest.importorskip("yaml")
    path = tmp_path / "c.yaml"
    path.write_text("name: y\nbaked: false\ncalendar:\n  business_min_vms: 2\n")
    (config,) = load_configs(path)
    assert isinstance(config, AsyncConfig)
    assert config.ready_after_s == 90 + 420
    assert config.calendar is not None and config.calendar.business_min_vms == 2


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        ({"name": "x", "max_vm": 3}, "max_vm"),  # a typo must not fall back to a default
        ({"name": "x", "min_vms": 5, "max_vms": 2}, "min_workers"),  # the shared policy's own check
        ({"name": "x", "gpu": "tpu-v9"}, "price_per_hour"),
        ({"name": "x", "calendar": {"time_zone": "Mars/Olympus"}}, "IANA"),
        ({"kind": "serverless"}, "kind"),
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
