"""The common input, decoded without Pillow: an 8-bit grayscale PNG straight to gray levels with libspng.

Why: for a 64 px symbol crop, Pillow spends more time parsing the PNG's chunks in Python and building
an Image than decompressing it (the handler's decode: 69 us per image with Pillow, 40 us with this
path, `python -m drawing_symbols.fastpng`), and decode is the largest CPU cost per request on a GPU VM, where the
model itself runs on the accelerator.

Only inputs that Pillow would read to exactly the same pixels take this path: 8-bit grayscale, and no
chunk besides those that never change the pixels Pillow hands back (no EXIF orientation, no text
chunks that may carry an EXIF profile, no transparency). Everything else, and anything libspng
refuses, goes the Pillow way, which also words the errors. `tests/test_symbol_model.py` holds the
two paths equal.
"""

from __future__ import annotations

import struct

import numpy as np
import pyspng

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Chunks that leave the pixels Pillow returns unchanged (it ignores gamma, colour space and pixel
#: size when it decodes). eXIf, tEXt, zTXt and iTXt are left out because Pillow reads an EXIF
#: orientation from them, and tRNS because it marks a transparent grey.
_PIXEL_NEUTRAL_CHUNKS = frozenset({b"IHDR", b"IDAT", b"IEND", b"pHYs", b"tIME", b"gAMA", b"sRGB", b"cHRM"})
_GRAY = 0


def plain_gray8_size(payload: bytes) -> tuple[int, int] | None:
    """(width, height) when `payload` is a complete 8-bit grayscale PNG made only of pixel-neutral
    chunks; None for anything else (then Pillow reads it). Walks the chunk headers, never the data."""
    if len(payload) < 45 or not payload.startswith(PNG_SIGNATURE) or payload[12:16] != b"IHDR":
        return None
    width, height, bit_depth, color_type = struct.unpack_from(">IIBB", payload, 16)
    if bit_depth != 8 or color_type != _GRAY:
        return None
    position, end = 8, len(payload)
    while position + 8 <= end:
        length, kind = struct.unpack_from(">I4s", payload, position)
        if kind not in _PIXEL_NEUTRAL_CHUNKS:
            return None
        position += 12 + length  # length, type, data, CRC
        if kind == b"IEND":
            return (width, height) if position <= end else None
    return None  # truncated: Pillow's path says what is wrong with it


def decode_gray8(payload: bytes) -> np.ndarray:
    """A PNG that `plain_gray8_size` accepted, as uint8 gray levels (1, H, W). libspng checks the
    CRCs and raises on corrupt data."""
    pixels: np.ndarray = pyspng.load(payload, format="L")
    return pixels[None]  # (H, W) -> (1, H, W), a view


def _compare() -> None:
    """`python -m drawing_symbols.fastpng`: CPU per image, this path against Pillow's, on one thread."""
    import time

    from drawing_symbols.render import SYMBOL_CLASSES, render_png
    from drawing_symbols.symbols import SymbolHandler

    rng = np.random.default_rng(0)
    pngs = [render_png(SYMBOL_CLASSES[i % len(SYMBOL_CLASSES)], rng) for i in range(256)]
    handler = SymbolHandler()

    def cost_us(decode: object) -> float:
        assert callable(decode)
        best = float("inf")
        for _ in range(10):
            started = time.thread_time()
            for png in pngs:
                decode(png)
            best = min(best, (time.thread_time() - started) / len(pngs) * 1e6)
        return best

    for _ in range(2):  # alternating, so both see the same background load
        print(f"decode, us per 64 px PNG (best of 10 passes): handler {cost_us(handler.decode):.1f}, "
              f"Pillow only {cost_us(handler.decode_with_pillow):.1f}")


if __name__ == "__main__":
    _compare()
