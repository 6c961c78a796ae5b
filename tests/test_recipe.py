"""The training recipe: presets and the zero-config choice, early stopping on a noisy metric, refit on all rows,
and per-encoder unfreezing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmcli import presets
from mmcli.cli import app
from mmcli.config import load_config
from mmcli.errors import UsageError
from mmcli.loop import LoopState
from mmcli.stopping import may_stop, record_epoch
from mmcli.train import train


def test_zero_config_picks_pretrained_only_when_installed(monkeypatch):
    monkeypatch.delenv("MM_PRESET", raising=False)
    monkeypatch.setattr(presets, "pretrained_installed", lambda: True)
    assert presets.choose(None, config_given=False) == "pretrained"
    monkeypatch.setattr(presets, "pretrained_installed", lambda: False)
    assert presets.choose(None, config_given=False) == "fast"
    assert presets.choose(None, config_given=True) is None  # a YAML file starts from the plain defaults
    assert presets.choose("best", config_given=True) == "best"
    monkeypatch.setenv("MM_PRESET", "best")
    assert presets.choose(None, config_given=False) == "best"


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(UsageError, match="valid presets: fast, pretrained, best"):
        presets.choose("quick", config_given=False)


def test_presets_resolve_under_yaml_and_set(tmp_path):
    cfg = load_config(None, ["train.lr=0.01"], preset="pretrained")
    assert (cfg.model.image_encoder, cfg.model.text_encoder, cfg.model.freeze) == ("effnet_lite0", "minilm",
                                                                                   ["pretrained"])
    assert cfg.train.lr == 0.01 and cfg.train.augment is False and cfg.data.image_size == 224
    (tmp_path / "c.yaml").write_text("model:\n  fusion: gated\n")
    assert load_config(tmp_path / "c.yaml", [], preset="best").model.fusion == "gated"
    assert load_config(None, [], preset="fast") == load_config()


def test_the_pretrained_yaml_spells_out_the_best_preset():
    root = Path(__file__).resolve().parent.parent
    assert load_config(root / "configs" / "pretrained.yaml") == load_config(None, [], preset="best")


def test_preset_values_are_copies():
    presets.preset_values("pretrained")["model"]["freeze"].append("x")
    assert presets.preset_values("pretrained")["model"]["freeze"] == ["pretrained"]


@pytest.mark.parametrize(("epoch", "bad", "expected"), [
    (4, 9, False),   # before half of the 10-epoch schedule: never
    (5, 4, False),   # patience 5 not yet used up
    (6, 5, True),
])
def test_early_stopping_waits_for_half_the_schedule(epoch, bad, expected):
    cfg = load_config(None, ["train.epochs=10", "train.patience=5"])
    assert may_stop(cfg, LoopState(epoch=epoch, bad_epochs=bad)) is expected


def test_patience_is_at_least_a_quarter_of_the_schedule():
    cfg = load_config(None, ["train.epochs=40", "train.patience=3"])
    assert not may_stop(cfg, LoopState(epoch=30, bad_epochs=9))
    assert may_stop(cfg, LoopState(epoch=30, bad_epochs=10))
    assert not may_stop(load_config(None, ["train.patience=0"]), LoopState(epoch=20, bad_epochs=20))


def test_smoothing_keeps_one_lucky_epoch_from_deciding():
    cfg = load_config(None, ["train.monitor_smoothing=0.5", "train.patience=0"])
    state = LoopState()
    row = {"train_loss": 1.0}
    for epoch, acc in enumerate([0.50, 0.90, 0.60, 0.80, 0.82], start=1):  # epoch 2 is a spike
        record_epoch(state, {**row, "epoch": epoch, "val_accuracy": acc}, cfg)
    # smoothed: 0.5, 0.7, 0.65, 0.725, 0.7725 -> the last epoch is the best, not the spike
    assert state.best_epoch == 5 and state.smoothed == pytest.approx(0.7725)


def test_a_saturated_metric_moves_the_best_epoch_to_the_latest_tie():
    cfg = load_config(None, ["train.monitor_smoothing=0", "train.patience=0"])
    state = LoopState()
    rows = [0.90, 0.90, 0.88, 0.80, 0.84]  # 10 validation rows: a tie is within 0.05 of the peak
    for epoch, acc in enumerate(rows, start=1):
        record_epoch(state, {"train_loss": 1.0, "epoch": epoch, "val_accuracy": acc, "val_loss": 1.0}, cfg, 10)
        if epoch == 3:  # 0.88 is within half a row of the peak: the later epoch wins, the peak stays the bar
            assert state.best_epoch == 3 and state.best == pytest.approx(0.90) and state.bad_epochs == 0
    # 0.80 lost a row, and 0.84 is measured against the peak (0.90), not against the 0.88 tie
    assert state.best_epoch == 3 and state.bad_epochs == 2


def test_an_exact_tie_counts_without_a_val_size():
    cfg = load_config(None, ["train.monitor_smoothing=0", "train.patience=0"])
    state = LoopState()
    for epoch in (1, 2):
        record_epoch(state, {"train_loss": 1.0, "epoch": epoch, "val_accuracy": 0.9, "val_loss": 1.0}, cfg)
    assert state.best_epoch == 2  # tie = 0 still accepts an exact tie of the metric
    record_epoch(state, {"train_loss": 1.0, "epoch": 3, "val_accuracy": 0.8999, "val_loss": 1.0}, cfg)
    assert state.best_epoch == 2  # ... and nothing below it


def test_refit_trains_on_train_and_val_and_keeps_val_honest(dataset, tiny_sets, tmp_path):
    base = [*tiny_sets, "train.epochs=3"]
    kept = train(dataset, load_config(None, [*base, "train.refit=false"]), output=tmp_path / "plain")
    refit = train(dataset, load_config(None, base), output=tmp_path / "refit")
    m_plain, m_refit = (json.loads((r / "metrics.json").read_text()) for r in (kept, refit))
    assert "refit" not in m_plain
    assert m_refit["refit"]["epochs"] == m_refit["best_epoch"] >= 1
    assert m_refit["refit"]["rows"] == 45  # every row of the generated set: train + val
    # validation is scored by the model that never saw it: the same as without a refit
    assert m_refit["val"] == m_plain["val"]
    w_plain, w_refit = (load_file(str(r / "model.safetensors")) for r in (kept, refit))
    assert any((w_plain[k] != w_refit[k]).any() for k in w_plain)
    # train.soup keeps the mean of the two: training is deterministic on CPU, so the soup run's selected and refit
    # models are the two above, bit for bit
    souped = train(dataset, load_config(None, [*base, "train.soup=true"]), output=tmp_path / "soup")
    m_soup = json.loads((souped / "metrics.json").read_text())
    assert m_soup["val"] == m_refit["val"] and m_soup["refit"]["soup"] is True
    w_soup = load_file(str(souped / "model.safetensors"))
    assert w_soup.keys() == w_refit.keys()
    for k, w in w_soup.items():
        expected = (w_plain[k] + w_refit[k]) / 2 if w.is_floating_point() else w_refit[k]
        assert torch.allclose(w, expected, atol=1e-6), k


def test_refit_runs_the_predict_path(dataset, tiny_args, tmp_path):
    from typer.testing import CliRunner

    run = tmp_path / "run"
    res = CliRunner().invoke(app, ["train", str(dataset), "-o", str(run), *tiny_args])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["eval", str(run), str(dataset), "--json"])
    assert res.exit_code == 0, res.output
    assert 0.0 <= json.loads(res.output)["accuracy"] <= 1.0


def test_unfreeze_overrides_per_encoder():
    from torch import nn

    from mmcli.models.encoder import Encoder, apply_finetuning

    calls = {}

    class Probe(Encoder):
        def __init__(self, name):
            nn.Module.__init__(self)
            self.pretrained, self.name = True, name

        def freeze(self, unfreeze_last: int = 0) -> None:
            calls[self.name] = unfreeze_last

    cfg = load_config(None, ["model.freeze=[pretrained]", "model.unfreeze={text: 3}"])
    apply_finetuning(Probe("image"), cfg, "image", "effnet_lite0", "image")
    apply_finetuning(Probe("text"), cfg, "name", "minilm", "text")
    assert calls == {"image": 0, "text": 3}
    cfg = load_config(None, ["model.unfreeze={minilm: 2}"])  # freeze empty: the selected encoder alone is frozen
    calls.clear()
    apply_finetuning(Probe("image"), cfg, "image", "effnet_lite0", "image")
    apply_finetuning(Probe("text"), cfg, "name", "minilm", "text")
    assert calls == {"text": 2}
