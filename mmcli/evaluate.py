"""Run a model over batches and score it; `evaluate_run` backs `mm eval` (metrics, ablation, gates, report)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmcli.metrics import check_gates, classification_metrics


@torch.inference_mode()
def predict_probs(model, batches, cached=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (probs float [N, C], labels int [N] (multi-label: [N, C]), cache positions int [N]) in batch order.
    `cached(pos)`: precomputed `{input: [B, D]}` embeddings of frozen encoders (those inputs are then not loaded)."""
    model.eval()
    probs, labels, positions = [], [], []
    for inputs, present, y, pos in batches:
        out = model(inputs, present, cached(pos) if cached else None).float()
        multi = getattr(model, "multi_label", False)  # one sigmoid per label instead of a softmax over classes
        probs.append((torch.sigmoid(out) if multi else torch.softmax(out, dim=1)).cpu())
        labels.append(y.cpu())
        positions.append(pos)
    if not probs:
        c = model.num_classes
        return np.zeros((0, c), np.float32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return torch.cat(probs).numpy(), torch.cat(labels).numpy(), torch.cat(positions).numpy()


def score(model, batches, names: list[str]) -> dict:
    probs, labels, _ = predict_probs(model, batches)
    return classification_metrics(probs, labels, names)


def _scored_rows(cache, csv: Path, split: str | None) -> tuple[np.ndarray, int, list[str]]:
    """Cache positions to score (valid, of `split`, with a label the model knows).

    -> (positions int [N], number of rows with unseen labels, the unseen label values)."""
    from mmcli.errors import UsageError
    from mmcli.progress import warn

    codes = {"train": 0, "val": 1, "test": 2}
    if split is not None and split not in codes:
        raise UsageError(f"--split must be one of train, val, test; got {split!r}")
    idx = cache.indices(codes[split] if split else None)
    known = cache.labels[idx] >= 0
    unseen_rows = idx[~known]
    unseen = sorted({str(x) for x in _raw_labels(cache, csv, unseen_rows)})
    if len(unseen_rows):
        warn(f"{len(unseen_rows)} row(s) have labels the model never saw ({', '.join(unseen[:5])}); not scored")
    return idx[known], len(unseen_rows), unseen


def evaluate_run(run: Path, csv: Path, split: str | None = None, batch_size: int | None = None,
                 out_dir: Path | None = None, ablate: bool = False, gates: dict[str, float] | None = None,
                 fmt: str = "auto") -> dict:
    """Score the run's best model on every valid row of `csv` (or one split of it); write metrics.json, report.md
    and plots into `out_dir` (default: the run folder). Rows whose label the model never saw are counted and
    listed, not scored.

    `ablate`: also score with each modality hidden (adds the `ablation` key). `gates`: {metric: threshold} to
    check (adds the `gates` key; the caller decides what a failure means). `fmt`: how to read `csv` (see
    mmcli/data/formats.py; "auto" by extension). Keys: docs/eval-json.md.
    """
    from mmcli.data.dataset import Batches, input_specs
    from mmcli.errors import DataError
    from mmcli.frozen import kept_tables
    from mmcli.loading import load_run, prepare_csv
    from mmcli.progress import warn
    from mmcli.report import misclassified_examples

    loaded = load_run(run)
    cache, bad = prepare_csv(loaded, csv, need_label=True, fmt=fmt)
    idx, n_unseen, unseen = _scored_rows(cache, csv, split)
    if len(idx) == 0:
        raise DataError(f"{csv}: no rows left to evaluate (bad rows: {len(bad)}, unseen labels: {n_unseen})")
    # the tables training kept for this file (frozen encoders' embeddings, frozen blocks' outputs): same scores
    cached, skip = kept_tables(loaded.model, cache, loaded.device)
    batches = Batches(cache, idx, batch_size or loaded.cfg.train.batch_size, input_specs(loaded.model),
                      device=loaded.device, skip=skip)
    if getattr(loaded.model, "multi_label", False):
        return _evaluate_multilabel(loaded, cache, batches, cached, bad, n_unseen, unseen, csv, split, out_dir,
                                    gates)
    ablation = None
    if ablate:
        from mmcli.ablation import run_ablation

        dropout = loaded.cfg.train.modality_dropout
        if dropout == 0:
            warn("--ablate: the run was trained with train.modality_dropout=0, so hiding a modality puts the "
                 "model in a situation it never saw in training")
        probs, labels, positions, ablation = run_ablation(loaded.model, batches, loaded.labels,
                                                          [i["name"] for i in cache.inputs], cache.present, dropout,
                                                          cached)
    else:
        probs, labels, positions = predict_probs(loaded.model, batches, cached)
    metrics = classification_metrics(probs, labels, loaded.labels)
    metrics.update(bad_rows=len(bad), unseen_label_rows=n_unseen, unseen_labels=unseen, csv=str(csv), split=split,
                   run=str(run))
    unknown = {i["name"]: i["unknown"] for i in cache.inputs if i.get("unknown")}
    if unknown:  # categories never seen in training, read as "unknown" (rows over the whole file)
        metrics["unknown_categories"] = unknown
    if ablation is not None:
        metrics["ablation"] = ablation
    if gates:
        metrics["gates"] = check_gates(metrics, gates)
    out = Path(out_dir) if out_dir else run
    save_metrics(out, run, metrics)
    from mmcli.report import write_report

    write_report(out, metrics, misclassified_examples(cache, positions, probs, labels, loaded.labels),
                 run / "history.csv")
    return metrics


def _evaluate_multilabel(loaded, cache, batches, cached, bad, n_unseen, unseen, csv, split, out_dir, gates) -> dict:
    """`mm eval` for a multi-label run: sigmoid outputs at the run's tuned thresholds (thresholds.json)."""
    import json

    from mmcli.files import atomic_write_text
    from mmcli.multilabel import multilabel_markdown, multilabel_metrics

    run = loaded.run
    saved = json.loads((run / "thresholds.json").read_text(encoding="utf-8"))
    thresholds = np.array([saved.get(n, 0.5) for n in loaded.labels])
    probs, targets, _ = predict_probs(loaded.model, batches, cached)
    metrics = multilabel_metrics(probs, targets, loaded.labels, thresholds)
    metrics.update(bad_rows=len(bad), unseen_label_rows=n_unseen, unseen_labels=unseen, csv=str(csv), split=split,
                   run=str(run))
    if gates:
        metrics["gates"] = check_gates(metrics, gates)
    out = Path(out_dir) if out_dir else run
    save_metrics(out, run, metrics)
    atomic_write_text(out / "report.md", multilabel_markdown(metrics))
    return metrics


def save_metrics(out_dir: Path, run: Path, metrics: dict) -> None:
    """Write metrics.json. Inside the run folder the training results (val/test) stay, with this evaluation
    under "eval"; anywhere else the file is this evaluation alone."""
    import json

    from mmcli.runs import write_json

    target = out_dir / "metrics.json"
    if out_dir.resolve() == run.resolve() and target.exists():
        try:
            saved = json.loads(target.read_text(encoding="utf-8"))
        except ValueError:
            saved = {}
        if isinstance(saved, dict) and ("val" in saved or "test" in saved):
            write_json(target, {**{k: v for k, v in saved.items() if k != "eval"}, "eval": metrics})
            return
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(target, metrics)


def gate_failures(metrics: dict) -> str | None:
    """A message naming every missed gate with its value and threshold, or None when all passed."""
    missed = [g for g in metrics.get("gates", []) if not g["passed"]]
    if not missed:
        return None
    parts = [f"{g['metric']} is undefined for this data (needs >= {g['threshold']})" if g["value"] is None
             else f"{g['metric']} = {g['value']:.4f} < {g['threshold']}" for g in missed]
    return f"quality gate{'s' if len(missed) > 1 else ''} missed: " + "; ".join(parts)


def _raw_labels(cache, csv: Path, positions: np.ndarray) -> list[str]:
    from mmcli.data.manifest import read_table

    if len(positions) == 0:
        return []
    _, rows, _ = read_table(csv, cache.meta.get("format"))
    col = cache.meta["label_column"]
    return [rows[int(i)][col] for i in positions]
