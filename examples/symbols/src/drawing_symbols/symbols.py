"""The example model: a small CNN that names the GD&T symbol in a cropped image, and its handler.

The handler is the whole contract with the runtime (see worker/handler.py): it never acks, batches or
retries, it only turns bytes into a tensor and a batch into JSON-ready dicts, and signals failure through
the exception classes in worker/errors.py.
"""

from __future__ import annotations

import hashlib
import io
import pathlib
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageOps
from torch import nn

from asyncinfer.worker.errors import InvalidInputError, TransientError
from drawing_symbols.fastpng import decode_gray8, plain_gray8_size
from drawing_symbols.render import SYMBOL_CLASSES, image_to_pixels, pixels_to_input

#: Bumped when the checkpoint layout or the input normalisation changes; part of `version`, and a
#: checkpoint with another value is refused rather than silently mis-read.
CHECKPOINT_FORMAT = 1
DEFAULT_WEIGHTS = pathlib.Path(__file__).with_name("symbols.pt")
DEFAULT_WIDTHS: tuple[int, ...] = (8, 16, 32, 64, 128)

# Formats a drawing crop plausibly arrives in (TIFF because scanned drawing archives are mostly TIFF).
# Pillow would otherwise also try ~40 exotic decoders on untrusted bytes, each one more attack surface;
# anything else gets a clear "send PNG or JPEG" error.
_WANTED_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF", "TIFF")
Image.init()
_FORMATS = tuple(f for f in _WANTED_FORMATS if f in Image.OPEN)


_EXIF_ORIENTATION = 0x0112


class SymbolNet(nn.Module):
    """Conv-BN-ReLU blocks, each halving the resolution, then global average pooling.

    The global pooling (instead of a flattening classifier) keeps the parameter count small and makes the
    prediction insensitive to where in the crop the symbol sits, which the renderer varies on purpose."""

    def __init__(self, num_classes: int = len(SYMBOL_CLASSES), widths: tuple[int, ...] = DEFAULT_WIDTHS):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 1
        for i, c_out in enumerate(widths):
            layers += [
                # bias=False: the following BatchNorm has its own shift, a conv bias would be redundant.
                nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.2)
        self.classifier = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.features(x)).flatten(1)
        return self.classifier(self.dropout(x))


def _file_version(data: bytes) -> str:
    return f"symbols-v{CHECKPOINT_FORMAT}-{hashlib.sha256(data).hexdigest()[:8]}"


