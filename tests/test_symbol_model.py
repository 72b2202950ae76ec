"""The example symbol model: accuracy on unseen renders through the real decode path, input defences,
output shape, and reproducible rendering."""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from collections.abc import Callable, Iterator

import numpy as np
import pytest
import torch
from PIL import Image

from asyncinfer.worker.errors import InvalidInputError, TransientError
from asyncinfer.worker.handler import ModelHandler
from drawing_symbols.render import (
    SYMBOL_CLASSES,
    image_to_array,
    image_to_pixels,
    pixels_to_input,
    render_dataset,
    render_png,
    render_symbol,
)
from drawing_symbols.symbols import DEFAULT_WEIGHTS, SymbolHandler, build_handler

# Neither the training seed (0) nor its held-out seed (1): images the model has never been scored on.
TEST_SEED = 20_251_125
TEST_SAMPLES = 1000


@pytest.fixture(scope="module")
def handler() -> Iterator[SymbolHandler]:
    if not DEFAULT_WEIGHTS.exists():
        pytest.fail(f"{DEFAULT_WEIGHTS} is missing; run `python -m drawing_symbols.train`")
    h = build_handler()
    h.load(torch.device("cpu"))
    yield h


def _png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def _png_claiming(width: int, height: int) -> bytes:
    """A valid tiny PNG whose IHDR is rewritten (with a correct CRC) to claim width x height: the shape of
    a decompression bomb, without the bomb."""
    data = bytearray(_png(Image.new("L", (1, 1), 255)))
    # signature (8) + IHDR length (4) + b"IHDR" (4) -> width and height are the next two big-endian u32.
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_held_out_accuracy_through_decode(handler: SymbolHandler) -> None:
    # Client-shaped input (PNG bytes) through decode, so a normalisation mismatch between training and
    # serving would show up here as lost accuracy, not pass unnoticed.
    assert handler.metadata.get("seed") != TEST_SEED and handler.metadata.get("held_out_seed") != TEST_SEED
    children = np.random.SeedSequence(TEST_SEED).spawn(TEST_SAMPLES)
    labels = [SYMBOL_CLASSES[i % len(SYMBOL_CLASSES)] for i in range(TEST_SAMPLES)]
    tensors = [handler.decode(render_png(y, np.random.default_rng(c))) for y, c in zip(labels, children, strict=True)]
    predicted: list[str] = []
    for i in range(0, TEST_SAMPLES, 250):  # batches the size a busy worker would form
        predicted += [r["label"] for r in handler.predict(torch.stack(tensors[i : i + 250]))]
    correct = sum(p == y for p, y in zip(predicted, labels, strict=True))
    per_class = {
        c: sum(p == y for p, y in zip(predicted, labels, strict=True) if y == c) / labels.count(c)
        for c in SYMBOL_CLASSES
    }
    assert correct / TEST_SAMPLES >= 0.97, f"accuracy {correct / TEST_SAMPLES:.3f}; per class {per_class}"


def test_decode_matches_training_normalisation(handler: SymbolHandler) -> None:
    rng = np.random.default_rng(7)
    image = render_symbol("position", rng)
    decoded = handler.decode(_png(image))
    # decode hands on uint8 gray levels; predict normalises them exactly as training did.
    assert decoded.dtype == torch.uint8 and decoded.shape == (1, 64, 64)
    np.testing.assert_array_equal(pixels_to_input(decoded).numpy(), image_to_array(image))
    assert image_to_array(image).dtype == np.float32


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"hello, this is text", id="text"),
        pytest.param(np.random.default_rng(0).bytes(4096), id="random"),
        pytest.param(b"%PDF-1.7\n" + b"0" * 100, id="pdf"),
    ],
)
def test_decode_rejects_non_images(handler: SymbolHandler, payload: bytes) -> None:
    with pytest.raises(InvalidInputError) as info:
        handler.decode(payload)
    assert info.value.code == "not_an_image"
    assert "PNG" in info.value.message  # says what to send instead


