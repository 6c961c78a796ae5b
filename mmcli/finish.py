"""The end of a run: reload the best weights, fit late-fusion weights on val, score val and test, write
metrics.json and report.md, point runs/latest at it, and print the summary (rank 0 only)."""

from __future__ import annotations

from pathlib import Path

import torch

from mmcli.config import Config
from mmcli.data.dataset import Batches, input_specs
from mmcli.evaluate import predict_probs
from mmcli.files import atomic_write_text
from mmcli.late_weights import tune_late_weights
from mmcli.loop import LoopState, StepTools
from mmcli.metrics import classification_metrics
from mmcli.progress import console, quiet
from mmcli.runs import save_weights, update_latest, write_json


def score_probs(probs, labels, names: list[str], multi_label: bool, thresholds=None) -> dict:
    """Metrics for softmax (single-label) or sigmoid (multi-label) outputs."""
    if multi_label:
        from mmcli.multilabel import multilabel_metrics

        return multilabel_metrics(probs, labels, names, thresholds)
    return classification_metrics(probs, labels, names)


def fitting(model, on: bool) -> None:
    """Late fusion's per-row weighting (`model.late_weighting`) waits until the model is finished: see LateFusion."""
    if hasattr(model.fusion, "fitting"):
        model.fusion.fitting = on


def fmt_metric(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def finish(run: Path, cfg: Config, cache, model, state: LoopState, device: str, tools: StepTools | None = None,
           refitted: tuple | None = None) -> Path:
    """Reload the best weights, fit late-fusion weights on val, score val (and test when the CSV has one), write
    metrics.json + report.md. `tools.cached`: frozen encoders' embeddings, reused as in training. `refitted`:
    (model, tools) trained on train + val (`train.refit`): it takes the late-fusion weights fitted on the selected
    model and becomes the saved model; validation is scored with the selected model, which never saw those rows."""
    from mmcli.report import write_report
    from mmcli.runs import load_weights

    load_weights(model, run / "model.safetensors")
    names = cache.meta["label_names"]
    specs = input_specs(model)
    metrics: dict = {"best_epoch": state.best_epoch, "epochs_run": state.epoch, "monitor": cfg.train.monitor}
    cached, skip = (tools.cached, set(tools.frozen)) if tools else (None, set())

    def batches(code: int) -> Batches:
        return Batches(cache, cache.indices(code), cfg.train.batch_size * 2, specs, device=device, skip=skip)

    weights = tune_late_weights(model, batches(1), cached) if len(cache.indices(1)) else None
    fitting(model, False)  # from here on the model is scored as it will predict
    if weights is not None:  # part of the model from now on: saved with it, used by eval and predict
        save_weights(model, run / "model.safetensors")
        metrics["late_fusion_weights"] = dict(zip(model.fusion.names, (round(w, 4) for w in weights)))
    outputs = {"val": predict_probs(model, batches(1), cached)} if len(cache.indices(1)) else {}
    if refitted is not None:
        selected, (model, refit_tools) = model, refitted
        fitting(model, False)
        if weights is not None:
            model.fusion.weights.copy_(torch.tensor(weights))
        if cfg.train.soup:
            from mmcli.refit import soup

            soup(model, selected)
        cached = refit_tools.cached
        save_weights(model, run / "model.safetensors")
        metrics["refit"] = {"epochs": state.best_epoch, "rows": int(len(cache.indices(0)) + len(cache.indices(1))),
                            "soup": cfg.train.soup}
    if len(cache.indices(2)):
        outputs["test"] = predict_probs(model, batches(2), cached)
    thresholds = None
    if cache.multi_label:  # per-label thresholds tuned on validation, then applied everywhere (test, predict)
        from mmcli.multilabel import tune_thresholds

        thresholds = tune_thresholds(*outputs["val"][:2]) if "val" in outputs else None
        write_json(run / "thresholds.json", dict(zip(names, [0.5] * len(names) if thresholds is None
                                                     else thresholds.tolist())))
    for split, (probs, labels, _) in outputs.items():
        metrics[split] = score_probs(probs, labels, names, cache.multi_label, thresholds)
    write_json(run / "metrics.json", metrics)
    main = metrics.get("test") or metrics.get("val")
    if main and cache.multi_label:
        from mmcli.multilabel import multilabel_markdown

        atomic_write_text(run / "report.md", multilabel_markdown({**main, "csv": "the training CSV's held-out rows"}))
    elif main:
        split = "test" if "test" in metrics else "val"
        write_report(run, {**main, "csv": f"the {split} split of the training CSV", "split": split},
                     history_csv=run / "history.csv")
    update_latest(run)
    _summary(run, metrics, state)
    return run


def _summary(run: Path, metrics: dict, state: LoopState) -> None:
    from rich.table import Table

    table = Table(title=f"run {run}")
    table.add_column("split")
    for col in ("rows", "accuracy", "macro_f1", "loss"):
        table.add_column(col, justify="right")
    for split in ("val", "test"):
        m = metrics.get(split)
        if m:
            table.add_row(split, str(m["n"]), fmt_metric(m["accuracy"]), fmt_metric(m["macro_f1"]), fmt_metric(m["loss"]))
    total = sum(float(h["seconds"]) for h in state.history)
    table.caption = f"best epoch {state.best_epoch} of {state.epoch}; {total:.1f} s training"
    if not quiet():
        console.print(table)
