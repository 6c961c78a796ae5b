"""Numeric columns: every column of numbers, together one input of F features, stored as float32 `[N, F]`.

Each feature is standardised with training-split statistics that outliers barely move (median and inter-quartile
range, the robust z-score), then clipped to [-CLIP, CLIP] so one extreme value cannot dominate a batch. Missing
cells (empty, "nan", "NA", "null") are NaN in the array: the encoders see a missing-value indicator.
"""

from __future__ import annotations

import math
import re
from itertools import pairwise
from pathlib import Path

import numpy as np

from mmcli.files import save_npy
from mmcli.modalities.base import Modality, columns, register

MISSING = {"", "nan", "na", "n/a", "null", "none"}
CLIP = 5.0
ID_NAME = re.compile(r"(^|_)(id|index|idx|row)$", re.IGNORECASE)

# The largest share of filled cells that may fail to parse in a column still taken as numeric (as bad rows).
TYPO_SHARE = 0.02


def parse(value: str) -> float | None:
    """A cell -> its number (NaN when missing), or None when it is not a number."""
    if value.strip().lower() in MISSING:
        return math.nan
    try:
        return float(value.replace("_", "x"))  # float() accepts "1_000"; a cell with underscores is text
    except ValueError:
        return None


def id_like(column: str, numbers: list[float]) -> bool:
    """A row id rather than a feature: named like one, or distinct integers in increasing file order."""
    if ID_NAME.search(column):
        return True
    ints = [v for v in numbers if not math.isnan(v)]
    return (len(ints) >= 20 and all(v == int(v) for v in ints) and len(set(ints)) == len(ints)
            and all(a < b for a, b in pairwise(ints)))


def robust_stats(values: np.ndarray) -> tuple[float, float]:
    """(centre, scale) of a column's finite training values: median and IQR / 1.349 (the standard deviation of a
    normal distribution with that IQR); the standard deviation, then 1, when the IQR is 0 (a binary column)."""
    v = values[np.isfinite(values)]
    if not len(v):
        return 0.0, 1.0
    q25, med, q75 = np.percentile(v, [25, 50, 75])
    scale = (q75 - q25) / 1.349
    if scale <= 0:
        scale = float(v.std()) or 1.0
    return float(med), float(scale)


class Numeric(Modality):
    kind = "numeric"
    fits = True
    grouped = True
    empty_what = "number"

    def detect(self, values: list[str], column: str) -> bool:
        parsed = [parse(v) for v in values]
        numbers = [n for n in parsed if n is not None]
        if not numbers or all(math.isnan(n) for n in numbers):
            return False
        # A few typos in a column of numbers ("abc", "12..5") make bad rows with reasons, not a text column; more
        # than TYPO_SHARE of the filled cells failing to parse means the column really is text.
        filled = sum(1 for n in numbers if not math.isnan(n)) + len(parsed) - len(numbers)
        if len(parsed) - len(numbers) > TYPO_SHARE * filled:
            return False
        return not id_like(column, numbers)

    def is_missing(self, value: str) -> bool:
        return value.strip().lower() in MISSING

    def cell_problem(self, value: str) -> str | None:
        n = parse(value)
        if n is None:
            return f"not a number: {value[:40]!r}"
        return "number is infinite" if math.isinf(n) else None

    def _matrix(self, rows: list[dict], cols: list[str]) -> np.ndarray:
        out = np.full((len(rows), len(cols)), np.nan, dtype=np.float64)
        for i, r in enumerate(rows):
            for j, c in enumerate(cols):
                n = parse(r.get(c, ""))
                out[i, j] = np.nan if n is None or math.isinf(n) else n
        return out

    def fit(self, inputs, values, dc, state=None):
        for inp in inputs:
            if "centre" in inp:  # fitted already (the run's statistics at eval / predict time)
                continue
            cols = columns(inp)
            stats = [robust_stats(self._matrix([{c: v} for v in values[c]], [c])[:, 0]) for c in cols]
            inp["centre"] = [s[0] for s in stats]
            inp["scale"] = [s[1] for s in stats]
        return state

    def standardise(self, raw: np.ndarray, inp: dict) -> np.ndarray:
        """float `[N, F]` raw values -> float32 `[N, F]` robust z-scores clipped to +-CLIP (NaN stays NaN)."""
        z = (raw - np.asarray(inp["centre"])) / np.asarray(inp["scale"])
        return np.clip(z, -CLIP, CLIP).astype(np.float32)

    def build(self, man, inp, state, dc, folder: Path, reuse):
        arr = self.standardise(self._matrix(man.rows, columns(inp)), inp)
        save_npy(folder / self.file_name(inp), arr)
        return arr, {}

    def open(self, folder: Path, inp: dict) -> np.ndarray:
        return np.load(folder / self.file_name(inp))

    def batch(self, array, pos, spec, device, augment):
        """float32 `[B, F]`, NaN where a cell is missing."""
        import torch

        return torch.from_numpy(np.ascontiguousarray(array[pos])).to(device)

    def prepare(self, values, inp, state, dc, spec) -> np.ndarray:
        """The group's cells (a missing one is NaN) -> float32 `[1, F]`."""
        from mmcli.errors import UsageError

        cells = {c: str(values.get(c, "")) for c in columns(inp)}
        for c, v in cells.items():
            problem = self.cell_problem(v) if not self.is_missing(v) else None
            if problem:
                raise UsageError(f"input '{c}': {problem}")
        return self.standardise(self._matrix([cells], columns(inp)), inp)

    def empty(self, inp, state, dc) -> np.ndarray:
        return np.full((1, len(columns(inp))), np.nan, dtype=np.float32)

    def encoder_args(self, inp, state, dc) -> dict:
        return {"num_features": len(columns(inp))}


register(Numeric())
