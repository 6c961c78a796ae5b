"""Every shape a data set can arrive in, read into one table of string cells: CSV/TSV (mmcli/data/manifest.py),
JSON Lines, a JSON list of records, Parquet (mmcli/data/parquet.py) and a class-per-folder image tree
(mmcli/data/folders.py). Column inference, validation and the cache see the same rows whatever the source.

A row number means what a person would look up in the source: the spreadsheet row of a CSV (header is row 1), the
line of a JSONL file, the record index (from 0) of a JSON list or a Parquet file.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmcli.errors import DataError, UsageError

FORMATS = ("auto", "csv", "tsv", "jsonl", "json", "parquet", "folder")
EXTENSIONS = {".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
              ".parquet": "parquet", ".pq": "parquet"}
ROW_MEANING = {
    "csv": "spreadsheet row of the CSV (the header is row 1)",
    "tsv": "spreadsheet row of the TSV (the header is row 1)",
    "jsonl": "line number in the JSONL file (from 1)",
    "json": "index of the record in the JSON list (from 0)",
    "parquet": "index of the record in the Parquet file (from 0)",
    "folder": "row of the inferred manifest, as `mm preprocess DIR --write-manifest FILE` writes it (header is row 1)",
}


# the first column of bad_rows.csv and predictions CSVs: the word for what the number counts
ROW_LABEL = {"csv": "row", "tsv": "row", "folder": "row", "jsonl": "line", "json": "record", "parquet": "record"}


@dataclass
class Table:
    """Records of one source as string cells (missing values are ""), plus what a reader learnt on the way.

    `problems`: {row index: [(column or "*", reason)]} found while reading (a line that is not JSON, a value of
    another type than the rest of its column); validation turns the first one that matters into a bad row.
    `blobs`: {column: BlobColumn} image columns whose pictures are stored inside the file (Parquet).
    `base`: the folder that relative image paths resolve against (None: the file's folder).
    """

    header: list[str]
    rows: list[dict[str, str]]
    numbers: list[int]
    format: str
    digest: str
    problems: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    blobs: dict[str, Any] = field(default_factory=dict)
    base: Path | None = None


def detect_format(path: Path, fmt: str | None = None) -> str:
    """The reader for `path`: `fmt` when given (not "auto"), else a folder or the file extension (CSV otherwise)."""
    if fmt and fmt != "auto":
        if fmt not in FORMATS:
            raise UsageError(f"unknown data format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    if path.is_dir():
        return "folder"
    return EXTENSIONS.get(path.suffix.lower(), "csv")


def read_source(path: str | Path, fmt: str | None = None) -> Table:
    """Any supported source -> Table. Raises DataError (exit 1) naming the file when it cannot be read at all."""
    path = Path(path)
    kind = detect_format(path, fmt)
    if kind == "folder":
        from mmcli.data.folders import read_folder

        if not path.is_dir():
            raise DataError(f"data folder not found: {path}")
        return read_folder(path)
    if not path.is_file():
        raise DataError(f"manifest not found: {path}" + (" (a folder: drop --format to read it as a class-per-folder "
                                                         "tree)" if path.is_dir() else ""))
    if kind == "parquet":
        from mmcli.data.parquet import read_parquet

        return read_parquet(path)
    if kind in ("csv", "tsv"):
        from mmcli.data.manifest import read_csv

        raw = path.read_bytes()
        header, rows, numbers = read_csv(path, raw, "\t" if kind == "tsv" else None)
        return Table(header, rows, numbers, kind, hashlib.sha256(raw).hexdigest())
    if kind == "jsonl":
        records, numbers, problems, digest = _jsonl_records(path)
        return _table(path, records, numbers, problems, kind, digest)
    raw = path.read_bytes()  # a JSON list can only be parsed whole; JSON Lines (above) streams line by line
    return _table(path, _json_records(raw, path), None, {}, kind, hashlib.sha256(raw).hexdigest())


def _jsonl_records(path: Path) -> tuple[list, list[int], dict[int, list[tuple[str, str]]], str]:
    """JSON Lines, a line at a time -> (records, line numbers, problems, sha256 of the file). A line that is not
    JSON stays a row, with its reason."""
    records, numbers, problems = [], [], {}
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for line_no, line in enumerate(fh, start=1):
            digest.update(line)
            if line_no == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]  # a UTF-8 byte-order mark from Windows editors
            if not line.strip():
                continue  # blank lines carry no row, as in a CSV
            try:
                records.append(json.loads(line))
            except UnicodeDecodeError:
                problems[len(records)] = [("*", "line is not UTF-8 text")]
                records.append({})
            except ValueError as exc:
                problems[len(records)] = [("*", f"line is not valid JSON ({exc.msg} at column {exc.colno})")]
                records.append({})
            numbers.append(line_no)
    return records, numbers, problems, digest.hexdigest()


def _json_records(raw: bytes, path: Path) -> list:
    """A JSON list of records -> the records. One bad byte makes the whole file unreadable, so that is a file-level
    error naming the line."""
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text; re-save the JSON as UTF-8") from None
    except ValueError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, list):
        raise DataError(f"{path}: a JSON manifest is a list of records ([{{...}}, {{...}}]), found a JSON "
                        f"{_kind(data)}; for one record per line name the file .jsonl")
    return data


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "text", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def cell_text(value: Any) -> str:
    """A JSON or Parquet value -> the string a CSV would hold: null "", true/false, numbers as written, a list of
    labels joined with `|` (the multi-label separator)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))  # 1.0 and 1 are one label, as they are in a CSV read by pandas and written back
    if isinstance(value, (list, tuple)):
        return "|".join(cell_text(v) for v in value)
    return str(value).strip()


