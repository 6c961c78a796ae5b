"""Late fusion's per-modality weights, fitted on held-out rows, and frozen encoders' tables kept in the cache."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from mmcli.config import load_config
from mmcli.late_weights import tune_late_weights
from mmcli.models.fusion import LateFusion


class _Stub(torch.nn.Module):
    """The parts of MultimodalClassifier that tune_late_weights uses; embeddings are the inputs themselves."""

    def __init__(self, fusion: LateFusion):
        super().__init__()
        self.fusion = fusion

    def embed(self, inputs, present, cached=None):
        return inputs


def _identity_late(c: int) -> LateFusion:
    fusion = LateFusion({"image": c, "text": c}, c)
    for head in fusion.heads.values():
        head[1].weight.data = torch.eye(c)
        head[1].bias.data.zero_()
    return fusion


def test_a_noisy_modality_gets_a_small_weight():
    torch.manual_seed(0)
    c, n = 4, 400
    labels = torch.arange(n) % c
    embs = {"image": 2.0 * F.one_hot(labels, c).float() + 0.3 * torch.randn(n, c), "text": 5.0 * torch.randn(n, c)}
    present = torch.ones(n, 2, dtype=torch.bool)
    model = _Stub(_identity_late(c))
    before = F.cross_entropy(model.fusion(embs, present), labels).item()
    weights = tune_late_weights(model, [(embs, present, labels, torch.arange(n))])
    after = F.cross_entropy(model.fusion(embs, present), labels).item()
    assert weights is not None and weights[1] < 0.1 * weights[0]
    assert model.fusion.weights.tolist() == pytest.approx(weights)
    assert after < 0.5 * before


def test_single_modality_and_empty_validation_are_left_alone():
    single = _Stub(LateFusion({"image": 3}, 3))
    assert tune_late_weights(single, []) is None
    pair = _Stub(_identity_late(3))
    assert tune_late_weights(pair, []) is None
    assert pair.fusion.weights.tolist() == [1.0, 1.0]


def test_training_records_the_weights_and_the_saved_model_carries_them(dataset, tiny_sets, tmp_path):
    from mmcli.loading import load_run
    from mmcli.train import train

    run = train(dataset, load_config(None, [*tiny_sets, "model.fusion=late"]), output=tmp_path / "run")
    weights = json.loads((run / "metrics.json").read_text())["late_fusion_weights"]
    assert set(weights) == {"image", "text"} and all(w > 0 for w in weights.values())
    model = load_run(run).model
    assert model.fusion.weights.tolist() == pytest.approx(list(weights.values()), abs=1e-4)


def test_frozen_encoder_tables_are_kept_and_reused(dataset, tiny_sets, tmp_path, monkeypatch):
    from mmcli.models.image import SmallCNN
    from mmcli.train import train

    sets = [*tiny_sets, "model.image_encoder=cnn", "model.freeze=[image]", "train.augment=false"]
    train(dataset, load_config(None, sets), output=tmp_path / "a")

    def boom(*_a, **_k):
        raise AssertionError("the frozen encoder ran again")

    monkeypatch.setattr(SmallCNN, "forward", boom)
    run = train(dataset, load_config(None, [*sets, "model.fusion=concat"]), output=tmp_path / "b")
    assert json.loads((run / "metrics.json").read_text())["val"]["accuracy"] >= 0


def test_runs_saved_before_cnn_widths_and_late_weights_still_load(dataset, tiny_sets, tmp_path):
    import yaml
    from safetensors.torch import load_file, save_file

    from mmcli.loading import load_run
    from mmcli.train import train

    run = train(dataset, load_config(None, [*tiny_sets, "model.cnn_widths=[32,64,128,128]"]), output=tmp_path / "r")
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    del cfg["model"]["cnn_widths"]
    (run / "config.yaml").write_text(yaml.safe_dump(cfg))
    state = load_file(str(run / "model.safetensors"))
    del state["fusion.weights"]
    save_file(state, str(run / "model.safetensors"))
    model = load_run(run).model
    assert model.fusion.weights.tolist() == [1.0, 1.0]


def test_late_heads_train_on_their_own_losses():
    from mmcli.loop import _aux_loss
    from mmcli.models.classifier import build_model

    cfg = load_config(None, ["model.embed_dim=8", "model.fusion=late", "train.aux_weight=1"])
    inputs = [{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}]
    model = build_model(cfg, inputs, 3, 50)
    assert model.aux is None  # late fusion's own heads are the per-modality heads
    x = {"image": torch.rand(4, 3, 16, 16), "text": torch.randint(1, 50, (4, 5))}
    present = torch.tensor([[True, True], [True, False], [False, True], [True, True]])
    logits, heads = model(x, present, return_aux=True)
    assert torch.allclose(logits, model.fusion.combine(torch.stack(list(heads.values()), 1), present,
                                                       model.fusion.weights))
    labels = torch.tensor([0, 1, 2, 0])
    _aux_loss(heads, present, labels, torch.nn.CrossEntropyLoss()).backward()
    # the heads share no loss term: the text head's own loss leaves the image head untouched
    text_only = build_model(cfg, inputs, 3, 50)
    text_only.load_state_dict(model.state_dict())
    _, h2 = text_only(x, present, return_aux=True)
    torch.nn.CrossEntropyLoss()(h2["text"][present[:, 1]], labels[present[:, 1]]).backward()
    grad = text_only.fusion.heads["image"][1].weight.grad
    assert grad is None or not grad.any()
    assert text_only.fusion.heads["text"][1].weight.grad.any()
