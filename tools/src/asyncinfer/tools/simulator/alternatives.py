"""Our pool against what users would pick instead, on several trace families, with sensitivity lines.

`python -m asyncinfer.tools.simulator.alternatives --json docs/results/capacity-alternatives.json`
runs every design of `designs()` on the committed traces of three families (the reference office
week, a steady trickle, bursty batch days), and then, per uncertain input (figures labelled
assumed in `assumptions`), the design it belongs to with that input at a low and a high value.
It writes all summaries, names for each trace the cheapest design that meets the goal (SLO
attainment >= 99.9 % within the 10-minute goal) and by how much, and prints the Markdown tables
docs/CAPACITY.md carries.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asyncinfer.tools.simulator import assumptions as assumed
from asyncinfer.tools.simulator.config import (
    AsyncConfig,
    CalendarConfig,
    CloudRunConfig,
    Design,
    GkeKedaConfig,
    StandbyConfig,
    SyncConfig,
    WakerConfig,
)
from asyncinfer.tools.simulator.report import write_json
from asyncinfer.tools.simulator.runner import run_all
from asyncinfer.tools.simulator.traces import Trace, load_trace, peak_to_mean

TRACES = {
    "office-week": Path("traces/office_week.csv"),
    "steady-trickle": Path("traces/steady_trickle.csv"),
    "bursty-batch": Path("traces/bursty_batch.csv"),
}
#: "At the latency goal": at least this share answered within it.
SLO_TARGET = 0.999
KEPT = ("kind", "cost_usd", "fixed_usd", "vm_hours", "peak_vms", "latency_p50_s", "latency_p95_s",
        "latency_p99_s", "slo_attainment", "misses", "first_answer_from_empty_s")


#: Below this goal the pool cannot scale from zero in time (60 s sampling + 120 s lag + 90 s boot).
POOL_REACTION_S = assumed.METRIC_PERIOD_S.value + assumed.METRIC_LAG_S.value + assumed.BAKED_BOOT_S.value


def designs(goal_s: float = 600.0) -> list[Design]:
    """The designs at one latency goal. Below the pool's reaction time the pool and GKE keep one
    GPU machine always on and own half a goal's work each (the policy cannot derive an assignment)."""
    tight = goal_s <= POOL_REACTION_S + 60
    calendar = CalendarConfig(business_min_vms=1)
    if tight:
        per_vm = AsyncConfig().batch.full_batch_throughput * goal_s / 2
        pool = AsyncConfig(name="pool-spot", min_vms=1, max_vms=20, latency_goal_s=goal_s, backlog_per_vm=per_vm,
                           calendar=calendar)
        gke = GkeKedaConfig(kind="gke-keda", name="gke-keda-spot", min_nodes=1, max_nodes=20,
                            latency_goal_s=goal_s, messages_per_replica=per_vm)
    else:
        pool = AsyncConfig(name="pool-spot", max_vms=20, latency_goal_s=goal_s, calendar=calendar)
        gke = GkeKedaConfig(kind="gke-keda", name="gke-keda-spot", max_nodes=20, latency_goal_s=goal_s)
    return [
        pool,
        pool.model_copy(update={"name": "pool-spot-waker", "waker": WakerConfig()}),
        pool.model_copy(update={"name": "pool-spot-standby", "standby": StandbyConfig(size=1)}),
        pool.model_copy(update={"name": "pool-spot-waker-standby", "waker": WakerConfig(),
                                "standby": StandbyConfig(size=1)}),
        pool.model_copy(update={"name": "pool-on-demand", "spot": False}),
        gke,
        CloudRunConfig(kind="cloud-run", name="cloud-run-gpu", max_instances=20, latency_goal_s=goal_s),
        SyncConfig(kind="sync", name="sync-peak-batched", latency_goal_s=goal_s),
    ]


@dataclass(frozen=True)
class Variation:
    """One uncertain input at one value, applied to the design it belongs to."""

    line: str
    design: str
    value: str
    update: dict[str, Any]


def variations() -> list[Variation]:
    cr_gpu = assumed.CLOUD_RUN_L4_USD_PER_S.value
    start = assumed.CLOUD_RUN_GPU_START_S.value
    return [
        Variation("Cloud Run GPU price", "cloud-run-gpu", "x0.7", {"gpu_usd_per_s": 0.7 * cr_gpu}),
        Variation("Cloud Run GPU price", "cloud-run-gpu", "x1.3", {"gpu_usd_per_s": 1.3 * cr_gpu}),
        Variation("Cloud Run idle", "cloud-run-gpu", "60 s", {"idle_s": 60.0}),
        Variation("Cloud Run idle", "cloud-run-gpu", "900 s", {"idle_s": 900.0}),
        Variation("Cloud Run start", "cloud-run-gpu", "5+5 s", {"start_s": start + 5}),
        Variation("Cloud Run start", "cloud-run-gpu", "5+60 s", {"start_s": start + 60}),
        Variation("GKE node", "gke-keda-spot", "180 s", {"node_ready_s": 180.0}),
        Variation("GKE node", "gke-keda-spot", "480 s", {"node_ready_s": 480.0}),
        Variation("GKE fee", "gke-keda-spot", "free tier", {"cluster_fee_usd_per_hour": 0.0}),
        Variation("waker delay", "pool-spot-waker", "5 s", {"waker": WakerConfig(delay_s=5.0)}),
        Variation("waker delay", "pool-spot-waker", "60 s", {"waker": WakerConfig(delay_s=60.0)}),
        Variation("standby start", "pool-spot-standby", "20 s", {"standby": StandbyConfig(size=1, start_s=20.0)}),
        Variation("standby start", "pool-spot-standby", "90 s", {"standby": StandbyConfig(size=1, start_s=90.0)}),
        Variation("Spot price", "pool-spot", "x1.5", {"price_per_hour": 1.5 * assumed.GPU_PRICES.value}),
        Variation("baked boot", "pool-spot", "60 s", {"boot_s": 60.0}),
        Variation("baked boot", "pool-spot", "180 s", {"boot_s": 180.0}),
    ]


