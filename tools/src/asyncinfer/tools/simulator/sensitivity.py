"""How the headline moves with the traffic: every design over several trace families and seeds.

`python -m asyncinfer.tools.simulator.sensitivity --json docs/results/capacity-sensitivity.json`
runs the four designs of the decomposition on each family (traces.FAMILIES) for each seed and
writes every run's summary, the cost factors per run, and their min/median/max per family:

- batching      = peak-sized synchronous fleet serving one request at a time / the same fleet batching
                  like the pool (what the old headline counted as the pool's saving);
- elasticity    = batching synchronous fleet / on-demand pool (following the load, to zero at night);
- spot          = on-demand pool / Spot pool;
- headline      = batching fleet / Spot pool = elasticity x spot (like-for-like);
- old_headline  = one-at-a-time fleet / Spot pool = batching x elasticity x spot.

Each design is judged by the same goal: SLO attainment = share answered within the latency goal,
and the synchronous caller waits as long as that goal.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from asyncinfer.tools.simulator.config import AsyncConfig, CalendarConfig, SyncConfig
from asyncinfer.tools.simulator.report import write_json
from asyncinfer.tools.simulator.runner import simulate
from asyncinfer.tools.simulator.traces import FAMILIES, family_trace, peak_to_mean

DEFAULT_SEEDS = (0, 1, 2, 3, 4)


def decomposition_designs(latency_goal_s: float = 600.0) -> list[AsyncConfig | SyncConfig]:
    """The four designs, all with the default batch timing, L4 GPUs and the same latency goal."""
    pool = AsyncConfig(
        name="pool-spot", spot=True, max_vms=20, latency_goal_s=latency_goal_s,
        calendar=CalendarConfig(business_min_vms=1),
    )
    return [
        SyncConfig(kind="sync", name="sync-peak-unbatched", batching=False, latency_goal_s=latency_goal_s),
        SyncConfig(kind="sync", name="sync-peak-batched", latency_goal_s=latency_goal_s),
        pool.model_copy(update={"name": "pool-on-demand", "spot": False}),
        pool,
    ]


KEPT = ("cost_usd", "vm_hours", "peak_vms", "slo_attainment", "misses", "errors", "late",
        "latency_p50_s", "latency_p95_s", "latency_p99_s")


def factors(cost: dict[str, float]) -> dict[str, float]:
    return {
        "batching": cost["sync-peak-unbatched"] / cost["sync-peak-batched"],
        "elasticity": cost["sync-peak-batched"] / cost["pool-on-demand"],
        "spot": cost["pool-on-demand"] / cost["pool-spot"],
        "headline": cost["sync-peak-batched"] / cost["pool-spot"],
        "old_headline": cost["sync-peak-unbatched"] / cost["pool-spot"],
    }


def run_family(
    family: str, seeds: tuple[int, ...], designs: list[AsyncConfig | SyncConfig], days: int = 7
) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for seed in seeds:
        trace = family_trace(family, seed, days=days)
        seeded = [d.model_copy(update={"seed": seed}) if isinstance(d, AsyncConfig) else d for d in designs]
        results = {r.name: r.summary() for r in (simulate(d, trace) for d in seeded)}
        runs.append({
            "seed": seed,
            "requests": trace.count,
            "peak_to_mean": peak_to_mean(trace),
            "designs": {name: {k: s[k] for k in KEPT} for name, s in results.items()},
            "factors": factors({name: s["cost_usd"] for name, s in results.items()}),
        })
    summary: dict[str, dict[str, float]] = {}
    for key in ("peak_to_mean", *runs[0]["factors"]):
        values = [r["peak_to_mean"] if key == "peak_to_mean" else r["factors"][key] for r in runs]
        summary[key] = {"min": min(values), "median": statistics.median(values), "max": max(values)}
    for name in runs[0]["designs"]:
        for key in ("cost_usd", "slo_attainment"):
            values = [r["designs"][name][key] for r in runs]
            summary[f"{name}.{key}"] = {"min": min(values), "median": statistics.median(values), "max": max(values)}
    return {"family": family, "what": FAMILIES[family][1], "runs": runs, "summary": summary}


def markdown(document: dict[str, Any]) -> str:
    lines = [
        "| family | peak-to-mean | batching | elasticity | Spot | headline (like-for-like) | old headline "
        "| SLO sync batched | SLO pool Spot | pool Spot USD/week |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def span(stat: dict[str, float], fmt: str = "{:.1f}") -> str:
        return f"{fmt.format(stat['median'])} ({fmt.format(stat['min'])}-{fmt.format(stat['max'])})"

    for fam in document["families"]:
        s = fam["summary"]
        pct = "{:.2%}"
        lines.append(
            f"| {fam['family']} | {span(s['peak_to_mean'], '{:.0f}')} | {span(s['batching'])}x "
            f"| {span(s['elasticity'])}x | {span(s['spot'], '{:.2f}')}x | **{span(s['headline'])}x** "
            f"| {span(s['old_headline'])}x | {span(s['sync-peak-batched.slo_attainment'], pct)} "
            f"| {span(s['pool-spot.slo_attainment'], pct)} | {span(s['pool-spot.cost_usd'], '{:.2f}')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, required=True, help="write every run and the summaries here")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(DEFAULT_SEEDS))
    parser.add_argument("--family", choices=list(FAMILIES), nargs="+", default=list(FAMILIES))
    parser.add_argument("--latency-goal", type=float, default=600.0)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    designs = decomposition_designs(args.latency_goal)
    document = {
        "command": "python -m asyncinfer.tools.simulator.sensitivity "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "latency_goal_s": args.latency_goal,
        "seeds": args.seeds,
        "designs": [d.model_dump(mode="json") for d in designs],
        "families": [run_family(f, tuple(args.seeds), designs) for f in args.family],
    }
    document["wall_s"] = time.perf_counter() - started
    write_json(args.json, document)
    print(markdown(document))
    print(f"wrote {args.json} ({document['wall_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
