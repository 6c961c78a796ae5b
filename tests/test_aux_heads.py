"""Per-modality auxiliary heads (train.aux_weight): built only when asked, trained beside the fused head."""

from __future__ import annotations

import json

import torch

from mmcli.config import load_config
from mmcli.loop import _aux_loss
from mmcli.models.classifier import build_model
from mmcli.train import train

INPUTS = [{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}]


def _batch(b: int = 4):
    return {"image": torch.randn(b, 3, 16, 16), "text": torch.randint(1, 50, (b, 6))}, torch.ones(b, 2, dtype=bool)


def test_aux_heads_only_when_weighted():
    plain = build_model(load_config(None, ["model.embed_dim=8", "data.image_size=16"]), INPUTS, 3, 50)
    assert plain.aux is None
    cfg = load_config(None, ["model.embed_dim=8", "data.image_size=16", "train.aux_weight=0.5"])
    model = build_model(cfg, INPUTS, 3, 50)
    inputs, present = _batch()
    logits, aux = model(inputs, present, return_aux=True)
    assert logits.shape == (4, 3) and set(aux) == {"image", "text"}
    assert all(a.shape == (4, 3) for a in aux.values())
    assert torch.equal(model.eval()(inputs, present), model(inputs, present, return_aux=True)[0])


def test_aux_loss_skips_hidden_rows():
    loss_fn = torch.nn.CrossEntropyLoss()
    labels = torch.tensor([0, 1])
    aux = {"image": torch.tensor([[10.0, -10.0], [10.0, -10.0]]), "text": torch.tensor([[0.0, 0.0], [0.0, 0.0]])}
    shown = torch.tensor([[True, True], [False, True]])  # row 1's image is hidden: its wrong logits don't count
    expected = (loss_fn(aux["image"][:1], labels[:1]) + loss_fn(aux["text"], labels)) / 2
    assert torch.allclose(_aux_loss(aux, shown, labels, loss_fn), expected)


def test_training_with_aux_weight(dataset, tiny_sets, tmp_path):
    run = train(dataset, load_config(None, tiny_sets + ["train.aux_weight=0.5"]), output=tmp_path / "run")
    assert json.loads((run / "metrics.json").read_text())["val"]["n"] > 0
