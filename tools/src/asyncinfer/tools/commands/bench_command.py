"""`asyncinfer bench`: the worker's throughput against the bare model's, side by side in one run.

See tools/src/asyncinfer/tools/bench.py for what is measured and how; this module only parses arguments and prints.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from asyncinfer.core.logs import configure_logging


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes {text!r}: give batch sizes like 1,8,32") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"--sizes {text!r}: give batch sizes like 1,8,32")
    return sizes


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the full report here")
    parser.add_argument("--sizes", type=_sizes, default=(1, 8, 32), help="batch sizes (default 1,8,32)")
    parser.add_argument("--count", type=int, default=2000, help="requests per pipeline round (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating bare/pipeline rounds; medians reported")
    parser.add_argument("--latency-samples", type=int, default=100, help="requests sent one at a time")
    parser.add_argument("--cold-starts", type=int, default=3, help="zero-to-first-result repetitions")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads, the same for the bare loop and the worker (default 1)")
    parser.add_argument("--max-wait-ms", type=float, default=10.0, help="the worker's batching window")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                        help="device for both the bare loop and the worker (default cpu)")
    parser.add_argument("--no-noop", action="store_true", help="skip the no-op model runs")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from asyncinfer.tools.bench import BenchConfig, BenchError, run_bench
    from asyncinfer.tools.local.emulator import EmulatorError

    configure_logging("WARNING")
    console = Console()
    config = BenchConfig(
        sizes=args.sizes,
        count=args.count,
        rounds=args.rounds,
        latency_samples=args.latency_samples,
        cold_starts=args.cold_starts,
        torch_threads=args.threads,
        max_wait_ms=args.max_wait_ms,
        noop=not args.no_noop,
        device=args.device,
    )
    progress = (lambda _: None) if args.quiet else (lambda m: console.print(f"[dim]{m}[/]"))
    try:
        report = run_bench(config, progress)
    except (EmulatorError, BenchError) as exc:
        console.print(f"[red]bench failed:[/] {exc}")
        return 3
    print_report(console, report)
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
        console.print(f"report written to {args.json}")
    return 0


def _fmt(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def print_report(console: Console, report: dict[str, Any]) -> None:
    table = Table(title=f"throughput, requests/s (device {report['device']}, torch threads "
                        f"{report['torch_threads']}, {report['cpu_count']} CPU cores, medians of "
                        f"{report['config']['rounds']} rounds x {report['config']['count']})")
    for column in ("batch", "bare model", "worker e2e", "ratio", "no-op worker e2e",
                   "CPU us/req worker", "emulator", "bench"):
        table.add_column(column, justify="right")
    for size in report["sizes"]:
        cpu = size["cpu_us_per_request"]
        table.add_row(
            str(size["batch_size"]), _fmt(size["bare_per_s"]), _fmt(size["pipeline_per_s"]),
            _fmt(size["ratio"], 3), _fmt(size["noop_pipeline_per_s"]),
            _fmt(cpu.get("worker"), 0), _fmt(cpu.get("emulator"), 0), _fmt(cpu.get("bench"), 0),
        )
    console.print(table)

    latency = Table(title="latency at idle, ms (one request at a time)")
    for column in ("max_wait_ms", "added p50", "added p99", "worker-added p50", "total p50", "inference p50",
                   "batch wait p50"):
        latency.add_column(column, justify="right")
    for row in (report["latency_ms"], report["latency_no_wait_ms"]):
        latency.add_row(_fmt(row["max_wait_ms"], 0), _fmt(row["added_p50"]), _fmt(row["added_p99"]),
                        _fmt(row["worker_added_p50"]),
                        _fmt(row["total_p50"]), _fmt(row["inference_p50"], 2), _fmt(row["batch_wait_p50"]))
    console.print(latency)
    hop = report["emulator_hop_ms"]
    cold = report["cold_start_s"]
    console.print(
        f"emulator alone, one publish->pull hop: p50 {_fmt(hop['p50'])} ms, p99 {_fmt(hop['p99'])} ms "
        f"(a request makes two)\n"
        f"cold start, zero workers to first result: {_fmt(cold['median'], 2)} s "
        f"(model loaded at {_fmt(cold['model_loaded_median'], 2)} s)\n"
        f"decode {_fmt(report['decode_us_per_image'])} us/image, read request {_fmt(report['intake_us_per_request'])}"
        f" us/request"
    )
    targets = Table(title="targets")
    for column in ("target", "goal", "measured", "met"):
        targets.add_column(column)
    for name, row in report["targets"].items():
        targets.add_row(name, str(row["target"]), str(row["value"]),
                        "[green]yes[/]" if row["met"] else "[red]no[/]")
    console.print(targets)
    console.print(f"[bold]ratio (batch {report['ratio_batch_size']}): {report['ratio']}[/]")
