"""`asyncinfer loadtest --count N --rate R --report FILE` against the running local stack."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from asyncinfer.client.client import AsyncInferClient
from asyncinfer.tools.commands.connect import add_stack_arguments, local_stack_status
from asyncinfer.tools.loadtest import run_load
from asyncinfer.tools.local.stack import read_state


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=0.0, help="requests/s; 0 = as fast as possible")
    parser.add_argument("--report", type=Path, help="write the JSON report here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the last answer")
    add_stack_arguments(parser)


def run(args: argparse.Namespace) -> int:
    try:
        status = local_stack_status(args)
    except FileNotFoundError as exc:
        print(exc)
        return 1
    peak = 0

    def watch(_: int) -> None:
        nonlocal peak
        try:
            workers = read_state(args.state_dir)["workers"]
        except (FileNotFoundError, ValueError):  # the state file is replaced atomically; rare races
            return
        peak = max(peak, sum(1 for w in workers if w["state"] != "exited"))

    with AsyncInferClient.from_status(status) as client:
        report = run_load(client, args.count, rate=args.rate, seed=args.seed, timeout_s=args.timeout,
                          peak_workers=lambda: peak, during=watch)
    text = json.dumps(report.to_json(), indent=2)
    Console().print_json(text)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text)
    return 1 if report.lost else 0
