"""Read a manifest (CSV here; other shapes through mmcli/data/formats.py), infer column roles, resolve image paths.

CSV row numbers are file line numbers as a spreadsheet shows them: the header is row 1, the first data row is row 2.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from mmcli.errors import DataError, UsageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLITS = ("train", "val", "test")
# Python's csv module refuses fields over 128 KiB by default; a long text cell is data to truncate, not an error.
FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)


@dataclass
class Manifest:
    """A parsed manifest: rows as dicts of strings plus the role of every column.

    `format` names the reader (mmcli/data/formats.py, which also says what a row number means there), `digest` hashes
    the source's content, `problems` are the reader's row-level findings, `blobs` the image columns stored as bytes
    inside the file, `base` the folder relative paths resolve against (default: the manifest's folder)."""

    path: Path
    header: list[str]
    rows: list[dict[str, str]]
    row_numbers: list[int]
    image_columns: list[str]
    text_columns: list[str]
    label_column: str | None
    split_column: str | None
    ignored_columns: list[str] = field(default_factory=list)
    format: str = "csv"
    digest: str = ""
    problems: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    blobs: dict = field(default_factory=dict)
    base: Path | None = None
    # cell value -> resolved path: validation and decoding both resolve every cell, and pathlib is slow (~40 us)
    _resolved: dict[str, Path] = field(default_factory=dict, repr=False, compare=False)

    @property
    def root(self) -> Path:
        return self.base or self.path.parent

    @property
    def inputs(self) -> list[str]:
        return self.image_columns + self.text_columns

    def resolve(self, value: str) -> Path:
        """An image cell -> a path; relative paths resolve against the CSV's folder. Windows separators
        (`images\\a.png`, from a CSV written on Windows) are read as `/` where that names an existing file."""
        if value in self._resolved:
            return self._resolved[value]
        p = self._resolve(value)
        if "\\" in value and os.sep == "/" and not p.exists():
            alt = self._resolve(value.replace("\\", "/"))
            p = alt if alt.exists() else p
        self._resolved[value] = p
        return p

    def _resolve(self, value: str) -> Path:
        # os.path on strings, one Path at the end: pathlib's `/` and expanduser cost ~100 us per cell here
        v = os.path.expanduser(value) if value.startswith("~") else value
        return Path(v if os.path.isabs(v) else os.path.join(self.root, v))


def _decode(raw: bytes, path: Path) -> str:
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Excel's "Unicode text" export
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            raise DataError(f"{path}: starts with a UTF-16 byte-order mark but is not valid UTF-16; "
                            "re-save the CSV as UTF-8") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(
            f"{path}: not UTF-8 text (bad byte at line {line}); re-save the CSV as UTF-8 "
            f"(e.g. `iconv -f latin1 -t utf-8 in.csv > out.csv`)"
        ) from None


def _sniff_delimiter(text: str) -> str:
    first = text.split("\n", 1)[0]
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    # `|` is also the multi-label separator, so only pick it when nothing else splits the header.
    if best == "|" and (counts[","] or counts[";"] or counts["\t"]):
        best = max((",", ";", "\t"), key=lambda d: counts[d])
    return best if counts[best] else ","


def _parse_records(text: str, path: Path, delimiter: str | None = None) -> list[list[str]]:
    """CSV text -> records (a quoted cell may span lines). Raises DataError naming the line where a bad record
    starts."""
    if csv.field_size_limit() < FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)
    # strict: an unbalanced quote is an error naming its line, not a cell that silently swallows the rows below it
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter or _sniff_delimiter(text),
                        strict=True)
    records, start = [], 1
    try:
        for rec in reader:
            records.append(rec)
            start = reader.line_num + 1
    except csv.Error as exc:
        raise DataError(f"{path}: cannot parse the CSV record starting at line {start}: {exc} "
                        "(an unbalanced double quote? quote cells that contain quotes, as \"say \"\"hi\"\"\")") from None
    return records


def read_table(path: str | Path, fmt: str | None = None) -> tuple[list[str], list[dict[str, str]], list[int]]:
    """Any supported source (`fmt`: a name from formats.FORMATS, None/"auto" by extension) -> (header, rows, row
    numbers)."""
    from mmcli.data.formats import read_source

    table = read_source(path, fmt)
    return table.header, table.rows, table.numbers


