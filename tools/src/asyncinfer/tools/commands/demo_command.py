"""`asyncinfer demo`: the whole system on one machine, from nothing running to a report.

Brings the local stack up at zero workers on a fresh queue, submits rendered drawings, shows progress,
waits for every answer, prints a summary, writes .asyncinfer/demo-report.json and shuts everything down.

Exit codes: 0 every drawing got an ok answer and the accuracy against the drawings' true classes is at
least loadtest.MIN_ACCURACY (97 %); 1 otherwise: a request unanswered, an error result, a dead letter,
or accuracy below the threshold (each reason is printed and listed under "failures" in the report);
3 no emulator.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from rich.console import Console

from asyncinfer.client.client import AsyncInferClient
from asyncinfer.core.logs import configure_logging
from asyncinfer.tools.commands.tables import measures_table
from asyncinfer.tools.loadtest import MIN_ACCURACY, LoadReport, new_run_id, run_load
from asyncinfer.tools.local.emulator import EmulatorError
from asyncinfer.tools.local.stack import LocalStack, LocalStackConfig


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=300, help="drawings to submit (default 300)")
    parser.add_argument("--rate", type=float, default=60.0, help="requests/s; 0 submits as fast as possible")
    parser.add_argument("--max-workers", type=int, default=2)
    parser.add_argument("--report", type=Path, default=Path(".asyncinfer/demo-report.json"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=150.0, help="seconds to wait for the last answer")
    parser.add_argument("--pipeline", action="store_true",
                        help="the two-stage example chain instead: pages cut into symbol crops, each classified")
    parser.add_argument("--pages", type=int, default=20, help="with --pipeline: pages to submit")
    parser.add_argument("--symbols-per-page", type=int, default=6, help="with --pipeline: symbols on each page")


def run(args: argparse.Namespace) -> int:
    configure_logging("WARNING")
    console = Console()
    if args.pipeline:
        from asyncinfer.tools.commands.pipeline_report import run_pipeline

        return run_pipeline(args, console)
    run_id = new_run_id()
    # A fresh queue: on a shared emulator (PUBSUB_EMULATOR_HOST set) an earlier run's leftovers stay out.
    config = LocalStackConfig(queue=f"demo-{run_id}", max_workers=args.max_workers,
                              state_dir=Path(".asyncinfer/demo"))
    console.print(f"[bold]asyncinfer demo[/]: {args.count} drawings, up to {args.max_workers} workers, from zero")
    started = time.monotonic()
    try:
        stack = LocalStack(config).start()
    except EmulatorError as exc:
        console.print(f"[red]{exc}[/]")
        return 3
    try:
        console.print(f"local stack up in {time.monotonic() - started:.1f} s (emulator {stack.emulator_host})")
        with AsyncInferClient.from_status(stack.status()) as client:
            assert stack.controller is not None
            controller = stack.controller
            report = run_load(
                client, args.count, rate=args.rate, seed=args.seed, timeout_s=args.timeout,
                peak_workers=lambda: controller.stats.peak_workers, run_id=run_id,
            )
        scale_ups = controller.stats.scale_ups
    finally:
        stack.stop()
    _print_summary(console, report, scale_ups)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    failures = report.failures(MIN_ACCURACY)
    args.report.write_text(json.dumps(
        {**report.to_json(), "scale_ups": scale_ups, "min_accuracy": MIN_ACCURACY, "failures": failures}, indent=2
    ))
    console.print(f"report written to {args.report}; whole demo took {time.monotonic() - started:.1f} s")
    for failure in failures:
        console.print(f"[red bold]{failure}[/]")
    return 1 if failures else 0


def _print_summary(console: Console, report: LoadReport, scale_ups: int) -> None:
    rows = [
        ("submitted", report.submitted),
        ("ok", report.ok),
        ("error results", report.error),
        ("dead-lettered", report.dead_lettered),
        ("lost", report.lost),
        ("duplicate answers", report.duplicates),
        ("accuracy vs known labels (threshold)",
         f"{report.accuracy:.2%} ({MIN_ACCURACY:.0%})" if report.accuracy is not None else "n/a"),
        ("latency p50 / p95 / p99 (ms)", " / ".join(f"{report.latency_ms[k]:.0f}" for k in ("p50", "p95", "p99"))),
        ("throughput (req/s)", report.throughput_per_s),
        ("scale-up decisions", scale_ups),
        ("peak workers", report.peak_workers),
    ]
    console.print(measures_table("demo summary", rows))
