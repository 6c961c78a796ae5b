"""The epoch loop of `mm train`: build model + optimiser, train, validate, checkpoint, early stop (then
`finish.py`).

Works the same in one process and under torchrun: batches are sharded per rank, DDP averages gradients,
validation predictions are gathered, and only rank 0 writes files or prints.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from pathlib import Path

import torch

from mmcli import distributed as D
from mmcli.checkpoints import Checkpoints
from mmcli.config import Config
from mmcli.data.dataset import Batches, input_specs, text_lengths
from mmcli.ema import applied, make_ema
from mmcli.evaluate import predict_probs
from mmcli.files import atomic_write_text
from mmcli.finish import finish, fitting, fmt_metric, score_probs
from mmcli.frozen import frozen_embeddings, view_tables
from mmcli.loop import (
    Interrupted,
    LoopState,
    StepTools,
    StopFlag,
    amp_dtype,
    load_last,
    lr_lambda,
    train_one_epoch,
)
from mmcli.models.classifier import build_model, frozen_inputs, param_groups
from mmcli.progress import info, log_line, make_progress
from mmcli.stopping import may_stop, record_epoch


def trains_heads_apart(model) -> bool:
    """Does this late-fusion model train each input's head on its own loss? Yes while any encoder trains, or when
    the heads are MLPs (`model.late_hidden`): trained through the averaged logits, trainable encoders or hidden
    layers co-adapt. Linear heads over frozen encoders only are a plain linear model over fixed features, where
    joint training does better (benchmarks/sample_accuracy.py)."""
    if not getattr(model.fusion, "separate_heads", False):
        return False
    return len(frozen_inputs(model)) < len(model.names) or getattr(model.fusion, "hidden", 0) > 0


def _states(cache) -> dict:
    """{kind: its fitted state kept in the cache folder} (the tokenizer) for the cache's input kinds."""
    return {k: cache.state(k) for k in {i["kind"] for i in cache.inputs}}


def _tools(cfg: Config, device: str, dinfo: D.DistInfo) -> StepTools:
    device_type = torch.device(device).type
    dtype = amp_dtype(cfg.train.precision, device)
    scaler = torch.amp.GradScaler(device_type) if dtype == torch.float16 else None

    def any_rank(flag: bool) -> bool:
        return bool(D.sum_scalars(dinfo, {"stop": float(flag)})["stop"]) if dinfo.enabled else flag

    return StepTools(device_type=device_type, amp_dtype=dtype, scaler=scaler, any_rank=any_rank)


def class_weights(labels, num_classes: int) -> torch.Tensor:
    """Inverse-frequency loss weights `[C]`, n / (C * count_c), so that a balanced data set gets all ones; a
    class absent from training gets weight 0."""
    counts = torch.bincount(torch.as_tensor(labels), minlength=num_classes).double()
    w = torch.where(counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts))
    return w.float()


def pos_weights(targets) -> torch.Tensor:
    """Multi-label: per-label positive weight `[C]` = negatives / positives (BCEWithLogitsLoss's pos_weight)."""
    t = torch.as_tensor(targets).double()
    pos = t.sum(0)
    return ((t.shape[0] - pos) / pos.clamp(min=1)).float()


def _precompute(model, cache, cfg: Config, device: str, tools: StepTools) -> list[str]:
    """Tables of what never changes while training, computed once: fully frozen encoders' embeddings, and the
    outputs of partly frozen encoders' frozen first blocks (`model.unfreeze_last`). Sets `tools.cached` and returns
    the inputs those tables cover (their raw data need not be loaded)."""
    # A frozen image encoder's output is reusable only when its pixels don't change from epoch to epoch.
    from mmcli import modalities

    reusable = [n for n in model.names if not (cfg.train.augment and modalities.get(model.kinds[n]).augments)]
    frozen = [n for n in frozen_inputs(model) if n in reusable]
    prefixes = {n: k for n in reusable if n not in frozen and cfg.train.cache_prefix
                and (k := getattr(model.encoders[n], "cacheable_prefix", lambda: 0)())}
    if not frozen and not prefixes:
        return []
    table = frozen_embeddings(model, cache, frozen + list(prefixes), cfg.train.batch_size * 2, device, prefixes)
    for n in set(prefixes) & set(table):
        model.encoders[n].cached_prefix = prefixes[n]
    tools.cached = lambda pos: {n: t[pos].to(device) for n, t in table.items()}
    tools.frozen = frozenset(table)
    if cfg.train.views:
        tools.train_cached = view_tables(model, cache, cfg.train.batch_size * 2, device, table, prefixes,
                                         cfg.train.views)
    if frozen:
        info(f"frozen encoders ({', '.join(frozen)}): embeddings computed once and reused every epoch")
    if set(prefixes) & set(table):
        info("frozen first blocks (" + ", ".join(f"{n}: {prefixes[n]} of {len(model.encoders[n].blocks())}"
                                              for n in prefixes if n in table) + "): outputs computed once")
    return list(table)


