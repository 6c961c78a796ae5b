"""Prediction from a run folder: one input (image and/or text) or a whole CSV (in input order)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch

from mmcli.errors import DataError, UsageError
from mmcli.files import atomic_write_text
from mmcli.loading import LoadedRun, load_run, prepare_csv


def _single_batch(loaded: LoadedRun, values: dict[str, str]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """{column: cell (an image or audio path, a text, a number, a category)} -> (inputs of batch size 1, present
    `[1, M]`); each input is prepared by its kind (mmcli/modalities/), as the cache and batches prepare it."""
    from mmcli import modalities
    from mmcli.data.dataset import input_specs

    specs = input_specs(loaded.model)
    inputs, present = {}, []
    for inp in loaded.inputs:
        kind = modalities.get(inp["kind"])
        cols = modalities.columns(inp)
        has = any(not kind.is_missing(values.get(c, "")) for c in cols)
        present.append(has)
        state, spec = (loaded.states or {}).get(inp["kind"]), specs[inp["name"]]
        # an absent input still needs a tensor of its shape: the model swaps its embedding for the missing one
        x = kind.encode_one(values, inp, state, loaded.cfg.data, spec) if has else \
            kind.batch(kind.empty(inp, state, loaded.cfg.data), np.array([0]), spec, "cpu", False)
        inputs[inp["name"]] = x.to(loaded.device)
    if not any(present):
        takes = ", ".join(f"{c} ({i['kind']})" for i in loaded.inputs for c in modalities.columns(i))
        raise UsageError(f"give at least one input (this model takes {takes})")
    return inputs, torch.tensor([present], device=loaded.device)


def assign_inputs(loaded: LoadedRun, image: str | None, text: str | None, extra: dict[str, str]) -> dict[str, str]:
    """Map the positional image/text onto the first image/text column; `extra` names columns explicitly."""
    from mmcli import modalities

    values = dict(extra)
    names = [c for i in loaded.inputs for c in modalities.columns(i)]
    unknown = set(values) - set(names)
    if unknown:
        raise UsageError(f"unknown input column(s) {', '.join(sorted(unknown))}; this model takes {', '.join(names)}")
    for kind, value in (("image", image), ("text", text)):
        if value is None:
            continue
        slots = [i["name"] for i in loaded.inputs if i["kind"] == kind and i["name"] not in values]
        if not slots:
            raise UsageError(f"this model has no (free) {kind} input for {value!r}")
        values[slots[0]] = value
    return values


@torch.inference_mode()
def predict_one(run: Path, image: str | None = None, text: str | None = None, extra: dict[str, str] | None = None,
                top_k: int = 5) -> list[dict]:
    """-> [{"label", "probability"}] for the top-k classes, most likely first. Multi-label runs return every label
    at or above its tuned threshold (marked `"selected": true`) and the rest of the top k after them."""
    loaded = load_run(run)
    inputs, present = _single_batch(loaded, assign_inputs(loaded, image, text, extra or {}))
    logits = loaded.model(inputs, present).float()[0].cpu()
    if not loaded.model.multi_label:
        probs = torch.softmax(logits, dim=0)
        values, idx = probs.topk(min(top_k, len(loaded.labels)))
        return [{"label": loaded.labels[int(i)], "probability": float(v)} for v, i in zip(values, idx)]
    probs = torch.sigmoid(logits)
    th = loaded.thresholds or [0.5] * len(loaded.labels)
    order = sorted(range(len(probs)), key=lambda i: -float(probs[i]))
    out = [{"label": loaded.labels[i], "probability": float(probs[i]), "selected": bool(probs[i] >= th[i])}
           for i in order]
    return [o for k, o in enumerate(out) if o["selected"] or k < top_k]


def predict_csv(run: Path, csv_path: Path, out: Path | None = None, batch_size: int | None = None,
                fmt: str = "auto") -> Path:
    """Predict every row of `csv_path` (any supported format, see mmcli/data/formats.py); write one output row per
    input row, in input order, `row` numbered as the format counts them. Rows that could not be read keep their
    place with an empty prediction and the reason in `error`."""
    from mmcli.data.dataset import Batches, input_specs
    from mmcli.evaluate import predict_probs

    loaded = load_run(run)
    cache, bad = prepare_csv(loaded, csv_path, need_label=False, enforce_bad_share=False, fmt=fmt)
    idx = cache.indices()
    if len(idx) == 0:
        raise DataError(f"{csv_path}: no usable rows (see {cache.dir / 'bad_rows.csv'})")
    batches = Batches(cache, idx, batch_size or loaded.cfg.train.batch_size * 2, input_specs(loaded.model),
                      device=loaded.device)
    probs, _, positions = predict_probs(loaded.model, batches)
    by_pos = {int(p): probs[k] for k, p in enumerate(positions)}
    errors = {b.row: f"{b.column}: {b.reason}" for b in bad}
    out = Path(out) if out else csv_path.with_name(f"{csv_path.stem}.predictions.csv")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    label = cache.meta.get("row_label", "row")  # row (CSV), line (JSONL) or record (JSON, Parquet)
    writer.writerow([label, "prediction", "probability"] + [f"p_{n}" for n in loaded.labels] + ["error"])
    for pos in range(len(cache.rows)):
        row_no = int(cache.rows[pos])
        p = by_pos.get(pos)
        if p is None:
            writer.writerow([row_no, "", ""] + [""] * len(loaded.labels) + [errors.get(row_no, "skipped")])
        else:
            writer.writerow([row_no, *_decision(loaded, p)] + [f"{v:.6f}" for v in p] + [""])
    atomic_write_text(out, buf.getvalue())
    return out


def _decision(loaded: LoadedRun, p: np.ndarray) -> tuple[str, str]:
    """(prediction, probability) cells: the arg-max class, or (multi-label) every label at or above its threshold,
    joined with the label separator, with the highest probability."""
    if not loaded.model.multi_label:
        best = int(p.argmax())
        return loaded.labels[best], f"{p[best]:.6f}"
    th = loaded.thresholds or [0.5] * len(loaded.labels)
    chosen = [n for n, v, t in zip(loaded.labels, p, th) if v >= t]
    return loaded.cfg.data.label_separator.join(chosen), f"{p.max():.6f}"
