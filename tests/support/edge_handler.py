"""A handler for bad-output and failure tests: each request's bytes choose what the model does.

b"ok" answers {"value": 1}; b"nan", b"inf", b"-inf" put that number in the output; b"tensor" returns
an object that is not JSON; b"boom" raises a plain exception (a handler bug); b"transient" raises
TransientError every time (nacked until dead-lettered); b"slow" sleeps EDGE_SLOW_S per batch.
Anything else is invalid input.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from asyncinfer.worker.errors import InvalidInputError, TransientError

COMMANDS = (b"ok", b"nan", b"inf", b"-inf", b"tensor", b"boom", b"transient", b"slow")


class EdgeHandler:
    name = "edge"
    version = "edge-1"

    def load(self, device: torch.device) -> None:
        self.slow_s = float(os.environ.get("EDGE_SLOW_S", "1.0"))

    def decode(self, payload: bytes) -> torch.Tensor:
        if payload not in COMMANDS:
            raise InvalidInputError("not_a_command", f"payload must be one of {[c.decode() for c in COMMANDS]}")
        return torch.tensor([float(COMMANDS.index(payload))])

    def predict(self, batch: torch.Tensor) -> list[dict[str, Any]]:
        commands = [COMMANDS[int(i)] for i in batch[:, 0].tolist()]
        if b"transient" in commands:
            raise TransientError("simulated device reset")
        if b"boom" in commands:
            raise ZeroDivisionError("simulated handler bug")
        if b"slow" in commands:
            time.sleep(self.slow_s)
        return [_output(c) for c in commands]


def _output(command: bytes) -> dict[str, Any]:
    if command in (b"nan", b"inf", b"-inf"):
        return {"value": 1.0, "scores": [0.5, float(command.decode())]}
    if command == b"tensor":
        return {"value": torch.zeros(2)}
    return {"value": 1}


def build_handler() -> EdgeHandler:
    return EdgeHandler()
