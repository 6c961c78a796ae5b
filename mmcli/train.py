"""The explicit training loop: AdamW, warm-up + cosine, clipping, early stopping, checkpoints, progress."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import numpy as np
import torch

from mmcli.config import Config, dump_config, load_config
from mmcli.data.cache import build_cache, check_bad_share
from mmcli.data.dataset import Batches, image_specs
from mmcli.data.manifest import read_manifest
from mmcli.errors import DataError, UsageError
from mmcli.evaluate import predict_probs
from mmcli.files import atomic_write_text
from mmcli.loading import resolve_device
from mmcli.loop import Interrupted, LoopState, StopFlag, last_dir, load_last, lr_lambda, save_last, train_one_epoch
from mmcli.metrics import classification_metrics
from mmcli.models.classifier import build_model
from mmcli.progress import console, info, make_progress, quiet
from mmcli.runs import RunLock, new_run_dir, save_weights, update_latest, write_json

MONITOR_MODE = {"val_accuracy": "max", "val_macro_f1": "max", "val_loss": "min"}


def _improved(value: float, best: float | None, mode: str) -> bool:
    return best is None or (value > best if mode == "max" else value < best)


def _write_history(run: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(run / "history.csv", buf.getvalue())


def _prepare(csv_path: Path, cfg: Config, cache_dir: Path | None):
    man = read_manifest(csv_path, cfg.data, need_label=True)
    cfg.data.image_columns, cfg.data.text_columns = man.image_columns, man.text_columns
    cache, bad, reused = build_cache(man, cfg, cache_dir)
    check_bad_share(bad, len(man.rows), cfg.data.max_bad_fraction, cache.dir / "bad_rows.csv")
    info(f"data: {len(man.rows)} rows, {len(bad)} bad, inputs: "
         + ", ".join(f"{i['name']} ({i['kind']})" for i in cache.inputs)
         + f"; {len(cache.meta['label_names'])} classes; cache {'reused' if reused else 'built'} at {cache.dir}")
    if len(cache.meta["label_names"]) < 2:
        raise DataError(f"{csv_path}: need at least 2 classes to train, found {cache.meta['label_names']}")
    if len(cache.indices(0)) == 0:
        raise DataError(f"{csv_path}: no valid training rows")
    return man, cache, bad


def _setup(cfg: Config) -> str:
    torch.manual_seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    return resolve_device(cfg.train.device)


def _start_run(csv_path: Path, cfg: Config, output, resume, cache_dir):
    """-> (run folder, config, cache, bad rows, resumed blob or None)."""
    if resume is not None:
        run = Path(resume)
        if last_dir(run) is None or not (run / "config.yaml").exists():
            raise UsageError(f"{run} has no checkpoint to resume from (expected {run}/last/state.pt)")
        import yaml

        cfg = load_config(base=yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")))
        info_blob = yaml.safe_load((run / "run.yaml").read_text(encoding="utf-8"))
        csv_path = csv_path or Path(info_blob["csv"])
    elif csv_path is None:
        raise UsageError("mm train needs a CSV manifest (or --resume RUN)")
    _, cache, bad = _prepare(Path(csv_path), cfg, cache_dir)
    run = Path(resume) if resume is not None else new_run_dir(output)
    return run, cfg, Path(csv_path), cache, bad


def _write_run_files(run: Path, cfg: Config, csv_path: Path, cache) -> None:
    import yaml

    atomic_write_text(run / "config.yaml", dump_config(cfg))
    write_json(run / "labels.json", cache.meta["label_names"])
    atomic_write_text(run / "run.yaml", yaml.safe_dump({"csv": str(csv_path.resolve()), "cache": str(cache.dir)}))
    if (cache.dir / "tokenizer.json").exists():
        (run / "tokenizer").mkdir(exist_ok=True)
        shutil.copyfile(cache.dir / "tokenizer.json", run / "tokenizer" / "tokenizer.json")
    shutil.copyfile(cache.dir / "bad_rows.csv", run / "bad_rows.csv")


def train(csv_path: Path | None, cfg: Config, output: Path | None = None, resume: Path | None = None,
          cache_dir: Path | None = None) -> Path:
    """Train a model on `csv_path` and write a run folder; returns its path."""
    run, cfg, csv_path, cache, _ = _start_run(csv_path, cfg, output, resume, cache_dir)
    threads = torch.get_num_threads()
    try:
        with RunLock(run):
            device = _setup(cfg)
            if resume is None:
                _write_run_files(run, cfg, csv_path, cache)
            return _fit(run, cfg, cache, device, resume is not None)
    finally:
        torch.set_num_threads(threads)  # train.threads is for this run only (matters when called in-process)


def _build(cfg: Config, cache, device: str):
    from mmcli.text import load_tokenizer

    tok_file = cache.dir / "tokenizer.json"
    vocab = load_tokenizer(tok_file).get_vocab_size() if tok_file.exists() else None
    names = cache.meta["label_names"]
    # channels_last: conv backward runs ~25% faster on CPU in this layout (benchmarks/overhead.py)
    model = build_model(cfg, cache.inputs, len(names), vocab).to(device, memory_format=torch.channels_last)
    specs = image_specs(model)
    tr = Batches(cache, cache.indices(0), cfg.train.batch_size, specs, shuffle=True, augment=cfg.train.augment,
                 seed=cfg.train.seed, device=device)
    va = Batches(cache, cache.indices(1), cfg.train.batch_size * 2, specs, device=device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.train.epochs * len(tr), cfg.train.warmup))
    return model, tr, va, opt, sched


def _fit(run: Path, cfg: Config, cache, device: str, resumed: bool) -> Path:
    names = cache.meta["label_names"]
    model, tr, va, opt, sched = _build(cfg, cache, device)
    state = load_last(run, model, opt, sched) if resumed else LoopState()
    if resumed:
        info(f"resuming {run} at epoch {state.epoch + 1}, batch {state.batch}")
    mode = MONITOR_MODE[cfg.train.monitor]
    info(f"model: {sum(p.numel() for p in model.parameters()):,} parameters on {device}; "
         f"{len(tr.indices)} train / {len(va.indices)} val rows; run folder {run}")
    every = cfg.train.checkpoint_every

    def on_step() -> None:
        if every > 0 and sched.last_epoch % every == 0:
            save_last(run, model, opt, sched, state)

    from rich.progress import TextColumn

    with StopFlag() as stop, make_progress(TextColumn("{task.fields[stats]}")) as progress:
        for epoch in range(state.epoch + 1, cfg.train.epochs + 1):
            tr.set_epoch(epoch)
            task = progress.add_task(f"epoch {epoch}/{cfg.train.epochs}", total=len(tr), stats="")
            row = {"epoch": epoch, "lr": opt.param_groups[0]["lr"]}
            result = train_one_epoch(model, tr, opt, sched, cfg, state, on_step, stop, progress, task)
            if result is None:
                save_last(run, model, opt, sched, state)
                raise Interrupted(f"interrupted in epoch {epoch} after batch {state.batch}; saved a checkpoint. "
                                  f"Resume with: mm train --resume {run}")
            row.update(result)
            val = classification_metrics(*predict_probs(model, va)[:2], names) if len(va.indices) else {}
            row.update({"val_loss": val.get("loss"), "val_accuracy": val.get("accuracy"),
                        "val_macro_f1": val.get("macro_f1")})
            progress.update(task, stats=progress.tasks[task].fields["stats"]
                            + f" | val acc {_num(row['val_accuracy'])} loss {_num(row['val_loss'])}")
            if _end_epoch(run, model, opt, sched, state, row, cfg, mode):
                info(f"early stop: no {cfg.train.monitor} improvement for {cfg.train.patience} epochs")
                break
    return _finish(run, cfg, cache, model, state, device)


def _num(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def _end_epoch(run: Path, model, opt, sched, state: LoopState, row: dict, cfg: Config, mode: str) -> bool:
    """Record the epoch, save best/last checkpoints. -> True when early stopping triggers."""
    value = row.get(cfg.train.monitor)
    if value is None:  # no validation rows: the latest epoch counts as the best
        value = -row["train_loss"] if mode == "max" else row["train_loss"]
    state.epoch = row["epoch"]
    state.history.append(row)
    if _improved(value, state.best, mode):
        state.best, state.best_epoch, state.bad_epochs = value, row["epoch"], 0
        save_weights(model, run / "model.safetensors")
    else:
        state.bad_epochs += 1
    _write_history(run, state.history)
    save_last(run, model, opt, sched, state)
    return cfg.train.patience > 0 and state.bad_epochs >= cfg.train.patience


def _finish(run: Path, cfg: Config, cache, model, state: LoopState, device: str) -> Path:
    """Reload the best weights, score val (and test when the CSV has one), write metrics.json + report.md."""
    from mmcli.report import write_report
    from mmcli.runs import load_weights

    load_weights(model, run / "model.safetensors")
    names = cache.meta["label_names"]
    specs = image_specs(model)
    metrics: dict = {"best_epoch": state.best_epoch, "epochs_run": state.epoch, "monitor": cfg.train.monitor}
    for split, code in (("val", 1), ("test", 2)):
        idx = cache.indices(code)
        if len(idx):
            probs, labels, _ = predict_probs(model, Batches(cache, idx, cfg.train.batch_size * 2, specs,
                                                            device=device))
            metrics[split] = classification_metrics(probs, labels, names)
    write_json(run / "metrics.json", metrics)
    main = metrics.get("test") or metrics.get("val")
    if main:
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
            table.add_row(split, str(m["n"]), _num(m["accuracy"]), _num(m["macro_f1"]), _num(m["loss"]))
    total = sum(h["seconds"] for h in state.history)
    table.caption = f"best epoch {state.best_epoch} of {state.epoch}; {total:.1f} s training"
    if not quiet():
        console.print(table)