MIN_AUTO_BATCH = 16  # train.min_steps never shrinks a batch below this: BatchNorm and AdamW need a few rows


def train_batch_size(batch_size: int, rows: int, min_steps: int) -> int:
    """Rows per training step: `batch_size`, or fewer when `rows` would give under `min_steps` steps an epoch.
    Why: 82 iris rows in batches of 64 make 2 steps an epoch, 40 in all, too few for the head to converge (test
    accuracy 0.88 +- 0.09 over 3 seeds, 1.00 +- 0 in batches of 16; benchmarks/tabular.py)."""
    if min_steps <= 0:
        return batch_size
    return min(batch_size, max(MIN_AUTO_BATCH, -(-rows // min_steps)))


def build(cfg: Config, cache, device: str, dinfo: D.DistInfo, train_rows=None, probe: bool = True):
    """-> (model, ddp model or the same, train batches, val batches, optimiser, scheduler, step tools).
    `train_rows`: cache positions to train on (default: the train split). `probe`: train the head alone first
    (`train.lp_epochs`; off when a checkpoint's weights replace the model's anyway)."""
    names = cache.meta["label_names"]
    # channels_last: conv backward runs ~25% faster on CPU in this layout (benchmarks/overhead.py)
    model = build_model(cfg, cache.inputs, len(names), states=_states(cache), multi_label=cache.multi_label)
    model.to(device, memory_format=torch.channels_last)
    fitting(model, True)
    specs = input_specs(model)
    tools = _tools(cfg, device, dinfo)
    frozen = _precompute(model, cache, cfg, device, tools)
    train_rows = cache.indices(0) if train_rows is None else train_rows
    if probe and cfg.train.lp_epochs > 0:
        from mmcli.lpft import probe_head

        probe_head(model, cache, cfg, device, tools, train_rows, dinfo)
    batch = train_batch_size(cfg.train.batch_size, len(train_rows), cfg.train.min_steps)
    if batch != cfg.train.batch_size and dinfo.main:
        info(f"batch size {batch} (train.min_steps={cfg.train.min_steps} for {len(train_rows)} training rows)")
    tr = Batches(cache, train_rows, batch, specs, shuffle=True, augment=cfg.train.augment,
                 seed=cfg.train.seed, device=device, rank=dinfo.rank, world=dinfo.world, skip=set(frozen),
                 balanced=cfg.train.sampler == "weighted",
                 lengths=text_lengths(cache) if cfg.train.sampler == "length" else None)
    tools.multi_label = cache.multi_label
    tools.aux_weight = cfg.train.aux_weight if model.aux is not None else 0.0
    tools.separate_heads = trains_heads_apart(model)
    if cfg.train.class_weights == "auto":
        weights = (pos_weights(cache.targets[train_rows]) if cache.multi_label
                   else class_weights(cache.labels[train_rows], len(names)))
        tools.class_weights = weights.to(device)
    va_idx = cache.indices(1)[dinfo.rank :: dinfo.world]  # each rank scores a shard; predictions are gathered
    va = Batches(cache, va_idx, cfg.train.batch_size * 2, specs, device=device, skip=set(frozen))
    groups = param_groups(model, cfg.train.lr, cfg.train.pretrained_lr, cfg.train.weight_decay,
                          cfg.train.pretrained_lrs)
    opt = torch.optim.AdamW(groups, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(cfg.train.epochs * len(tr), cfg.train.warmup))
    net = model
    if dinfo.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [torch.device(device).index] if device.startswith("cuda") else None
        net = DDP(model, device_ids=ids)
    return model, net, tr, va, opt, sched, tools


def _validate(model, va: Batches, names: list[str], dinfo: D.DistInfo, cached=None) -> dict:
    probs, labels, _ = predict_probs(model, va, cached)
    probs, labels = D.gather_arrays(dinfo, probs, labels)
    return score_probs(probs, labels, names, model.multi_label) if len(labels) else {}


def _epoch_row(epoch: int, lr: float, result: dict, val: dict, dinfo: D.DistInfo) -> dict:
    sums = D.sum_scalars(dinfo, {"rows": result["rows"], "loss": result["train_loss"] * result["rows"],
                                 "correct": result["train_accuracy"] * result["rows"]})
    rows = max(sums["rows"], 1)
    return {"epoch": epoch, "lr": lr, "train_loss": sums["loss"] / rows, "train_accuracy": sums["correct"] / rows,
            "samples_per_s": sums["rows"] / max(result["seconds"], 1e-9), "seconds": result["seconds"],
            "val_loss": val.get("loss"), "val_accuracy": val.get("accuracy"), "val_macro_f1": val.get("macro_f1")}


def fit(run: Path, cfg: Config, cache, device: str, resumed: bool, dinfo: D.DistInfo,
        on_epoch: Callable[[int, dict], None] | None = None) -> Path:
    """Train until `train.epochs` or early stopping; returns the run folder.

    `on_epoch(epoch, row)` gets each epoch's history row (val metrics included) before it is recorded; an
    exception it raises ends training there (`mm tune` prunes a trial that way)."""
    names = cache.meta["label_names"]
    model, net, tr, va, opt, sched, tools = build(cfg, cache, device, dinfo, probe=not resumed)
    ema = make_ema(model, cfg.train.ema, cfg.train.epochs * len(tr))
    state = load_last(run, model, opt, sched, ema) if resumed else LoopState()
    if resumed:
        info(f"resuming {run} at epoch {state.epoch + 1}, batch {state.batch}")
    info(f"model: {sum(p.numel() for p in model.parameters()):,} parameters on {device}"
         f"{f' x {dinfo.world} processes' if dinfo.enabled else ''}; {len(tr.indices)} train / "
         f"{len(cache.indices(1))} val rows; run folder {run}")
    every = cfg.train.checkpoint_every
    ckpt = Checkpoints(run, model, opt, sched, state, cfg.train.checkpoint_seconds, dinfo.main, ema)

    def on_step() -> None:
        if ema is not None:  # before a checkpoint, so that it holds the average of every step it has seen
            ema.update()
        if every > 0 and sched.last_epoch % every == 0:
            ckpt.save(force=True)

    from rich.progress import TextColumn

    with StopFlag() as stop, make_progress(TextColumn("{task.fields[stats]}")) as progress:
        # a resumed run whose epoch loop had ended (early stop) goes straight to the refit and the final scoring
        for epoch in range(state.epoch + 1, cfg.train.epochs + 1) if not state.done else ():
            tr.set_epoch(epoch)
            task = progress.add_task(f"epoch {epoch}/{cfg.train.epochs}", total=len(tr), stats="")
            lr = opt.param_groups[-1]["lr"]
            result = train_one_epoch(net, tr, opt, sched, cfg, state, on_step, stop, progress, task, tools)
            if result is None:
                ckpt.save(force=True)
                raise Interrupted(f"interrupted in epoch {epoch} after batch {state.batch}; saved a checkpoint. "
                                  f"Resume with: mm train --resume {run}")
            with applied(ema):  # with train.ema, the average is what is validated, selected and saved
                val = _validate(model, va, names, dinfo, tools.cached)
            row = _epoch_row(epoch, lr, result, val, dinfo)
            val_text = f"val acc {fmt_metric(row['val_accuracy'])} loss {fmt_metric(row['val_loss'])}"
            progress.update(task, stats=progress.tasks[task].fields["stats"] + " | " + val_text)
            log_line(f"epoch {epoch}/{cfg.train.epochs}: train loss {row['train_loss']:.4f} acc "
                     f"{row['train_accuracy']:.3f}, {row['samples_per_s']:.0f} samples/s, {row['seconds']:.1f} s | "
                     + val_text)
            if on_epoch is not None:  # e.g. mm tune's pruning check, which raises to end the run here
                on_epoch(epoch, row)
            if _end_epoch(run, ckpt, row, cfg, dinfo, len(cache.indices(1))):
                info(f"early stop: no {cfg.train.monitor} improvement for {state.bad_epochs} epochs")
                break
        if not state.done:
            state.done = True
            ckpt.save(force=True)
        refitted = None
        if cfg.train.refit and len(cache.indices(1)) and state.best_epoch > 0:
            from mmcli.refit import refit

            refitted = refit(run, cfg, cache, device, dinfo, state.best_epoch, stop, progress)
    D.barrier(dinfo)
    return finish(run, cfg, cache, model, state, device, tools, refitted) if dinfo.main else run


def _end_epoch(run: Path, ckpt: Checkpoints, row: dict, cfg: Config, dinfo: D.DistInfo, val_rows: int = 0) -> bool:
    """Record the epoch, note or save best/last checkpoints (rank 0). -> True when early stopping triggers (every
    rank decides the same: the metrics are already reduced). `val_rows`: the validation split's size (ties)."""
    if record_epoch(ckpt.state, row, cfg, val_rows):
        ckpt.improved()
    if dinfo.main:
        _write_history(run, ckpt.state.history)
    ckpt.save()
    return may_stop(cfg, ckpt.state)


def _write_history(run: Path, history: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(history[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(run / "history.csv", buf.getvalue())
