"""The common input, decoded without Pillow: an 8-bit grayscale PNG straight to gray levels.

Why: decode is the largest CPU cost per request on a GPU VM, where the model itself runs on the
accelerator. For a 64 px symbol crop, Pillow spends more time parsing the PNG's chunks in Python and
building an Image than decompressing it (69 us per image), and the packaged decoders (libspng, libpng,
OpenCV, wuffs: 36-43 us) inflate the image row by row. This path inflates the whole stream in one
call with libdeflate (about 11 us) and undoes the row filters in one compiled loop (numba, about
5 us): about 19 us per crop in all (`python -m drawing_symbols.fastpng`).

Only inputs that Pillow would read to exactly the same pixels take this path: 8-bit grayscale, not
interlaced, and no chunk besides those that never change the pixels Pillow hands back (no EXIF
orientation, no text chunks that may carry an EXIF profile, no transparency). Everything else, and
anything this path refuses (a bad CRC, a stream that does not inflate to exactly the image's size, an
unknown row filter), goes the Pillow way, which also words the errors. `tests/test_symbol_model.py`
holds the two paths equal, every row filter included.

numba compiles the row-filter loop once per machine and keeps it in its cache (beside this file when
that folder is writable, else in `NUMBA_CACHE_DIR` or the user's cache): the first import on a
machine takes about half a second longer, later ones read the cache.
"""

from __future__ import annotations

import struct
import zlib

import deflate
import numba
import numpy as np

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Chunks that leave the pixels Pillow returns unchanged (it ignores gamma, colour space and pixel
#: size when it decodes). eXIf, tEXt, zTXt and iTXt are left out because Pillow reads an EXIF
#: orientation from them, and tRNS because it marks a transparent grey.
_PIXEL_NEUTRAL_CHUNKS = frozenset({b"IHDR", b"IDAT", b"IEND", b"pHYs", b"tIME", b"gAMA", b"sRGB", b"cHRM"})
_GRAY = 0
#: IHDR's compression, filter and interlace methods that this path reads: deflate, the five
#: adaptive row filters, no interlace (Adam7 goes the Pillow way).
_PLAIN_METHODS = (0, 0, 0)


def plain_gray8_size(payload: bytes) -> tuple[int, int] | None:
    """(width, height) when `payload` is a complete, non-interlaced 8-bit grayscale PNG made only of
    pixel-neutral chunks; None for anything else (then Pillow reads it). Walks the chunk headers,
    never the data."""
    if len(payload) < 45 or not payload.startswith(PNG_SIGNATURE) or payload[12:16] != b"IHDR":
        return None
    width, height, bit_depth, color_type, *methods = struct.unpack_from(">IIBBBBB", payload, 16)
    if bit_depth != 8 or color_type != _GRAY or tuple(methods) != _PLAIN_METHODS:
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


def decode_gray8(payload: bytes, width: int, height: int) -> np.ndarray:
    """A PNG that `plain_gray8_size` accepted as (width, height), as uint8 gray levels (1, H, W).

    Raises ValueError on corrupt data: a chunk whose CRC does not match, a zlib stream that is
    damaged (libdeflate checks its Adler-32) or does not inflate to exactly one filter byte plus
    `width` pixels per row, a row filter PNG does not define."""
    compressed = []
    position = 8
    while True:
        length, kind = struct.unpack_from(">I4s", payload, position)
        data_end = position + 8 + length
        (crc,) = struct.unpack_from(">I", payload, data_end)
        if zlib.crc32(memoryview(payload)[position + 4 : data_end]) != crc:
            raise ValueError(f"the {kind.decode('latin-1')} chunk's CRC does not match")
        if kind == b"IDAT":
            compressed.append(payload[position + 8 : data_end])
        elif kind == b"IEND":
            break
        position = data_end + 4
    expected = height * (width + 1)
    try:
        # The output size bounds the work: a few KB that claim to inflate to gigabytes stop here.
        filtered = deflate.zlib_decompress(b"".join(compressed), expected)
    except deflate.DeflateError as exc:
        raise ValueError(f"the image data does not inflate ({exc})") from None
    if len(filtered) != expected:
        raise ValueError(f"the image data inflates to {len(filtered)} bytes, not {expected}")
    pixels = np.empty((1, height, width), dtype=np.uint8)
    if not _unfilter_rows(np.frombuffer(filtered, dtype=np.uint8), pixels[0]):
        raise ValueError("a row names a filter type PNG does not define")
    return pixels


#: The compiled loop's one signature: the inflated bytes (read-only, as from a bytes object) in, the
#: pixels out, both C-contiguous.
_UNFILTER_SIGNATURE = numba.types.boolean(
    numba.types.Array(numba.types.uint8, 1, "C", readonly=True), numba.types.uint8[:, ::1]
)


@numba.njit(_UNFILTER_SIGNATURE, cache=True, nogil=True, boundscheck=False)
def _unfilter_rows(filtered: np.ndarray, out: np.ndarray) -> bool:  # pragma: no cover (compiled)
    """Undo PNG's per-row filters (PNG spec, section 9) for one byte per pixel: `filtered` holds each
    row's filter type and then its filtered bytes, `out` receives the pixels. False on an unknown
    filter type. Compiled, because each pixel depends on the one decoded just before it; nogil, so
    decode threads run side by side. One loop per filter type, so the choice is made once a row."""
    height, width = out.shape
    for y in range(height):
        start = y * (width + 1) + 1
        kind = filtered[start - 1]
        row = filtered[start : start + width]
        above = out[y - 1] if y > 0 else np.zeros(width, np.uint8)  # PNG: the row above row 0 is zeros
        left = 0  # the pixel to the left (a), 0 before the first
        if kind == 0:  # None
            out[y] = row
        elif kind == 1:  # Sub: + a
            for x in range(width):
                left = (row[x] + left) & 255
                out[y, x] = left
        elif kind == 2:  # Up: + b
            for x in range(width):
                out[y, x] = (row[x] + int(above[x])) & 255
        elif kind == 3:  # Average: + (a + b) // 2
            for x in range(width):
                left = (row[x] + ((left + int(above[x])) >> 1)) & 255
                out[y, x] = left
        elif kind == 4:  # Paeth: + whichever of a, b, c is nearest to a + b - c
            up_left = 0
            for x in range(width):
                up = int(above[x])
                estimate = left + up - up_left
                to_left, to_up, to_up_left = abs(estimate - left), abs(estimate - up), abs(estimate - up_left)
                if to_left <= to_up and to_left <= to_up_left:
                    predicted = left
                elif to_up <= to_up_left:
                    predicted = up
                else:
                    predicted = up_left
                left = (row[x] + predicted) & 255
                out[y, x] = left
                up_left = up
        else:
            return False
    return True


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