def value_problem(value: Any) -> str | None:
    """Why a value cannot be a cell (a nested object), or None."""
    if isinstance(value, dict):
        return "holds a JSON object; a cell must be a text, a number, a boolean or a list of them"
    if isinstance(value, (list, tuple)) and any(isinstance(v, (dict, list, tuple)) for v in value):
        return "holds a nested list; a list cell must hold texts or numbers"
    return None


def _table(path: Path, records: list, numbers: list[int] | None, problems: dict[int, list[tuple[str, str]]],
           kind: str, digest: str) -> Table:
    """Records -> Table (`numbers` None: record indices from 0). Header = keys in first-seen order; a record that
    is not an object, a nested value or a value whose type differs from the rest of its column is a problem of its
    row."""
    if not records:
        raise DataError(f"{path}: no records; a {kind.upper()} manifest needs at least one record")
    header: dict[str, None] = {}
    for rec in records:
        if isinstance(rec, dict):
            header.update(dict.fromkeys(str(k).strip() for k in rec))
    if not header:
        raise DataError(f"{path}: no record is a JSON object with named fields ({{\"image\": ..., \"label\": ...}}); "
                        "if it is a CSV, name it .csv or pass --format csv")
    kinds = _column_kinds(records, list(header))
    rows = []
    for i, rec in enumerate(records):
        if not isinstance(rec, dict):
            problems.setdefault(i, []).append(("*", f"record is a JSON {_kind(rec)}, not an object with fields"))
            rec = {}
        rec = {str(k).strip(): v for k, v in rec.items()}
        for col, value in rec.items():
            why = value_problem(value)
            if why is None and value is not None and _kind(value) != kinds[col]:
                why = f"is a {_kind(value)} here but a {kinds[col]} in most records (mixed types in one column)"
            if why:
                problems.setdefault(i, []).append((col, f"{col} {why}"))
        rows.append({h: cell_text(rec.get(h)) if value_problem(rec.get(h)) is None else "" for h in header})
    return Table(list(header), rows, list(range(len(rows))) if numbers is None else numbers, kind, digest, problems)


def _column_kinds(records: list, header: list[str]) -> dict[str, str]:
    """{column: the most common kind of its non-null values}; ties go to the kind seen first (deterministic)."""
    counts: dict[str, dict[str, int]] = {h: {} for h in header}
    for rec in records:
        if isinstance(rec, dict):
            for k, v in rec.items():
                if v is not None:
                    c = counts[str(k).strip()]
                    c[_kind(v)] = c.get(_kind(v), 0) + 1
    return {h: max(c, key=lambda k: c[k]) if c else "null" for h, c in counts.items()}


def write_manifest(man, out: Path) -> Path:
    """Write the rows of `man` (a Manifest) as a CSV at `out`, image paths made relative to `out`'s folder, so the
    inferred table can be inspected, edited and given back to `mm` as is."""
    from mmcli.files import atomic_write_text

    if man.blobs:
        raise UsageError(f"{man.path}: images {', '.join(man.blobs)} are stored inside the file and have no path a "
                         "CSV could hold; --write-manifest works for folders, CSV/TSV and JSON(L) manifests")
    out = Path(out)
    base = out.parent.resolve()
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(man.header)
    for row in man.rows:
        cells = {c: Path(os.path.relpath(man.resolve(row[c]).resolve(), base)).as_posix() if row[c] else ""
                 for c in man.image_columns}
        writer.writerow([cells.get(h, row[h]) for h in man.header])
    atomic_write_text(out, buf.getvalue())
    return out
