"""Run a model over batches and score it; `evaluate_run` backs `mm eval`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmcli.metrics import classification_metrics


@torch.inference_mode()
def predict_probs(model, batches) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (probs float [N, C], labels int [N], cache positions int [N]) in the batches' order."""
    model.eval()
    probs, labels, positions = [], [], []
    for inputs, present, y, pos in batches:
        probs.append(torch.softmax(model(inputs, present).float(), dim=1).cpu())
        labels.append(y.cpu())
        positions.append(pos)
    if not probs:
        c = model.num_classes
        return np.zeros((0, c), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return torch.cat(probs).numpy(), torch.cat(labels).numpy(), torch.cat(positions).numpy()


def score(model, batches, names: list[str]) -> dict:
    probs, labels, _ = predict_probs(model, batches)
    return classification_metrics(probs, labels, names)


def evaluate_run(run: Path, csv: Path, split: str | None = None, batch_size: int | None = None,
                 out_dir: Path | None = None) -> dict:
    """Score the run's best model on every valid row of `csv` (or one split of it) and write metrics.json +
    report.md into `out_dir` (default: the run folder). Rows whose label the model never saw are counted and
    listed, not scored."""
    from mmcli.data.dataset import Batches, image_specs
    from mmcli.errors import DataError, UsageError
    from mmcli.loading import load_run, prepare_csv
    from mmcli.progress import warn
    from mmcli.report import write_eval_report

    loaded = load_run(run)
    cache, bad = prepare_csv(loaded, csv, need_label=True)
    codes = {"train": 0, "val": 1, "test": 2}
    if split is not None and split not in codes:
        raise UsageError(f"--split must be one of train, val, test; got {split!r}")
    idx = cache.indices(codes[split] if split else None)
    known = cache.labels[idx] >= 0
    unseen_rows = idx[~known]
    unseen = sorted({str(x) for x in _raw_labels(cache, csv, unseen_rows)})
    if len(unseen_rows):
        warn(f"{len(unseen_rows)} row(s) have labels the model never saw ({', '.join(unseen[:5])}); not scored")
    idx = idx[known]
    if len(idx) == 0:
        raise DataError(f"{csv}: no rows left to evaluate (bad rows: {len(bad)}, unseen labels: {len(unseen_rows)})")
    cfg = loaded.cfg
    batches = Batches(cache, idx, batch_size or cfg.train.batch_size, image_specs(loaded.model),
                      device=loaded.device)
    probs, labels, positions = predict_probs(loaded.model, batches)
    metrics = classification_metrics(probs, labels, loaded.labels)
    metrics["bad_rows"] = len(bad)
    metrics["unseen_label_rows"] = int(len(unseen_rows))
    metrics["unseen_labels"] = unseen
    metrics["csv"] = str(csv)
    out_dir = Path(out_dir) if out_dir else run
    write_eval_report(out_dir, metrics, cache, positions, probs, labels, loaded.labels)
    return metrics


def _raw_labels(cache, csv: Path, positions: np.ndarray) -> list[str]:
    from mmcli.data.manifest import read_table

    if len(positions) == 0:
        return []
    _, rows, _ = read_table(csv)
    col = cache.meta["label_column"]
    return [rows[int(i)][col] for i in positions]
