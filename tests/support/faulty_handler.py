"""A handler whose behaviour each request chooses through its bytes, for fault tests.

b"ok" answers, b"boom" makes predict raise (the batch is retried item by item), b"nan" returns a
non-finite number, b"transient" raises TransientError (nack, then dead letter), b"slow" sleeps
FAULTY_SLOW_S seconds per batch, b"big:" followed by any padding answers like b"ok" (large-message
tests). Anything else is invalid input.
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch

from asyncinfer.worker.errors import InvalidInputError, TransientError

CODES = {b"ok": 0, b"boom": 1, b"nan": 2, b"transient": 3, b"slow": 4, b"big:": 5}


class FaultyHandler:
    name = "faulty"
    version = "faulty-1"

    def load(self, device: torch.device) -> None:
        self.slow_s = float(os.environ.get("FAULTY_SLOW_S", "0.5"))

    def decode(self, payload: bytes) -> torch.Tensor:
        if payload.startswith(b"big:"):
            return torch.tensor([float(CODES[b"big:"])])
        if payload not in CODES:
            raise InvalidInputError("not_a_command", f"payload must be one of {sorted(CODES)}")
        return torch.tensor([float(CODES[payload])])

    def predict(self, batch: torch.Tensor) -> list[dict[str, Any]]:
        codes = [int(c) for c in batch[:, 0].tolist()]
        if CODES[b"transient"] in codes:
            raise TransientError("simulated GPU out of memory")
        if CODES[b"boom"] in codes:
            raise ValueError("simulated handler bug")
        if CODES[b"slow"] in codes:
            time.sleep(self.slow_s)
        return [{"value": float("nan")} if c == CODES[b"nan"] else {"value": c} for c in codes]


def build_handler() -> FaultyHandler:
    return FaultyHandler()


class BrokenHandler(FaultyHandler):
    """Fails to load, as a model with corrupt weights would."""

    def load(self, device: torch.device) -> None:
        raise RuntimeError("weights are corrupt")


def build_broken_handler() -> BrokenHandler:
    return BrokenHandler()
