"""`asyncinfer local up|status`: the local stack in the foreground, and its status."""

from __future__ import annotations

import argparse
import json
import signal
import threading
from pathlib import Path
from types import FrameType

from rich.console import Console

from asyncinfer.core.lanes import LaneSet
from asyncinfer.core.logs import configure_logging
from asyncinfer.tools.commands.tables import measures_table
from asyncinfer.tools.local.emulator import EmulatorError
from asyncinfer.tools.local.stack import DEFAULT_STATE_DIR, LocalStack, LocalStackConfig, read_state
from drawing_symbols import HANDLER as SYMBOLS_HANDLER


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="local_command", required=True)
    up = sub.add_parser("up", help="start the emulator, the topology and the pool controller (foreground)")
    up.add_argument("--max-workers", type=int, default=2)
    up.add_argument("--min-workers", type=int, default=0)
    up.add_argument("--backlog-per-worker", type=float, default=64)
    up.add_argument("--queue", default="symbols")
    up.add_argument("--project", default="asyncinfer-local")
    up.add_argument("--handler", default=SYMBOLS_HANDLER)
    up.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    up.add_argument("--fallback-max-workers", type=int, default=0,
                    help="an on-demand fallback pool of at most this many workers (0: none)")
    up.add_argument("--spot-stockout", action="store_true",
                    help="hold the (Spot) pool at zero, as a regional Spot stockout would; the fallback answers")
    up.add_argument("--no-lanes", action="store_true", help="one queue without priority lanes")
    status = sub.add_parser("status", help="print the running stack's names and workers")
    status.add_argument("--json", action="store_true")
    status.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)


def run(args: argparse.Namespace) -> int:
    if args.local_command == "status":
        return _status(args)
    configure_logging()
    config = LocalStackConfig(
        project=args.project,
        queue=args.queue,
        handler=args.handler,
        min_workers=args.min_workers,
        max_workers=args.max_workers,
        backlog_per_worker=args.backlog_per_worker,
        state_dir=args.state_dir,
        fallback_max_workers=args.fallback_max_workers,
        spot_stockout=args.spot_stockout,
        lanes=None if args.no_lanes else LaneSet.defaults(),
    )
    if args.spot_stockout and args.fallback_max_workers < 1:
        print("--spot-stockout holds the pool at zero: give --fallback-max-workers 1 or more, or nothing answers")
        return 2
    stop = threading.Event()

    def on_signal(signum: int, _: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    stack = LocalStack(config)
    try:
        stack.start()
    except EmulatorError as exc:
        print(exc)
        return 3
    lanes = ", ".join(config.lanes.names) if config.lanes else "none"
    pools = "pool held at zero (Spot stockout)" if config.spot_stockout else f"pool of up to {config.max_workers}"
    if config.fallback_max_workers:
        pools += f", fallback pool of up to {config.fallback_max_workers}"
    print(f"local stack up: emulator {stack.emulator_host}, queue {config.queue}, lanes {lanes}, {pools}; "
          "Ctrl-C stops it")
    try:
        stop.wait()
    finally:
        stack.stop()
    return 0


def _status(args: argparse.Namespace) -> int:
    try:
        state = read_state(args.state_dir)
    except FileNotFoundError as exc:
        print(exc)
        return 1
    if args.json:
        print(json.dumps(state, indent=2))
        return 0
    rows = [(key, value) for key, value in state.items() if key not in ("workers", "lanes", "fallback")]
    for lane in state.get("lanes") or []:
        rows.append((f"lane {lane['name']}", f"priority {lane['priority']}, goal {lane['latency_goal_s']:g} s, "
                     f"{lane['requests_topic']} -> {lane['requests_subscription']}"))
    fallback = state.get("fallback")
    if fallback:
        rows.append(("fallback pool", f"target {fallback['target_workers']} of at most {fallback['max_workers']}, "
                     f"peak {fallback['peak_workers']}, workers "
                     + (", ".join(f"{w['pid']}:{w['state']}" for w in fallback["workers"]) or "none")))
    rows.append(("workers", ", ".join(f"{w['pid']}:{w['state']}" for w in state["workers"]) or "none"))
    Console().print(measures_table("asyncinfer local stack", rows, key="key"))
    return 0
