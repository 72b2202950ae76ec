"""Find the queue a command talks to: the running local stack's state file."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from asyncinfer.tools.local.stack import DEFAULT_STATE_DIR, read_state


def add_stack_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                        help="the local stack's state folder (default .asyncinfer/local)")


def local_stack_status(args: argparse.Namespace) -> dict[str, Any]:
    """The stack's status; sets PUBSUB_EMULATOR_HOST for this process's clients."""
    state = read_state(args.state_dir)
    if not state.get("controller_alive", False):
        raise FileNotFoundError(
            f"the local stack in {args.state_dir} is not running (stale state file); "
            "start it with `asyncinfer local up`"
        )
    os.environ["PUBSUB_EMULATOR_HOST"] = state["emulator_host"]
    return state
