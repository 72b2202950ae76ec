"""`asyncinfer bench`: the worker's throughput against the bare model's, side by side in one run.

See tools/src/asyncinfer/tools/bench.py for what is measured and how; this module only parses arguments and prints.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
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


def _setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise SystemExit(f"--worker-setting {text!r}: give NAME=VALUE, NAME a WorkerSettings field")
    return name.strip(), value.strip()


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
    parser.add_argument("--standin-ms", type=float, default=10.0,
                        help="GPU stand-in: fixed ms per batch (default 10; 0 skips it)")
    parser.add_argument("--standin-batch", type=int, default=32, help="GPU stand-in batch size (default 32)")
    parser.add_argument("--standin-count", type=int, default=20_000,
                        help="requests per GPU stand-in round (default 20000, ~6 s of the stand-in's time)")
    parser.add_argument("--publish-rate-factor", type=float, default=1.25,
                        help="publish each pipeline round at this multiple of the bare model's rate in the "
                             "round before (default 1.25: a backlog builds at once); 0 publishes the whole "
                             "round at once")
    parser.add_argument("--decode-requests", type=int, default=6000,
                        help="requests per decode-scaling pass (default 6000; 0 skips it)")
    parser.add_argument("--worker-path", default=None, metavar="DIR",
                        help="put DIR first on the worker processes' PYTHONPATH, e.g. an older checkout's "
                             "worker/src, to measure that worker with this bench")
    parser.add_argument("--worker-setting", action="append", default=[], metavar="NAME=VALUE",
                        help="a WorkerSettings field for the worker processes (repeatable)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from asyncinfer.tools.bench import BenchConfig, BenchError, run_bench
    from asyncinfer.tools.local.emulator import EmulatorError

    configure_logging("WARNING")
    # Wide enough for the tables when written to a file, as the docs quote them.
    console = Console() if sys.stdout.isatty() else Console(width=170)
    config = BenchConfig(
        sizes=args.sizes,
        count=args.count,
        rounds=args.rounds,
        latency_samples=args.latency_samples,
        cold_starts=args.cold_starts,
        torch_threads=args.threads,
        max_wait_ms=args.max_wait_ms,
        noop=not args.no_noop,
        standin_batch_ms=args.standin_ms,
        standin_batch_size=args.standin_batch,
        standin_count=args.standin_count,
        decode_requests=args.decode_requests,
        publish_rate_factor=args.publish_rate_factor,
        device=args.device,
        worker_path=args.worker_path,
        worker_settings=tuple(_setting(s) for s in args.worker_setting),
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


def _spread(rounds: list[float], digits: int = 1) -> str:
    return f"{_fmt(min(rounds), digits)}-{_fmt(max(rounds), digits)}" if rounds else "-"


def print_report(console: Console, report: dict[str, Any]) -> None:
    table = Table(title=f"throughput, requests/s (device {report['device']}, torch threads "
                        f"{report['torch_threads']}, {report['cpu_count']} CPU cores, medians of "
                        f"{report['config']['rounds']} rounds x {report['config']['count']} "
                        f"({report['config']['standin_count']} for the stand-in); min-max; "
                        "worker e2e: the steady rate, first result to last; from 1st publish: the same "
                        "rounds with the fill; model busy: its share of the round from the 1st publish; "
                        "CPU per request: model, bare: the bare loop's; model, in worker: the worker's thread "
                        "inside its model calls; worker outside model: worker less model in worker)")
    for column in ("model", "batch", "bare model", "worker e2e", "ratio", "ratio min-max",
                   "ratio from 1st publish", "fill s", "no-op worker e2e", "model busy", "CPU us/req worker",
                   "model, bare", "model, in worker", "worker outside model", "emulator", "bench"):
        table.add_column(column, justify="right")
    rows = list(report["sizes"]) + ([report["standin"]] if report.get("standin") else [])
    for size in rows:
        cpu = size["cpu_us_per_request"]
        table.add_row(
            size["model"], str(size["batch_size"]), _fmt(size["bare_per_s"]), _fmt(size["pipeline_per_s"]),
            _fmt(size["ratio"], 3), _spread(size["ratio_rounds"], 3), _fmt(size.get("ratio_from_first_publish"), 3),
            _fmt(statistics.median(size["fill_s_rounds"]) if size.get("fill_s_rounds") else None, 2),
            _fmt(size["noop_pipeline_per_s"]),
            _fmt(size.get("model_busy_share"), 3),
            _fmt(cpu.get("worker"), 0), _fmt(size["model_cpu_us_per_request"], 0),
            _fmt(size.get("model_cpu_in_worker_us_per_request"), 0),
            _fmt(size["worker_cpu_outside_model_us"], 0), _fmt(cpu.get("emulator"), 0), _fmt(cpu.get("bench"), 0),
        )
    console.print(table)

    scaling = report.get("decode_scaling")
    if scaling:
        per_s = scaling["per_s"]
        console.print(
            f"intake (read + decode) of {scaling['requests']} requests, requests/s: "
            f"1 process {_fmt(per_s['processes_1'])},"
            f" 2 processes {_fmt(per_s['processes_2'])} (x{scaling['processes_2_vs_1']}); 1 thread "
            f"{_fmt(per_s['threads_1'])}, 2 threads {_fmt(per_s['threads_2'])} (x{scaling['threads_2_vs_1']})"
        )
        cpu = scaling.get("cpu_us_per_request")
        if cpu and scaling.get("scaling_ceiling_2_vs_1") is not None:
            console.print(
                f"intake CPU per request, us (worker side + intake processes): 1 process "
                f"{_fmt(cpu['processes_1']['parent'])} + {_fmt(cpu['processes_1']['intake'])}, 2 processes "
                f"{_fmt(cpu['processes_2']['parent'])} + {_fmt(cpu['processes_2']['intake'])}; the most 2 processes "
                f"could reach on {scaling['ceiling_cores']} cores: x{scaling['scaling_ceiling_2_vs_1']}"
            )
    if report.get("latency_ms"):
        latency = Table(title="latency at idle, ms (one request at a time)")
        for column in ("max_wait_ms", "total p50", "total p99", "in worker p50", "worker-added p50",
                       "worker-added p99", "broker p50", "inference p50", "batch wait p50"):
            latency.add_column(column, justify="right")
        for row in (report["latency_ms"], report["latency_no_wait_ms"]):
            latency.add_row(_fmt(row["max_wait_ms"], 0), _fmt(row["total_p50"]), _fmt(row["total_p99"]),
                            _fmt(row["in_worker_p50"], 2), _fmt(row["worker_added_p50"], 2),
                            _fmt(row["worker_added_p99"], 2), _fmt(row["broker_p50"]),
                            _fmt(row["inference_p50"], 2), _fmt(row["batch_wait_p50"], 2))
        console.print(latency)
        hop = report["emulator_hop_ms"]
        console.print(f"emulator alone, one publish->pull hop: p50 {_fmt(hop['p50'])} ms, p99 {_fmt(hop['p99'])} ms "
                      f"(a request makes two)")
    cold = report.get("worker_process_start_s")
    if cold:
        console.print(f"worker process start (measured), zero worker processes to first result: "
                      f"{_fmt(cold['median'], 2)} s (min {_fmt(cold['min'], 2)}, max {_fmt(cold['max'], 2)}; "
                      f"model loaded at {_fmt(cold['model_loaded_median'], 2)} s)")
    system = report["system_cold_start_from_zero_s"]
    console.print(f"system cold start from zero VMs (derived, not measured): {system['value']:g} s = "
                  f"{' + '.join(f'{k} {v:g}' for k, v in system['parts'].items())}")
    console.print(f"decode {_fmt(report['decode_us_per_image'])} us/image, read request "
                  f"{_fmt(report['intake_us_per_request'])} us/request (one thread)")
    targets = Table(title="targets")
    for column in ("target", "goal", "measured", "met"):
        targets.add_column(column)
    for name, row in report["targets"].items():
        goal = (">= " if row["higher_is_better"] else "<= ") + str(row["target"])
        met = "-" if row["met"] is None else "[green]yes[/]" if row["met"] else "[red]no[/]"
        targets.add_row(name, goal, "not measured" if row["value"] is None else str(row["value"]), met)
    console.print(targets)
    console.print(f"[bold]ratio (batch {report['ratio_batch_size']}): {report['ratio']}; worker CPU outside the "
                  f"model: {report['worker_cpu_outside_model_us']} us/request, of which not the handler's decode "
                  f"(derived): {report['worker_cpu_outside_model_and_decode_us']} us/request[/]")
