"""The lanes and stockout study: Spot only, Spot with a fallback pool, on-demand only.

`python -m asyncinfer.tools.simulator.lane_study --trace traces/office_week.csv --json PATH` splits
the trace into lanes (office-hours traffic is interactive, the bulk uploads above it are bulk),
puts a Spot stockout into it (default: the whole region, two hours from Tue 13:00 Asia/Tokyo,
across one of the week's bulk uploads), runs the designs below and prints a Markdown table.

Designs (one L4 per VM, the batch timing, boot and calendar of traces/configs/async.json):
- spot-only: today's Spot pool with two lanes;
- spot+fallback: the same, plus an on-demand fallback pool on the same lane metrics whose
  assignments are what the full Spot pool owns (core.lanes.fallback_assignments);
- on-demand-only: one on-demand pool (a Spot stockout cannot touch it);
and, without a stockout, what the fallback costs when nothing goes wrong, and the max-versus-sum
gap: lanes sized alone (each lane's assignment from its goal, as if it had the pool to itself)
against lanes sized with shares (the largest recommendation covers the sum).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from asyncinfer.core.lanes import LaneSet, fallback_assignments, lane_assignments
from asyncinfer.core.policy import single_instance_assignment
from asyncinfer.tools.simulator.config import AsyncConfig, CalendarConfig
from asyncinfer.tools.simulator.lane_engine import LaneDesign, PoolDesign, Stockout, simulate_lanes
from asyncinfer.tools.simulator.prices import PRICES_AS_OF, price_per_hour
from asyncinfer.tools.simulator.traces import Trace, load_trace

#: The pool of traces/configs/async.json's spot-baked design.
BASE = AsyncConfig(
    name="lanes",
    max_vms=20,
    calendar=CalendarConfig(country="JP", time_zone="Asia/Tokyo", business_min_vms=1),
    preemptions_per_vm_hour=0.05,
)
FALLBACK_MAX_VMS = 10


def split_lanes(trace: Trace, lanes: LaneSet, seed: int = 0, window_min: int = 61) -> np.ndarray:
    """One lane index per arrival (0 = the highest-priority lane, the last = the lowest).

    A minute's steady traffic is the median count of the `window_min` minutes around it; that much
    of the minute is interactive (the top lane), anything above it (a bulk upload) goes to the last
    lane. Each arrival is drawn independently with that minute's interactive share (seeded).
    """
    counts = trace.per_minute().astype(float)
    half = window_min // 2
    padded = np.pad(counts, half, mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(padded, window_min)
    steady = np.median(windows, axis=1)[: counts.size]
    share = np.where(counts > 0, np.minimum(1.0, steady / np.maximum(counts, 1)), 1.0)
    minute = np.minimum((trace.arrivals // 60).astype(np.int64), counts.size - 1)
    rng = np.random.default_rng(seed)
    top = rng.random(trace.count) < share[minute]
    return np.where(top, 0, len(lanes.lanes) - 1).astype(np.int8)


def designs(
    base: AsyncConfig, lanes: LaneSet, stockouts: tuple[Stockout, ...], fallback_max_vms: int
) -> list[LaneDesign]:
    throughput = base.throughput_per_vm or base.batch.full_batch_throughput
    spot_assign = lane_assignments(lanes, throughput, base.reaction_s)
    alone = {
        lane.name: single_instance_assignment(throughput, lane.latency_goal_s, base.reaction_s) for lane in lanes.lanes
    }
    spot_price = price_per_hour(base.gpu, True, None)
    on_demand_price = price_per_hour(base.gpu, False, None)
    spot = PoolDesign(name="spot", spot=True, max_vms=base.max_vms, price_per_hour=spot_price, assignments=spot_assign)

    def fallback(watched: list[str] | None, factor: float = base.max_vms) -> PoolDesign:
        return PoolDesign(
            name="fallback",
            spot=False,
            max_vms=fallback_max_vms,
            price_per_hour=on_demand_price,
            assignments=fallback_assignments(spot_assign, factor, watched),
            calendar_floor=False,
        )

    on_demand = PoolDesign(
        name="on-demand", spot=False, max_vms=base.max_vms, price_per_hour=on_demand_price, assignments=spot_assign
    )
    spot_alone = PoolDesign(name="spot", spot=True, max_vms=base.max_vms, price_per_hour=spot_price, assignments=alone)
    top = [lanes.lanes[0].name]
    zone = tuple(replace(s, scope="zone") for s in stockouts)
    return [
        LaneDesign("spot-only", base, lanes, (spot,), stockouts),
        LaneDesign("spot+fallback", base, lanes, (spot, fallback(None)), stockouts),
        LaneDesign("spot+fallback x2", base, lanes, (spot, fallback(None, 2)), stockouts),
        LaneDesign(f"spot+fallback on {top[0]} only", base, lanes, (spot, fallback(top)), stockouts),
        LaneDesign("on-demand-only", base.model_copy(update={"spot": False}), lanes, (on_demand,), stockouts),
        LaneDesign("spot-only, one zone out instead", base, lanes, (spot,), zone),
        LaneDesign("spot-only, no stockout", base, lanes, (spot,)),
        LaneDesign("spot+fallback, no stockout", base, lanes, (spot, fallback(None))),
        LaneDesign("spot+fallback x2, no stockout", base, lanes, (spot, fallback(None, 2))),
        LaneDesign(f"spot+fallback on {top[0]} only, no stockout", base, lanes, (spot, fallback(top))),
        LaneDesign("spot-only, lanes sized alone (max, not sum), no stockout", base, lanes, (spot_alone,)),
    ]


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} s" if value < 600 else f"{value / 60:.1f} min"


def markdown_table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| design | cost USD | Spot VM h | on-demand VM h | peak VMs (per pool) | lane | p95 | p99 | SLO | late "
        "| errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        spot_h = sum(p["vm_hours"] for p in r["pools"] if p["spot"])
        od_h = sum(p["vm_hours"] for p in r["pools"] if not p["spot"])
        peaks = ", ".join(f"{p['pool']} {p['peak_vms']}" for p in r["pools"])
        for i, lane in enumerate(r["lanes"]):
            head = (
                [r["name"], f"{r['cost_usd']:,.2f}", f"{spot_h:,.1f}", f"{od_h:,.1f}", peaks]
                if i == 0 else ["", "", "", "", ""]
            )
            cells = [
                *head,
                f"{lane['lane']} ({_s(lane['latency_goal_s'])})",
                _s(lane["latency_p95_s"]),
                _s(lane["latency_p99_s"]),
                f"{100 * lane['slo_attainment']:.2f} %",
                f"{lane['late']:,}",
                f"{lane['errors']:,}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, default=Path("traces/office_week.csv"))
    parser.add_argument("--stockout-start", default="2026-11-24T13:00:00+09:00",
                        help="ISO 8601 with offset; when the Spot stockout begins")
    parser.add_argument("--stockout-hours", type=float, default=2.0)
    parser.add_argument("--scope", choices=("region", "zone"), default="region")
    parser.add_argument("--fallback-max-vms", type=int, default=FALLBACK_MAX_VMS)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    trace = load_trace(args.trace)
    lanes = LaneSet.defaults()
    start = dt.datetime.fromisoformat(args.stockout_start)
    if start.tzinfo is None:
        parser.error("--stockout-start needs a UTC offset, e.g. +09:00")
    offset = (start - trace.start).total_seconds()
    stockouts = (Stockout(start_s=offset, duration_s=args.stockout_hours * 3600, scope=args.scope),)
    lane_of = split_lanes(trace, lanes)
    results = []
    for design in designs(BASE, lanes, stockouts, args.fallback_max_vms):
        started = time.perf_counter()
        summary = simulate_lanes(design, trace, lane_of)
        summary["simulation_wall_s"] = time.perf_counter() - started
        results.append(summary)
    for summary in results:
        # The whole week per minute is 10,000 numbers per pool: keep the stockout's window, every
        # 5 minutes, from 30 minutes before it to 2 hours after it.
        for pool in summary["pools"]:
            series = pool.pop("vms_by_sample")
            first = max(0, int((offset - 1800) // BASE.metric_period_s))
            last = int((offset + args.stockout_hours * 3600 + 7200) // BASE.metric_period_s)
            step = int(300 // BASE.metric_period_s)
            pool["vms_around_stockout"] = {
                f"{(i * BASE.metric_period_s - offset) / 60:+.0f} min": series[i]
                for i in range(first, min(last, len(series)), step)
            }
    table = markdown_table(results)
    print(table)
    if args.json:
        document = {
            "trace": {"name": trace.name, "requests": trace.count, "start": trace.start.isoformat()},
            "lanes": [
                {"lane": lane.name, "priority": lane.priority, "latency_goal_s": lane.latency_goal_s,
                 "requests": int(np.count_nonzero(lane_of == k))}
                for k, lane in enumerate(lanes.lanes)
            ],
            "stockout": {"start": start.isoformat(), "hours": args.stockout_hours, "scope": args.scope},
            "prices": PRICES_AS_OF,
            "command": "python -m asyncinfer.tools.simulator.lane_study "
            + " ".join(sys.argv[1:] if argv is None else argv),
            "results": results,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
