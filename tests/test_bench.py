"""A smoke run of `asyncinfer bench`: tiny counts, checks the report's shape and sanity, never timings."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import pytest

from asyncinfer.tools.bench import TARGETS
from asyncinfer.tools.cli import main

pytestmark = pytest.mark.emulator


def test_bench_smoke_writes_a_sane_report(emulator_host: str, tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    code = main([
        "bench", "--json", str(out), "--sizes", "4", "--count", "24", "--rounds", "1",
        "--latency-samples", "3", "--cold-starts", "1", "--standin-ms", "2", "--standin-batch", "4",
        "--standin-count", "48", "--decode-requests", "64", "--quiet",
    ])
    assert code == 0
    report = json.loads(out.read_text())
    assert report["ratio_batch_size"] == 4  # no 32 in this run: the largest size is the headline
    assert 0 < report["ratio"] < 100
    assert report["torch_threads"] == 1 and report["device"] == "cpu"
    assert [s["batch_size"] for s in report["sizes"]] == [4]
    for size in [*report["sizes"], report["standin"]]:
        assert size["bare_per_s"] > 0 and size["pipeline_per_s"] > 0 and size["ratio"] > 0
        assert size["errors"] == 0
        assert math.isclose(size["ratio"], size["pipeline_per_s"] / size["bare_per_s"], rel_tol=0.01)
        assert len(size["ratio_rounds"]) == len(size["pipeline_rounds"]) == 1
        # The same rounds read from the first publish (the fill included), and the fill itself.
        assert size["ratio_from_first_publish"] > 0 and len(size["pipeline_from_first_publish_rounds"]) == 1
        assert len(size["fill_s_rounds"]) == len(size["publish_s_rounds"]) == 1 and size["fill_s_rounds"][0] > 0
        # The model's busy share of the round: its batches' inference time summed over the round's wall time.
        assert 0 < size["model_busy_share"] <= 1.05 and len(size["model_busy_rounds"]) == 1
        # The worker's CPU (its intake processes included) is more than nothing, and what is left
        # outside the model is that CPU less the model's own, measured in the worker (its log lines),
        # and beside it, less the bare loop's.
        worker_cpu = size["cpu_us_per_request"]["worker"]
        assert worker_cpu > 0
        in_worker = size["model_cpu_in_worker_us_per_request"]
        assert in_worker is not None and 0 <= in_worker < worker_cpu
        assert math.isclose(size["worker_cpu_outside_model_us"], worker_cpu - in_worker, abs_tol=1.0)
        assert math.isclose(size["worker_cpu_outside_bare_model_us"],
                            worker_cpu - size["model_cpu_us_per_request"], abs_tol=1.0)
    for size in report["sizes"]:
        assert size["noop_pipeline_per_s"] > 0
    standin = report["standin"]
    assert standin["model"] == "standin" and standin["batch_ms"] == 2.0 and standin["nominal_per_s"] == 2000.0
    # The stand-in sleeps: its predict costs the CPU next to nothing, unlike the real model, in the
    # bare loop and in the worker alike.
    assert standin["model_cpu_us_per_request"] < report["sizes"][-1]["model_cpu_us_per_request"]
    assert standin["model_cpu_in_worker_us_per_request"] < report["sizes"][-1]["model_cpu_in_worker_us_per_request"]
    scaling = report["decode_scaling"]
    assert scaling["requests"] == 64 and all(v > 0 for v in scaling["per_s"].values())
    # The process passes' CPU: the intake processes decode, so they spend more than nothing.
    assert all(scaling["cpu_us_per_request"][name]["intake"] > 0 for name in ("processes_1", "processes_2"))
    assert scaling["ceiling_cores"] == min(2, os.cpu_count() or 1)
    for key in ("latency_ms", "latency_no_wait_ms"):
        latency = report[key]
        assert latency["samples"] == 3
        assert 0 < latency["total_p50"] <= latency["total_p99"]
        assert latency["inference_p50"] > 0
        # Timestamps from the worker: its share is part of the total, the broker's is the rest.
        assert 0 < latency["in_worker_p50"] < latency["total_p50"]
        assert latency["broker_p50"] > 0
    assert report["emulator_hop_ms"]["p50"] > 0
    start = report["worker_process_start_s"]
    assert start["min"] <= start["median"] <= start["max"] and start["median"] > 0
    system = report["system_cold_start_from_zero_s"]
    assert "derived" in system["what"] and system["value"] == sum(system["parts"].values()) > start["median"]
    assert report["decode_us_per_image"] > 0 and report["intake_us_per_request"] > 0
    assert math.isclose(report["worker_cpu_outside_model_and_decode_us"],
                        report["worker_cpu_outside_model_us"] - report["decode_us_per_image"], abs_tol=0.11)
    assert set(report["targets"]) == set(TARGETS)
    for name, row in report["targets"].items():
        if name != "worker_cpu_outside_model_us_batch32" and name != "ratio_batch32":  # no batch 32 here
            assert row["value"] is not None, name


def test_paced_publisher_holds_its_rate(emulator_host: str) -> None:
    """The load generator's steady rate: 3 calls of PACED_CALL_MESSAGES at 2,000/s cannot all be sent
    before 2 call intervals have passed, and every message arrives."""
    from asyncinfer.core.topology import QueueTopology
    from asyncinfer.tools.bench import PACED_CALL_MESSAGES, Publisher, ResultSink
    from asyncinfer.tools.local.topology_admin import ensure_topology

    project = "bench-paced"
    topology = QueueTopology(name="paced")
    ensure_topology(project, topology, with_taps=False)
    sink = ResultSink(project, topology.requests_topic)  # listens to the requests topic itself
    publisher = Publisher(project, topology.requests_topic)
    try:
        count = 3 * PACED_CALL_MESSAGES
        started = time.perf_counter()
        publisher.publish_paced([b"{}"] * count, per_s=2000.0)
        took_s = time.perf_counter() - started
        assert took_s >= 2 * PACED_CALL_MESSAGES / 2000.0
        deadline = time.monotonic() + 30
        while len(sink.arrived) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(sink.arrived) == count
    finally:
        publisher.close()
        sink.close()
