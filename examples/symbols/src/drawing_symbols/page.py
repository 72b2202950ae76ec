"""A drawing page with several symbols on it, and the stage that cuts it into one crop per symbol.

The first stage of the example pipeline (page -> crops -> the symbol classifier on each crop). The
"model" is classical image processing, no weights: ink is thresholded, the mask is shrunk by max-pooling
and grown by a few cells so the strokes of one symbol join up, and each connected blob of the right
size becomes a square crop with some paper around it (the classifier was trained on loose crops).
"""

from __future__ import annotations

import base64
import io
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image

from asyncinfer.worker.errors import InvalidInputError
from drawing_symbols.render import SYMBOL_CLASSES, render_symbol

#: Pages are padded to this square (white) so a batch stacks; a larger page is refused.
PAGE_SIZE = 768
#: Darker than this is ink (rendered ink is at most ~80 plus noise, paper at least ~170).
INK_BELOW = 150
#: A rendered tile's pixels this light or lighter are its paper, replaced by the page's.
PAPER_ABOVE = 185
#: The mask is max-pooled by this factor, then grown by GROW cells: strokes closer than about
#: POOL * GROW pixels join into one blob; symbols on a page are placed further apart than that.
POOL = 4
GROW = 3
#: Blobs smaller than this (pixels, either side) are dust or specks, not symbols.
MIN_SYMBOL_PX = 10
#: Paper around the blob in a crop, as a share of its larger side (the classifier saw loose crops).
CROP_MARGIN = 0.25
#: Symbols are rendered at this tile size and placed this far apart on a page.
TILE_PX = 64
GAP_PX = 48


@dataclass(frozen=True)
class PlacedSymbol:
    """Where a page's symbol was drawn: its class and its tile's box in page pixels."""

    label: str
    x: int
    y: int
    size: int

    def contains(self, cx: float, cy: float) -> bool:
        return self.x <= cx < self.x + self.size and self.y <= cy < self.y + self.size