def read_csv(path: Path, raw: bytes, delimiter: str | None = None) -> tuple[list[str], list[dict[str, str]], list[int]]:
    """CSV bytes -> (header, rows, row numbers); `delimiter` None sniffs it from the header. Fails on an empty file
    or a bad header."""
    text = _decode(raw, path)
    if not text.strip():
        raise DataError(f"{path}: the file is empty; a manifest needs a header row and data rows")
    records = _parse_records(text, path, delimiter)
    if not records:
        raise DataError(f"{path}: the file is empty; a manifest needs a header row and data rows")
    header = [h.strip() for h in records.pop(0)]
    if not any(header):
        raise DataError(f"{path}: line 1 is blank; the first line must be the header (column names)")
    missing = [i + 1 for i, h in enumerate(header) if not h]
    if missing:
        raise DataError(f"{path}: header column(s) {missing} have no name; give every column a name")
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise DataError(f"{path}: duplicate header column(s): {', '.join(dupes)}; column names must be unique")
    rows, numbers = [], []
    line = 1
    for rec in records:
        line += 1
        if not any(cell.strip() for cell in rec):
            continue  # blank lines carry no row
        cells = rec + [""] * (len(header) - len(rec))
        row = {h: cells[i].strip() for i, h in enumerate(header)}
        if len(rec) > len(header):
            row["__extra__"] = f"{len(rec)} cells for {len(header)} columns"
        rows.append(row)
        numbers.append(line)
    if not rows:
        raise DataError(f"{path}: header only, no data rows")
    return header, rows, numbers


def _looks_like_image(values: list[str]) -> bool:
    filled = [v for v in values if v]
    if not filled:
        return False
    hits = sum(v.lower().endswith(IMAGE_EXTENSIONS) for v in filled)
    return hits >= 0.8 * len(filled)


def _is_numeric(values: list[str]) -> bool:
    filled = [v for v in values if v]
    try:
        [float(v) for v in filled]
    except ValueError:
        return False
    return bool(filled)


def _check_columns(path: Path, header: list[str], names: list[str], what: str) -> None:
    for name in names:
        if name not in header:
            raise UsageError(f"{path}: {what} column '{name}' not in the manifest; columns are: {', '.join(header)}")


def infer_roles(
    path: Path,
    header: list[str],
    rows: list[dict[str, str]],
    label: str | None,
    image_columns: list[str] | None,
    text_columns: list[str] | None,
    split_column: str | None,
    known_images: list[str] | tuple[str, ...] = (),
) -> tuple[list[str], list[str], str | None, str | None, list[str]]:
    """Decide which columns are images, texts, the label and the split. Returns (images, texts, label, split,
    ignored). A `label` that is absent is allowed (prediction input); the caller decides whether it is needed.
    `known_images`: columns the reader knows hold images (a Parquet image struct or binary column)."""
    label_col = label if label in header else None
    split_col = split_column if split_column and split_column in header else None
    taken = {c for c in (label_col, split_col) if c}
    if image_columns is not None:
        _check_columns(path, header, image_columns, "image")
    if text_columns is not None:
        _check_columns(path, header, text_columns, "text")
    # a column that is empty in every row carries nothing (e.g. a spreadsheet's unused "notes" column)
    empty = [h for h in header if h not in taken and not any(r[h] for r in rows)]
    candidates = [h for h in header if h not in taken and h not in empty]
    sample = rows[:200]
    paths = [h for h in candidates if h in known_images or _looks_like_image([r[h] for r in sample])]
    if image_columns is None:
        image_columns = paths
    ignored: list[str] = [h for h in empty if h not in image_columns]
    if text_columns is None:
        text_columns = []
        for h in candidates:
            if h in image_columns:
                continue
            # image paths left out of data.image_columns (e.g. `data.image_columns=[]` for a text-only model) are
            # not text: a file name can carry the label (a class folder, an id range) and would leak into the model
            if h in paths or _is_numeric([r[h] for r in sample]) or h.lower() in ("id", "index"):
                ignored.append(h)
            else:
                text_columns.append(h)
    if not image_columns and not text_columns:
        raise UsageError(
            f"{path}: found no image or text input columns among {', '.join(header)}; "
            "set data.image_columns / data.text_columns"
        )
    return image_columns, text_columns, label_col, split_col, ignored


def read_manifest(path: str | Path, data_cfg, need_label: bool = True, fmt: str | None = None) -> Manifest:
    """Read `path` (a file in any supported format, or a class-per-folder tree) and infer column roles from
    `data_cfg` (a DataConfig). `fmt` overrides data_cfg.format (eval/predict read new data in its own format)."""
    from mmcli.data.formats import read_source

    path = Path(path)
    table = read_source(path, fmt or data_cfg.format)
    header, rows = table.header, table.rows
    images, texts, label_col, split_col, ignored = infer_roles(
        path, header, rows, data_cfg.label, data_cfg.image_columns, data_cfg.text_columns, data_cfg.split_column,
        list(table.blobs),
    )
    if need_label and label_col is None:
        raise UsageError(
            f"{path}: no label column '{data_cfg.label}'; columns are: {', '.join(header)} "
            "(pick one with --label NAME or --set data.label=NAME)"
        )
    return Manifest(path, header, rows, table.numbers, images, texts, label_col, split_col, ignored, table.format,
                    table.digest, table.problems, table.blobs, table.base)
