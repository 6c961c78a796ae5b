"""The explicit training loop pieces: schedule, one epoch, resumable checkpoints, graceful Ctrl-C.

A checkpoint is taken only between optimiser steps (never mid-update), so resuming from it replays exactly what
an uninterrupted run would have done: the batch order is a function of (seed, epoch), and the global torch RNG
(augmentation, dropout, modality dropout) is saved with the weights.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path

import torch
from torch import nn

from mmcli.errors import MMError
from mmcli.files import atomic_path
from mmcli.models.classifier import mixed_presence
from mmcli.runs import save_weights


@dataclass
class LoopState:
    """Everything besides weights that a resumed run needs (saved in last/state.pt)."""

    epoch: int = 0  # finished epochs
    batch: int = 0  # batches done in the unfinished epoch `epoch + 1`
    best: float | None = None
    best_epoch: int = 0
    bad_epochs: int = 0
    smoothed: float | None = None  # the monitored metric's moving average (train.monitor_smoothing)
    done: bool = False  # the epoch loop has ended (all epochs or an early stop); a resume goes straight to the end
    partial: dict = field(default_factory=dict)  # running sums of the unfinished epoch
    history: list[dict] = field(default_factory=list)


def lr_lambda(total_steps: int, warmup: float):
    """Linear warm-up over `warmup` of the steps, then cosine decay to 0."""
    warm = max(1, int(total_steps * warmup))

    def f(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))

    return f


def drop_modalities(present: torch.Tensor, p: float) -> torch.Tensor:
    """Hide each modality of each row with probability p, never all of a row's modalities. bool `[B, M]`."""
    if p <= 0 or present.shape[1] < 2:
        return present
    kept = present & (torch.rand(present.shape, device=present.device) >= p)
    return torch.where(kept.any(dim=1, keepdim=True), kept, present)


def draw_mix(rows: int, alpha: float, device) -> tuple[torch.Tensor, float] | None:
    """Mixup's pairing for one batch (Zhang et al. 2018; on embeddings, Verma et al. 2019): a random permutation
    `[B]` of the rows and a weight lam ~ Beta(alpha, alpha), folded to lam >= 0.5 so each row stays mostly itself.
    None when `alpha` is 0 (mixup off) or the batch has a single row. Drawn from torch's seeded generator."""
    if alpha <= 0 or rows < 2:
        return None
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    return torch.randperm(rows).to(device), max(lam, 1 - lam)


def mix_targets(labels: torch.Tensor, mix, num_classes: int, multi_label: bool) -> torch.Tensor:
    """The targets of a mixed batch: lam * y + (1 - lam) * y[perm] as class probabilities `[B, C]` (or, multi-label,
    label-set weights); `labels` unchanged without `mix`."""
    if mix is None:
        return labels
    perm, lam = mix
    y = labels.float() if multi_label else nn.functional.one_hot(labels, num_classes).float()
    return lam * y + (1 - lam) * y[perm]


