"""Image columns: file paths (or pictures stored in a Parquet file), decoded once into uint8 `[N, 3, S, S]`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmcli.modalities.base import Modality, register

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
FORMAT_VERSION = 2  # bump when decoding or resizing changes, so cached pixels are rebuilt


@dataclass
class ImageSpec:
    """What an image encoder wants: its input size and normalisation."""

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


def looks_like_paths(values: list[str], extensions: tuple[str, ...]) -> bool:
    """At least 80 % of the filled cells end with one of `extensions`."""
    filled = [v for v in values if v]
    return bool(filled) and sum(v.lower().endswith(extensions) for v in filled) >= 0.8 * len(filled)


class Image(Modality):
    kind = "image"
    path_cells = True
    augments = True
    views = ("flip", "gray")
    empty_what = "image path"

    def view(self, name: str, x: Any) -> Any:
        """`[B, 3, S, S]` normalised images -> mirrored left to right (flip), or their luma in all three channels
        (gray: the colours gone, shapes kept; on the normalised values, exact where mean and std are the same for
        every channel, as EfficientNet's are)."""
        if name == "flip":
            return x.flip(-1)
        if name == "gray":
            luma = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
            return luma.unsqueeze(1).expand_as(x).contiguous()
        return super().view(name, x)

    def detect(self, values: list[str], column: str) -> bool:
        return looks_like_paths(values, IMAGE_EXTENSIONS)

    def fingerprint(self, man: Any, inp: dict, dc: Any) -> str:
        col = inp["name"]
        # the manifest's folder too: relative cells name different files when the same text sits elsewhere
        mode = "" if dc.resize == "crop" else f"|{dc.resize}"  # crop keeps the fingerprints caches already have
        h = hashlib.sha256(f"v{FORMAT_VERSION}|{dc.image_size}{mode}|{dc.max_image_pixels}|{col}|"
                           f"{man.root.resolve()}".encode())
        blob = man.blobs.get(col)
        if blob is not None:  # pictures stored in the file: the hash of their bytes, taken while reading
            h.update(blob.digest.encode())
        for i, row in enumerate(man.rows):
            cell = row.get(col, "")
            h.update(cell.encode() + b"\0")
            if cell and (blob is None or not blob.has_bytes[i]):
                try:
                    st = man.resolve(cell).stat()
                    h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
                except OSError:
                    h.update(b"missing")
        return h.hexdigest()[:16]

    def file_name(self, inp: dict) -> str:
        return f"images_{inp['name']}.npy"

    def build(self, man, inp, state, dc, folder: Path, reuse):
        from mmcli.data.images import decode_column

        col = inp["name"]
        if reuse is not None:
            return reuse, {}
        blob = man.blobs.get(col)
        paths = [] if blob else [man.resolve(r[col]) if r[col] else None for r in man.rows]
        return decode_column(paths, dc.image_size, folder / self.file_name(inp), dc.workers, dc.max_image_pixels,
                             col, blob, man.root, dc.resize)

    def batch(self, array, pos, spec: ImageSpec, device, augment):
        """uint8 rows -> float `[B, 3, size, size]`, normalised, randomly zoomed / shifted / flipped (`augment`)."""
        import torch

        from mmcli.vision import normalize, random_zoom_shift_flip

        x = torch.from_numpy(np.ascontiguousarray(array[pos]))
        if str(device).startswith("cuda"):  # page-locked memory lets the copy to the GPU run asynchronously
            x = x.pin_memory()
        if x.shape[-1] != spec.size:
            from torchvision.transforms.v2 import functional as F

            x = F.resize(x, [spec.size, spec.size], antialias=True)
        x = normalize(x.to(device, non_blocking=True), spec.mean, spec.std)
        if augment:
            x = random_zoom_shift_flip(x)
        return x.contiguous(memory_format=torch.channels_last)

    def prepare(self, values, inp, state, dc, spec: ImageSpec) -> np.ndarray:
        """An image path (or its bytes) -> float32 `[1, 3, size, size]`, prepared as the cache and `batch` prepare
        it, with Pillow (mmcli/modalities/image_signal.py)."""
        from mmcli.errors import DataError, TooLarge
        from mmcli.modalities.image_signal import ImageProblem, ImageTooLarge, prepare

        value = values[inp["name"]]
        try:
            return prepare(value, dc.image_size, spec.size, spec.mean, spec.std, dc.max_image_pixels, dc.resize)
        except ImageProblem as exc:
            where = inp["name"] if isinstance(value, (bytes, bytearray)) else value
            raise (TooLarge if isinstance(exc, ImageTooLarge) else DataError)(f"{where}: {exc}") from None

    def empty(self, inp, state, dc) -> np.ndarray:
        return np.zeros((1, 3, dc.image_size, dc.image_size), dtype=np.uint8)

    def encoder_args(self, inp, state, dc) -> dict:
        return {"image_size": dc.image_size}

    def spec(self, encoder) -> ImageSpec:
        return ImageSpec(encoder.image_size, tuple(encoder.mean), tuple(encoder.std))

    def spec_from_dict(self, saved: dict | None) -> ImageSpec:
        return ImageSpec(int(saved["size"]), tuple(saved["mean"]), tuple(saved["std"]))

    def table_key(self, cache, inp) -> str:
        return cache.meta["fingerprints"][inp["name"]]


register(Image())
