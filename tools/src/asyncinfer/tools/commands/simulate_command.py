"""`asyncinfer simulate`: cost and latency of any mix of designs on a trace.

Designs (`kind` in a configuration): our pool ("async", optionally with a waker and/or a standby pool),
the synchronous fleet ("sync"), GKE with KEDA ("gke-keda") and Cloud Run GPU ("cloud-run").
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console

from asyncinfer.tools.simulator.config import AsyncConfig, ConfigError, Design, SyncConfig
from asyncinfer.tools.simulator.report import print_table, report_document, wide_console, write_json
from asyncinfer.tools.simulator.runner import DEFAULT_BASELINE, read_configs, read_trace, run_all
from asyncinfer.tools.simulator.traces import TraceError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", type=Path, required=True,
                        help="CSV of arrival times (s) or of 'minute,count' rows")
    parser.add_argument("--config", type=Path, action="append", default=[], metavar="FILE",
                        help="JSON/YAML configuration(s); repeat to compare several (default: one default pool)")
    parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="write one PNG per design and comparison.png here")
    parser.add_argument("--json", type=Path, default=None, metavar="FILE", help="write the results as JSON")
    parser.add_argument("--start", default=None,
                        help="ISO date-time of second 0 (overrides the trace's '# start:' line)")
    parser.add_argument("--no-baseline", action="store_true",
                        help="do not add the synchronous fleet sized for peak when no sync config is given")
    parser.add_argument("--seed", type=int, default=0, help="seed spreading per-minute counts within minutes")


def run(args: argparse.Namespace) -> int:
    console = wide_console()
    err = Console(stderr=True)
    try:
        trace = read_trace(args.trace, args.start, args.seed)
        configs: list[Design] = read_configs(args.config) or [AsyncConfig(name="async-spot")]
    except (OSError, TraceError, ConfigError) as exc:
        err.print(f"[red]error:[/red] {exc}", markup=True, highlight=False)
        return 2
    if not args.no_baseline and not any(isinstance(c, SyncConfig) for c in configs):
        configs.append(DEFAULT_BASELINE)
    results, timings = run_all(trace, configs)
    print_table(trace, results, console)
    for name, seconds in timings.items():
        console.print(f"simulated {name} in {seconds:.2f} s", highlight=False)
    if args.json:
        write_json(args.json, report_document(trace, results, timings))
        console.print(f"wrote {args.json}", highlight=False)
    if args.out:
        try:
            from asyncinfer.tools.simulator.plots import write_plots  # matplotlib only when plots are asked for
        except ImportError:
            err.print("[red]error:[/red] --out needs matplotlib: pip install 'asyncinfer[plots]'.", highlight=False)
            return 2

        for path in write_plots(trace, results, args.out):
            console.print(f"wrote {path}", highlight=False)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="asyncinfer simulate")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
