"""Preprocess a manifest once: validate rows, decode images, tokenize texts, and store it all as arrays.

Cache folder layout (all arrays cover every CSV row, in CSV order; `valid` marks the usable ones):
  meta.json            fingerprints, column roles, label names, counts
  images_<col>.npy     uint8 [N, 3, S, S], memory-mapped; reused while the image fingerprint holds
  tokens_<col>.npy     int32 [N, L]
  present.npy          bool  [N, M]  which inputs each row has (M = len(inputs))
  labels.npy           int64 [N]     index into meta["label_names"], -1 without a label
  targets.npy          uint8 [N, C]  multi-hot label sets (multi-label data only)
  split.npy            int8  [N]     0 train, 1 val, 2 test
  valid.npy, rows.npy  bool [N], int64 [N] (row numbers: CSV lines, JSONL lines or record indices; meta["row_numbers"])
  bad_rows.csv         row, column, reason
  embeddings_<col>_<key>.npy  float32 [N, D] a frozen encoder's outputs, written by training (mmcli/frozen.py)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmcli.data.formats import ROW_LABEL, ROW_MEANING
from mmcli.data.images import decode_column
from mmcli.data.manifest import Manifest
from mmcli.data.validate import BadRow, assign_splits, check_rows, write_bad_rows
from mmcli.errors import DataError
from mmcli.files import atomic_write_text, save_npy

CACHE_VERSION = 1


def default_cache_dir(csv_path: Path) -> Path:
    """`$MM_CACHE_DIR` or `~/.cache/mmcli`, one sub-folder per manifest (by absolute path)."""
    root = os.environ.get("MM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mmcli"
    )
    key = hashlib.sha1(str(csv_path.resolve()).encode()).hexdigest()[:10]
    return Path(root) / f"{csv_path.stem}-{key}"


def _image_fingerprint(man: Manifest, col: str, size: int, max_pixels: int) -> str:
    # the CSV's folder too: relative cells name different files when the same CSV text sits elsewhere
    h = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{max_pixels}|{col}|{man.root.resolve()}".encode())
    blob = man.blobs.get(col)
    if blob is not None:  # pictures stored in the file: the hash of their bytes, taken while reading
        h.update(blob.digest.encode())
    for i, row in enumerate(man.rows):
        cell = row.get(col, "")
        h.update(cell.encode() + b"\0")
        if cell and (blob is None or not blob.has_bytes[i]):
            try:
                st = man.resolve(cell).stat()
                h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
            except OSError:
                h.update(b"missing")
    return h.hexdigest()[:16]


def _full_fingerprint(man: Manifest, image_fps: dict[str, str], settings: dict) -> str:
    # the reader's hash of the source's content (rows and stored bytes); a Manifest built by hand hashes its rows
    h = hashlib.sha256(man.digest.encode() if man.digest else json.dumps([man.header, man.rows]).encode())
    h.update(json.dumps({"images": image_fps, "settings": settings}, sort_keys=True).encode())
    return h.hexdigest()[:16]


@dataclass
class Cache:
    """A loaded cache: arrays over all CSV rows plus meta."""

    dir: Path
    meta: dict
    images: dict[str, np.ndarray]
    tokens: dict[str, np.ndarray]
    present: np.ndarray
    labels: np.ndarray
    split: np.ndarray
    valid: np.ndarray
    rows: np.ndarray
    targets: np.ndarray | None = None  # uint8 [N, C] multi-hot label sets (multi-label data only)

    @property
    def multi_label(self) -> bool:
        return bool(self.meta.get("multi_label"))

    @property
    def inputs(self) -> list[dict]:
        return self.meta["inputs"]

    def indices(self, split: int | None = None) -> np.ndarray:
        """Positions of valid rows, optionally of one split (0 train, 1 val, 2 test)."""
        keep = self.valid if split is None else self.valid & (self.split == split)
        return np.nonzero(keep)[0]

    @classmethod
    def load(cls, d: Path) -> Cache:
        meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
        images = {i["name"]: np.load(d / f"images_{i['name']}.npy", mmap_mode="r")
                  for i in meta["inputs"] if i["kind"] == "image"}
        tokens = {i["name"]: np.load(d / f"tokens_{i['name']}.npy") for i in meta["inputs"] if i["kind"] == "text"}
        arrays = {k: np.load(d / f"{k}.npy") for k in ("present", "labels", "split", "valid", "rows")}
        targets = np.load(d / "targets.npy") if meta.get("multi_label") else None
        return cls(d, meta, images, tokens, **arrays, targets=targets)


def _read_meta(d: Path) -> dict | None:
    try:
        return json.loads((d / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def build_cache(man: Manifest, cfg, out_dir: Path | None = None, tokenizer=None, label_names=None) -> tuple:
    """Validate + preprocess `man` into `out_dir` (reusing what is fresh). Returns (Cache, bad rows, reused).

    `tokenizer`: a fitted tokenizer to use (eval/predict); None trains one on the training split's texts.
    `label_names`: the class list of a trained model (eval); None takes the labels found in the CSV.
    """
    from mmcli import text as textlib

    d = Path(out_dir) if out_dir else default_cache_dir(man.path)
    d.mkdir(parents=True, exist_ok=True)
    dc = cfg.data
    settings = {
        "v": CACHE_VERSION, "label": man.label_column, "images": man.image_columns, "texts": man.text_columns,
        "split": man.split_column, "format": man.format, "val_fraction": dc.val_fraction, "seed": cfg.train.seed,
        "max_tokens": dc.max_tokens, "tokenizer": dc.tokenizer, "vocab": dc.vocab_size,
        "allow_missing": dc.allow_missing, "multi_label": [dc.multi_label, dc.label_separator], "fixed_tokenizer": textlib.fingerprint(tokenizer) if tokenizer else None,
        "label_names": label_names,
    }
    image_fps = {c: _image_fingerprint(man, c, dc.image_size, dc.max_image_pixels) for c in man.image_columns}
    fp = _full_fingerprint(man, image_fps, settings)
    old = _read_meta(d)
    if old and old.get("fingerprint") == fp:
        cache = Cache.load(d)
        return cache, [BadRow(**b) for b in cache.meta["bad_rows"]], True

    bad = check_rows(man, dc.allow_missing)
    present = np.zeros((len(man.rows), len(man.inputs)), dtype=bool)
    for j, col in enumerate(man.inputs):
        present[:, j] = [bool(r[col]) for r in man.rows]
    images, image_problems = {}, {}
    for col in man.image_columns:
        j = man.inputs.index(col)
        target = d / f"images_{col}.npy"
        if old and old.get("image_fingerprints", {}).get(col) == image_fps[col] and target.exists():
            images[col] = np.load(target, mmap_mode="r")
            problems = {int(k): v for k, v in old["image_problems"][col].items()}
        else:
            blob = man.blobs.get(col)
            paths = [] if blob else [man.resolve(r[col]) if r[col] else None for r in man.rows]
            images[col], problems = decode_column(paths, dc.image_size, target, dc.workers, dc.max_image_pixels, col,
                                                  blob, man.root)
        for i, why in problems.items():
            present[i, j] = False
            bad.setdefault(i, BadRow(man.row_numbers[i], col, why))
        image_problems[col] = {str(k): v for k, v in problems.items()}
    if dc.allow_missing:  # a row with no input at all is bad even when some may be missing
        for i in np.nonzero(~present.any(axis=1))[0]:
            bad.setdefault(int(i), BadRow(man.row_numbers[i], ",".join(man.inputs), "no input present"))
    valid = np.ones(len(man.rows), dtype=bool)
    valid[list(bad)] = False

    names, labels, targets, multi = _label_arrays(man, valid, dc, label_names)
    split = assign_splits(man, valid, labels, dc.val_fraction, cfg.train.seed, bad)
    valid[list(bad)] = False
    if tokenizer is None and man.text_columns:
        train_texts = [man.rows[i][c] for c in man.text_columns for i in np.nonzero(valid & (split == 0))[0]]
        tokenizer = textlib.train_tokenizer(train_texts, dc.tokenizer, dc.vocab_size)
    tokens = {c: textlib.encode(tokenizer, [r[c] for r in man.rows], dc.max_tokens) for c in man.text_columns}

    if multi:
        save_npy(d / "targets.npy", targets)
    for name, arr in {"present": present, "labels": labels, "split": split, "valid": valid,
                      "rows": np.array(man.row_numbers, dtype=np.int64), **{f"tokens_{c}": t for c, t in tokens.items()}
                      }.items():
        save_npy(d / f"{name}.npy", arr)
    if tokenizer is not None:
        atomic_write_text(d / "tokenizer.json", tokenizer.to_str())
    bad_list = [bad[i] for i in sorted(bad)]
    write_bad_rows(d / "bad_rows.csv", bad_list, ROW_LABEL[man.format])
    meta = {
        "version": CACHE_VERSION, "fingerprint": fp, "image_fingerprints": image_fps,
        "image_problems": image_problems, "manifest": str(man.path.resolve()), "format": man.format,
        "row_numbers": ROW_MEANING[man.format], "row_label": ROW_LABEL[man.format],
        "inputs": [{"name": c, "kind": "image"} for c in man.image_columns]
        + [{"name": c, "kind": "text"} for c in man.text_columns],
        "label_column": man.label_column, "label_names": names, "multi_label": multi, "image_size": dc.image_size,
        "max_tokens": dc.max_tokens, "rows": len(man.rows), "valid_rows": int(valid.sum()),
        "bad_rows": [b.__dict__ for b in bad_list],
    }
    atomic_write_text(d / "meta.json", json.dumps(meta, indent=1))  # written last: marks the cache complete
    return Cache.load(d), bad_list, False


def _label_arrays(man: Manifest, valid: np.ndarray, dc, label_names: list[str] | None):
    """-> (class names, int64 labels [N] (-1: none/unknown), uint8 multi-hot [N, C] or None, multi-label?).

    Single-label: `labels` indexes the class. Multi-label ("a|b" cells, data.multi_label): `targets` holds the
    label set and `labels` its first known label (used only to stratify the validation split)."""
    from mmcli.multilabel import is_multi_label, multi_hot, split_labels

    col = man.label_column
    cells = [r[col] if col else "" for r in man.rows]
    multi = bool(col) and is_multi_label([c for i, c in enumerate(cells) if valid[i]], dc.label_separator,
                                         dc.multi_label)
    if multi:
        found = {lab for i, c in enumerate(cells) if valid[i] for lab in split_labels(c, dc.label_separator)}
        names = label_names or sorted(found)
        targets = multi_hot(cells, names, dc.label_separator)
        labels = np.where(targets.any(1), targets.argmax(1), -1).astype(np.int64)
        return names, labels, targets, True
    names = label_names or sorted({c for i, c in enumerate(cells) if valid[i]} if col else set())
    index = {n: k for k, n in enumerate(names)}
    labels = np.array([index.get(c, -1) if col else -1 for c in cells], dtype=np.int64)
    return names, labels, None, False


def check_bad_share(bad: list, total: int, max_share: float, report: Path, label: str = "row") -> None:
    """Raise DataError (exit 1) when more than `max_share` of the rows are bad; `label` words the row numbers
    (row, line or record, as formats.ROW_LABEL)."""
    if total and len(bad) / total > max_share:
        first = "; ".join(f"{label} {b.row} [{b.column}]: {b.reason}" for b in bad[:3])
        raise DataError(
            f"{len(bad)} of {total} rows are bad ({len(bad) / total:.1%} > data.max_bad_fraction="
            f"{max_share:.1%}); see {report}. First: {first}"
        )
