"""The headline's decomposition: its factors multiply back to it, on every run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from asyncinfer.tools.simulator.sensitivity import decomposition_designs, run_family


def test_factors_multiply_to_the_headlines() -> None:
    family = run_family("bursty-batch", (0,), decomposition_designs(), days=1)
    (run,) = family["runs"]
    f = run["factors"]
    assert f["headline"] == pytest.approx(f["elasticity"] * f["spot"])
    assert f["old_headline"] == pytest.approx(f["batching"] * f["elasticity"] * f["spot"])
    assert f["batching"] > 1  # batching shrinks the peak-sized fleet
    designs = run["designs"]
    # Same goal and same rule on both sides: nobody's misses are zero by construction.
    assert set(designs) == {"sync-peak-unbatched", "sync-peak-batched", "pool-on-demand", "pool-spot"}
    for summary in designs.values():
        assert summary["misses"] == summary["errors"] + summary["late"]


def test_committed_sensitivity_json_matches_the_doc() -> None:
    root = Path(__file__).parents[2]
    document = json.loads((root / "docs" / "results" / "capacity-sensitivity.json").read_text())
    assert [f["family"] for f in document["families"]] == ["steady-trickle", "bursty-batch", "office-week"]
    assert document["seeds"] == [0, 1, 2, 3, 4]
    doc = (root / "docs" / "CAPACITY.md").read_text()
    for family in document["families"]:
        median = family["summary"]["headline"]["median"]
        assert f"**{median:.1f} (" in doc, f"docs/CAPACITY.md does not show {family['family']}'s headline {median:.1f}"
