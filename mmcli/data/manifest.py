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
from mmcli.modalities.image import IMAGE_EXTENSIONS  # noqa: F401  (folders.py and the CLI read it here)

SPLITS = ("train", "val", "test")
# Python's csv module refuses fields over 128 KiB by default; a long text cell is data to truncate, not an error.
FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)


@dataclass
class Manifest:
    """A parsed manifest: rows as dicts of strings plus the role of every column.

    `input_list` holds the model's inputs (`{"name", "kind", "columns"}`, see mmcli/modalities/base.py). `format`
    names the reader (mmcli/data/formats.py, which also says what a row number means there), `digest` hashes the
    source's content, `problems` are the reader's row-level findings, `blobs` the image columns stored as bytes
    inside the file, `base` the folder relative paths resolve against (default: the manifest's folder)."""

    path: Path
    header: list[str]
    rows: list[dict[str, str]]
    row_numbers: list[int]
    input_list: list[dict]
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

    def columns_of(self, kind: str) -> list[str]:
        return [c for i in self.input_list if i["kind"] == kind for c in i["columns"]]

    @property
    def image_columns(self) -> list[str]:
        return self.columns_of("image")

    @property
    def text_columns(self) -> list[str]:
        return self.columns_of("text")

    @property
    def inputs(self) -> list[str]:
        """Every column an input reads, in input order."""
        return [c for i in self.input_list for c in i["columns"]]

    @property
    def kinds(self) -> dict[str, str]:
        """{column: kind} of every input column: `data.inputs` resolved."""
        return {c: i["kind"] for i in self.input_list for c in i["columns"]}

    @property
    def root(self) -> Path:
        return self.base or self.path.parent

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


def _check_columns(path: Path, header: list[str], names: list[str], what: str) -> None:
    for name in names:
        if name not in header:
            raise UsageError(f"{path}: {what} column '{name}' not in the manifest; columns are: {', '.join(header)}")


def _looks_numeric(values: list[str]) -> bool:
    from mmcli.modalities.numeric import parse

    return any(values) and all(parse(v) is not None for v in values)


def _given_kinds(path: Path, header: list[str], data_cfg) -> tuple[dict[str, str], set[str]]:
    """The kinds the config fixes: ({column: kind}, kinds closed to inference). `data.inputs` fixes every input;
    `data.image_columns` / `data.text_columns` (shorthands) fix one kind each, even as an empty list."""
    from mmcli import modalities

    if data_cfg.inputs:
        for kind in data_cfg.inputs.values():  # an unknown kind fails here, naming the valid ones
            modalities.get(kind)
        _check_columns(path, header, list(data_cfg.inputs), "input")
        return dict(data_cfg.inputs), set(modalities.KIND_ORDER)
    given, closed = {}, set()
    for kind, cols in (("image", data_cfg.image_columns), ("text", data_cfg.text_columns)):
        if cols is not None:
            _check_columns(path, header, cols, kind)
            given.update({c: kind for c in cols})
            closed.add(kind)
    return given, closed


def _detect(column: str, values: list[str], known_image: bool) -> str | None:
    """The first kind (in modalities.KIND_ORDER) whose rule fits the column's cells."""
    from mmcli import modalities

    if known_image:
        return "image"
    if column.lower() in ("id", "index"):
        return None
    return next((k for k in modalities.KIND_ORDER if modalities.get(k).detect(values, column)), None)


def group_inputs(kinds: dict[str, str], header: list[str]) -> list[dict]:
    """{column: kind} -> inputs in kind order, then header order; the columns of a grouped kind (numeric) form one
    input named after the kind."""
    from mmcli import modalities

    out = []
    for kind in modalities.KIND_ORDER:
        cols = [h for h in header if kinds.get(h) == kind]
        if not cols:
            continue
        if modalities.get(kind).grouped:
            name = kind if kind not in header else f"{kind}_features"
            out.append({"name": name, "kind": kind, "columns": cols})
        else:
            out += [{"name": c, "kind": kind, "columns": [c]} for c in cols]
    return out


def infer_roles(path: Path, header: list[str], rows: list[dict[str, str]], data_cfg,
                known_images: list[str] | tuple[str, ...] = ()) -> tuple[list[dict], str | None, str | None, list[str]]:
    """Decide each column's role: an input of some kind, the label, the split, or ignored. Returns (inputs, label,
    split, ignored). A `label` that is absent is allowed (prediction input); the caller decides whether it is needed.
    `known_images`: columns the reader knows hold images (a Parquet image struct or binary column)."""
    from mmcli.modalities.categorical import Categorical

    Categorical.max_categories = data_cfg.max_categories
    label_col = data_cfg.label if data_cfg.label in header else None
    split_col = data_cfg.split_column if data_cfg.split_column and data_cfg.split_column in header else None
    taken = {c for c in (label_col, split_col) if c}
    given, closed = _given_kinds(path, header, data_cfg)
    kinds, ignored = dict(given), []
    for h in header:
        if h in taken or h in given:
            continue
        values = [r[h] for r in rows]
        kind = _detect(h, values, h in known_images) if any(values) else None
        # a column of a kind the config fixed is left out, not read as something else: file names left out of
        # data.image_columns (a text-only model) can carry the label (a class folder) and would leak into the model
        if kind is None or kind in closed or (kind == "text" and _looks_numeric(values)):
            ignored.append(h)
        else:
            kinds[h] = kind
    inputs = group_inputs(kinds, header)
    if not inputs:
        from mmcli import modalities

        raise UsageError(f"{path}: found no input columns among {', '.join(header)}; name them with data.inputs "
                         f"({{column: kind}}, kinds: {', '.join(modalities.KIND_ORDER)}) or data.image_columns / "
                         "data.text_columns")
    return inputs, label_col, split_col, ignored


def read_manifest(path: str | Path, data_cfg, need_label: bool = True, fmt: str | None = None) -> Manifest:
    """Read `path` (a file in any supported format, or a class-per-folder tree) and infer column roles from
    `data_cfg` (a DataConfig). `fmt` overrides data_cfg.format (eval/predict read new data in its own format)."""
    from mmcli.data.formats import read_source

    path = Path(path)
    table = read_source(path, fmt or data_cfg.format)
    header, rows = table.header, table.rows
    inputs, label_col, split_col, ignored = infer_roles(path, header, rows, data_cfg, list(table.blobs))
    if need_label and label_col is None:
        raise UsageError(
            f"{path}: no label column '{data_cfg.label}'; columns are: {', '.join(header)} "
            "(pick one with --label NAME or --set data.label=NAME)"
        )
    return Manifest(path, header, rows, table.numbers, inputs, label_col, split_col, ignored, table.format,
                    table.digest, table.problems, table.blobs, table.base)
