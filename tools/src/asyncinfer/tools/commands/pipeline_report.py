"""`asyncinfer demo --pipeline`: run the example chain from zero and print its report per stage."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from asyncinfer.tools.commands.tables import measures_table
from asyncinfer.tools.local.emulator import EmulatorError
from asyncinfer.tools.pipeline_demo import run_pipeline_demo

DEFAULT_REPORT = Path(".asyncinfer/demo-report.json")


def run_pipeline(args: argparse.Namespace, console: Console) -> int:
    console.print(
        f"[bold]asyncinfer demo --pipeline[/]: {args.pages} pages x {args.symbols_per_page} symbols, "
        f"segment -> classify (up to {args.max_workers} classifier workers), from zero"
    )
    try:
        report = run_pipeline_demo(
            args.pages, args.symbols_per_page, args.max_workers, args.seed, args.timeout, Path(".asyncinfer/pipeline")
        )
    except EmulatorError as exc:
        console.print(f"[red]{exc}[/]")
        return 3
    for stage, figures in report["stages"].items():
        rows = [(name, " / ".join(f"{v:.0f}" for v in value.values()) if isinstance(value, dict) else value)
                for name, value in figures.items()]
        console.print(measures_table(f"stage {stage}", rows))
    console.print(measures_table("pipeline", [
        ("pages submitted / fully answered / lost",
         f"{report['pages']} / {report['pages_ok']} / {report['pages_lost']}"),
        ("symbols placed / found / spurious crops",
         f"{report['symbols_placed']} / {report['symbols_found']} / {report['spurious_crops']}"),
        ("classifier accuracy on the crops (threshold)",
         f"{report['crop_accuracy']:.2%} ({report['min_crop_accuracy']:.0%})" if report["crop_accuracy"] else "n/a"),
        ("pages/s", report["pages_per_s"]),
        ("whole demo (s)", report["whole_demo_s"]),
    ]))
    path = args.report if args.report != DEFAULT_REPORT else Path(".asyncinfer/pipeline-demo-report.json")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    console.print(f"report written to {path}")
    for failure in report["failures"]:
        console.print(f"[red bold]{failure}[/]")
    return 1 if report["failures"] else 0
