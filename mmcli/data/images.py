"""Decode every image of a column once, in parallel, straight into a memory-mapped uint8 array. Pictures come from
files (one path per row) or from bytes stored in a Parquet file (mmcli/data/parquet.py), through the same checks."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info

from mmcli.progress import make_progress
from mmcli.vision import ImageProblem, decode_bytes, load_image, square_image

Item = tuple[int, torch.Tensor | None, str | None]


def _decode_one(i: int, load: Callable[[], torch.Tensor], size: int, resize: str = "crop") -> Item:
    """(i, uint8 [3, size, size], None) or (i, None, reason): errors are returned, not raised, so one bad picture
    never stops the others."""
    try:
        return i, square_image(load(), size, resize), None
    except ImageProblem as exc:
        return i, None, str(exc)
    except Exception as exc:  # noqa: BLE001 - a decoder crash is a bad row, not a failed run
        return i, None, f"cannot decode image ({type(exc).__name__}: {exc})"


class _DecodeSet(Dataset):
    """Item i -> (i, uint8 [3, S, S] or None, problem or None). Errors are returned, not raised, so one bad
    file never stops the others."""

    def __init__(self, paths: list[Path | None], size: int, max_pixels: int, resize: str = "crop") -> None:
        self.paths, self.size, self.max_pixels, self.resize = paths, size, max_pixels, resize

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Item:
        path = self.paths[i]
        if path is None:
            return i, None, None
        return _decode_one(i, partial(load_image, path, self.max_pixels, self.size), self.size, self.resize)


class _BlobDecodeSet(IterableDataset):
    """The same items from an image column stored in a Parquet file (a BlobColumn). Workers take row groups in
    turn, each reading only its own groups' bytes, so no process holds more than one row group of pictures."""

    def __init__(self, blob, root: Path, size: int, max_pixels: int, resize: str = "crop") -> None:
        self.blob, self.root, self.size, self.max_pixels, self.resize = blob, root, size, max_pixels, resize

    def __iter__(self) -> Iterator[Item]:
        from mmcli.data.parquet import iter_images

        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info else (0, 1)
        for group in range(worker, len(self.blob.groups), workers):
            for i, data, path, error in iter_images(self.blob, group, self.root):
                if error:
                    yield i, None, error
                elif data is not None:
                    yield (i, None, "image bytes are empty (0 bytes)") if not data else \
                        _decode_one(i, partial(decode_bytes, data, self.max_pixels, self.size), self.size, self.resize)
                elif path is not None:
                    yield _decode_one(i, partial(load_image, path, self.max_pixels, self.size), self.size, self.resize)
                else:
                    yield i, None, None


def _collate(items: list) -> list:
    return items


def decode_column(
    paths: list[Path | None], size: int, out_file: Path, workers: int, max_pixels: int, label: str,
    blob=None, root: Path | None = None, resize: str = "crop",
) -> tuple[np.ndarray, dict[int, str]]:
    """Decode `paths` (None = skip) into `out_file` as uint8 `[N, 3, size, size]`; with `blob` (a BlobColumn of
    N rows) decode its stored pictures instead (`root`: the folder its path-only rows resolve against). `resize`:
    how each becomes a square (`data.resize`).

    Returns (memmap opened read-only, {index: problem}). Rows that fail or are skipped stay zero.
    Images are written with `pwrite` at their offsets rather than through a writable memory map: written pages then
    sit in the page cache instead of this process's resident memory, which stays flat however long the manifest.
    """
    n = len(blob.has_bytes) if blob is not None else len(paths)
    # a name of our own: two processes preprocessing the same CSV must not write into one temporary file
    tmp = out_file.with_name(f".{out_file.stem}.{os.getpid()}.tmp.npy")
    try:
        header = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, 3, size, size))
        offset = header.offset  # bytes of .npy header before row 0
        del header
        with open(tmp, "r+b") as fh:
            dataset = _BlobDecodeSet(blob, root, size, max_pixels, resize) if blob is not None else \
                _DecodeSet(paths, size, max_pixels, resize)
            problems = _decode_into(fh.fileno(), offset, dataset, n, size, workers, label)
            os.fsync(fh.fileno())
        tmp.replace(out_file)
    finally:
        tmp.unlink(missing_ok=True)  # interrupted: leave no half-written array behind
    return np.load(out_file, mmap_mode="r"), problems


def _decode_into(fd: int, offset: int, dataset: Dataset, n: int, size: int, workers: int,
                 label: str) -> dict[int, str]:
    """Decode every item of `dataset` (n rows) and write row i (uint8 `[3, size, size]`) at
    `offset + i * row bytes` of file `fd`."""
    problems: dict[int, str] = {}
    row_bytes = 3 * size * size
    loader = DataLoader(dataset, batch_size=64, num_workers=workers, collate_fn=_collate)
    with make_progress() as progress:
        task = progress.add_task(f"decode {label}", total=n)
        for batch in loader:
            for i, img, problem in batch:
                if img is not None:
                    os.pwrite(fd, np.ascontiguousarray(img.numpy()), offset + i * row_bytes)
                elif problem is not None:
                    problems[i] = problem
            progress.advance(task, len(batch))
    return problems