def test_decode_rejects_truncated_image(handler: SymbolHandler) -> None:
    png = render_png("flatness", np.random.default_rng(3), size=256)
    with pytest.raises(InvalidInputError) as info:
        handler.decode(png[: len(png) // 2])
    assert info.value.code == "not_an_image"


@pytest.mark.parametrize(
    ("width", "height"),
    [
        pytest.param(100_000, 100_000, id="10-gigapixel header (Pillow's own bomb error)"),
        # 25 MP: under Pillow's limit, so only the handler's header check stands between it and decoding.
        pytest.param(5_000, 5_000, id="25-megapixel header (handler limit)"),
    ],
)
def test_decode_rejects_decompression_bomb_header(handler: SymbolHandler, width: int, height: int) -> None:
    with pytest.raises(InvalidInputError) as info:
        handler.decode(_png_claiming(width, height))
    assert info.value.code == "image_too_large"
    assert "crop" in info.value.message


def test_max_pixels_is_configurable() -> None:
    small = SymbolHandler(max_pixels=100 * 100)
    ok = _png(Image.new("L", (100, 100), 255))
    assert small.decode(ok).shape == (1, 64, 64)
    with pytest.raises(InvalidInputError) as info:
        small.decode(_png(Image.new("L", (101, 100), 255)))
    assert info.value.code == "image_too_large"


def _jpeg(symbol: Image.Image) -> bytes:
    buf = io.BytesIO()
    symbol.convert("RGB").save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def _wide(symbol: Image.Image) -> bytes:
    # More paper left and right: the handler must pad this to a square, not squash it.
    paper = int(np.median(np.asarray(symbol)))
    canvas = Image.new("L", (symbol.width * 3 // 2, symbol.height), paper)
    canvas.paste(symbol, (symbol.width // 4, 0))
    return _png(canvas)


def _transparent(symbol: Image.Image) -> bytes:
    # Ink as alpha over black RGB, like a CAD export: the background must come out as paper, not ink.
    rgba = Image.new("RGBA", symbol.size, (0, 0, 0, 0))
    rgba.putalpha(Image.fromarray(255 - np.asarray(symbol)))
    return _png(rgba)


def _sixteen_bit(symbol: Image.Image) -> bytes:
    # A 16-bit grayscale scan: Pillow's own convert("L") would clip it to a blank white page.
    return _png(Image.fromarray(np.asarray(symbol).astype(np.uint16) * 257))


@pytest.mark.parametrize("encode", [_jpeg, _wide, _transparent, _sixteen_bit])
def test_decode_accepts_other_sizes_shapes_and_formats(
    handler: SymbolHandler, encode: Callable[[Image.Image], bytes]
) -> None:
    n = 4 * len(SYMBOL_CLASSES)
    children = np.random.SeedSequence(TEST_SEED + 1).spawn(n)
    labels = [SYMBOL_CLASSES[i % len(SYMBOL_CLASSES)] for i in range(n)]
    # 200 px: decode has to shrink as well as pad/convert, which the 64-px accuracy test never exercises.
    batch = torch.stack(
        [
            handler.decode(encode(render_symbol(y, np.random.default_rng(c), size=200)))
            for y, c in zip(labels, children, strict=True)
        ]
    )
    assert batch.shape == (n, 1, 64, 64) and batch.dtype == torch.uint8
    ink = pixels_to_input(batch)
    assert float(ink.min()) >= 0.0 and float(ink.max()) <= 1.0
    assert float(ink.mean()) < 0.3  # mostly paper (a page of ink would mean a lost alpha channel)
    predicted = [r["label"] for r in handler.predict(batch)]
    wrong = [(y, p) for y, p in zip(labels, predicted, strict=True) if y != p]
    assert len(wrong) <= n // 12, wrong  # a little slack: these are outside the exact training pipeline


@pytest.mark.parametrize("n", [1, 5])
def test_predict_returns_one_dict_per_item(handler: SymbolHandler, n: int) -> None:
    rng = np.random.default_rng(99)
    pixels = torch.stack([torch.from_numpy(image_to_pixels(render_symbol(c, rng))) for c in SYMBOL_CLASSES[:n]] * 5)[:n]
    results = handler.predict(pixels)
    assert len(results) == n
    for r in results:
        assert set(r) == {"label", "confidence", "top3"}
        assert r["label"] in SYMBOL_CLASSES
        assert isinstance(r["confidence"], float) and 0.0 <= r["confidence"] <= 1.0
        assert len(r["top3"]) == 3
        assert r["top3"][0] == {"label": r["label"], "score": r["confidence"]}
        scores = [t["score"] for t in r["top3"]]
        assert scores == sorted(scores, reverse=True) and sum(scores) <= 1.0 + 1e-5
        assert all(t["label"] in SYMBOL_CLASSES for t in r["top3"])


def test_predict_turns_gpu_oom_into_transient_error(monkeypatch: pytest.MonkeyPatch) -> None:
    h = SymbolHandler()
    h.load(torch.device("cpu"))

    def out_of_memory(x: torch.Tensor) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    assert h.model is not None
    monkeypatch.setattr(h.model, "forward", out_of_memory)
    with pytest.raises(TransientError):
        h.predict(torch.zeros(2, 1, 64, 64, dtype=torch.uint8))


def test_handler_contract() -> None:
    h = build_handler()
    assert isinstance(h, ModelHandler)
    assert h.name == "symbols"
    digest = hashlib.sha256(DEFAULT_WEIGHTS.read_bytes()).hexdigest()[:8]
    assert h.version == f"symbols-v1-{digest}"
    assert h.classes == SYMBOL_CLASSES
    with pytest.raises(RuntimeError, match="load"):
        h.predict(torch.zeros(1, 1, 64, 64))


def test_rendering_is_deterministic() -> None:
    assert render_png("angularity", np.random.default_rng(5)) == render_png("angularity", np.random.default_rng(5))
    assert render_png("angularity", np.random.default_rng(5)) != render_png("angularity", np.random.default_rng(6))
    x1, y1 = render_dataset(36, seed=42)
    x2, y2 = render_dataset(36, seed=42)
    x3, _ = render_dataset(36, seed=43)
    np.testing.assert_array_equal(x1, x2)
    np.testing.assert_array_equal(y1, y2)
    assert not np.array_equal(x1, x3)
    assert x1.shape == (36, 1, 64, 64) and x1.dtype == np.float32 and y1.dtype == np.int64
    assert x1.min() >= 0.0 and x1.max() <= 1.0
    assert np.bincount(y1, minlength=len(SYMBOL_CLASSES)).tolist() == [3] * len(SYMBOL_CLASSES)


def test_render_rejects_unknown_label() -> None:
    with pytest.raises(ValueError, match="straightness"):
        render_symbol("diameter", np.random.default_rng(0))


def test_predict_refuses_input_that_is_not_decodes_pixels(handler: SymbolHandler) -> None:
    # Already-normalised floats would be normalised a second time and every answer would be wrong.
    with pytest.raises(TypeError, match="uint8"):
        handler.predict(torch.zeros(2, 1, 64, 64))


# --- the fast path for plain grayscale PNGs (drawing_symbols.fastpng) ------------------------------


def _with_chunk(png: bytes, kind: bytes, data: bytes) -> bytes:
    """`png` with one more chunk right after IHDR (with a correct CRC)."""
    chunk = struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return png[:33] + chunk + png[33:]


def _exif_rotated(image: Image.Image) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    buf = io.BytesIO()
    image.save(buf, format="PNG", exif=exif.tobytes())
    return buf.getvalue()


def _paeth(a: int, b: int, c: int) -> int:
    estimate = a + b - c
    to_a, to_b, to_c = abs(estimate - a), abs(estimate - b), abs(estimate - c)
    return a if to_a <= to_b and to_a <= to_c else b if to_b <= to_c else c


def _gray_png(
    pixels: np.ndarray, filters: list[int], extra: bytes = b"", chunk_size: int = 1 << 30, interlace: int = 0,
    claimed_height: int | None = None,
) -> bytes:
    """An 8-bit grayscale PNG of `pixels` (H, W) whose row y is filtered with `filters[y]` (0-4, the
    spec's definitions written out plainly; another number is written as is), `extra` bytes after
    the filtered rows, the compressed stream split into IDAT chunks of `chunk_size`; IHDR says
    `interlace` and `claimed_height` (the true height by default), every CRC right."""
    height, width = pixels.shape
    image = pixels.astype(np.int64)
    rows = []
    for y in range(height):
        kind, out = filters[y], [filters[y]]
        for x in range(width):
            a = int(image[y, x - 1]) if x else 0
            b = int(image[y - 1, x]) if y else 0
            c = int(image[y - 1, x - 1]) if x and y else 0
            predicted = {0: 0, 1: a, 2: b, 3: (a + b) // 2, 4: _paeth(a, b, c)}.get(kind, 0)
            out.append((int(image[y, x]) - predicted) % 256)
        rows.append(bytes(out))
    stream = zlib.compress(b"".join(rows) + extra)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    idats = b"".join(chunk(b"IDAT", stream[i : i + chunk_size]) for i in range(0, len(stream), chunk_size))
    header = struct.pack(">IIBBBBB", width, claimed_height or height, 8, 0, 0, 0, interlace)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idats + chunk(b"IEND", b"")


def _noisy_symbol(seed: int) -> np.ndarray:
    """A rendered symbol with noise, so every filter type meets every kind of neighbour."""
    rng = np.random.default_rng(seed)
    pixels = np.array(render_symbol("position", rng, size=64), dtype=np.int64)
    return np.clip(pixels + rng.integers(-40, 40, pixels.shape), 0, 255).astype(np.uint8)


def _fast_path_inputs() -> list[pytest.param]:
    rng = np.random.default_rng(TEST_SEED + 2)
    symbol = render_symbol("flatness", rng, size=64)
    big = render_symbol("position", rng, size=200)
    wide = Image.new("L", (90, 64), 250)
    wide.paste(symbol, (13, 0))
    return [
        pytest.param(_png(symbol), id="64px, the trained size"),
        pytest.param(_png(big), id="200px, shrunk"),
        pytest.param(_png(wide), id="non-square, padded"),
        pytest.param(_with_chunk(_png(symbol), b"pHYs", struct.pack(">IIB", 3780, 3780, 1)), id="with pHYs"),
        *(
            pytest.param(_gray_png(_noisy_symbol(kind), [kind] * 64), id=f"every row filter {kind}")
            for kind in range(5)
        ),
        pytest.param(_gray_png(_noisy_symbol(5), [y % 5 for y in range(64)], chunk_size=700),
                     id="filters mixed, several IDAT chunks"),
    ]


@pytest.mark.parametrize("png", _fast_path_inputs())
def test_fast_png_path_gives_pillows_pixels(handler: SymbolHandler, png: bytes) -> None:
    from drawing_symbols.fastpng import plain_gray8_size

    assert plain_gray8_size(png) is not None  # the fast path is what is under test here
    fast, pillow = handler.decode(png), handler.decode_with_pillow(png)
    assert fast.dtype == pillow.dtype == torch.uint8
    assert fast.shape == pillow.shape == (1, 64, 64)
    assert torch.equal(fast, pillow)


def test_the_rendered_corpus_takes_the_fast_path_with_pillows_pixels(handler: SymbolHandler) -> None:
    from drawing_symbols.fastpng import plain_gray8_size

    rng = np.random.default_rng(TEST_SEED + 3)
    pngs = [render_png(SYMBOL_CLASSES[i % len(SYMBOL_CLASSES)], rng) for i in range(3 * len(SYMBOL_CLASSES))]
    assert all(plain_gray8_size(p) is not None for p in pngs)
    for png in pngs:
        assert torch.equal(handler.decode(png), handler.decode_with_pillow(png))


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda s: _exif_rotated(s), id="EXIF orientation"),
        pytest.param(lambda s: _with_chunk(_png(s), b"tEXt", b"Comment\x00hello"), id="text chunk"),
        pytest.param(lambda s: _png(s.convert("RGB")), id="RGB"),
        pytest.param(lambda s: _png(s.convert("LA")), id="gray with alpha"),
        # (Pillow cannot write Adam7; a 1 x 1 image is the same bytes either way, only IHDR says so.)
        pytest.param(lambda s: _gray_png(np.array([[7]], dtype=np.uint8), [0], interlace=1), id="interlaced (Adam7)"),
    ],
)
def test_other_pngs_go_the_pillow_way(handler: SymbolHandler, make: Callable[[Image.Image], bytes]) -> None:
    from drawing_symbols.fastpng import plain_gray8_size

    symbol = render_symbol("angularity", np.random.default_rng(TEST_SEED + 4), size=64)
    png = make(symbol)
    assert plain_gray8_size(png) is None
    assert torch.equal(handler.decode(png), handler.decode_with_pillow(png))


def test_exif_rotation_is_still_applied(handler: SymbolHandler) -> None:
    symbol = render_symbol("angularity", np.random.default_rng(TEST_SEED + 5), size=64)
    upright = handler.decode(_png(symbol.transpose(Image.Transpose.ROTATE_270)))
    assert torch.equal(handler.decode(_exif_rotated(symbol)), upright)


def test_a_corrupt_gray_png_gets_pillows_answer(handler: SymbolHandler) -> None:
    from drawing_symbols.fastpng import plain_gray8_size

    png = bytearray(render_png("flatness", np.random.default_rng(TEST_SEED + 6)))
    idat = png.index(b"IDAT")
    png[idat + 40] ^= 0xFF  # a flipped byte in the compressed data: the chunk's CRC no longer matches
    corrupt = bytes(png)
    assert plain_gray8_size(corrupt) is not None  # it looks plain: fastpng must refuse it, then Pillow decides
    _assert_same_answer_as_pillow(handler, corrupt)


def _assert_same_answer_as_pillow(handler: SymbolHandler, png: bytes) -> None:
    """The handler's answer, pixels or the error code of a rejection, is Pillow's."""
    try:
        expected: torch.Tensor | str = handler.decode_with_pillow(png)
    except InvalidInputError as exc:
        expected = exc.code
    try:
        got: torch.Tensor | str = handler.decode(png)
    except InvalidInputError as exc:
        got = exc.code
    if isinstance(expected, str):
        assert got == expected
    else:
        assert isinstance(got, torch.Tensor) and torch.equal(got, expected)


@pytest.mark.parametrize(
    "png",
    [
        pytest.param(_gray_png(_noisy_symbol(6), [1] * 63 + [5]), id="an unknown row filter"),
        pytest.param(_gray_png(_noisy_symbol(7), [2] * 64, extra=b"\0" * 65), id="a row too many"),
        pytest.param(_gray_png(_noisy_symbol(8)[:63], [2] * 63, claimed_height=64), id="a row too few"),
    ],
)
def test_fastpng_refuses_what_does_not_fit_and_pillow_answers(handler: SymbolHandler, png: bytes) -> None:
    from drawing_symbols.fastpng import decode_gray8, plain_gray8_size

    size = plain_gray8_size(png)
    assert size is not None  # it looks plain: the fast path must refuse it, then Pillow decides
    with pytest.raises(ValueError):
        decode_gray8(png, *size)
    _assert_same_answer_as_pillow(handler, png)
