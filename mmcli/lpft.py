"""Linear probing before fine-tuning (`train.lp_epochs`; LP-FT, Kumar et al. 2022, "Fine-Tuning can Distort
Pretrained Features and Underperform Out-of-Distribution").

A randomly initialised head sends large, noisy gradients into the pretrained blocks in the first steps of
fine-tuning and distorts features the head has not yet learnt to use. So the head (fusion and classifier) first
trains alone, over the embeddings the pretrained encoders give before any fine-tuning; fine-tuning then starts
from that head. Those embeddings are the very tables a frozen-encoder run caches (same data, same weights, same
key in the cache folder), so this phase costs seconds, and nothing at all when a zero-config run made them first.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch

from mmcli import distributed as D
from mmcli.data.dataset import Batches, input_specs
from mmcli.frozen import frozen_embeddings
from mmcli.loop import Interrupted, LoopState, StepTools, StopFlag, lr_lambda, train_one_epoch
from mmcli.models.classifier import param_groups
from mmcli.progress import info, log_line, make_progress


def tuned_inputs(model) -> list[str]:
    """The inputs whose encoder has trainable parameters (what fine-tuning changes and probing holds still)."""
    return [n for n in model.names if any(p.requires_grad for p in model.encoders[n].parameters())]


def probe_head(model, cache, cfg, device: str, tools: StepTools, train_rows: np.ndarray, dinfo: D.DistInfo) -> None:
    """Train `model`'s head for `cfg.train.lp_epochs` epochs with every encoder frozen at its current weights, in
    place. Every rank trains the same head on all of `train_rows` with the same seed (no gradient exchange, so no
    DDP wrapper is needed), and rank 0's result is broadcast so that the ranks start fine-tuning equal."""
    epochs, tuned = cfg.train.lp_epochs, tuned_inputs(model)
    scratch = [n for n in tuned if not getattr(model.encoders[n], "pretrained", False)]
    if epochs <= 0 or not tuned or scratch:
        if epochs > 0 and dinfo.main:
            why = (f"{', '.join(scratch)} train from scratch (no pretrained features to probe)" if scratch
                   else "no encoder is fine-tuned")
            info(f"train.lp_epochs: {why}, so there is no probing phase")
        return
    table = frozen_embeddings(model, cache, tuned, cfg.train.batch_size * 2, device)
    base = tools.cached

    def lookup(pos: torch.Tensor) -> dict[str, torch.Tensor]:
        return {**(base(pos) if base else {}), **{n: t[pos].to(device) for n, t in table.items()}}

    encoders = [model.encoders[n] for n in tuned]
    saved_prefix = [getattr(e, "cached_prefix", 0) for e in encoders]
    trainable = [p for e in encoders for p in e.parameters() if p.requires_grad]
    probe_cfg = copy.deepcopy(cfg)
    probe_cfg.train.epochs = epochs
    probe_tools = dataclasses.replace(tools, cached=lookup, train_cached=None, frozen=frozenset(model.names),
                                      any_rank=lambda flag: flag)
    batches = Batches(cache, train_rows, _batch_size(cfg, train_rows), input_specs(model), shuffle=True,
                      augment=False, seed=cfg.train.seed, device=device, skip=set(model.names),
                      balanced=cfg.train.sampler == "weighted")
    try:
        for e in encoders:
            e.cached_prefix = 0  # the table rows are whole embeddings, not a prefix's outputs
        for p in trainable:
            p.requires_grad_(False)
        opt = torch.optim.AdamW(param_groups(model, cfg.train.lr, weight_decay=cfg.train.weight_decay),
                                lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda(epochs * len(batches), cfg.train.warmup))
        _train(model, batches, opt, sched, probe_cfg, probe_tools, dinfo)
    finally:
        for e, k in zip(encoders, saved_prefix):
            e.cached_prefix = k
        for p in trainable:
            p.requires_grad_(True)
    if dinfo.enabled:
        state = D.broadcast_object(dinfo, {k: v.cpu() for k, v in model.state_dict().items()})
        model.load_state_dict(state)


def _batch_size(cfg, rows: np.ndarray) -> int:
    from mmcli.fit import train_batch_size

    return train_batch_size(cfg.train.batch_size, len(rows), cfg.train.min_steps)


def _train(model, batches: Batches, opt, sched, cfg, tools: StepTools, dinfo: D.DistInfo) -> None:
    state, epochs = LoopState(), cfg.train.epochs
    with StopFlag() as stop, make_progress() as progress:
        for epoch in range(1, epochs + 1):
            batches.set_epoch(epoch)
            task = progress.add_task(f"probe {epoch}/{epochs}", total=len(batches))
            result = train_one_epoch(model, batches, opt, sched, cfg, state, lambda: None, stop, progress, task,
                                     tools)
            if result is None:
                raise Interrupted("interrupted while training the head over frozen embeddings (train.lp_epochs); "
                                  "nothing was saved yet")
            if dinfo.main:
                log_line(f"probe {epoch}/{epochs}: train loss {result['train_loss']:.4f} acc "
                         f"{result['train_accuracy']:.3f}")
    if dinfo.main:
        info(f"train.lp_epochs: head trained {epochs} epochs over the frozen embeddings; fine-tuning starts from it")
