"""`model.late_hidden`: late fusion with an MLP head per input, each trained on its own loss."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from mmcli.config import load_config
from mmcli.errors import UsageError
from mmcli.fit import trains_heads_apart
from mmcli.models.classifier import build_model

INPUTS = [{"name": "image", "kind": "image", "columns": ["image"]},
          {"name": "text", "kind": "text", "columns": ["text"]}]


def _model(tiny_sets, *extra: str):
    cfg = load_config(None, [*tiny_sets, "model.fusion=late", *extra])
    return build_model(cfg, INPUTS, 3, vocab_size=50)


def _linears(head: nn.Module) -> list[nn.Linear]:
    return [m for m in head.modules() if isinstance(m, nn.Linear)]


def test_each_input_gets_an_mlp_head_of_the_given_width(tiny_sets):
    model = _model(tiny_sets, "model.late_hidden=8")
    for name in ("image", "text"):
        first, last = _linears(model.fusion.heads[name])
        assert first.out_features == 8 and last.in_features == 8 and last.out_features == 3
    embs = {"image": torch.randn(4, 16), "text": torch.randn(4, 16)}
    assert model.fusion(embs, torch.ones(4, 2, dtype=torch.bool)).shape == (4, 3)


def test_the_default_is_one_linear_layer_per_input(tiny_sets):
    model = _model(tiny_sets)
    assert load_config(None, []).model.late_hidden == 0
    assert all(len(_linears(model.fusion.heads[n])) == 1 for n in ("image", "text"))


def test_a_negative_width_is_refused_naming_the_key():
    with pytest.raises(UsageError, match="model.late_hidden"):
        load_config(None, ["model.late_hidden=-1"])


def test_mlp_heads_train_apart_even_over_frozen_encoders(tiny_sets):
    frozen = ["model.freeze=[image, text]"]
    assert not trains_heads_apart(_model(tiny_sets, *frozen))  # linear heads over fixed features: one linear model
    assert trains_heads_apart(_model(tiny_sets, *frozen, "model.late_hidden=8"))
    assert trains_heads_apart(_model(tiny_sets))  # trainable encoders: apart, as before
    concat = build_model(load_config(None, [*tiny_sets, "model.fusion=concat"]), INPUTS, 3, vocab_size=50)
    assert not trains_heads_apart(concat)


def test_a_run_with_mlp_heads_trains_scores_each_head_and_exports(tmp_path):
    from mmcli.evaluate import evaluate_run
    from mmcli.loading import load_run
    from mmcli.train import train
    from tests.helpers import TINY, make_dataset, onnx_parity

    csv = make_dataset(tmp_path / "data")
    cfg = load_config(None, [*TINY, "model.fusion=late", "model.late_hidden=8", "model.late_weighting=entropy",
                             "train.refit=false"])
    run = train(csv, cfg, output=tmp_path / "run")
    assert "late_hidden: 8" in (run / "config.yaml").read_text()
    assert len(json.loads((run / "metrics.json").read_text())["late_fusion_weights"]) == 2
    m = evaluate_run(run, csv, ablate=True)
    assert 0.0 <= m["accuracy"] <= 1.0 and set(m["ablation"]["single"]) == {"image", "text"}
    model = load_run(run).model.eval()  # rebuilt from config.yaml with the same MLP heads, weights loaded
    assert len(_linears(model.fusion.heads["image"])) == 2
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, size=(5, 3, 16, 16)).astype(np.float32),
              rng.integers(0, 20, size=(5, 32)).astype(np.int64)]
    present = np.ones((5, 2), bool)
    present[0, 1] = False
    report = onnx_parity(model, arrays, present, tmp_path / "m.onnx")
    assert report["max_abs_diff"] <= 1e-4 and report["argmax_agreement"] == 1.0, report
