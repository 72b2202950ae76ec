"""The comparison of simulated designs: a rich table for people, JSON for machines."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from asyncinfer.tools.simulator.prices import PRICES_AS_OF
from asyncinfer.tools.simulator.results import RunResult
from asyncinfer.tools.simulator.traces import Trace


def _seconds(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value < 10:
        return f"{value:.2f}s"
    if value < 600:
        return f"{value:.0f}s"
    return f"{value / 60:.1f}min"


def _ratio(numerator: float, denominator: float) -> str:
    if denominator == 0:
        return "-"
    return f"{numerator / denominator:.3g}x"


def comparison_table(trace: Trace, results: list[RunResult]) -> Table:
    """Every design is judged by the same rule: a request meets the SLO when its answer comes within
    the design's latency goal; errors (lost, rejected, timed out) and late answers are both misses.
    The synchronous caller's timeout defaults to that goal, so neither side's misses are zero by
    construction."""
    baseline = next((r for r in results if r.kind == "sync"), None)
    table = Table(
        title=f"{trace.name}: {trace.count:,} requests over {trace.duration_s / 86400:.2f} days "
        f"from {trace.start.isoformat()}",
        caption=f"Prices: {PRICES_AS_OF}. SLO = share of requests answered within the goal; "
        "misses = errors + late answers (both sides judged alike)."
        + (f" 'Saves' = {baseline.name}'s cost / this cost." if baseline else ""),
    )
    columns = ("design", "kind", "cost USD", "VM h", "peak VMs", "p50", "p95", "p99", "goal", "SLO", "errors",
               "late", "misses")
    for column in columns:
        table.add_column(column, justify="left" if column in ("design", "kind") else "right")
    if baseline:
        table.add_column("saves", justify="right")
    for r in results:
        row = [
            r.name,
            r.kind,
            f"{r.cost_usd:,.2f}",
            f"{r.vm_hours:,.1f}",
            str(r.peak_vms),
            _seconds(r.percentile(50)),
            _seconds(r.percentile(95)),
            _seconds(r.percentile(99)),
            _seconds(r.latency_goal_s),
            f"{100 * r.slo_attainment:.2f}%",
            f"{r.errors:,}",
            f"{r.late:,}",
            f"{r.misses:,}",
        ]
        if baseline:
            row.append(_ratio(baseline.cost_usd, r.cost_usd))
        table.add_row(*row)
    return table


def wide_console() -> Console:
    """Rich wraps at 80 columns when output is not a terminal; the table needs about 150."""
    console = Console()
    return console if console.is_terminal else Console(width=160)


def print_table(trace: Trace, results: list[RunResult], console: Console | None = None) -> None:
    (console or Console()).print(comparison_table(trace, results))


def report_document(trace: Trace, results: list[RunResult], timings_s: dict[str, float]) -> dict[str, Any]:
    return {
        "trace": {
            "name": trace.name,
            "requests": trace.count,
            "duration_s": trace.duration_s,
            "start": trace.start.isoformat(),
        },
        "prices": PRICES_AS_OF,
        "results": [{**r.summary(), "simulation_wall_s": timings_s.get(r.name)} for r in results],
    }


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, default=_plain) + "\n", encoding="utf-8")


def _plain(value: Any) -> Any:
    # numpy scalars reach the document through summaries.
    if hasattr(value, "item"):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
