"""The lane engine: priority lanes, stockouts that last, the fallback pool (core.lanes is the policy)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import asyncinfer.tools.simulator.lane_engine as lane_engine
from asyncinfer.core.lanes import LaneSet, fallback_assignments, lane_assignments
from asyncinfer.core.policy import single_instance_assignment
from asyncinfer.tools.simulator.config import AsyncConfig
from asyncinfer.tools.simulator.lane_engine import (
    LaneDesign,
    PoolDesign,
    Stockout,
    simulate_lanes,
    simulate_lanes_with_latencies,
)
from asyncinfer.tools.simulator.lane_study import main as study_main
from asyncinfer.tools.simulator.lane_study import split_lanes
from asyncinfer.tools.simulator.traces import Trace

MakeTrace = Callable[..., Trace]
QUIET = AsyncConfig(preemptions_per_vm_hour=0.0, max_vms=10)
LANES = LaneSet.defaults()


def _spot(assignments: dict[str, float] | None = None, max_vms: int = 10) -> PoolDesign:
    a = assignments or lane_assignments(LANES, QUIET.batch.full_batch_throughput, QUIET.reaction_s)
    return PoolDesign(name="spot", spot=True, max_vms=max_vms, price_per_hour=0.28, assignments=a)


def _fallback(max_vms: int = 5) -> PoolDesign:
    spot = lane_assignments(LANES, QUIET.batch.full_batch_throughput, QUIET.reaction_s)
    return PoolDesign(name="fallback", spot=False, max_vms=max_vms, price_per_hour=0.71,
                      assignments=fallback_assignments(spot, 10), calendar_floor=False)


def _office_hour(make_trace: MakeTrace, bulk: int = 3000) -> tuple[Trace, np.ndarray]:
    """Interactive at 1/s for 2 h, and `bulk` requests within the first minute of the second half hour."""
    rng = np.random.default_rng(1)
    interactive = np.sort(rng.random(7200) * 7200)
    bulk_times = 1800 + rng.random(bulk) * 60
    arrivals = np.concatenate([interactive, bulk_times])
    lanes = np.concatenate([np.zeros(interactive.size, np.int8), np.ones(bulk, np.int8)])
    order = np.argsort(arrivals, kind="stable")
    return make_trace(arrivals[order], duration_s=7200), lanes[order]


def _lane(summary: dict, name: str) -> dict:
    return next(lane for lane in summary["lanes"] if lane["lane"] == name)


def test_interactive_requests_overtake_a_bulk_backlog(make_trace: MakeTrace) -> None:
    trace, lane_of = _office_hour(make_trace)
    summary, latency = simulate_lanes_with_latencies(LaneDesign("lanes", QUIET, LANES, (_spot(),)), trace, lane_of)
    interactive, bulk = _lane(summary, "interactive"), _lane(summary, "bulk")
    assert interactive["errors"] == bulk["errors"] == 0  # nothing lost, nothing starved
    # The bulk upload (at 30 min) waits minutes; interactive requests that arrive behind it do not.
    assert bulk["latency_p95_s"] > 120
    behind = (lane_of == 0) & (trace.arrivals > 1800) & (trace.arrivals < 2400)
    full_batch = QUIET.batch.duration_s(QUIET.batch.max_batch)
    assert np.percentile(latency[behind], 99) < 3 * full_batch
    # The same requests in one FIFO lane: the interactive ones wait behind the upload.
    one = LaneSet((LANES.get("bulk"),), "bulk")
    _, fifo = simulate_lanes_with_latencies(
        LaneDesign("fifo", QUIET, one, (_spot({"bulk": 528.0}),)), trace, np.zeros_like(lane_of)
    )
    assert np.percentile(fifo[behind], 95) > 60


def test_a_regional_stockout_stops_a_spot_pool_and_the_fallback_answers(make_trace: MakeTrace) -> None:
    trace, lane_of = _office_hour(make_trace, bulk=500)
    stockout = (Stockout(start_s=1200, duration_s=3600),)
    spot_only = simulate_lanes(LaneDesign("spot", QUIET, LANES, (_spot(),), stockout), trace, lane_of)
    with_fallback = simulate_lanes(
        LaneDesign("fallback", QUIET, LANES, (_spot(), _fallback()), stockout), trace, lane_of
    )
    spot_pool = spot_only["pools"][0]
    assert spot_pool["preempted"] >= 1 and spot_pool["failed_creations"] >= 1
    # Spot only: interactive requests wait out the stockout (an hour), then all are answered.
    assert _lane(spot_only, "interactive")["slo_attainment"] < 0.7
    assert _lane(spot_only, "interactive")["errors"] == 0
    # With the fallback, the interactive lane keeps its goal.
    assert _lane(with_fallback, "interactive")["slo_attainment"] >= 0.999
    assert with_fallback["pools"][1]["vm_hours"] > 0
    assert with_fallback["cost_usd"] > spot_only["cost_usd"]


def test_a_zone_stockout_only_costs_the_reclaimed_vms(make_trace: MakeTrace) -> None:
    trace, lane_of = _office_hour(make_trace, bulk=500)
    zone = (Stockout(start_s=1200, duration_s=3600, scope="zone"),)
    summary = simulate_lanes(LaneDesign("zone", QUIET, LANES, (_spot(),), zone), trace, lane_of)
    assert summary["pools"][0]["failed_creations"] == 0
    assert _lane(summary, "interactive")["slo_attainment"] >= 0.999


def test_shares_cover_the_sum_and_cost_more_vms_than_lanes_sized_alone(make_trace: MakeTrace) -> None:
    trace, lane_of = _office_hour(make_trace)
    throughput, reaction = QUIET.batch.full_batch_throughput, QUIET.reaction_s
    alone = {lane.name: single_instance_assignment(throughput, lane.latency_goal_s, reaction) for lane in LANES.lanes}
    shared = simulate_lanes(LaneDesign("shared", QUIET, LANES, (_spot(),)), trace, lane_of)
    sized_alone = simulate_lanes(LaneDesign("alone", QUIET, LANES, (_spot(alone),)), trace, lane_of)
    assert shared["pools"][0]["peak_vms"] > sized_alone["pools"][0]["peak_vms"]
    assert _lane(shared, "bulk")["latency_p95_s"] < _lane(sized_alone, "bulk")["latency_p95_s"]


def test_the_engine_decides_with_the_shared_lane_policy(
    make_trace: MakeTrace, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[dict[str, float]] = []
    original = lane_engine.recommended_for_lanes

    def spy(backlogs, policies, floor=0):  # type: ignore[no-untyped-def]
        calls.append(dict(backlogs))
        return original(backlogs, policies, floor)

    monkeypatch.setattr(lane_engine, "recommended_for_lanes", spy)
    trace, lane_of = _office_hour(make_trace, bulk=3000)
    simulate_lanes(LaneDesign("spy", QUIET, LANES, (_spot(),)), trace, lane_of)
    assert calls and set(calls[0]) == {"interactive", "bulk"}
    assert max(c["bulk"] for c in calls) >= 1000


def test_split_lanes_puts_uploads_in_the_bottom_lane(make_trace: MakeTrace) -> None:
    steady = np.arange(0, 3600, 1.0)  # 60 a minute
    upload = 1800 + np.linspace(0, 59, 3000)
    trace = make_trace(np.concatenate([steady, upload]), duration_s=3600)
    lane_of = split_lanes(trace, LANES)
    in_upload_minute = (trace.arrivals >= 1800) & (trace.arrivals < 1860)
    assert np.count_nonzero(lane_of[~in_upload_minute] == 0) == np.count_nonzero(~in_upload_minute)
    assert 2800 < np.count_nonzero(lane_of[in_upload_minute] == 1) < 3060


def test_the_study_command_writes_its_table_and_json(tmp_path: Path, make_trace: MakeTrace) -> None:
    trace_file = tmp_path / "t.csv"
    minutes = ["minute,count"] + [f"{m},{60 if m % 60 else 900}" for m in range(240)]
    trace_file.write_text("# start: 2026-11-24T12:00:00+09:00\n" + "\n".join(minutes) + "\n")
    out = tmp_path / "lanes.json"
    assert study_main(["--trace", str(trace_file), "--stockout-start", "2026-11-24T13:00:00+09:00",
                       "--stockout-hours", "1", "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    names = [r["name"] for r in document["results"]]
    assert {"spot-only", "spot+fallback", "on-demand-only"} <= set(names)
    by_name = {r["name"]: r for r in document["results"]}
    interactive = _lane(by_name["spot+fallback"], "interactive")
    assert interactive["requests"] > 0 and interactive["errors"] == 0
