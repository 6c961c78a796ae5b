"""The input-kind contract: everything the pipeline needs to know about one kind of column, in one class.

An *input* is a dict `{"name", "kind", "columns", ...fitted fields}` (JSON in the cache's meta.json and the run
folder's inputs.json). Every kind but numeric has one column per input; numeric columns form one group input (a
row's numbers are read together, as a tabular model reads them).

The pipeline calls, per kind:
  detect(values, column)        while inferring column roles (manifest.py), in KIND_ORDER
  cell_problem(value)           per non-empty cell while validating rows (the bad-row reason, or None)
  fit(inputs, columns_values)   on the training split's cells: tokenizer, scaler statistics, vocabulary
  build(...)                    -> the cache array `[N, ...]` for one input plus per-row problems
  open(cache_dir, inp)          -> that array again (memory-mapped where large)
  batch(array, pos, ...)        -> the model's input tensor for cache positions `pos`
  encode_one(values, ...)       -> the same for one row given as cell strings (mm predict)
  encoder_args(inp, state)      -> the keyword arguments an encoder builder needs (vocab size, feature count ...)
State a kind fits once for all its inputs (the text tokenizer) is `state`; per-input fitted values live in the
input dict itself.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from mmcli.errors import UsageError


class Modality:
    """Base of every input kind. Subclasses set `kind` and override what their kind needs."""

    kind: str = ""
    augments: bool = False  # batches change with train.augment (frozen-encoder tables then can't be reused)
    views: tuple[str, ...] = ()  # deterministic re-renderings that keep the label (train.views); see view()
    fits: bool = False  # fits something on the training split (its build needs that state)
    grouped: bool = False  # all columns of this kind form one input (numeric)
    path_cells: bool = False  # cells name files, resolved against the manifest's folder (image, audio)
    empty_what: str = "value"  # how an empty cell is named in a bad-row reason
    # cache file -> where the run folder keeps it (kind-wide fitted state such as the tokenizer)
    state_files: ClassVar[dict[str, str]] = {}

    def view(self, name: str, x: Any) -> Any:
        """A batch of this kind's model inputs -> the same batch re-rendered as view `name` (one of `views`)."""
        valid = ", ".join(self.views) or "none"
        raise UsageError(f"train.views: {self.kind} inputs have no view {name!r}; valid: {valid}")

    def detect(self, values: list[str], column: str) -> bool:
        """Do these sampled cells (empty ones included) look like this kind?"""
        return False

    def is_missing(self, value: str) -> bool:
        """Does a cell count as absent (the presence mask's False)?"""
        return not value

    def cell_problem(self, value: str) -> str | None:
        """Why a non-empty cell cannot be used (a bad-row reason), or None; checks that need no decoding."""
        return None

    def fit(self, inputs: list[dict], values: dict[str, list[str]], data_cfg: Any, state: Any = None) -> Any:
        """Fit on the training split: `values` {column: its training cells}. Fills the input dicts' fitted fields
        in place and returns the kind-wide state (`state`: one already fitted, e.g. a pretrained tokenizer)."""
        return state

    def save_state(self, state: Any, folder: Path) -> None:
        """Write the kind-wide state into a cache folder (its `state_files`)."""

    def load_state(self, folder: Path, run: bool = False) -> Any:
        """Read the kind-wide state from a cache folder, or (`run`) from a run folder; None when there is none."""
        return None

    def fingerprint(self, man: Any, inp: dict, data_cfg: Any) -> str:
        """What the input's cache array depends on beyond the manifest's own text (files on disk, sizes); a
        change rebuilds the array."""
        return ""

    def build(self, man: Any, inp: dict, state: Any, data_cfg: Any, folder: Path,
              reuse: np.ndarray | None) -> tuple[np.ndarray, dict[int, str]]:
        """The input's array over every manifest row `[N, ...]` (saved under `folder`) and {row index: problem}
        for rows whose cell could not be used. `reuse`: the array of a cache whose fingerprint still holds."""
        raise NotImplementedError

    def file_name(self, inp: dict) -> str:
        return f"{self.kind}_{inp['name']}.npy"

    def open(self, folder: Path, inp: dict) -> np.ndarray:
        return np.load(folder / self.file_name(inp), mmap_mode="r")

    def batch(self, array: np.ndarray, pos: np.ndarray, spec: Any, device: str, augment: bool) -> Any:
        """Cache rows `pos` -> the encoder's input tensor `[B, ...]`."""
        raise NotImplementedError

    def prepare(self, values: dict[str, Any], inp: dict, state: Any, data_cfg: Any, spec: Any) -> np.ndarray:
        """One row's cells {column: cell} -> the encoder's input as a numpy array `[1, ...]`, without torch: the
        ONNX bundle's runtime calls this too, so a run folder and its bundle prepare inputs identically. A file
        kind's cell may be the file's bytes (a client's upload). Raises MMError naming the problem."""
        raise NotImplementedError

    def encode_one(self, values: dict[str, Any], inp: dict, state: Any, data_cfg: Any, spec: Any) -> Any:
        """One row's cells {column: cell} -> the encoder's input tensor `[1, ...]` (all cells present)."""
        import torch

        return torch.from_numpy(self.prepare(values, inp, state, data_cfg, spec))

    def empty(self, inp: dict, state: Any, data_cfg: Any) -> np.ndarray:
        """A one-row cache array `[1, ...]` standing for an absent input (what the cache holds for an empty cell)."""
        raise NotImplementedError

    def encoder_args(self, inp: dict, state: Any, data_cfg: Any) -> dict:
        """Keyword arguments the kind's encoder builders need beside the model settings."""
        return {}

    def default_encoder(self, model_cfg: Any) -> str:
        return getattr(model_cfg, f"{self.kind}_encoder")

    def spec(self, encoder: Any) -> Any:
        """What `batch` / `encode_one` need from the built encoder (an image encoder's size and normalisation)."""
        return None

    def spec_from_dict(self, saved: dict | None) -> Any:
        """A spec saved as a dict (an ONNX bundle's preprocess.json) -> the spec `prepare` takes."""
        return None

    def table_key(self, cache: Any, inp: dict) -> str:
        """The identity of the input's data, for tables of frozen-encoder outputs."""
        import hashlib

        return hashlib.blake2b(np.ascontiguousarray(cache.arrays[inp["name"]]).tobytes(), digest_size=16).hexdigest()


KINDS: dict[str, Modality] = {}
# Inference asks the kinds in this order: a path-like column is an image or audio before it could be text; a
# column of numbers is numeric before categorical; text takes the string columns left.
KIND_ORDER: list[str] = []


def register(modality: Modality, order: int | None = None) -> Modality:
    """Add an input kind (`order`: its place in inference; default last)."""
    KINDS[modality.kind] = modality
    if modality.kind not in KIND_ORDER:
        KIND_ORDER.insert(len(KIND_ORDER) if order is None else order, modality.kind)
    return modality


def unregister(kind: str) -> None:
    KINDS.pop(kind, None)
    if kind in KIND_ORDER:
        KIND_ORDER.remove(kind)


def get(kind: str) -> Modality:
    """The registered kind; an unknown one is a UsageError listing the valid kinds."""
    if kind not in KINDS:
        raise UsageError(f"unknown input kind '{kind}'; valid kinds: {', '.join(KIND_ORDER)}")
    return KINDS[kind]


def columns(inp: dict) -> list[str]:
    """The manifest columns an input reads (inputs saved before groups existed name their one column)."""
    return list(inp.get("columns") or [inp["name"]])
