"""Per-row checks (label, text, split values) and the seeded, stratified train/validation split."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmcli.data.manifest import Manifest
from mmcli.files import atomic_write_text

SPLIT_NAMES = {"train": 0, "training": 0, "val": 1, "valid": 1, "validation": 1, "dev": 1, "test": 2}
MISSING_LABELS = {"", "nan"}  # compared lower-cased: pandas writes a missing value as "" or "nan"


@dataclass
class BadRow:
    row: int
    column: str
    reason: str


def check_rows(man: Manifest, allow_missing: bool) -> dict[int, BadRow]:
    """Problems that need no decoding: {row index: first problem}. Image files are checked while decoding."""
    bad: dict[int, BadRow] = {}
    used = {"*", *man.inputs, man.label_column, man.split_column}
    for i, row in enumerate(man.rows):
        line = man.row_numbers[i]
        # what the reader found (a line that is not JSON, a mixed-type value); a column no role uses doesn't count
        found = [p for p in man.problems.get(i, ()) if p[0] in used]
        if found:
            bad[i] = BadRow(line, *found[0])
            continue
        if "__extra__" in row:
            bad[i] = BadRow(line, "*", f"row has {row['__extra__']} (a stray delimiter or unquoted comma?)")
            continue
        if man.label_column and row[man.label_column].lower() in MISSING_LABELS:
            bad[i] = BadRow(line, man.label_column, "label is empty")
            continue
        problem = _cell_problem(row, man.input_list, allow_missing)
        if problem:
            bad[i] = BadRow(line, *problem)
    return bad


def _cell_problem(row: dict[str, str], inputs: list[dict], allow_missing: bool) -> tuple[str, str] | None:
    """(column, reason) of the row's first unusable input cell: empty (unless data.allow_missing) or refused by its
    kind's check (a number that is not one)."""
    from mmcli import modalities

    for inp in inputs:
        kind = modalities.get(inp["kind"])
        for col in inp["columns"]:
            value = row[col]
            if kind.is_missing(value):
                if not allow_missing:
                    return col, f"{kind.empty_what} is empty (set data.allow_missing=true to keep such rows)"
                continue
            why = kind.cell_problem(value)
            if why:
                return col, why
    return None


def _stratified(idx: np.ndarray, labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Pick ~`fraction` of `idx` per label (at least one per class with 2+ rows). Returns the picked indices."""
    rng = np.random.default_rng(seed)
    picked = []
    for lab in np.unique(labels[idx]):
        members = idx[labels[idx] == lab]
        members = members[rng.permutation(len(members))]
        k = round(len(members) * fraction)
        if len(members) >= 2:
            k = min(max(k, 1), len(members) - 1)
        else:
            k = 0
        picked.append(members[:k])
    return np.sort(np.concatenate(picked)) if picked else np.array([], dtype=np.int64)


def assign_splits(man: Manifest, valid: np.ndarray, labels: np.ndarray, val_fraction: float, seed: int,
                  bad: dict[int, BadRow]) -> np.ndarray:
    """int8 [N]: 0 train, 1 val, 2 test. Honours the split column; otherwise (or if it names no val rows) carves
    a stratified validation share out of the training rows. Unknown split values are added to `bad`."""
    split = np.zeros(len(man.rows), dtype=np.int8)
    if man.split_column:
        for i, row in enumerate(man.rows):
            value = row[man.split_column].strip().lower()
            if value in SPLIT_NAMES:
                split[i] = SPLIT_NAMES[value]
            elif valid[i]:
                bad[i] = BadRow(man.row_numbers[i], man.split_column,
                                f"split is {row[man.split_column]!r}; use train, val or test")
                valid[i] = False
    if val_fraction > 0 and not np.any(valid & (split == 1)) and man.label_column:
        train_idx = np.nonzero(valid & (split == 0))[0]
        split[_stratified(train_idx, labels, val_fraction, seed)] = 1
    return split


def write_bad_rows(path: Path, bad: list[BadRow], label: str = "row") -> None:
    """bad_rows.csv with columns row, column, reason (always written, header only when all rows are fine). `label`
    names the first column by what it counts: row (CSV), line (JSONL) or record (JSON, Parquet)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([label, "column", "reason"])
    for b in bad:
        writer.writerow([b.row, b.column, b.reason])
    atomic_write_text(path, buf.getvalue())
