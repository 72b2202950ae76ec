"""A handler whose decode says which process ran it (its tensor is the pid), for intake tests."""

from __future__ import annotations

import os
from typing import Any

import torch


class PidHandler:
    name = "pid"
    version = "pid-1"

    def load(self, device: torch.device) -> None:
        pass

    def decode(self, payload: bytes) -> torch.Tensor:
        return torch.tensor([os.getpid()])

    def predict(self, batch: torch.Tensor) -> list[dict[str, Any]]:
        return [{"pid": int(p)} for p in batch[:, 0].tolist()]


def build_handler() -> PidHandler:
    return PidHandler()
