"""Procedural renderer of GD&T / drawing symbols, the example model's only source of data.

Rendering instead of shipping a data set keeps the repository small and lets training and tests draw as
many fresh, seed-reproducible samples as they like. The variation (scale, position, rotation, aspect,
stroke weight, contrast, blur, noise, specks, fragments of a feature-control-frame border) is there so the
model sees what a crop from a scanned or rasterised drawing actually looks like, not one clean glyph.

Every symbol is defined in unit coordinates (y up) inside the unit disk, so that any rotation keeps it
inside the radius the placement code reserves for it and no stroke is ever clipped by the image edge.
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

#: The classes the model predicts, in the order of its output logits. Appending is safe only together
#: with retraining: the weights file stores its own copy of this list and the handler trusts the file.
SYMBOL_CLASSES: tuple[str, ...] = (
    "straightness",
    "flatness",
    "circularity",
    "cylindricity",
    "perpendicularity",
    "parallelism",
    "angularity",
    "position",
    "concentricity",
    "symmetry",
    "profile_of_a_line",
    "surface_finish",
)

#: Rotation is capped because several classes differ from each other mostly by orientation
#: (straightness vs. a tilted line, perpendicularity vs. angularity); drawings rarely rotate symbols anyway.
MAX_ROTATION_DEG = 20.0

# Strokes are drawn at this multiple of the output size and box-filtered down: PIL's line drawing is not
# anti-aliased, and aliased 1-px strokes would teach the model staircase artefacts real scans do not have.
_SUPERSAMPLE = 4

Stroke = np.ndarray  # (k, 2) float64 points in unit coordinates, y up
_Builder = Callable[[np.random.Generator], list[Stroke]]


def _seg(x0: float, y0: float, x1: float, y1: float) -> Stroke:
    return np.array([[x0, y0], [x1, y1]], dtype=np.float64)


def _arc(cx: float, cy: float, r: float, deg0: float, deg1: float) -> Stroke:
    # Enough vertices that the polygon stays visually round at the largest radius in supersampled pixels.
    n = max(8, int(abs(deg1 - deg0) / 6))
    t = np.deg2rad(np.linspace(deg0, deg1, n + 1))
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


def _circle(cx: float, cy: float, r: float) -> Stroke:
    return _arc(cx, cy, r, 0.0, 360.0)


def _straightness(rng: np.random.Generator) -> list[Stroke]:
    half = rng.uniform(0.75, 0.95)
    return [_seg(-half, 0.0, half, 0.0)]


def _flatness(rng: np.random.Generator) -> list[Stroke]:
    h = rng.uniform(0.3, 0.45)
    skew = rng.uniform(0.3, 0.45)
    w = 0.9 - skew
    pts = np.array([[-w - skew, -h], [w, -h], [w + skew, h], [-w, h], [-w - skew, -h]])
    return [pts]


def _circularity(rng: np.random.Generator) -> list[Stroke]:
    return [_circle(0.0, 0.0, rng.uniform(0.7, 0.9))]


def _cylindricity(rng: np.random.Generator) -> list[Stroke]:
    # Two parallel tangents to a small circle, slanted like "//": the circle alone would be circularity
    # and the lines alone parallelism, so both parts must stay clearly visible.
    r = rng.uniform(0.45, 0.55)
    ang = np.deg2rad(rng.uniform(55.0, 70.0))
    d = np.array([np.cos(ang), np.sin(ang)])
    normal = np.array([d[1], -d[0]])
    t = np.sqrt(1.0 - r * r) * 0.95
    strokes = [_circle(0.0, 0.0, r)]
    for side in (-1.0, 1.0):
        c = side * r * normal
        strokes.append(np.stack([c - t * d, c + t * d]))
    return strokes


def _perpendicularity(rng: np.random.Generator) -> list[Stroke]:
    base_y = rng.uniform(-0.65, -0.5)
    half = rng.uniform(0.6, 0.75)
    return [_seg(-half, base_y, half, base_y), _seg(0.0, base_y, 0.0, rng.uniform(0.65, 0.8))]


def _parallelism(rng: np.random.Generator) -> list[Stroke]:
    ang = np.deg2rad(rng.uniform(55.0, 70.0))
    gap = rng.uniform(0.22, 0.35)
    half = 0.8
    dx, dy = half * np.cos(ang), half * np.sin(ang)
    return [_seg(x - dx, -dy, x + dx, dy) for x in (-gap, gap)]


def _angularity(rng: np.random.Generator) -> list[Stroke]:
    base_y = rng.uniform(-0.55, -0.4)
    x0 = -0.8
    ang = np.deg2rad(rng.uniform(28.0, 40.0))
    length = rng.uniform(1.35, 1.55)
    tip = (x0 + length * np.cos(ang), base_y + length * np.sin(ang))
    return [
        _seg(x0, base_y, rng.uniform(0.7, 0.8), base_y),
        _seg(x0, base_y, float(tip[0]), float(tip[1])),
    ]


def _position(rng: np.random.Generator) -> list[Stroke]:
    r = rng.uniform(0.5, 0.6)
    arm = rng.uniform(0.85, 0.95)
    return [_circle(0.0, 0.0, r), _seg(-arm, 0.0, arm, 0.0), _seg(0.0, -arm, 0.0, arm)]


def _concentricity(rng: np.random.Generator) -> list[Stroke]:
    outer = rng.uniform(0.8, 0.9)
    return [_circle(0.0, 0.0, outer), _circle(0.0, 0.0, outer * rng.uniform(0.45, 0.55))]


def _symmetry(rng: np.random.Generator) -> list[Stroke]:
    gap = rng.uniform(0.35, 0.5)
    short = rng.uniform(0.4, 0.55)
    long_ = rng.uniform(0.8, 0.9)
    return [_seg(-short, gap, short, gap), _seg(-long_, 0.0, long_, 0.0), _seg(-short, -gap, short, -gap)]


def _profile_of_a_line(rng: np.random.Generator) -> list[Stroke]:
    # An arc open at the bottom; its sweep is kept well short of a circle so it never reads as one.
    r = rng.uniform(0.7, 0.85)
    extra = rng.uniform(-10.0, 15.0)
    return [_arc(0.0, -0.3, r, -extra, 180.0 + extra)]


def _surface_finish(rng: np.random.Generator) -> list[Stroke]:
    bar = rng.uniform(0.55, 0.72)
    top = 0.65
    return [
        np.array(
            [
                [-0.75, rng.uniform(-0.1, 0.05)],
                [-0.4, rng.uniform(-0.72, -0.6)],
                [0.05, top],
                [bar, top],
            ]
        )
    ]


_BUILDERS: dict[str, _Builder] = {
    "straightness": _straightness,
    "flatness": _flatness,
    "circularity": _circularity,
    "cylindricity": _cylindricity,
    "perpendicularity": _perpendicularity,
    "parallelism": _parallelism,
    "angularity": _angularity,
    "position": _position,
    "concentricity": _concentricity,
    "symmetry": _symmetry,
    "profile_of_a_line": _profile_of_a_line,
    "surface_finish": _surface_finish,
}
assert set(_BUILDERS) == set(SYMBOL_CLASSES), "every class needs exactly one builder"


def _draw_polyline(draw: ImageDraw.ImageDraw, pts: np.ndarray, width: int) -> None:
    flat = [(float(x), float(y)) for x, y in pts]
    draw.line(flat, fill=255, width=width, joint="curve")
    # PIL ends lines square; pen-drawn and CAD-plotted strokes have round caps, and square caps at
    # 3 px turn a circle's seam into a visible notch.
    r = width / 2.0
    if width > 2:
        for x, y in (flat[0], flat[-1]):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=255)


def render_symbol(label: str, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """Render one randomly varied symbol of class `label` as a grayscale ("L") image: dark ink on a light
    background, like a scan. All randomness comes from `rng`, so a seeded generator reproduces the image."""
    if label not in _BUILDERS:
        raise ValueError(f"unknown symbol {label!r}; expected one of {', '.join(SYMBOL_CLASSES)}")
    unit = size / 64.0  # stroke widths and blur are specified for a 64-px image and scale with it
    strokes = _BUILDERS[label](rng)

    # Down to ~1/8 of the image so that loose crops (a symbol with a lot of paper around it, or a wide
    # crop the handler pads to a square) still look like something seen in training.
    radius = rng.uniform(0.13, 0.42) * size
    # 1-3 px, but at most a fifth of the radius: a tiny symbol with 3-px strokes is an ink blob nobody
    # could classify (concentric circles fill in), and drawings scale line weight with symbol size anyway.
    stroke_px = rng.uniform(1.0, float(np.clip(radius / unit / 5.0, 1.0, 3.0))) * unit
    aspect = rng.uniform(0.9, 1.1)
    theta = np.deg2rad(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
    # The symbol occupies at most radius*max(aspect) + half a stroke around its centre (all builders stay
    # inside the unit disk), so the centre may wander only within what is left of the canvas.
    reach = radius * max(aspect, 1.0) + stroke_px / 2 + 1.0
    slack = max(0.0, size / 2 - reach)
    cx = size / 2 + rng.uniform(-slack, slack)
    cy = size / 2 + rng.uniform(-slack, slack)

    cos_t, sin_t = np.cos(theta), np.sin(theta)
    transform = radius * np.array([[cos_t, -sin_t], [sin_t, cos_t]]) @ np.diag([aspect, 1.0 / aspect])
    ss = _SUPERSAMPLE
    canvas = Image.new("L", (size * ss, size * ss), 0)  # ink coverage: 255 = ink
    draw = ImageDraw.Draw(canvas)
    width = max(1, round(stroke_px * ss))
    for stroke in strokes:
        stroke = stroke + rng.normal(0.0, 0.015, size=stroke.shape) if len(stroke) <= 4 else stroke
        xy = stroke @ transform.T
        pix = np.stack([cx + xy[:, 0], cy - xy[:, 1]], axis=1) * ss  # image y grows downwards
        _draw_polyline(draw, pix, width)

    # Crops from a feature-control frame often keep bits of the cell border; teach the model to ignore
    # straight lines hugging the image edge. Only drawn where they cannot touch the symbol.
    if rng.random() < 0.3:
        frame_w = max(1, round(rng.uniform(1.0, stroke_px / unit) * unit * ss))
        full = size * ss
        # (room between symbol and edge, vertical?, distance measured from the far edge?) per side
        sides = (
            (cx - reach, True, False),
            (cy - reach, False, False),
            (size - cx - reach, True, True),
            (size - cy - reach, False, True),
        )
        for room, vertical, far in sides:
            if room < 1.5 or rng.random() < 0.4:
                continue
            at = rng.uniform(0.5, room - 0.5) * ss
            pos = full - 1 - at if far else at
            line = [(pos, 0), (pos, full)] if vertical else [(0, pos), (full, pos)]
            draw.line(line, fill=255, width=frame_w)

    for _ in range(int(rng.integers(0, 7))):  # dust and toner specks
        r = rng.uniform(0.4, 1.2) * unit * ss
        x, y = rng.uniform(0, size * ss, size=2)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=255)

    coverage = canvas.resize((size, size), Image.Resampling.BOX)
    if rng.random() < 0.6:
        coverage = coverage.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.8) * unit))
    c = np.asarray(coverage, dtype=np.float32) / 255.0
    background = rng.uniform(205.0, 255.0)
    ink = rng.uniform(0.0, 80.0)
    pixels = background * (1.0 - c) + ink * c
    pixels += rng.normal(0.0, rng.uniform(0.0, 12.0), size=pixels.shape)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), mode="L")


def render_png(label: str, rng: np.random.Generator, size: int = 64) -> bytes:
    """`render_symbol` encoded as PNG, i.e. what a client would upload."""
    buf = io.BytesIO()
    render_symbol(label, rng, size).save(buf, format="PNG")
    return buf.getvalue()


def image_to_pixels(image: Image.Image) -> np.ndarray:
    """The image's gray levels as uint8 (1, H, W), paper high: what the handler's decode hands on.
    A quarter of the bytes of the normalised float input, so it crosses from the intake processes
    to the worker, and from host to GPU, four times cheaper; `pixels_to_input` normalises on the device."""
    # convert() copies even an image that is already grayscale: skip it for "L".
    return np.array(image if image.mode == "L" else image.convert("L"), dtype=np.uint8)[None, :, :]  # writable


def pixels_to_input(pixels: torch.Tensor) -> torch.Tensor:
    """The one definition of the model's input normalisation, shared by training and the handler so they
    cannot drift: uint8 gray levels -> float32 in [0, 1] with ink HIGH. Ink-high makes the blank
    background zero, so zero padding in the convolutions looks like more paper rather than a black border."""
    return 1.0 - pixels.float() / 255.0


def image_to_array(image: Image.Image) -> np.ndarray:
    """What the model sees for `image`, float32 (1, H, W): `pixels_to_input(image_to_pixels(image))`."""
    return pixels_to_input(torch.from_numpy(image_to_pixels(image))).numpy()


def render_dataset(n: int, seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """`n` rendered symbols as (float32 (n, 1, size, size) via `image_to_array`, int64 labels indexing
    SYMBOL_CLASSES). Classes are balanced to within one sample.

    Each image gets its own child of SeedSequence(seed), so the result depends only on (n, seed, size),
    not on numpy's global state, and a different seed gives an independent set (train vs. held-out)."""
    children = np.random.SeedSequence(seed).spawn(n + 1)
    k = len(SYMBOL_CLASSES)
    labels = np.random.default_rng(children[0]).permutation(np.arange(n) % k).astype(np.int64)
    images = np.empty((n, 1, size, size), dtype=np.float32)
    for i, (child, y) in enumerate(zip(children[1:], labels, strict=True)):
        images[i] = image_to_array(render_symbol(SYMBOL_CLASSES[y], np.random.default_rng(child), size))
    return images, labels
