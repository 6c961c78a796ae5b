"""Image preparation for one picture at prediction time, in numpy and Pillow only (no torch): `mm predict` on a run
folder and the torch-free ONNX bundle runtime both call these, so their inputs are identical by construction.

The steps mirror the cache (mmcli/vision.py decodes with torchvision there, and calls `decode_rgb` here for a JPEG
large enough to decode at a reduced scale): decode, EXIF orientation, alpha over white, grey and palette to RGB;
shorter side to `data.image_size` (bilinear, antialiased) and a centre crop; then the encoder's own size and
normalisation.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np


class ImageProblem(ValueError):
    """A file that cannot be used as an image; the message says why."""


class ImageTooLarge(ImageProblem):
    """An image past the pixel limit or Pillow's decompression-bomb guard."""


def _read(source: str | Path | bytes) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    path = Path(source)
    if not path.is_file():
        raise ImageProblem(f"file not found: {path}" if not path.exists() else f"not a regular file: {path}")
    return path.read_bytes()


def decode_rgb(source: str | Path | bytes, max_pixels: int = 50_000_000, min_side: int | None = None) -> np.ndarray:
    """An image file or its bytes -> uint8 RGB `[H, W, 3]`; raises ImageProblem (empty, too many pixels, not an
    image).

    `min_side`: the picture is only needed with both sides at least this long, so a JPEG at least twice as large
    is decoded at 1/2, 1/4 or 1/8 of its size (`draft`: libjpeg scales while it decodes, skipping most of the
    inverse DCT work): a phone photo decodes several times faster (benchmarks/jpeg_draft.py)."""
    from PIL import Image, ImageOps

    data = _read(source)
    if not data:
        raise ImageProblem("empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides below
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
                if w * h > max_pixels:
                    raise ImageTooLarge(f"{w}x{h} pixels exceeds the limit of {max_pixels} (data.max_image_pixels)")
                if min_side and im.format == "JPEG":
                    im.draft(None, (min_side, min_side))  # a no-op below 2x: the scale is a whole power of 2
                im = ImageOps.exif_transpose(im)
                im = im.convert("RGBA") if im.mode in ("RGBA", "LA", "P", "PA") else im.convert("RGB")
                arr = np.asarray(im)
    except ImageProblem:
        raise
    except Image.DecompressionBombError:
        raise ImageTooLarge("past Pillow's decompression-bomb limit; refused") from None
    except Exception as exc:  # noqa: BLE001 - any decoder failure is a reason, not a crash
        raise ImageProblem(f"cannot decode image ({str(exc)[:120]}); is the file truncated or not an image?") from None
    if arr.shape[-1] == 4:  # alpha composited over white, as the cache does
        alpha = arr[..., 3:].astype(np.float32) / 255.0
        arr = np.round(arr[..., :3] * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
    return np.ascontiguousarray(arr)


RESIZE_MODES = ("crop", "pad")


def resize_crop(rgb: np.ndarray, size: int) -> np.ndarray:
    """uint8 `[H, W, 3]` -> uint8 `[size, size, 3]`: shorter side to `size` (bilinear), then a centre crop."""
    from PIL import Image

    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return rgb
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    im = Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR)
    left, top = (nw - size) // 2, (nh - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def resize_pad(rgb: np.ndarray, size: int) -> np.ndarray:
    """uint8 `[H, W, 3]` -> uint8 `[size, size, 3]`: longer side to `size` (bilinear), centred on white (the colour
    transparent pixels get, so an icon's background simply goes on)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    if (h, w) == (size, size):
        return rgb
    scale = size / max(h, w)
    nw, nh = min(size, max(1, round(w * scale))), min(size, max(1, round(h * scale)))
    canvas = Image.new("RGB", (size, size), (255, 255, 255))
    canvas.paste(Image.fromarray(rgb).resize((nw, nh), Image.BILINEAR), ((size - nw) // 2, (size - nh) // 2))
    return np.asarray(canvas)


def to_square(rgb: np.ndarray, size: int, mode: str = "crop") -> np.ndarray:
    """uint8 `[H, W, 3]` -> uint8 `[size, size, 3]` by `mode` (`data.resize`: crop or pad)."""
    if mode == "crop":
        return resize_crop(rgb, size)
    if mode == "pad":
        return resize_pad(rgb, size)
    raise ValueError(f"unknown resize mode {mode!r}; valid: {', '.join(RESIZE_MODES)}")


def to_input(rgb: np.ndarray, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """uint8 `[S, S, 3]` -> float32 `[1, 3, size, size]`: resized to the encoder's size, (x/255 - mean) / std."""
    from PIL import Image

    if rgb.shape[0] != size:
        rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))
    x = rgb.astype(np.float32).transpose(2, 0, 1)[None] / 255.0
    return ((x - np.asarray(mean, np.float32)[:, None, None]) / np.asarray(std, np.float32)[:, None, None])


def prepare(source: str | Path | bytes, cache_size: int, size: int, mean, std,
            max_pixels: int = 50_000_000, resize: str = "crop") -> np.ndarray:
    """One picture -> the encoder's input float32 `[1, 3, size, size]`; `resize`: `data.resize`."""
    square = to_square(decode_rgb(source, max_pixels, min_side=cache_size), cache_size, resize)
    return to_input(square, size, mean, std).astype(np.float32)
