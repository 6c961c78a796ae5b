"""Atomic file writes: write to a temporary name in the same folder, flush, fsync, rename.

A crash mid-write leaves the previous file intact, never a half-written one.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mmcli.errors import MMError


class WriteFailed(MMError):
    """A file could not be written (disk full, read-only or missing folder); the previous version is intact."""

    exit_code = 1


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it replaces `path` atomically. Any OSError on the way
    (including ENOSPC while the caller writes) becomes a WriteFailed naming the file; the target is untouched."""
    path = Path(path)
    tmp_path: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        tmp_path = Path(tmp)
        yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except OSError as exc:
        hint = " (disk full?)" if exc.errno == errno.ENOSPC else ""
        raise WriteFailed(f"cannot write {path}: {exc.strerror or exc}{hint}; the previous version, if any, is "
                          "unchanged") from None
    finally:
        if tmp_path is not None and tmp_path.exists():
            tmp_path.unlink()


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_npy(path: str | Path, array) -> None:
    import numpy as np

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)
