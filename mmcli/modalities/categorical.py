"""Categorical columns: a few distinct strings that repeat across rows (a country, a colour, a product type), each
mapped to an index of the training split's vocabulary, int64 `[N]`.

Inference rule (README): a string column is categorical when it holds at most `data.max_categories` distinct
values and each value appears at least 5 times on average (distinct values <= filled cells / 5), over at least 20
filled cells; other string columns are text. Index 0 is "unknown": a value the training split never showed
(at eval or predict time) maps there, and is counted and reported.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from mmcli.files import save_npy
from mmcli.modalities.base import Modality, register

MIN_FILLED = 20
MIN_REPEATS = 5
UNKNOWN = 0


class Categorical(Modality):
    kind = "categorical"
    fits = True
    empty_what = "category"
    max_categories = 50  # data.max_categories, set by the manifest reader before detection

    def detect(self, values: list[str], column: str) -> bool:
        filled = [v for v in values if v]
        distinct = len(set(filled))
        return (len(filled) >= MIN_FILLED and distinct <= self.max_categories
                and distinct * MIN_REPEATS <= len(filled))

    def fit(self, inputs, values, dc, state=None):
        for inp in inputs:
            if "categories" not in inp:  # the run's vocabulary at eval / predict time is kept
                counts = Counter(v for v in values[inp["name"]] if v)
                # most frequent first, ties by name: the same vocabulary from the same rows, whatever the order
                inp["categories"] = [v for v, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
        return state

    def indices(self, cells: list[str], inp: dict) -> np.ndarray:
        """Cells -> int64 `[N]`: 1 + vocabulary position, 0 for an unseen or empty value."""
        index = {v: k + 1 for k, v in enumerate(inp["categories"])}
        return np.array([index.get(c, UNKNOWN) for c in cells], dtype=np.int64)

    def build(self, man, inp, state, dc, folder: Path, reuse):
        cells = [r[inp["name"]] for r in man.rows]
        arr = self.indices(cells, inp)
        inp["unknown"] = int(sum(1 for c, a in zip(cells, arr) if c and a == UNKNOWN))
        save_npy(folder / self.file_name(inp), arr)
        return arr, {}

    def open(self, folder: Path, inp: dict) -> np.ndarray:
        return np.load(folder / self.file_name(inp))

    def batch(self, array, pos, spec, device, augment):
        """int64 `[B]` category indices (0: unknown)."""
        import torch

        return torch.from_numpy(np.ascontiguousarray(array[pos])).to(device)

    def prepare(self, values, inp, state, dc, spec) -> np.ndarray:
        """A category -> int64 `[1]` (0 for one never seen in training, with a warning)."""
        cell = str(values[inp["name"]])
        arr = self.indices([cell], inp)
        if arr[0] == UNKNOWN:
            from mmcli.progress import warn

            warn(f"input '{inp['name']}': {cell!r} is not a category seen in training; it is read as unknown")
        return arr

    def empty(self, inp, state, dc) -> np.ndarray:
        return np.zeros(1, dtype=np.int64)

    def encoder_args(self, inp, state, dc) -> dict:
        return {"num_categories": len(inp["categories"]) + 1}


register(Categorical())
