"""Image decoding (torchvision.io, Pillow only as a fallback) and the train/eval transforms (transforms.v2).

Every image becomes uint8 RGB `[3, H, W]`: alpha is composited over white, grey and palette images are expanded,
16-bit images are scaled down, and JPEG EXIF orientation is applied.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import torch
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as F

from mmcli.modalities.image_signal import ImageProblem


class _UsePillow(Exception):
    """torchvision would decode this file wrongly; Pillow decodes it instead."""


def _png_size(head: bytes) -> tuple[int, int] | None:
    """(width, height) of a PNG from its IHDR chunk, which the format requires first: a 24-byte read instead of a
    Pillow open (which cost about as much as decoding a small PNG)."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR" and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    return None


def _past_pillow_limit() -> ImageProblem:
    from PIL import Image

    return ImageProblem(f"more than {2 * (Image.MAX_IMAGE_PIXELS or 0)} pixels, past Pillow's decompression-bomb "
                        "limit; refused")


def _header_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from the file header without decoding pixels, or None if Pillow can't tell.

    Raises ImageProblem when the header alone is past Pillow's own decompression-bomb limit (2x
    `Image.MAX_IMAGE_PIXELS`): that check fires before the size is known to us, and torchvision must not be left to
    allocate such an image."""
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit decides below
            with Image.open(io.BytesIO(data)) as im:
                return im.size
    except Image.DecompressionBombError:
        raise _past_pillow_limit() from None
    except Exception:  # noqa: BLE001 - any failure here is reported by the real decoder below
        return None


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageProblem(f"{width}x{height} pixels exceeds the limit of {max_pixels} (data.max_image_pixels)")


def _needs_pil(head: bytes) -> bool:
    """Files torchvision decodes wrongly with ImageReadMode.UNCHANGED: palette PNGs come back as raw palette
    indices (one grey channel), and CMYK JPEGs are told apart from RGBA by content, not by file name."""
    if head.startswith(b"\x89PNG\r\n\x1a\n") and len(head) > 25:
        return head[25] == 3  # IHDR colour type 3: indexed colour
    return False


def _reason(exc: BaseException) -> str:
    """A one-line reason without torchvision's C++ source location ("decode_png, /.../decode_png.cpp:79, ...")."""
    text = str(exc).split("\n")[0]
    text = re.sub(r"^[\w:()]+, \S+\.(?:cpp|h):\d+, ", "", text)
    text = text.split(". ")[0].rstrip(".")  # the first sentence is the reason; the rest is advice for developers
    return text[:160] or type(exc).__name__


def _to_rgb(img: torch.Tensor) -> torch.Tensor:
    """[C, H, W] uint8 with C in 1..4 -> [3, H, W] uint8; alpha composited over white."""
    c = img.shape[0]
    if c in (2, 4):
        color, alpha = img[:-1].float(), img[-1:].float() / 255.0
        img = (color * alpha + 255.0 * (1.0 - alpha)).round().to(torch.uint8)
        c -= 1
    if c == 1:
        img = img.expand(3, -1, -1)
    return img.contiguous()


def _decode_with_pil(data: bytes) -> torch.Tensor:
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as im:
        im = ImageOps.exif_transpose(im)
        im = im.convert("RGBA") if im.mode in ("RGBA", "LA", "P", "PA") else im.convert("RGB")
        arr = np.asarray(im)
    return _to_rgb(torch.from_numpy(arr.copy()).permute(2, 0, 1))


def load_image(path: str | Path, max_pixels: int = 50_000_000, min_side: int | None = None) -> torch.Tensor:
    """Decode a file to uint8 RGB `[3, H, W]` (`min_side`: see `decode_bytes`). Raises ImageProblem with a
    readable reason."""
    path = Path(path)
    if not path.is_file():
        raise ImageProblem(f"file not found: {path}" if not path.exists() else f"not a regular file: {path}")
    return decode_bytes(path.read_bytes(), max_pixels, min_side)


def _jpeg_to_scale(data: bytes, size: tuple[int, int] | None, min_side: int | None) -> bool:
    """Is this a JPEG at least twice `min_side` on both sides (so libjpeg can decode it at a reduced scale)?"""
    return bool(min_side and size and data[:3] == b"\xff\xd8\xff" and min(size) >= 2 * min_side)


