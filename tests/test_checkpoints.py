"""Checkpoint timing (`train.checkpoint_seconds`): the best weights are snapshotted in memory and written with
last/, so a run that writes once at the end ends with the same files as one that writes every epoch."""

from __future__ import annotations

import csv as C
import json
import random

import torch
from helpers import TINY, make_dataset
from safetensors.torch import load_file
from torch import nn

from mmcli.checkpoints import Checkpoints
from mmcli.loop import LoopState


def _setup(tmp_path, seconds: float):
    model = nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Linear(3, 2))
    model[0].requires_grad_(False)  # a frozen part: never copied, its values never change
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    return model, Checkpoints(tmp_path, model, opt, sched, LoopState(), seconds)


def test_the_snapshot_holds_only_what_training_changes_and_is_written_with_last(tmp_path):
    model, ckpt = _setup(tmp_path, seconds=1e9)
    ckpt.improved()
    assert set(ckpt.best) == {"1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked",
                              "2.weight", "2.bias"}
    best = model[2].weight.detach().clone()
    with torch.no_grad():
        model[2].weight.add_(1.0)  # a later, worse epoch
    assert not ckpt.save() and not (tmp_path / "model.safetensors").exists() and not (tmp_path / "last").exists()
    assert ckpt.save(force=True)
    saved = load_file(str(tmp_path / "model.safetensors"))
    torch.testing.assert_close(saved["2.weight"], best)
    torch.testing.assert_close(saved["0.weight"], model[0].weight.detach())
    last = load_file(str(tmp_path / "last" / "model.safetensors"))
    torch.testing.assert_close(last["2.weight"], model[2].weight.detach())  # last/ is the current epoch
    assert ckpt.best is None  # written: the next save does not write it again


def test_with_zero_seconds_every_save_writes(tmp_path):
    _, ckpt = _setup(tmp_path, seconds=0)
    assert ckpt.save() and (tmp_path / "last" / "state.pt").exists()
    assert not (tmp_path / "model.safetensors").exists()  # no improvement yet, nothing to write
    ckpt.main = False  # other ranks never write
    ckpt.improved()
    assert ckpt.best is None and not ckpt.save(force=True)


def test_writing_once_at_the_end_gives_the_same_run_as_writing_every_epoch(tmp_path):
    from mmcli.config import load_config
    from mmcli.train import train

    csv = make_dataset(tmp_path / "data", n=60)
    rows = list(C.DictReader(csv.open()))
    labels = [r["label"] for r in rows]
    random.Random(0).shuffle(labels)  # labels the model can only memorise: the best epoch comes before the last
    with csv.open("w", newline="") as f:
        w = C.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows({**r, "label": y} for r, y in zip(rows, labels))
    runs = {}
    for seconds in (0, 3600):
        cfg = load_config(None, [*TINY, "train.epochs=6", "train.patience=0", "train.monitor=val_loss", "train.refit=false",
                                 f"train.checkpoint_seconds={seconds}"])
        runs[seconds] = train(csv, cfg, output=tmp_path / f"run{seconds}")
    eager, lazy = (load_file(str(runs[s] / "model.safetensors")) for s in (0, 3600))
    assert eager.keys() == lazy.keys()
    for k in eager:
        torch.testing.assert_close(eager[k], lazy[k], rtol=0, atol=0)
    metrics = [json.loads((runs[s] / "metrics.json").read_text()) for s in (0, 3600)]
    assert metrics[0]["val"] == metrics[1]["val"] and metrics[0]["best_epoch"] == metrics[1]["best_epoch"]
    assert metrics[1]["best_epoch"] < metrics[1]["epochs_run"], "the best epoch is the last: the test proves nothing"
    assert (runs[3600] / "last" / "state.pt").exists()
