"""The real symbols model with one poison: a blank drawing (every pixel the same) decodes like any
image, and then makes `predict` raise, as a model bug triggered by one input would. Isolation tests use
it: the poison gets past intake into a batch, so what they show is the batch's retry item by item,
not a rejection at decode."""

from __future__ import annotations

import io
from typing import Any

import torch
from PIL import Image

from drawing_symbols.symbols import SymbolHandler


def blank_png(size: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (size, size), color=255).save(buffer, format="PNG")
    return buffer.getvalue()


class PoisonedSymbolHandler(SymbolHandler):
    def predict(self, batch: torch.Tensor) -> list[dict[str, Any]]:
        flat = batch.flatten(1)
        if bool((flat.amax(dim=1) == flat.amin(dim=1)).any()):
            raise ValueError("poisoned input: a blank drawing reached the model")
        outputs: list[dict[str, Any]] = super().predict(batch)
        return outputs


def build_handler() -> PoisonedSymbolHandler:
    return PoisonedSymbolHandler()
