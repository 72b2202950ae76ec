"""The model-handler interface: the only thing a model developer writes.

The runtime owns pulling, batching, acking and publishing; a handler loads a model once, turns the
bytes of one input into a tensor (so one bad input fails alone), and predicts a batch.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class ModelHandler(Protocol):
    #: The model name requests must carry; a request for another name gets an error result.
    name: str
    #: Reported in every result so a client can tell which weights answered.
    version: str

    def load(self, device: torch.device) -> None:
        """Load weights once, before the worker takes its first message."""

    def decode(self, payload: bytes) -> torch.Tensor:
        """Turn one input's bytes into a CPU tensor. Raise InvalidInputError for input that can never
        succeed (not an image, absurd dimensions).

        Runs in the worker's intake processes, on a handler built by the same factory on which
        `load` is never called: it must not depend on `load` (nor on the device)."""

    def predict(self, batch: torch.Tensor) -> list[dict[str, Any]]:
        """Predict a stacked batch (first dimension = items) and return one JSON-ready dict per item.
        Raise TransientError for failures worth a retry."""