def meets_goal(summary: dict[str, Any]) -> bool:
    return bool(summary["slo_attainment"] >= SLO_TARGET)


def cheapest(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The cheapest design meeting the goal, the runner-up, and our pool's place."""
    ok = sorted((s["cost_usd"], name) for name, s in results.items() if meets_goal(s))
    if not ok:
        return {"cheapest": None}
    (cost, name), rest = ok[0], ok[1:]
    out: dict[str, Any] = {"cheapest": name, "cost_usd": cost, "meeting_goal": [n for _, n in ok]}
    if rest:
        out["runner_up"] = rest[0][1]
        out["runner_up_ratio"] = rest[0][0] / cost
    return out


def run_trace(family: str, trace: Trace, base: list[Design], sensitivity: bool = True) -> dict[str, Any]:
    results, timings = run_all(trace, base)
    summaries = {r.name: {k: r.summary()[k] for k in KEPT} for r in results}
    by_name = {d.name: d for d in base}
    lines = []
    for v in variations() if sensitivity else []:
        varied = by_name[v.design].model_copy(update=v.update)
        (result,), _ = run_all(trace, [varied])
        s = result.summary()
        kept = ("cost_usd", "slo_attainment", "latency_p95_s", "first_answer_from_empty_s")
        lines.append({"line": v.line, "design": v.design, "value": v.value, **{k: s[k] for k in kept}})
    return {
        "family": family, "trace": trace.name, "requests": trace.count, "peak_to_mean": peak_to_mean(trace),
        "designs": summaries, "simulation_wall_s": timings, "verdict": cheapest(summaries), "sensitivity": lines,
    }


def _s(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.2f} s" if v < 10 else (f"{v:.0f} s" if v < 600 else f"{v / 60:.1f} min")


def markdown(document: dict[str, Any]) -> str:
    out = []
    for fam in document["traces"]:
        out.append(f"**{fam['family']}** (`{fam['trace']}`, {fam['requests']:,} requests, peak-to-mean "
                   f"{fam['peak_to_mean']:.0f})\n")
        goal = _s(document["latency_goal_s"])
        out.append(f"| design | USD/week | p50 | p95 | p99 | first answer from empty | SLO ({goal}) |")
        out.append("|---|---|---|---|---|---|---|")
        for name, s in sorted(fam["designs"].items(), key=lambda kv: kv[1]["cost_usd"]):
            out.append(f"| {name} | {s['cost_usd']:,.2f} | {_s(s['latency_p50_s'])} | {_s(s['latency_p95_s'])} "
                       f"| {_s(s['latency_p99_s'])} | {_s(s['first_answer_from_empty_s'])} "
                       f"| {100 * s['slo_attainment']:.2f} % |")
        v = fam["verdict"]
        if v.get("cheapest"):
            ratio = (
                f"; the next, {v['runner_up']}, costs {(v['runner_up_ratio'] - 1) * 100:.1f} % more"
                if v.get("runner_up")
                else ""
            )
            out.append(f"\nCheapest at the goal: **{v['cheapest']}** (${v['cost_usd']:,.2f}{ratio}).\n")
    if not document["traces"][0]["sensitivity"]:
        return "\n".join(out)
    out.append("Sensitivity (USD/week, first answer from empty; each line moves one assumed input of one design):\n")
    out.append("| input | design | value | " + " | ".join(f["family"] for f in document["traces"]) + " |")
    out.append("|---|---|---|" + "---|" * len(document["traces"]))
    keys = [(x["line"], x["design"], x["value"]) for x in document["traces"][0]["sensitivity"]]
    for i, (line, design, value) in enumerate(keys):
        cells = []
        for fam in document["traces"]:
            x = fam["sensitivity"][i]
            base = fam["designs"][design]["cost_usd"]
            cells.append(f"{x['cost_usd']:,.2f} ({(x['cost_usd'] / base - 1) * 100:+.0f} %), "
                         f"{_s(x['first_answer_from_empty_s'])}")
        out.append(f"| {line} | {design} | {value} | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--family", choices=list(TRACES), nargs="+", default=list(TRACES))
    parser.add_argument("--latency-goal", type=float, default=600.0)
    parser.add_argument("--no-sensitivity", action="store_true", help="only the designs, no sensitivity lines")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    base = designs(args.latency_goal)
    document: dict[str, Any] = {
        "command": "python -m asyncinfer.tools.simulator.alternatives "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "slo_target": SLO_TARGET,
        "latency_goal_s": args.latency_goal,
        "figures_read_on": assumed.READ_ON,
        "designs": [d.model_dump(mode="json") for d in base],
        "traces": [run_trace(f, load_trace(TRACES[f]), base, not args.no_sensitivity) for f in args.family],
    }
    document["wall_s"] = time.perf_counter() - started
    write_json(args.json, document)
    print(markdown(document))
    print(f"wrote {args.json} ({document['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
