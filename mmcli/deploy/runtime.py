"""The torch-free bundle runner: onnxruntime, tokenizers, Pillow and numpy (`pip install 'mmcli[runtime]'`).

`Bundle` loads an `mm export` folder (format in mmcli/deploy/export.py), checks every file against its sha256,
prepares rows with the kinds' own numpy code (mmcli/deploy/rows.py, shared with run folders) and implements the
server's Predictor protocol, so `mm serve BUNDLE` works as `mm serve RUN` does. Nothing here imports torch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import numpy as np

from mmcli.deploy.rows import RowPredictor, RowPreparer, stack
from mmcli.errors import DataError, MMError, UsageError

BUNDLE_FORMAT = "mmcli-onnx-bundle"
FORMAT_VERSION = 1


def is_bundle(path: Path) -> bool:
    return Path(path).is_dir() and (Path(path) / "bundle.json").is_file()


def _verify(folder: Path, files: dict[str, str]) -> None:
    for name, digest in files.items():
        f = folder / name
        if not f.is_file():
            raise DataError(f"{folder}: bundle file {name} is missing")
        if hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            raise DataError(f"{folder}: bundle file {name} does not match its sha256 in bundle.json (changed or "
                            "corrupt); export the run again")


class Bundle(RowPredictor):
    """A loaded bundle. `inputs` [{"name": column, "kind"}], `labels`, `version` as the Predictor protocol says."""

    def __init__(self, folder: Path | str, verify: bool = True):
        import yaml

        from mmcli import modalities
        from mmcli.config import load_config

        self.folder = Path(folder)
        try:
            meta = json.loads((self.folder / "bundle.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.folder}: not a readable bundle (bundle.json: {exc})") from None
        if meta.get("format") != BUNDLE_FORMAT or meta.get("format_version") != FORMAT_VERSION:
            raise DataError(f"{self.folder}: bundle format {meta.get('format')!r} v{meta.get('format_version')}; "
                            f"this mmcli reads {BUNDLE_FORMAT} v{FORMAT_VERSION}")
        if verify:
            _verify(self.folder, meta["files"])
        self.meta = meta
        cfg = load_config(base=yaml.safe_load((self.folder / "config.yaml").read_text(encoding="utf-8")))
        run_inputs = json.loads((self.folder / "inputs.json").read_text(encoding="utf-8"))
        kinds = {i["kind"] for i in run_inputs}
        states = {k: modalities.get(k).load_state(self.folder) for k in kinds}
        specs = {g["name"]: modalities.get(g["kind"]).spec_from_dict(g["spec"]) for g in meta["inputs"]}
        with np.load(self.folder / "placeholders.npz", allow_pickle=False) as z:
            placeholders = {n: z[n] for n in z.files}
        self.preparer = RowPreparer(run_inputs, states, cfg.data, specs, placeholders)
        self.names = [g["name"] for g in meta["inputs"]]
        self.labels: list[str] = meta["labels"]
        self.multi_label = bool(meta["multi_label"])
        th = self.folder / "thresholds.json"
        saved = json.loads(th.read_text(encoding="utf-8")) if th.exists() else None
        self.thresholds = [float(saved.get(n, 0.5)) for n in self.labels] if saved else None
        self.version = f"{self.folder.name}@{meta['files'][meta['model']][:12]}"
        self.inputs = [{"name": c, "kind": k} for c, k in self.preparer.columns]
        self._session = None

    @property
    def session(self):
        if self._session is None:
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.log_severity_level = 3  # warnings about unused initialisers are not the user's business
            self._session = ort.InferenceSession(str(self.folder / self.meta["model"]), opts,
                                                 providers=["CPUExecutionProvider"])
        return self._session

    def probabilities(self, prepared: list) -> np.ndarray:
        """Prepared rows -> float32 `[B, C]`."""
        arrays, present = stack(prepared, self.names)
        feed = dict(zip(self.names, arrays)) | {self.meta["present_input"]: present}
        return self.session.run(None, feed)[0]


def predict_one(folder: Path, image: str | None = None, text: str | None = None, extra: dict | None = None,
                top_k: int = 5) -> list[dict]:
    """`mm predict BUNDLE ...`: the same list as `mmcli.predict.predict_one` gives for the run folder."""
    from mmcli.deploy.rows import assign_inputs, top_list

    bundle = Bundle(folder)
    values = assign_inputs(bundle.preparer.inputs, image, text, extra or {})
    probs = bundle.probabilities([bundle.preparer.prepare(values)])[0]
    return top_list(probs, bundle.labels, bundle.multi_label, bundle.thresholds, top_k)


def _cells(man, row: dict, file_columns: set[str]) -> dict:
    """A manifest row -> {column: cell}, file cells resolved against the manifest's folder."""
    return {c: (str(man.resolve(v)) if c in file_columns and v else v) for c, v in row.items()}


def predict_csv(folder: Path, data: Path, out: Path | None = None, batch_size: int = 64, fmt: str = "auto") -> Path:
    """`mm predict BUNDLE DATA`: one output row per input row, in input order, as `mmcli.predict.predict_csv`
    writes them; a row that cannot be read keeps its place with the reason in `error`."""
    from mmcli import modalities
    from mmcli.data.formats import ROW_LABEL
    from mmcli.data.manifest import read_manifest
    from mmcli.deploy.rows import csv_cells, predictions_header
    from mmcli.files import atomic_write_text
    from mmcli.progress import warn

    bundle = Bundle(folder)
    dc = bundle.preparer.data_cfg
    dc.inputs = {c: k for c, k in bundle.preparer.columns}
    man = read_manifest(data, dc, need_label=False, fmt=None if fmt == "auto" else fmt)
    if man.blobs:
        raise UsageError(f"{data}: images stored inside the file ({', '.join(man.blobs)}) are read by `mm predict "
                         "RUN` only; the bundle runtime takes image paths")
    files = {c for c, k in bundle.preparer.columns if modalities.get(k).path_cells}
    results: list[tuple[np.ndarray | None, str]] = []
    pending: list[tuple[int, tuple]] = []

    def flush() -> None:
        probs = bundle.probabilities([p for _, p in pending]) if pending else []
        for (k, _), p in zip(pending, probs):
            results[k] = (p, "")
        pending.clear()

    keep = set(dc.inputs)
    for i, row in enumerate(man.rows):
        problems = man.problems.get(i)
        results.append((None, "; ".join(f"{c}: {r}" for c, r in problems) if problems else ""))
        if problems:
            continue
        try:
            pending.append((i, bundle.preparer.prepare(_cells(man, {c: row.get(c, "") for c in keep}, files))))
        except MMError as exc:
            results[i] = (None, str(exc))
        if len(pending) >= batch_size:
            flush()
    flush()
    bad = sum(p is None for p, _ in results)
    if bad:
        warn(f"{bad} of {len(results)} rows could not be read; their output rows carry the reason")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(predictions_header(ROW_LABEL[man.format], bundle.labels))
    sep = bundle.meta.get("label_separator", "|")
    for n, (p, err) in zip(man.row_numbers, results):
        if p is None:
            writer.writerow([n, "", ""] + [""] * len(bundle.labels) + [err or "skipped"])
        else:
            writer.writerow([n, *csv_cells(p, bundle.labels, bundle.multi_label, bundle.thresholds, sep)]
                            + [f"{v:.6f}" for v in p] + [""])
    out = Path(out) if out else Path(data).with_name(f"{Path(data).stem}.predictions.csv")
    atomic_write_text(out, buf.getvalue())
    return out