def render_page(rng: np.random.Generator, count: int, page_px: int = PAGE_SIZE) -> tuple[bytes, list[PlacedSymbol]]:
    """A white page (PNG) with `count` rendered symbols of random classes on a jittered grid."""
    cell = TILE_PX + GAP_PX
    per_row = page_px // cell
    if count > per_row * per_row:
        raise ValueError(f"at most {per_row * per_row} symbols fit on a {page_px}-px page")
    page = Image.new("L", (page_px, page_px), 255)
    cells = rng.permutation(per_row * per_row)[:count]
    placed = []
    for cell_index in cells:
        row, col = divmod(int(cell_index), per_row)
        jitter = rng.integers(0, GAP_PX // 2, size=2)
        x, y = col * cell + int(jitter[0]), row * cell + int(jitter[1])
        label = SYMBOL_CLASSES[int(rng.integers(0, len(SYMBOL_CLASSES)))]
        tile = np.asarray(render_symbol(label, rng, TILE_PX), dtype=np.float32)
        # A tile's own paper is a little grey and noisy; on a page the paper is the page's: keep ink only.
        region = np.asarray(page.crop((x, y, x + TILE_PX, y + TILE_PX)), dtype=np.float32)
        merged = np.minimum(region, np.where(tile < PAPER_ABOVE, tile, 255.0))
        page.paste(Image.fromarray(np.clip(np.rint(merged), 0, 255).astype(np.uint8), mode="L"), (x, y))
        placed.append(PlacedSymbol(label, x, y, TILE_PX))
    buf = io.BytesIO()
    page.save(buf, format="PNG")
    return buf.getvalue(), placed


def find_symbols(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Boxes (x, y, w, h) of the symbol-sized ink blobs of a grayscale page, top-left first."""
    ink = gray < INK_BELOW
    h, w = ink.shape
    ph, pw = -(-h // POOL), -(-w // POOL)
    padded = np.zeros((ph * POOL, pw * POOL), dtype=bool)
    padded[:h, :w] = ink
    pooled = padded.reshape(ph, POOL, pw, POOL).any(axis=(1, 3))
    # Grow by GROW cells in every direction (a square dilation), without wrapping at the edges.
    framed = np.pad(pooled, GROW)
    grown = np.zeros_like(pooled)
    for dy in range(2 * GROW + 1):
        for dx in range(2 * GROW + 1):
            grown |= framed[dy : dy + ph, dx : dx + pw]
    seen = np.zeros_like(grown)
    boxes = []
    for start_y, start_x in zip(*np.nonzero(grown), strict=True):
        if seen[start_y, start_x]:
            continue
        cells = _blob(grown, seen, int(start_y), int(start_x))
        ys, xs = zip(*cells, strict=True)
        # The blob's extent in the original ink (growing added GROW cells on every side).
        y0, y1 = (min(ys) * POOL, (max(ys) + 1) * POOL)
        x0, x1 = (min(xs) * POOL, (max(xs) + 1) * POOL)
        sub = ink[y0:y1, x0:x1]
        rows, cols = np.nonzero(sub.any(axis=1))[0], np.nonzero(sub.any(axis=0))[0]
        if len(rows) == 0:
            continue
        bx, by = x0 + int(cols[0]), y0 + int(rows[0])
        bw, bh = int(cols[-1] - cols[0] + 1), int(rows[-1] - rows[0] + 1)
        if max(bw, bh) >= MIN_SYMBOL_PX:
            boxes.append((bx, by, bw, bh))
    return sorted(boxes, key=lambda b: (b[1], b[0]))


def _blob(mask: np.ndarray, seen: np.ndarray, y: int, x: int) -> list[tuple[int, int]]:
    h, w = mask.shape
    queue = deque([(y, x)])
    seen[y, x] = True
    cells = []
    while queue:
        cy, cx = queue.popleft()
        cells.append((cy, cx))
        for ny, nx in ((cy - 1, cx), (cy + 1, cx), (cy, cx - 1), (cy, cx + 1)):
            if 0 <= ny < h and 0 <= nx < w and mask[ny, nx] and not seen[ny, nx]:
                seen[ny, nx] = True
                queue.append((ny, nx))
    return cells


def crop_square(gray: np.ndarray, box: tuple[int, int, int, int]) -> tuple[tuple[int, int, int], bytes]:
    """A square crop (x, y, side) around `box` with CROP_MARGIN of paper, as PNG (white beyond the page)."""
    x, y, w, h = box
    side = round(max(w, h) * (1 + 2 * CROP_MARGIN))
    cx, cy = x + w / 2, y + h / 2
    left, top = round(cx - side / 2), round(cy - side / 2)
    canvas = np.full((side, side), 255, dtype=np.uint8)
    src_y0, src_x0 = max(0, top), max(0, left)
    src_y1, src_x1 = min(gray.shape[0], top + side), min(gray.shape[1], left + side)
    canvas[src_y0 - top : src_y1 - top, src_x0 - left : src_x1 - left] = gray[src_y0:src_y1, src_x0:src_x1]
    buf = io.BytesIO()
    Image.fromarray(canvas, mode="L").save(buf, format="PNG")
    return (left, top, side), buf.getvalue()


class PageSegmenter:
    """The pipeline's first stage as a model handler: a page in, its symbol crops out (a fan-out)."""

    name = "segment"
    version = "segment-v1"

    def load(self, device: torch.device) -> None:
        """Nothing to load: no weights."""

    def decode(self, payload: bytes) -> torch.Tensor:
        try:
            image = Image.open(io.BytesIO(payload))
            width, height = image.size
        except Exception as exc:
            raise InvalidInputError(
                "not_an_image", f"the page is not an image ({exc}); send PNG or JPEG bytes"
            ) from None
        if width > PAGE_SIZE or height > PAGE_SIZE:
            raise InvalidInputError(
                "page_too_large", f"the page is {width}x{height}; this stage takes pages up to {PAGE_SIZE}x{PAGE_SIZE}"
            )
        page = np.full((PAGE_SIZE, PAGE_SIZE), 255, dtype=np.uint8)
        page[:height, :width] = np.asarray(image.convert("L"), dtype=np.uint8)
        return torch.from_numpy(page)

    def predict(self, batch: torch.Tensor) -> list[dict[str, Any]]:
        outputs = []
        for page in batch.numpy():
            crops = []
            for box in find_symbols(page):
                (x, y, side), png = crop_square(page, box)
                crops.append({"x": x, "y": y, "size": side, "png_b64": base64.b64encode(png).decode("ascii")})
            outputs.append({"crops": crops})
        return outputs


def build_handler() -> PageSegmenter:
    return PageSegmenter()


#: The "module:factory" string a segment-stage worker loads.
SEGMENT_HANDLER = "drawing_symbols.page:build_handler"
