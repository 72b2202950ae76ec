"""A handler for claim-check tests: it answers with the input's size and SHA-256 (proof that the
worker read every byte of a large input) and pads its output past the inline limit, so the worker
must store it by URI."""

from __future__ import annotations

import hashlib
import os
from typing import Any

import torch

#: Over the worker's default inline output limit (1,000,000 bytes).
PADDING_BYTES = int(os.environ.get("LARGE_IO_PADDING_BYTES", "1200000"))


class LargeIoHandler:
    name = "large-io"
    version = "large-io-1"

    def load(self, device: torch.device) -> None:
        pass

    def decode(self, payload: bytes) -> torch.Tensor:
        digest = hashlib.sha256(payload).digest()
        return torch.tensor([float(len(payload)), *digest], dtype=torch.float64)

    def predict(self, batch: torch.Tensor) -> list[dict[str, Any]]:
        outputs = []
        for row in batch.tolist():
            outputs.append(
                {
                    "input_bytes": int(row[0]),
                    "sha256": bytes(int(b) for b in row[1:]).hex(),
                    "padding": "x" * PADDING_BYTES,
                }
            )
        return outputs


def build_handler() -> LargeIoHandler:
    return LargeIoHandler()