class SymbolHandler:
    """Serves SymbolNet. Implements asyncinfer.worker.handler.ModelHandler."""

    name = "symbols"

    def __init__(self, weights_path: pathlib.Path | None = None, max_pixels: int = 16_000_000) -> None:
        self.weights_path = weights_path or DEFAULT_WEIGHTS
        self.max_pixels = max_pixels
        try:
            # Read the bytes once and both hash and deserialise those same bytes, so `version` always
            # names the weights that actually answer, even if the file is replaced while we start.
            data = self.weights_path.read_bytes()
        except FileNotFoundError:
            raise FileNotFoundError(
                f"symbol model weights not found at {self.weights_path}; "
                "train them with `python -m drawing_symbols.train`"
            ) from None
        self.version: str = _file_version(data)
        # weights_only=True: a checkpoint is data, never code; a tampered file cannot run anything.
        checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if checkpoint.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(
                f"{self.weights_path} has checkpoint format {checkpoint.get('format')!r}, this code reads "
                f"{CHECKPOINT_FORMAT}; retrain with `python -m drawing_symbols.train`"
            )
        # The file, not SYMBOL_CLASSES, is the truth about what the logits mean: the two can only differ
        # if the code changed after training, and then the file's list is still the right one to report.
        self.classes: tuple[str, ...] = tuple(checkpoint["classes"])
        self.input_size: int = int(checkpoint["input_size"])
        self._widths: tuple[int, ...] = tuple(int(w) for w in checkpoint["widths"])
        self._state_dict: dict[str, torch.Tensor] | None = checkpoint["state_dict"]
        self.metadata: dict[str, Any] = dict(checkpoint.get("train", {}))
        self.device = torch.device("cpu")
        self.model: SymbolNet | None = None

    def load(self, device: torch.device) -> None:
        if self.model is None:
            assert self._state_dict is not None
            model = SymbolNet(num_classes=len(self.classes), widths=self._widths)
            model.load_state_dict(self._state_dict)  # strict: a missing or extra tensor is an error
            self.model = model.eval()
            self._state_dict = None  # the model holds its own copy; don't keep two in host memory
        self.model.to(device)
        self.device = device

    def decode(self, payload: bytes) -> torch.Tensor:
        """PNG/JPEG/... bytes of any size -> uint8 (1, S, S) gray levels, S = the trained input size;
        `predict` normalises them (`pixels_to_input`) on the model's device.

        A plain 8-bit grayscale PNG, the common crop, is decoded by drawing_symbols.fastpng (about a
        quarter of the CPU of Pillow's path for a 64 px crop); every other input, and one fastpng
        refuses, goes through `decode_with_pillow`, which gives the same pixels and words the errors."""
        size = plain_gray8_size(payload)
        if size is not None and 1 <= size[0] * size[1] <= self.max_pixels:
            try:
                pixels = decode_gray8(payload, *size)
            except Exception:  # corrupt or truncated: Pillow's path below says what is wrong
                pass
            else:
                s = self.input_size
                if pixels.shape[1:] == (s, s):
                    return torch.from_numpy(pixels)
                return torch.from_numpy(image_to_pixels(self._square(Image.fromarray(pixels[0], mode="L"))))
        return self.decode_with_pillow(payload)

    def decode_with_pillow(self, payload: bytes) -> torch.Tensor:
        """`decode` for every format Pillow reads (see `_FORMATS`).

        Cheap checks first: Image.open only parses the header, so absurd dimensions are refused before a
        single pixel is decompressed (a few KB of PNG can claim gigapixels)."""
        try:
            # Pillow raises DecompressionBombError itself only past 2x its global MAX_IMAGE_PIXELS (~179 MP;
            # below that it merely warns); the per-handler limit checked right after is the real policy.
            # (Its warning is left alone: silencing it needs warnings.catch_warnings, which is not thread
            # safe, and the runtime decodes on several threads.)
            image = Image.open(io.BytesIO(payload), formats=_FORMATS)
        except Image.DecompressionBombError as exc:
            raise self._too_large(str(exc)) from None
        except MemoryError:
            raise
        except Exception as exc:  # UnidentifiedImageError mostly; plugins also raise struct.error & co.
            raise InvalidInputError(
                "not_an_image",
                f"the input ({len(payload)} bytes) is not an image this model can read ({exc}); "
                f"send the symbol as PNG or JPEG bytes (accepted formats: {', '.join(_FORMATS)})",
            ) from None
        width, height = image.size
        if width * height > self.max_pixels or width < 1 or height < 1:
            raise self._too_large(f"the image is {width}x{height}")

        try:
            if image.format == "JPEG":
                # Let libjpeg downscale by up to 8x while decoding (DCT scaling): a 16 MP photo of a drawing
                # then costs a fraction of the memory and time, and we resize to a few dozen pixels anyway.
                image.draft("L", (self.input_size, self.input_size))
            # Phone photos store rotation in EXIF, not pixels. exif_transpose copies the image even
            # when there is nothing to turn (profiled: decode ~90 -> ~77 us per 64 px PNG without it).
            upright: Image.Image = image
            if image.getexif().get(_EXIF_ORIENTATION, 1) != 1:
                upright = ImageOps.exif_transpose(image)
            gray = self._flatten_to_gray(upright)
        except MemoryError:
            raise
        except Exception as exc:
            # Whatever a decoder raises on these bytes it will raise again on every redelivery, so this is
            # an invalid input (ack with an error), not a transient failure worth a retry.
            raise InvalidInputError(
                "not_an_image",
                f"the image could not be decoded, it looks truncated or corrupt ({exc}); "
                "re-export it and send the complete PNG or JPEG file",
            ) from None
        return torch.from_numpy(image_to_pixels(self._square(gray)))

    def _too_large(self, detail: str) -> InvalidInputError:
        return InvalidInputError(
            "image_too_large",
            f"{detail}, more than the {self.max_pixels:,} pixels this model accepts; "
            f"crop the image to the symbol (the model looks at {self.input_size}x{self.input_size} "
            "pixels) and send that crop",
        )

    @staticmethod
    def _flatten_to_gray(image: Image.Image) -> Image.Image:
        # Transparent PNGs (common for symbols exported from CAD) usually store black RGB under alpha 0;
        # a plain convert("L") would turn the whole background into ink. Composite onto white paper first.
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(paper, rgba).convert("L")
        if image.mode.startswith("I") or image.mode == "F":
            # 16-bit scans (PNG/TIFF "I;16", or "I") and float TIFFs: Pillow's convert("L") clips instead
            # of rescaling, which turns a 16-bit page entirely white. Rescale from the range the data uses.
            a = np.asarray(image, dtype=np.float64)
            top = float(a.max(initial=0.0))
            full = 65535.0 if image.mode.startswith("I;16") or top > 255.0 else 255.0
            if image.mode == "F" and top <= 1.0:
                full = 1.0
            return Image.fromarray(np.clip(np.rint(a * (255.0 / full)), 0, 255).astype(np.uint8), mode="L")
        return image if image.mode == "L" else image.convert("L")

    def _square(self, gray: Image.Image) -> Image.Image:
        # Pad to a square with paper colour before resizing: squashing a wide crop would turn circles into
        # ellipses and slopes into other slopes, which is exactly what separates several classes.
        w, h = gray.size
        if w != h:
            side = max(w, h)
            a = np.asarray(gray)
            # The crop's border is almost all paper; its median ignores the odd stroke or speck there.
            paper = int(np.median(np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])))
            canvas = Image.new("L", (side, side), paper)
            canvas.paste(gray, ((side - w) // 2, (side - h) // 2))
            gray = canvas
        s = self.input_size
        # BOX averages every source pixel when shrinking, so thin strokes fade instead of vanishing
        # between samples; when the size already matches PIL returns an identical copy (training path).
        if gray.size == (s, s):
            return gray  # PIL's resize would return an identical copy: skip the copy
        return gray.resize((s, s), Image.Resampling.BOX if gray.width > s else Image.Resampling.BILINEAR)

    def predict(self, batch: torch.Tensor) -> list[dict[str, Any]]:
        if self.model is None:
            raise RuntimeError("SymbolHandler.predict called before load()")
        if batch.dtype != torch.uint8:
            # Normalising twice would silently ruin every answer: refuse anything but decode's output.
            raise TypeError(f"predict takes decode's uint8 gray levels, got {batch.dtype}; see pixels_to_input")
        try:
            with torch.inference_mode():
                if self.device.type == "cuda":
                    # Pinned host memory lets the copy run asynchronously (DMA) instead of through a
                    # staging buffer; the batch is tiny, but the runtime may overlap it with decoding.
                    src = batch if batch.is_pinned() else batch.pin_memory()
                    x = src.to(self.device, non_blocking=True)
                else:
                    x = batch.to(self.device)
                probs = torch.softmax(self.model(pixels_to_input(x)), dim=1)
                k = min(3, probs.shape[1])
                top_p, top_i = probs.topk(k, dim=1)
                # One device->host transfer for the whole batch instead of a sync per item.
                top_p_l: list[list[float]] = top_p.cpu().tolist()
                top_i_l: list[list[int]] = top_i.cpu().tolist()
        except torch.cuda.OutOfMemoryError as exc:
            torch.cuda.empty_cache()  # give the retry (possibly with a smaller batch) a clean allocator
            raise TransientError(f"GPU out of memory for a batch of {len(batch)}: {exc}") from exc
        results: list[dict[str, Any]] = []
        for ps, idx in zip(top_p_l, top_i_l, strict=True):
            top3 = [{"label": self.classes[i], "score": p} for p, i in zip(ps, idx, strict=True)]
            results.append({"label": top3[0]["label"], "confidence": ps[0], "top3": top3})
        return results


def build_handler() -> SymbolHandler:
    """Factory the worker resolves from "drawing_symbols.symbols:build_handler"."""
    return SymbolHandler()
