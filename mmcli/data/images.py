"""Decode every image of a column once, in parallel, straight into a memory-mapped uint8 array."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from mmcli.progress import make_progress
from mmcli.vision import ImageProblem, load_image, resize_crop


class _DecodeSet(Dataset):
    """Item i -> (i, uint8 [3, S, S] or None, problem or None). Errors are returned, not raised, so one bad
    file never stops the others."""

    def __init__(self, paths: list[Path | None], size: int, max_pixels: int) -> None:
        self.paths, self.size, self.max_pixels = paths, size, max_pixels

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor | None, str | None]:
        path = self.paths[i]
        if path is None:
            return i, None, None
        try:
            return i, resize_crop(load_image(path, self.max_pixels), self.size), None
        except ImageProblem as exc:
            return i, None, str(exc)
        except Exception as exc:  # noqa: BLE001 - a decoder crash is a bad row, not a failed run
            return i, None, f"cannot decode image ({type(exc).__name__}: {exc})"


def _collate(items: list) -> list:
    return items


def decode_column(
    paths: list[Path | None], size: int, out_file: Path, workers: int, max_pixels: int, label: str
) -> tuple[np.ndarray, dict[int, str]]:
    """Decode `paths` (None = skip) into `out_file` as uint8 `[N, 3, size, size]`.

    Returns (memmap opened read-only, {index: problem}). Rows that fail or are skipped stay zero.
    Images are written with `pwrite` at their offsets rather than through a writable memory map: written pages then
    sit in the page cache instead of this process's resident memory, which stays flat however long the manifest.
    """
    n = len(paths)
    # a name of our own: two processes preprocessing the same CSV must not write into one temporary file
    tmp = out_file.with_name(f".{out_file.stem}.{os.getpid()}.tmp.npy")
    try:
        header = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, size, size))
        offset = header.offset  # bytes of .npy header before row 0
        del header
        with open(tmp, "r+b") as fh:
            problems = _decode_into(fh.fileno(), offset, paths, size, workers, max_pixels, label)
            os.fsync(fh.fileno())
        tmp.replace(out_file)
    finally:
        tmp.unlink(missing_ok=True)  # interrupted: leave no half-written array behind
    return np.load(out_file, mmap_mode="r"), problems


def _decode_into(fd: int, offset: int, paths: list[Path | None], size: int, workers: int, max_pixels: int,
                 label: str) -> dict[int, str]:
    """Decode every path and write row i (uint8 `[3, size, size]`) at `offset + i * row bytes` of file `fd`."""
    problems: dict[int, str] = {}
    row_bytes = 3 * size * size
    loader = DataLoader(
        _DecodeSet(paths, size, max_pixels), batch_size=64, num_workers=workers, collate_fn=_collate
    )
    with make_progress() as progress:
        task = progress.add_task(f"decode {label}", total=len(paths))
        for batch in loader:
            for i, img, problem in batch:
                if img is not None:
                    os.pwrite(fd, np.ascontiguousarray(img.numpy()), offset + i * row_bytes)
                elif problem is not None:
                    problems[i] = problem
            progress.advance(task, len(batch))
    return problems
