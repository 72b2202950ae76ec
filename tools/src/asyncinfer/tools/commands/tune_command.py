"""`asyncinfer tune`: the least-cost scaling settings that meet a latency goal on a trace.

A grid over backlog per VM (single_instance_assignment), max VMs and the business-hours floor,
each point simulated with the same engine as `asyncinfer simulate`. Everything else (GPU, Spot,
baking, calendar, batch timing, preemption) comes from the base configuration.

Two shortcuts keep it fast without changing its answer: a run stops as soon as it provably fails
the goal (`engine.StopRule`: enough requests are already late or lost), and a larger max VMs is not
simulated once the policy never asked for the cap (the run would be the same). Feasible runs always
run to the end, so the winner and runner-ups are exactly what a full search gives.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from asyncinfer.tools.simulator.config import AsyncConfig, CalendarConfig, ConfigError
from asyncinfer.tools.simulator.engine import StopRule, simulate_async
from asyncinfer.tools.simulator.report import wide_console
from asyncinfer.tools.simulator.runner import read_configs, read_trace
from asyncinfer.tools.simulator.traces import Trace, TraceError

#: Fractions of the policy's own assignment, throughput x (goal - reaction), tried as backlog per
#: VM: lower starts VMs earlier and costs more; above 1 bets that spikes are shorter than the goal.
DEFAULT_ASSIGNMENT_FRACTIONS = (0.2, 0.35, 0.5, 0.75, 1.0, 1.35, 1.8)
DEFAULT_MAX_VMS = (2, 4, 8, 16, 32)
DEFAULT_BUSINESS_MIN = (0, 1, 2)


@dataclass(frozen=True)
class Candidate:
    """One grid point and the summary of its run (summaries are small enough to cross processes)."""

    config: AsyncConfig
    summary: dict[str, Any]

    @property
    def cost(self) -> float:
        return float(self.summary["cost_usd"])

    @property
    def p95(self) -> float:
        value = self.summary["latency_p95_s"]
        return float("inf") if value is None else float(value)

    @property
    def stopped(self) -> bool:
        return self.summary.get("stopped_at_s") is not None


def stop_rule(criterion: str, slo_target: float, requests: int) -> StopRule:
    """The fewest sure misses that make a run fail `meets_goal` whatever happens after them."""
    if criterion == "slo":
        # attainment = (requests - misses) / requests < target  <=>  misses > (1 - target) * requests
        return StopRule(misses=math.floor((1 - slo_target) * requests) + 1)
    # p95 over answered requests: with more than 5 % of them late, both neighbours of the p95
    # position are late and so is the interpolated p95; any error fails the goal as well.
    return StopRule(misses=math.floor(0.05 * max(requests - 1, 0)) + 2, errors=True)


def meets_goal(summary: dict[str, Any], criterion: str, slo_target: float) -> bool:
    if criterion == "slo":
        return bool(summary["slo_attainment"] >= slo_target)
    # p95 within the goal, and nothing lost: a lost request has no latency to count.
    p95 = summary["latency_p95_s"]
    return summary["errors"] == 0 and p95 is not None and p95 <= summary["latency_goal_s"]


def grid(
    base: AsyncConfig,
    goal_s: float,
    assignments: list[float],
    max_vms: list[int],
    business_min: list[int],
) -> list[list[AsyncConfig]]:
    """Groups of configurations differing only in max_vms, smallest first (so a group can stop
    early once max_vms no longer binds)."""
    groups = []
    for assignment in assignments:
        for floor in business_min:
            group = []
            for top in sorted(max_vms):
                if top < max(base.min_vms, floor, 1):
                    continue
                calendar = (base.calendar or CalendarConfig()).model_copy(update={"business_min_vms": floor})
                # Validated again, so that the shared policy's checks run on every grid point.
                group.append(
                    AsyncConfig.model_validate(
                        base.model_dump()
                        | {
                            "name": f"bpv={assignment:g} max={top} biz_min={floor}",
                            "latency_goal_s": goal_s,
                            "backlog_per_vm": assignment,
                            "max_vms": top,
                            "calendar": calendar.model_dump(),
                        }
                    )
                )
            groups.append(group)
    return groups


def _run_group(trace: Trace, group: list[AsyncConfig], stop: StopRule | None = None) -> list[Candidate]:
    out = []
    for config in group:
        result = simulate_async(config, trace, stop)
        out.append(Candidate(config, result.summary()))
        # The policy never asked for the cap: a larger max_vms would simulate the very same run (a
        # stopped run too: the same up to its stop, where it had already failed).
        if result.extra["peak_recommended"] < config.max_vms:
            break
    return out


def search(
    trace: Trace, groups: list[list[AsyncConfig]], jobs: int = 1, stop: StopRule | None = None
) -> list[Candidate]:
    """Every distinct outcome of the grid; groups run in parallel processes when jobs > 1."""
    # Longest first: groups with small max_vms stop early, so they fill the gaps at the end.
    order = sorted(range(len(groups)), key=lambda i: -max((c.max_vms for c in groups[i]), default=0))
    if jobs <= 1:
        return [c for group in groups for c in _run_group(trace, group, stop)]
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        done = dict(zip(order, pool.map(_run_group, [trace] * len(order), [groups[i] for i in order],
                                        [stop] * len(order)), strict=True))
        return [c for i in range(len(groups)) for c in done[i]]


def default_jobs() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(4, cores))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", type=Path, required=True, help="CSV trace (see asyncinfer simulate)")
    parser.add_argument("--latency-goal", type=float, required=True, metavar="S",
                        help="completion latency goal in seconds")
    parser.add_argument("--config", type=Path, default=None, metavar="FILE",
                        help="base configuration (its first async entry); defaults otherwise")
    parser.add_argument("--criterion", choices=("p95", "slo"), default="p95",
                        help="p95: p95 latency <= goal and no errors; slo: attainment >= --slo-target")
    parser.add_argument("--slo-target", type=float, default=0.99)
    parser.add_argument("--backlog-per-vm", type=float, nargs="+", default=None, metavar="N",
                        help="assignments to try (default: fractions of throughput x goal)")
    parser.add_argument("--max-vms", type=int, nargs="+", default=list(DEFAULT_MAX_VMS), metavar="N")
    parser.add_argument("--business-min", type=int, nargs="+", default=list(DEFAULT_BUSINESS_MIN), metavar="N")
    parser.add_argument("--jobs", type=int, default=default_jobs(),
                        help="processes to simulate in (default: up to 4 CPU cores)")
    parser.add_argument("--top", type=int, default=5, help="runner-ups to show")
    parser.add_argument("--full-runs", action="store_true",
                        help="simulate every grid point to the end (slower; the same winner)")
    parser.add_argument("--start", default=None, help="ISO date-time of second 0 (overrides the trace's)")
    parser.add_argument("--write-config", type=Path, default=None, metavar="FILE",
                        help="write the winner as a JSON configuration for `asyncinfer simulate`")


def run(args: argparse.Namespace) -> int:
    console = wide_console()
    err = Console(stderr=True)
    try:
        trace = read_trace(args.trace, args.start)
        bases = read_configs([args.config]) if args.config else []
    except (OSError, TraceError, ConfigError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        return 2
    base = next((c for c in bases if isinstance(c, AsyncConfig)), AsyncConfig(name="tuned"))
    if args.latency_goal <= 0:
        err.print("[red]error:[/red] --latency-goal must be > 0 seconds.", highlight=False)
        return 2
    per_vm = base.throughput_per_vm or base.batch.full_batch_throughput
    # The policy's own assignment leaves the reaction time out of the goal; when nothing is left
    # (an unbaked image against a short goal), fractions of the whole goal are tried instead.
    usable_s = args.latency_goal - base.reaction_s
    basis = per_vm * (usable_s if usable_s > 0 else args.latency_goal)
    assignments = args.backlog_per_vm or [round(basis * f, 1) for f in DEFAULT_ASSIGNMENT_FRACTIONS]
    started = time.perf_counter()
    groups = grid(base, args.latency_goal, assignments, args.max_vms, args.business_min)
    stop = None if args.full_runs else stop_rule(args.criterion, args.slo_target, trace.count)
    candidates = search(trace, groups, args.jobs, stop)
    runs = len(candidates)
    stopped = sum(c.stopped for c in candidates)
    feasible = sorted(
        (c for c in candidates if meets_goal(c.summary, args.criterion, args.slo_target)),
        key=lambda c: (c.cost, c.p95),
    )
    if not feasible and stopped:
        # The closest misses are ranked on whole runs: finish the ones that were cut short.
        redo = [[c.config] for c in candidates if c.stopped]
        finished = iter(search(trace, redo, args.jobs))
        candidates = [next(finished) if c.stopped else c for c in candidates]
    elapsed = time.perf_counter() - started
    goal_text = (
        f"p95 <= {args.latency_goal:g}s and no errors"
        if args.criterion == "p95"
        else f"SLO attainment >= {100 * args.slo_target:g}% within {args.latency_goal:g}s"
    )
    console.print(
        f"{runs} simulations of {trace.name} ({trace.count:,} requests) in {elapsed:.1f} s "
        f"({stopped} stopped once they failed the goal); goal: {goal_text}",
        highlight=False,
    )
    if not feasible:
        closest = sorted(candidates, key=lambda c: (-c.summary["slo_attainment"], c.p95))[: args.top]
        console.print(_table("No setting meets the goal; closest", closest))
        return 1
    console.print(_table("Winner (least cost) and runner-ups", feasible[: args.top + 1]))
    winner = feasible[0].config
    console.print(
        f"winner: backlog_per_vm={winner.backlog_per_vm:g} max_vms={winner.max_vms} "
        f"business_min_vms={winner.calendar.business_min_vms if winner.calendar else 0} "
        f"-> ${feasible[0].cost:,.2f}, p95 {feasible[0].p95:,.0f}s",
        highlight=False,
    )
    if args.write_config:
        document = winner.model_dump(mode="json", exclude_defaults=True)
        document["kind"] = "async"
        args.write_config.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        console.print(f"wrote {args.write_config}", highlight=False)
    return 0


def _table(title: str, candidates: list[Candidate]) -> Table:
    table = Table(title=title)
    for column in ("rank", "backlog/VM", "max VMs", "biz min", "cost USD", "VM h", "peak", "p95", "p99", "SLO",
                   "errors"):
        table.add_column(column, justify="right")
    for rank, c in enumerate(candidates, start=1):
        r = c.summary
        table.add_row(
            str(rank),
            f"{c.config.backlog_per_vm:g}",
            str(c.config.max_vms),
            str(c.config.calendar.business_min_vms if c.config.calendar else 0),
            f"{r['cost_usd']:,.2f}",
            f"{r['vm_hours']:,.1f}",
            str(r["peak_vms"]),
            _seconds(r["latency_p95_s"]),
            _seconds(r["latency_p99_s"]),
            f"{100 * r['slo_attainment']:.2f}%",
            f"{r['errors']:,}",
        )
    return table


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asyncinfer tune")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
