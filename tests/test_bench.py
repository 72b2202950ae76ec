"""A smoke run of `asyncinfer bench`: tiny counts, checks the report's shape and sanity, never timings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from asyncinfer.tools.cli import main

pytestmark = pytest.mark.emulator


def test_bench_smoke_writes_a_sane_report(emulator_host: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code = main([
        "bench", "--json", str(out), "--sizes", "1,4", "--count", "24", "--rounds", "1",
        "--latency-samples", "3", "--cold-starts", "1", "--quiet",
    ])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["ratio_batch_size"] == 4  # no 32 in this run: the largest size is the headline
    assert 0 < report["ratio"] < 100
    assert report["torch_threads"] == 1 and report["device"] == "cpu"
    assert [s["batch_size"] for s in report["sizes"]] == [1, 4]
    for size in report["sizes"]:
        assert size["bare_per_s"] > 0 and size["pipeline_per_s"] > 0 and size["ratio"] > 0
        assert size["noop_pipeline_per_s"] > 0
        assert size["errors"] == 0
        assert math.isclose(size["ratio"], size["pipeline_per_s"] / size["bare_per_s"], rel_tol=0.01)
    for key in ("latency_ms", "latency_no_wait_ms"):
        latency = report[key]
        assert latency["samples"] == 3
        assert 0 < latency["total_p50"] <= latency["total_p99"]
        assert latency["inference_p50"] > 0
    assert report["emulator_hop_ms"]["p50"] > 0
    assert report["cold_start_s"]["median"] > 0
    assert report["decode_us_per_image"] > 0 and report["intake_us_per_request"] > 0
    assert set(report["targets"]) == {"ratio_batch32", "added_latency_p50_ms", "added_latency_p99_ms", "cold_start_s"}
