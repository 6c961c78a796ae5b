"""`train.ema`: the moving average of the trained weights is what is validated, selected, saved and resumed."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import TINY, make_dataset
from safetensors.torch import load_file
from torch import nn

from mmcli.config import load_config
from mmcli.ema import WeightEMA, decay_for
from mmcli.errors import UsageError
from mmcli.train import train


def _model():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    model[0].requires_grad_(False)  # frozen: not averaged
    return model


def test_the_average_follows_the_weights_and_leaves_frozen_ones_alone():
    model = _model()
    ema = WeightEMA(model, decay=0.5)
    assert "0.weight" not in ema.shadow and "1.num_batches_tracked" not in ema.shadow
    assert {"1.running_mean", "2.weight"} <= set(ema.shadow)
    start = model[2].weight.detach().clone()
    with torch.no_grad():
        model[2].weight.add_(1.0)
    ema.update()  # ramp: min(0.5, 2 / 11) = 2/11 on the past
    torch.testing.assert_close(ema.shadow["2.weight"], start + 9 / 11)
    with torch.no_grad():
        model[2].weight.add_(1.0)
    ema.update()  # min(0.5, 3 / 12) = 1/4 on the past
    torch.testing.assert_close(ema.shadow["2.weight"], 0.25 * (start + 9 / 11) + 0.75 * (start + 2))


def test_applied_swaps_the_average_in_and_back():
    model = _model()
    ema = WeightEMA(model, decay=0.9)
    with torch.no_grad():
        model[2].weight.add_(3.0)
    current = model[2].weight.detach().clone()
    with ema.applied():
        torch.testing.assert_close(model[2].weight.detach(), ema.shadow["2.weight"])
        assert not torch.equal(model[2].weight.detach(), current)
    torch.testing.assert_close(model[2].weight.detach(), current)
    blob = ema.state_dict()
    other = WeightEMA(_model(), decay=0.9)
    other.load_state_dict(blob)
    assert other.updates == ema.updates
    torch.testing.assert_close(other.shadow["2.weight"], ema.shadow["2.weight"])


def test_decay_spans_the_share_of_the_schedule():
    assert decay_for(0.1, 1000) == pytest.approx(0.99)
    assert decay_for(0.1, 5) == 0.0  # under one step: no averaging


def _ema_cfg(extra=()):
    return load_config(None, [*TINY, "train.epochs=4", "train.patience=0", "train.refit=false", "train.ema=0.3",
                              "train.checkpoint_seconds=0", *extra])


def test_a_run_saves_the_average_and_last_holds_the_raw_weights(tmp_path):
    csv = make_dataset(tmp_path / "data", n=60)
    run = train(csv, _ema_cfg(["train.monitor=val_loss"]), output=tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["epochs_run"] == 4 and metrics["val"]["n"] > 0
    best = load_file(str(run / "model.safetensors"))
    last = load_file(str(run / "last" / "model.safetensors"))
    state = torch.load(run / "last" / "state.pt", weights_only=True)
    assert state["ema"]["updates"] > 0
    head = [k for k in state["ema"]["shadow"] if k.endswith(".weight")][-1]  # the output layer
    assert not torch.equal(best[head], last[head])  # the saved model is not the last raw weights
    if metrics["best_epoch"] == 4:  # selected at the end: it is exactly the average
        torch.testing.assert_close(best[head], state["ema"]["shadow"][head])


def test_resume_restores_the_average(tmp_path):
    csv = make_dataset(tmp_path / "data", n=60)
    whole = train(csv, _ema_cfg(), output=tmp_path / "whole")

    def stop_at_3(epoch, row):
        if epoch == 3:
            raise KeyboardInterrupt  # after epoch 2's checkpoint, before epoch 3's

    with pytest.raises(KeyboardInterrupt):
        train(csv, _ema_cfg(), output=tmp_path / "cut", on_epoch=stop_at_3)
    resumed = train(None, _ema_cfg(), resume=tmp_path / "cut")
    a, b = load_file(str(whole / "model.safetensors")), load_file(str(resumed / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    ma, mb = (json.loads((r / "metrics.json").read_text()) for r in (whole, resumed))
    assert ma["val"] == mb["val"]


def test_out_of_range_is_a_usage_error():
    with pytest.raises(UsageError, match="train.ema"):
        load_config(None, ["train.ema=1.5"])
