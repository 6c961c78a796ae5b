"""Preprocess a manifest once: validate rows, turn every input column into arrays (each kind its own way:
mmcli/modalities/), and store them.

Cache folder layout (all arrays cover every manifest row, in order; `valid` marks the usable ones):
  meta.json            fingerprints, the inputs (kinds, columns, fitted statistics), label names, counts
  images_<input>.npy   uint8 [N, 3, S, S], memory-mapped; reused while the input's fingerprint holds
  tokens_<input>.npy   int32 [N, L]          (text; tokenizer.json beside it)
  numeric_<input>.npy  float32 [N, F]        robust z-scores, NaN where missing
  categorical_<input>.npy int64 [N]          vocabulary index, 0 unknown
  audio_<input>.npy    float16 [N, 80, T]    log-mel features
  present.npy          bool  [N, M]  which inputs each row has (M = number of inputs)
  labels.npy           int64 [N]     index into meta["label_names"], -1 without a label
  targets.npy          uint8 [N, C]  multi-hot label sets (multi-label data only)
  split.npy            int8  [N]     0 train, 1 val, 2 test
  valid.npy, rows.npy  bool [N], int64 [N] (row numbers: CSV lines, JSONL lines or record indices; meta["row_numbers"])
  bad_rows.csv         row, column, reason
  embeddings_<input>_<key>.npy  float32 [N, D] a frozen encoder's outputs, written by training (mmcli/frozen.py)
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmcli.data.formats import ROW_LABEL, ROW_MEANING
from mmcli.data.manifest import Manifest
from mmcli.data.validate import BadRow, assign_splits, check_rows, write_bad_rows
from mmcli.errors import DataError
from mmcli.files import atomic_write_text, save_npy

CACHE_VERSION = 2


def default_cache_dir(csv_path: Path) -> Path:
    """`$MM_CACHE_DIR` or `~/.cache/mmcli`, one sub-folder per manifest (by absolute path)."""
    root = os.environ.get("MM_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "mmcli"
    )
    key = hashlib.sha1(str(csv_path.resolve()).encode()).hexdigest()[:10]
    return Path(root) / f"{csv_path.stem}-{key}"


def _full_fingerprint(man: Manifest, input_fps: dict[str, str], settings: dict) -> str:
    # the reader's hash of the source's content (rows and stored bytes); a Manifest built by hand hashes its rows
    h = hashlib.sha256(man.digest.encode() if man.digest else json.dumps([man.header, man.rows]).encode())
    h.update(json.dumps({"inputs": input_fps, "settings": settings}, sort_keys=True).encode())
    return h.hexdigest()[:16]


@dataclass
class Cache:
    """A loaded cache: arrays over all manifest rows plus meta. `arrays` {input name: its kind's array}."""

    dir: Path
    meta: dict
    arrays: dict[str, np.ndarray]
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

    def _of(self, kind: str) -> dict[str, np.ndarray]:
        return {i["name"]: self.arrays[i["name"]] for i in self.inputs if i["kind"] == kind}

    @property
    def images(self) -> dict[str, np.ndarray]:
        return self._of("image")

    @property
    def tokens(self) -> dict[str, np.ndarray]:
        return self._of("text")

    def indices(self, split: int | None = None) -> np.ndarray:
        """Positions of valid rows, optionally of one split (0 train, 1 val, 2 test)."""
        keep = self.valid if split is None else self.valid & (self.split == split)
        return np.nonzero(keep)[0]

    def state(self, kind: str):
        """A kind's fitted state kept in this folder (the tokenizer), or None."""
        from mmcli import modalities

        return modalities.get(kind).load_state(self.dir)

    @classmethod
    def load(cls, d: Path) -> Cache:
        from mmcli import modalities

        meta = json.loads((d / "meta.json").read_text(encoding="utf-8"))
        arrays = {i["name"]: modalities.get(i["kind"]).open(d, i) for i in meta["inputs"]}
        rest = {k: np.load(d / f"{k}.npy") for k in ("present", "labels", "split", "valid", "rows")}
        targets = np.load(d / "targets.npy") if meta.get("multi_label") else None
        return cls(d, meta, arrays, **rest, targets=targets)


def _read_meta(d: Path) -> dict | None:
    try:
        return json.loads((d / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _settings(man: Manifest, cfg, states: dict, label_names, fitted) -> dict:
    """Everything besides the data that the arrays depend on (a change rebuilds the cache)."""
    from mmcli import text as textlib

    dc = cfg.data
    tok = states.get("text")
    return {
        "v": CACHE_VERSION, "label": man.label_column, "inputs": man.input_list, "split": man.split_column,
        "format": man.format, "val_fraction": dc.val_fraction, "seed": cfg.train.seed, "max_tokens": dc.max_tokens,
        "tokenizer": dc.tokenizer, "vocab": dc.vocab_size, "allow_missing": dc.allow_missing,
        "multi_label": [dc.multi_label, dc.label_separator], "audio": [dc.audio_seconds, dc.max_audio_seconds],
        "fixed_tokenizer": textlib.fingerprint(tok) if tok is not None else None, "label_names": label_names,
        "fitted": fitted,
    }


def build_cache(man: Manifest, cfg, out_dir: Path | None = None, states: dict | None = None, label_names=None,
                fitted: list[dict] | None = None) -> tuple:
    """Validate + preprocess `man` into `out_dir` (reusing what is fresh). Returns (Cache, bad rows, reused).

    `states`: fitted kind-wide state to use, {kind: state} (a pretrained tokenizer; a run's tokenizer at eval or
    predict time); a kind without one fits it on the training split. `fitted`: a trained model's inputs with their
    fitted statistics (eval / predict), used instead of fitting on this data.
    `label_names`: the class list of a trained model (eval); None takes the labels found in the manifest.
    """
    from mmcli import modalities

    d = Path(out_dir) if out_dir else default_cache_dir(man.path)
    d.mkdir(parents=True, exist_ok=True)
    states = dict(states or {})
    if fitted:  # a trained model's inputs, fitted statistics included, replace the ones inferred from this data
        man.input_list = [dict(i) for i in fitted]
    fps = {i["name"]: modalities.get(i["kind"]).fingerprint(man, i, cfg.data) for i in man.input_list}
    fp = _full_fingerprint(man, fps, _settings(man, cfg, states, label_names, fitted))
    old = _read_meta(d)
    if old and old.get("fingerprint") == fp:
        cache = Cache.load(d)
        return cache, [BadRow(**b) for b in cache.meta["bad_rows"]], True
    inputs = [dict(i) for i in man.input_list]
    bad = check_rows(man, cfg.data.allow_missing)
    present = np.array([[any(not modalities.get(i["kind"]).is_missing(r[c]) for c in i["columns"])
                         for i in inputs] for r in man.rows], dtype=bool).reshape(len(man.rows), len(inputs))
    # kinds that fit nothing (pictures, clips) first: a row whose file is bad is left out of the split and of
    # what the other kinds fit (the tokenizer, scaler statistics, vocabularies)
    free = [i for i in inputs if not modalities.get(i["kind"]).fits]
    problems = _build_arrays(man, free, {}, cfg.data, d, old, fps)
    _mark(man, inputs, problems, present, bad)
    valid = np.ones(len(man.rows), dtype=bool)
    valid[list(bad)] = False
    names, labels, targets, multi = _label_arrays(man, valid, cfg.data, label_names)
    split = assign_splits(man, valid, labels, cfg.data.val_fraction, cfg.train.seed, bad)
    valid[list(bad)] = False
    states = _fit(man, inputs, valid & (split == 0), cfg.data, states)
    problems |= _build_arrays(man, [i for i in inputs if i not in free], states, cfg.data, d, old, fps)
    _mark(man, inputs, problems, present, bad)
    if cfg.data.allow_missing:  # a row with no input at all is bad even when some may be missing
        for i in np.nonzero(~present.any(axis=1))[0]:
            bad.setdefault(int(i), BadRow(man.row_numbers[i], ",".join(man.inputs), "no input present"))
    valid[list(bad)] = False
    _save(d, man, inputs, states, fp, fps, problems, present, labels, split, valid, targets if multi else None,
          names, multi, bad)
    return Cache.load(d), [bad[i] for i in sorted(bad)], False


def _mark(man: Manifest, inputs: list[dict], problems: dict, present: np.ndarray, bad: dict) -> None:
    """A cell that could not be used: absent in `present`, and its row bad (first problem kept)."""
    for j, inp in enumerate(inputs):
        for i, why in problems.get(inp["name"], {}).items():
            present[i, j] = False
            bad.setdefault(i, BadRow(man.row_numbers[i], inp["name"], why))


def _fit(man: Manifest, inputs: list[dict], train: np.ndarray, dc, states: dict) -> dict:
    """Fit every kind on the training rows' cells; -> {kind: state}."""
    from mmcli import modalities

    rows = [man.rows[i] for i in np.nonzero(train)[0]]
    out = {}
    for kind in modalities.KIND_ORDER:
        mine = [i for i in inputs if i["kind"] == kind]
        if mine:
            values = {c: [r[c] for r in rows] for i in mine for c in [i["name"], *i["columns"]] if c in man.header}
            out[kind] = modalities.get(kind).fit(mine, values, dc, states.get(kind))
    return out


def _build_arrays(man: Manifest, inputs: list[dict], states: dict, dc, d: Path, old: dict | None,
                  fps: dict[str, str]) -> dict[str, dict[int, str]]:
    """Write each input's array; -> {input: {row index: problem}}. An array whose fingerprint still holds (same
    files, same size settings) is reused with its problems, e.g. decoded pixels when only a label changed."""
    from mmcli import modalities

    problems = {}
    for inp in inputs:
        kind = modalities.get(inp["kind"])
        name, reuse = inp["name"], None
        target = d / kind.file_name(inp)
        if fps[name] and old and old.get("fingerprints", {}).get(name) == fps[name] and target.exists():
            reuse = kind.open(d, inp)
            problems[name] = {int(k): v for k, v in old["problems"][name].items()}
        else:
            problems[name] = {}
        _, found = kind.build(man, inp, states.get(inp["kind"]), dc, d, reuse)
        problems[name] = problems[name] if reuse is not None else found
    return problems


def _save(d: Path, man: Manifest, inputs, states, fp, fps, problems, present, labels, split, valid, targets, names,
          multi, bad) -> None:
    from mmcli import modalities

    if targets is not None:
        save_npy(d / "targets.npy", targets)
    for name, arr in {"present": present, "labels": labels, "split": split, "valid": valid,
                      "rows": np.array(man.row_numbers, dtype=np.int64)}.items():
        save_npy(d / f"{name}.npy", arr)
    for kind, state in states.items():
        modalities.get(kind).save_state(state, d)
    bad_list = [bad[i] for i in sorted(bad)]
    write_bad_rows(d / "bad_rows.csv", bad_list, ROW_LABEL[man.format])
    meta = {
        "version": CACHE_VERSION, "fingerprint": fp, "fingerprints": fps,
        "problems": {n: {str(k): v for k, v in p.items()} for n, p in problems.items()},
        "manifest": str(man.path.resolve()), "format": man.format, "row_numbers": ROW_MEANING[man.format],
        "row_label": ROW_LABEL[man.format], "inputs": inputs, "label_column": man.label_column, "label_names": names,
        "multi_label": multi, "rows": len(man.rows), "valid_rows": int(valid.sum()),
        "bad_rows": [b.__dict__ for b in bad_list],
    }
    atomic_write_text(d / "meta.json", json.dumps(meta, indent=1))  # written last: marks the cache complete


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
