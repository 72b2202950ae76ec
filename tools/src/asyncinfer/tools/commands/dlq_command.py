"""`asyncinfer dlq list|show|replay`: what a queue gave up on, and sending it back.

Local stack (default): the names come from `asyncinfer local status --json`'s state file. Deployed
stack: `--project P --subscription <model>-dead-letter-hold` (the stack output
`dead_letter_subscription`), with credentials from the environment as for any gcloud client.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console
from rich.table import Table

from asyncinfer.client.dlq import DeadLetterQueue
from asyncinfer.tools.commands.connect import add_stack_arguments, local_stack_status

RET_OK = 0
RET_NOT_CONNECTED = 1
RET_INCOMPLETE = 1
RET_USAGE = 2
LIST_COLUMNS = ("message_id", "request_id", "source_subscription", "delivery_attempts", "dead_lettered_at",
                "replayed_before", "attributes")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="dlq_command", required=True)
    listing = sub.add_parser("list", help="dead letters with their source and delivery attempts (left in place)")
    show = sub.add_parser("show", help="one dead letter: attributes and body (left in place)")
    show.add_argument("id", help="its dead-letter message id or its request id")
    replay = sub.add_parser("replay", help="republish dead letters to the requests topic, marked as replays")
    replay.add_argument("ids", nargs="*", help="dead-letter message ids or request ids")
    replay.add_argument("--all", action="store_true", help="replay every dead letter")
    replay.add_argument("--dry-run", action="store_true", help="say what would be replayed; change nothing")
    replay.add_argument("--topic", default=None,
                        help="republish here (default: the topic of the subscription each came from)")
    for command in (listing, show, replay):
        command.add_argument("--json", action="store_true", help="machine-readable output")
        command.add_argument("--limit", type=int, default=10_000, help="read at most this many dead letters")
        command.add_argument("--project", default=None, help="a deployed stack's project (with --subscription)")
        command.add_argument("--subscription", default=None,
                             help="a deployed stack's dead-letter subscription, e.g. symbols-dead-letter-hold")
        add_stack_arguments(command)


def run(args: argparse.Namespace) -> int:
    if (args.project is None) != (args.subscription is None):
        print("give both --project and --subscription (a deployed stack), or neither (the local stack)")
        return RET_USAGE
    if args.dlq_command == "replay" and bool(args.ids) == bool(args.all):
        print("name the dead letters to replay (message ids or request ids), or pass --all")
        return RET_USAGE
    if args.project is not None:
        project, subscription = args.project, args.subscription
    else:
        try:
            status = local_stack_status(args)
        except FileNotFoundError as exc:
            print(exc)
            return RET_NOT_CONNECTED
        project, subscription = status["project"], status["dead_letter_subscription"]
    with DeadLetterQueue(project, subscription) as queue:
        if args.dlq_command == "list":
            return _list(queue, args)
        if args.dlq_command == "show":
            return _show(queue, args)
        return _replay(queue, args)


def _list(queue: DeadLetterQueue, args: argparse.Namespace) -> int:
    letters = [d.summary() for d in queue.peek(args.limit)]
    if args.json:
        print(json.dumps(letters, indent=2))
        return RET_OK
    table = Table(title=f"{len(letters)} dead letter(s) on {queue.path}")
    for column in LIST_COLUMNS:
        table.add_column(column)
    for letter in letters:
        table.add_row(*(_cell(letter[c]) for c in LIST_COLUMNS))
    Console().print(table)
    return RET_OK


def _show(queue: DeadLetterQueue, args: argparse.Namespace) -> int:
    found = [d for d in queue.peek(args.limit) if d.matches(args.id)]
    if not found:
        print(f"no dead letter with message id or request id {args.id!r} on {queue.path}")
        return RET_INCOMPLETE
    details = [d.detail() for d in found]
    print(json.dumps(details if len(details) > 1 else details[0], indent=2, default=str))
    return RET_OK


def _replay(queue: DeadLetterQueue, args: argparse.Namespace) -> int:
    report = queue.replay(None if args.all else args.ids, dry_run=args.dry_run, topic=args.topic, limit=args.limit)
    if args.json:
        print(json.dumps(report.as_dict(), indent=2))
    else:
        verb = "would replay" if report.dry_run else "replayed"
        print(f"{verb} {len(report.replayed)} dead letter(s)")
        for source, target in report.replayed.items():
            print(f"  {source} -> {target}")
        for name, entries in (("failed (still dead-lettered)", report.failed),
                              ("republished but not acked", report.not_acked)):
            for source, reason in entries.items():
                print(f"{name}: {source}: {reason}")
        for wanted in report.not_found:
            print(f"not found: {wanted}")
    return RET_OK if report.ok else RET_INCOMPLETE


def _cell(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return "" if value is None else str(value)