def decode_bytes(data: bytes, max_pixels: int = 50_000_000, min_side: int | None = None) -> torch.Tensor:
    """Decode an encoded image held in memory (a file's content, or a Parquet cell) to uint8 RGB `[3, H, W]`, with
    the same checks as a file: pixel limits before decoding, truncated data, odd modes. Raises ImageProblem.

    `min_side`: the caller needs both sides only this long; a JPEG at least twice as large is then decoded at a
    reduced scale by Pillow's `draft`, exactly as prediction decodes it (mmcli/modalities/image_signal.py), so the
    cache and a prediction see the same pixels."""
    if not data:
        raise ImageProblem("empty file (0 bytes)")
    size = _png_size(data[:24])
    if size:  # keep Pillow's own decompression-bomb ceiling too, whatever data.max_image_pixels says
        from PIL import Image

        if Image.MAX_IMAGE_PIXELS and size[0] * size[1] > 2 * Image.MAX_IMAGE_PIXELS:
            raise _past_pillow_limit()
    else:
        size = _header_size(data)
    if size:
        _check_pixels(size[0], size[1], max_pixels)
    if _jpeg_to_scale(data, size, min_side):
        from mmcli.modalities.image_signal import decode_rgb

        rgb = decode_rgb(data, max_pixels, min_side)
        return torch.from_numpy(rgb if rgb.flags.writeable else rgb.copy()).permute(2, 0, 1).contiguous()
    try:
        if _needs_pil(data[:32]):
            raise _UsePillow("palette image")
        raw = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        img = decode_image(raw, mode=ImageReadMode.UNCHANGED, apply_exif_orientation=True)
        if img.dtype != torch.uint8:  # 16-bit PNGs decode to uint16
            img = F.to_dtype(img, torch.uint8, scale=True)
        if img.ndim != 3 or img.shape[0] not in (1, 2, 3, 4):
            raise RuntimeError(f"unexpected shape {tuple(img.shape)}")
        if img.shape[0] == 4 and data[:3] == b"\xff\xd8\xff":
            raise _UsePillow("CMYK JPEG")  # 4-channel JPEG is CMYK, not RGBA: let Pillow convert it
        img = _to_rgb(img)
    except Exception as first:  # noqa: BLE001 - torchvision lacks some formats (BMP, TIFF, CMYK); try Pillow
        try:
            img = _decode_with_pil(data)
        except Exception as second:  # noqa: BLE001
            reason = _reason(second if isinstance(first, _UsePillow) else first)
            raise ImageProblem(f"cannot decode image ({reason}); is the file truncated or not an image?") from None
    _check_pixels(img.shape[2], img.shape[1], max_pixels)  # formats whose header Pillow could not read
    return img


def square_image(img: torch.Tensor, size: int, mode: str = "crop") -> torch.Tensor:
    """uint8 `[3, H, W]` -> uint8 `[3, size, size]`: shorter side to `size`, then centre crop (`mode` crop), or
    longer side to `size`, centred on white (`mode` pad: `data.resize`).

    With Pillow (mmcli/modalities/image_signal.py), the resize every prediction path uses, so that the cache a
    model trains on and a torch-free bundle see the same pixels."""
    if img.shape[-2:] == (size, size):
        return img
    from mmcli.modalities.image_signal import to_square

    rgb = to_square(np.ascontiguousarray(img.permute(1, 2, 0).numpy()), size, mode)
    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))


def normalize(batch: torch.Tensor, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """uint8 `[B, 3, H, W]` -> float `[B, 3, H, W]`: (x/255 - mean) / std."""
    x = batch.float().div_(255.0)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def random_zoom_shift_flip(x: torch.Tensor, min_scale: float = 0.8) -> torch.Tensor:
    """Per-image random zoom-in (crop of side `min_scale`..1), shift and horizontal flip, for a whole batch in one
    `grid_sample` call (a per-image transforms.v2 loop costs ~10x more). float `[B, C, H, W]` -> same shape."""
    b = x.shape[0]
    scale = torch.empty(b, device=x.device).uniform_(min_scale, 1.0)
    shift = (torch.rand(b, 2, device=x.device) * 2 - 1) * (1 - scale).unsqueeze(1)
    flip = torch.where(torch.rand(b, device=x.device) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = scale * flip, scale
    theta[:, :, 2] = shift
    grid = torch.nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    return torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