class StopFlag:
    """First Ctrl-C (SIGINT) or SIGTERM asks the loop to stop after the current step; a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._old: dict = {}

    def _handler(self, signum, frame) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> StopFlag:  # noqa: PYI034
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: no signal handling, Ctrl-C behaves as usual
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)


class Interrupted(MMError):
    """Training stopped by the user after saving a resumable checkpoint (exit 130)."""

    exit_code = 130


def save_last(run: Path, model, opt, sched, state: LoopState, ema=None) -> None:
    """Write last/ (weights + optimiser, scheduler, RNG, loop state and the weight average `ema`) as one unit: the
    pair is written into last.tmp/, then swapped in by renames, so a kill at any moment leaves one complete,
    consistent pair."""
    tmp, last, old = run / "last.tmp", run / "last", run / "last.old"
    shutil.rmtree(tmp, ignore_errors=True)
    save_weights(model, tmp / "model.safetensors")
    blob = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "rng": torch.get_rng_state(),
            "loop": dict(state.__dict__)}
    if ema is not None:
        blob["ema"] = ema.state_dict()
    with atomic_path(tmp / "state.pt") as path:
        torch.save(blob, path)
    if last.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(last, old)
    os.replace(tmp, last)
    shutil.rmtree(old, ignore_errors=True)


def last_dir(run: Path) -> Path | None:
    """The complete checkpoint folder: last/, else last.tmp/ (complete once last/ was moved away), else last.old/."""
    for name in ("last", "last.tmp", "last.old"):
        complete = (run / name / "state.pt").exists() and (run / name / "model.safetensors").exists()
        if complete and (name != "last.tmp" or not (run / "last").exists()):
            return run / name
    return None


def load_last(run: Path, model, opt, sched, ema=None) -> LoopState:
    """Restore what save_last wrote; a tampered or truncated file gives a clear error."""
    from mmcli.runs import load_weights

    d = last_dir(run)
    if d is None:
        raise MMError(f"{run} has no complete checkpoint in last/ to resume from")
    load_weights(model, d / "model.safetensors")
    try:
        blob = torch.load(d / "state.pt", weights_only=True)
        opt.load_state_dict(blob["optimizer"])
        sched.load_state_dict(blob["scheduler"])
        torch.set_rng_state(blob["rng"])
        if ema is not None:
            ema.load_state_dict(blob["ema"])
        known = {f.name for f in fields(LoopState)}  # a checkpoint of an older version may hold retired keys
        return LoopState(**{k: v for k, v in blob["loop"].items() if k in known})
    except Exception as exc:  # noqa: BLE001 - any unreadable checkpoint gets the same clear message
        raise MMError(f"cannot resume from {d}: {str(exc).splitlines()[0][:200]} "
                      "(truncated or tampered checkpoint?)") from None


AMP = {"32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def native_bf16(device: str) -> bool:
    """Does `device` compute bf16 natively (so that autocast to it is faster than fp32, not emulated)?"""
    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    if kind == "cpu":  # oneDNN's bf16 kernels need AVX512-BF16 or AMX; elsewhere bf16 is converted back and forth
        return any(getattr(torch.cpu, f, lambda: False)() for f in ("_is_avx512_bf16_supported",
                                                                      "_is_amx_tile_supported"))
    return False


def amp_dtype(precision: str, device: str) -> torch.dtype | None:
    """`train.precision` on `device` -> the autocast dtype, None for fp32. fp16 on a CPU becomes bf16 (CPU autocast
    has no fp16 kernels worth using); auto is bf16 where `native_bf16`, else fp32."""
    if precision == "auto":
        return torch.bfloat16 if native_bf16(device) else None
    dtype = AMP[precision]
    return torch.bfloat16 if dtype == torch.float16 and torch.device(device).type == "cpu" else dtype


@dataclass
class StepTools:
    """Per-run helpers for `train_one_epoch`: mixed precision, frozen-embedding lookup, distributed stop vote."""

    device_type: str = "cpu"
    amp_dtype: torch.dtype | None = None  # bf16 / fp16 autocast, None for fp32
    scaler: torch.amp.GradScaler | None = None  # fp16 only: scales the loss so small gradients don't underflow
    cached: Callable[[torch.Tensor], dict] | None = None  # cache positions -> {modality: [B, D]} precomputed
    frozen: frozenset[str] = frozenset()  # the inputs `cached` covers (their raw inputs need not be loaded)
    train_cached: Callable[[torch.Tensor], dict] | None = None  # as `cached`, for training steps (random views)
    any_rank: Callable[[bool], bool] = lambda flag: flag  # OR over ranks, so all ranks stop at the same step
    class_weights: torch.Tensor | None = None  # [C] loss weights (train.class_weights=auto)
    multi_label: bool = False  # sigmoid/BCE over label sets instead of softmax/cross-entropy
    aux_weight: float = 0.0  # weight of the per-modality heads' loss (train.aux_weight)
    separate_heads: bool = False  # late fusion: only the per-modality heads' own losses (no modality dropout needed)

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.amp_dtype or torch.float32,
                              enabled=self.amp_dtype is not None)


def _step(model: nn.Module, opt, sched, loss: torch.Tensor, grad_clip: float, tools: StepTools) -> None:
    opt.zero_grad(set_to_none=True)
    if tools.scaler is not None:
        tools.scaler.scale(loss).backward()
        tools.scaler.unscale_(opt)
    else:
        loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    if tools.scaler is not None:
        tools.scaler.step(opt)
        tools.scaler.update()
    else:
        opt.step()
    sched.step()


def _aux_loss(aux: dict[str, torch.Tensor], shown: torch.Tensor, labels: torch.Tensor, loss_fn) -> torch.Tensor:
    """Mean of the per-modality heads' losses, each over the rows where its modality was shown (Wang et al. 2020,
    "What makes training multi-modal classification networks hard?": per-modality losses beside the fused one)."""
    losses = []
    for j, logits in enumerate(aux.values()):
        rows = shown[:, j]
        if rows.any():
            losses.append(loss_fn(logits[rows].float(), labels[rows]))
    return torch.stack(losses).mean() if losses else torch.zeros((), device=labels.device)


def _correct(logits: torch.Tensor, labels: torch.Tensor, multi_label: bool) -> int:
    """Rows predicted right: the arg-max class, or (multi-label) the whole label set at threshold 0.5."""
    if multi_label:
        return int(((logits > 0) == labels.bool()).all(1).sum().item())
    return int((logits.argmax(1) == labels).sum().item())


def train_one_epoch(model: nn.Module, batches, opt, sched, cfg, state: LoopState, on_step, stop: StopFlag,
                    progress, task, tools: StepTools | None = None) -> dict | None:
    """Train over `batches` from batch `state.batch` on. `on_step()` runs after every step (checkpointing).
    -> {train_loss, train_accuracy, samples_per_s, seconds} (this rank's rows), or None when a stop was requested
    mid-epoch."""
    tools = tools or StepTools()
    model.train()
    if tools.multi_label:  # one sigmoid per label; class weights become per-label positive weights
        loss_fn: nn.Module = nn.BCEWithLogitsLoss(pos_weight=tools.class_weights)
    else:
        loss_fn = nn.CrossEntropyLoss(weight=tools.class_weights, label_smoothing=cfg.train.label_smoothing)
    acc = state.partial or {"total": 0, "correct": 0, "loss_sum": 0.0, "seconds": 0.0}
    progress.update(task, completed=state.batch)
    start = time.perf_counter() - acc["seconds"]
    for inputs, present, labels, pos in batches.iterate(start_batch=state.batch):
        lookup = tools.train_cached or tools.cached
        cached = lookup(pos) if lookup else None
        mix = draw_mix(labels.shape[0], cfg.train.mixup, labels.device)
        with tools.autocast():
            if tools.separate_heads:  # independent per-modality heads (late fusion): each trains on its own rows
                logits, heads = model(inputs, present, cached, return_aux=True, mix=mix)
                target = mix_targets(labels, mix, logits.shape[1], tools.multi_label)
                loss = _aux_loss(heads, mixed_presence(present, mix), target, loss_fn)
            else:
                shown = drop_modalities(present, cfg.train.modality_dropout)
                logits, aux = model(inputs, shown, cached, return_aux=True, mix=mix)
                target = mix_targets(labels, mix, logits.shape[1], tools.multi_label)
                loss = loss_fn(logits.float(), target)
                if tools.aux_weight > 0:
                    loss = loss + tools.aux_weight * _aux_loss(aux, mixed_presence(shown, mix), target, loss_fn)
        _step(model, opt, sched, loss, cfg.train.grad_clip, tools)
        n = labels.shape[0]
        acc["total"] += n
        acc["loss_sum"] += loss.item() * n
        acc["correct"] += _correct(logits, labels, tools.multi_label)
        acc["seconds"] = time.perf_counter() - start
        state.batch, state.partial = state.batch + 1, acc
        progress.update(task, advance=1, stats=f"loss {acc['loss_sum'] / acc['total']:.4f} "
                        f"acc {acc['correct'] / acc['total']:.3f} {acc['total'] / max(acc['seconds'], 1e-9):.0f}/s")
        on_step()
        if tools.any_rank(stop.requested):
            return None
    state.batch, state.partial = 0, {}
    total = max(acc["total"], 1)
    return {"train_loss": acc["loss_sum"] / total, "train_accuracy": acc["correct"] / total,
            "samples_per_s": acc["total"] / max(acc["seconds"], 1e-9), "seconds": acc["seconds"],
            "rows": acc["total"]}
