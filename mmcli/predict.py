"""Prediction from a run folder: one input (image and/or text) or a whole CSV (in input order)."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch

from mmcli.errors import DataError
from mmcli.files import atomic_write_text
from mmcli.loading import LoadedRun, load_run, prepare_csv


def _single_batch(loaded: LoadedRun, values: dict[str, str]) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """{column: cell (an image or audio path, a text, a number, a category)} -> (inputs of batch size 1, present
    `[1, M]`), prepared in numpy as a bundle prepares them (mmcli/deploy/rows.py)."""
    from mmcli.deploy.run_predictor import run_preparer

    arrays, present = run_preparer(loaded).prepare(values)
    return ({n: torch.from_numpy(a).to(loaded.device) for n, a in arrays.items()},
            torch.tensor([present], device=loaded.device))


def assign_inputs(loaded: LoadedRun, image: str | None, text: str | None, extra: dict[str, str]) -> dict[str, str]:
    """Map the positional image/text onto the first image/text column; `extra` names columns explicitly."""
    from mmcli.deploy.rows import assign_inputs as assign

    return assign(loaded.inputs, image, text, extra)


@torch.inference_mode()
def predict_one(run: Path, image: str | None = None, text: str | None = None, extra: dict[str, str] | None = None,
                top_k: int = 5) -> list[dict]:
    """-> [{"label", "probability"}] for the top-k classes, most likely first. Multi-label runs return every label
    at or above its tuned threshold (marked `"selected": true`) and the rest of the top k after them."""
    loaded = load_run(run)
    inputs, present = _single_batch(loaded, assign_inputs(loaded, image, text, extra or {}))
    from mmcli.deploy.rows import top_list

    logits = loaded.model(inputs, present).float()[0].cpu()
    probs = torch.sigmoid(logits) if loaded.model.multi_label else torch.softmax(logits, dim=0)
    return top_list(probs.numpy(), loaded.labels, loaded.model.multi_label, loaded.thresholds, top_k)


def predict_csv(run: Path, csv_path: Path, out: Path | None = None, batch_size: int | None = None,
                fmt: str = "auto") -> Path:
    """Predict every row of `csv_path` (any supported format, see mmcli/data/formats.py); write one output row per
    input row, in input order, `row` numbered as the format counts them. Rows that could not be read keep their
    place with an empty prediction and the reason in `error`."""
    from mmcli.data.dataset import Batches, input_specs
    from mmcli.deploy.rows import predictions_header
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
    writer.writerow(predictions_header(label, loaded.labels))
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
    from mmcli.deploy.rows import csv_cells

    return csv_cells(p, loaded.labels, loaded.model.multi_label, loaded.thresholds, loaded.cfg.data.label_separator)
