"""Parquet manifests through pyarrow, streamed a batch at a time, with images stored inside the file.

An image column is a struct `{bytes, path}` (how Hugging Face datasets writes an `Image` feature) or a plain binary
column. Reading keeps only string cells and a hash of the image bytes; the bytes themselves are read again, one row
group at a time, by the decoder (`iter_images`), so memory stays bounded by a row group, not by the file.
Row numbers are record indices from 0, as `pyarrow.Table.slice`, pandas' `iloc` and `datasets[i]` count them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmcli.data.formats import Table, cell_text, value_problem
from mmcli.errors import DataError

BATCH_ROWS = 1024  # rows per Arrow batch while reading: a few MB of image bytes at a time


@dataclass
class BlobColumn:
    """An image column stored in a Parquet file. `has_bytes` bool [N]: the row's picture is in the file (else its
    cell is a path to a file, resolved against the Parquet file's folder, or empty). `groups`: (first row, rows) per
    row group. `digest`: sha256 of every row's bytes, for the cache fingerprint."""

    path: Path
    name: str
    struct: bool
    has_bytes: np.ndarray
    groups: list[tuple[int, int]]
    digest: str


def _is_binary(t) -> bool:
    import pyarrow as pa

    return pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t)


def image_columns(schema) -> dict[str, bool]:
    """{column: is a struct} for the columns of an Arrow schema that hold encoded images."""
    import pyarrow as pa

    out = {}
    for f in schema:
        if _is_binary(f.type):
            out[f.name] = False
        elif pa.types.is_struct(f.type) and f.type.get_field_index("bytes") >= 0 \
                and _is_binary(f.type.field("bytes").type):
            out[f.name] = True
    return out


def _image_parts(column, struct: bool) -> tuple[list, list]:
    """An Arrow image column of one batch -> (bytes or None per row, path or None per row)."""
    if not struct:
        return column.to_pylist(), [None] * len(column)
    parts = {column.type.field(k).name: a for k, a in zip(range(column.type.num_fields), column.flatten())}
    paths = parts["path"].to_pylist() if "path" in parts else [None] * len(column)
    return parts["bytes"].to_pylist(), paths


def _open(path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise DataError(f"{path}: not a readable Parquet file ({exc})") from None


def read_parquet(path: Path) -> Table:
    """Parquet -> Table, a batch at a time. A row group that cannot be read keeps its rows, each marked bad with
    the reason, so the rest of the file is still used and no record disappears unreported."""
    import pyarrow as pa

    pf = _open(path)
    header = [str(n) for n in pf.schema_arrow.names]
    images = image_columns(pf.schema_arrow)
    hashers = {c: hashlib.sha256() for c in images}
    has_bytes = {c: np.zeros(pf.metadata.num_rows, dtype=bool) for c in images}
    content = hashlib.sha256("\x1f".join(header).encode())
    rows: list[dict[str, str]] = []
    problems: dict[int, list[tuple[str, str]]] = {}
    groups = []
    for k in range(pf.num_row_groups):
        start, n = len(rows), pf.metadata.row_group(k).num_rows
        groups.append((start, n))
        try:
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[k], use_threads=False):
                _add_batch(batch, header, images, rows, problems, hashers, has_bytes)
        except (pa.ArrowException, OSError) as exc:
            del rows[start:]
            for i in range(start, start + n):
                problems[i] = [("*", f"row group {k} of the Parquet file cannot be read ({_short(exc)})")]
            rows.extend({h: "" for h in header} for _ in range(n))
            for c in images:
                has_bytes[c][start:start + n] = False
        for row in rows[start:]:
            content.update("\x1f".join(row.values()).encode() + b"\x1e")
    if not rows:
        raise DataError(f"{path}: no records; a Parquet manifest needs at least one record")
    blobs = {c: BlobColumn(path, c, images[c], has_bytes[c], groups, hashers[c].hexdigest()) for c in images}
    for c in images:
        content.update(blobs[c].digest.encode())
    return Table(header, rows, list(range(len(rows))), "parquet", content.hexdigest(), problems, blobs)


def _short(exc: BaseException) -> str:
    # Arrow quotes the raw bytes it choked on; keep the reason one printable line
    text = "".join(ch if ch.isprintable() else "?" for ch in str(exc).split("\n")[0][:200])
    return text or type(exc).__name__


def _add_batch(batch, header: list[str], images: dict[str, bool], rows: list, problems: dict, hashers: dict,
               has_bytes: dict) -> None:
    """Append one Arrow batch's rows as string cells; image columns become their path (or "record N") and feed
    their bytes to the column's hash."""
    first = len(rows)
    cells: dict[str, list[str]] = {}
    for name, column in zip(batch.schema.names, batch.columns):
        if name in images:
            cells[name] = _image_cells(column, images[name], first, hashers[name], has_bytes[name])
            continue
        values = column.to_pylist()
        for j, v in enumerate(values):
            why = value_problem(v)
            if why:
                problems.setdefault(first + j, []).append((name, f"{name} {why}"))
        cells[name] = [cell_text(v) if value_problem(v) is None else "" for v in values]
    rows.extend({h: cells[h][j] for h in header} for j in range(batch.num_rows))


def _image_cells(column, struct: bool, first: int, hasher, has_bytes: np.ndarray) -> list[str]:
    data, paths = _image_parts(column, struct)
    out = []
    for j, (b, p) in enumerate(zip(data, paths)):
        hasher.update(b"\0" if b is None else len(b).to_bytes(8, "little") + b)
        if b is not None:
            has_bytes[first + j] = True
        # the cell names the picture for people (reports, --write-manifest refuses); bytes win over the path
        out.append((p or f"record {first + j}") if b is not None else (p or ""))
    return out


def iter_images(blob: BlobColumn, group: int, root: Path) -> Iterator[tuple[int, bytes | None, str | None, str | None]]:
    """Rows of one row group -> (row index, encoded bytes or None, file path or None, error or None): bytes for
    stored pictures, a path (resolved against `root`) for rows that name a file instead, neither for empty cells.
    A read failure yields an error for every row not yet yielded, so each is reported, none skipped."""
    import pyarrow as pa

    start, n = blob.groups[group]
    done = 0
    try:
        pf = _open(blob.path)
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, row_groups=[group], columns=[blob.name],
                                     use_threads=False):
            data, paths = _image_parts(batch.column(0), blob.struct)
            for b, p in zip(data, paths):
                i = start + done
                done += 1
                if b is not None:
                    yield i, b, None, None
                else:
                    yield i, None, (p if os.path.isabs(p) else os.path.join(root, p)) if p else None, None
    except (pa.ArrowException, OSError, DataError) as exc:
        for i in range(start + done, start + n):
            yield i, None, None, f"row group {group} of the Parquet file cannot be read ({_short(exc)})"
