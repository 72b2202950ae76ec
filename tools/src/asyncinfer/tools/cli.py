"""The `asyncinfer` command line.

Each subcommand lives in its own module exposing `add_arguments(parser)` and `run(args) -> int`; it
is imported only when chosen, so `asyncinfer simulate` does not pay for torch and `asyncinfer local`
does not pay for Pulumi.
"""

from __future__ import annotations

import argparse
import importlib
import sys

#: name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "local": ("asyncinfer.tools.commands.local_command", "the local stack: emulator, topology, autoscaled workers"),
    "submit": ("asyncinfer.tools.commands.submit_command", "submit drawings (files) and optionally wait for results"),
    "loadtest": ("asyncinfer.tools.commands.loadtest_command", "submit rendered drawings and report on every answer"),
    "demo": ("asyncinfer.tools.commands.demo_command", "bring up the local stack, run a load test, tear down"),
    "chaos": ("asyncinfer.tools.commands.chaos_command", "load test while killing workers; proves nothing is lost"),
    "bench": ("asyncinfer.tools.commands.bench_command", "pipeline throughput against the bare model, side by side"),
    "plan": ("asyncinfer.tools.commands.plan_command", "render a stack's resource graph under Pulumi mocks"),
    "simulate": ("asyncinfer.tools.commands.simulate_command", "cost and latency of configurations on a trace"),
    "tune": ("asyncinfer.tools.commands.tune_command", "least-cost settings that meet a latency goal on a trace"),
    "dlq": ("asyncinfer.tools.commands.dlq_command", "dead letters: list, show, replay (keeps request ids)"),
    "cost": ("asyncinfer.tools.commands.cost_command", "cost per model, lane and day from collected results"),
}


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="asyncinfer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module_name, help_text) in COMMANDS.items():
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            module = importlib.import_module(module_name)
            module.add_arguments(command_parser)
            command_parser.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(args_list).parse_args(args_list)
    return int(args._run(args))


if __name__ == "__main__":
    sys.exit(main())
