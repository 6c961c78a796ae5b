"""`model.late_weighting: entropy`: late fusion weights each row's heads by how sure each head is of it."""

from __future__ import annotations

import pytest
import torch

from mmcli.config import load_config
from mmcli.errors import UsageError
from mmcli.models.fusion import LateFusion


def _fusion(weighting: str) -> LateFusion:
    return LateFusion({"image": 4, "text": 4}, 3, weighting=weighting)


def test_a_sure_head_outvotes_an_unsure_one_under_entropy_weighting():
    # image: large logits, torn between classes 0 and 1; text: sure of class 2. The plain mean follows the larger
    # logits (class 0), the entropy-weighted one the sure head.
    logits = torch.tensor([[[10.0, 9.5, 0.0], [0.0, 0.0, 8.0]]])  # [B=1, M=2, C=3]
    present = torch.ones(1, 2, dtype=torch.bool)
    ones = torch.ones(2)
    assert _fusion("fixed").combine(logits, present, ones).argmax(1).item() == 0
    assert _fusion("entropy").combine(logits, present, ones).argmax(1).item() == 2


def test_entropy_weighting_is_a_weighted_mean_of_the_heads_it_can_see():
    torch.manual_seed(0)
    logits = torch.randn(5, 2, 3)
    weights = torch.tensor([0.5, 2.0])
    fusion = _fusion("entropy")
    present = torch.tensor([[True, False]] * 5)
    torch.testing.assert_close(fusion.combine(logits, present, weights), logits[:, 0] * 0.5)  # alone: itself
    both = fusion.combine(logits, torch.ones(5, 2, dtype=torch.bool), weights)
    scaled = logits * weights[None, :, None]
    p = scaled.softmax(-1)
    inv_h = 1 / (-(p * p.log()).sum(-1) + 1e-3)  # [B, M]
    torch.testing.assert_close(both, (scaled * inv_h[..., None]).sum(1) / inv_h.sum(1, keepdim=True))


def test_while_fitting_entropy_weighting_combines_as_fixed_weights():
    torch.manual_seed(0)
    logits, present, weights = torch.randn(6, 2, 3), torch.ones(6, 2, dtype=torch.bool), torch.tensor([0.7, 1.3])
    entropy = _fusion("entropy")
    entropy.fitting = True
    fixed = _fusion("fixed").combine(logits, present, weights)
    torch.testing.assert_close(entropy.combine(logits, present, weights), fixed)
    entropy.fitting = False
    assert not torch.allclose(entropy.combine(logits, present, weights), fixed)


def test_unknown_weightings_are_errors_that_list_the_valid_ones():
    with pytest.raises(ValueError, match="valid: fixed, entropy"):
        _fusion("vote")
    with pytest.raises(UsageError, match="late_weighting"):
        load_config(None, ["model.late_weighting=vote"])
    assert load_config(None, []).model.late_weighting == "fixed"


def test_a_run_trains_evaluates_and_predicts_with_entropy_weighting(tmp_path):
    from mmcli.evaluate import evaluate_run
    from mmcli.train import train
    from tests.helpers import TINY, make_dataset

    csv = make_dataset(tmp_path / "data")
    cfg = load_config(None, [*TINY, "model.fusion=late", "model.late_weighting=entropy", "train.refit=false"])
    run = train(csv, cfg, output=tmp_path / "run")
    assert "late_weighting: entropy" in (run / "config.yaml").read_text()
    m = evaluate_run(run, csv, ablate=True)
    assert 0.0 <= m["accuracy"] <= 1.0 and set(m["ablation"]["single"]) == {"image", "text"}


def test_entropy_weighting_leaves_training_and_the_weight_fit_alone_and_changes_the_scores(tmp_path):
    # Training, checkpoint choice and the late-weight fit use the fixed rule under either setting (same seed, same
    # history and weights); only the finished model's scores, and a loaded run's predictions, use the per-row rule.
    import csv as csv_mod
    import json

    from mmcli.loading import load_run
    from mmcli.train import train
    from tests.helpers import TINY, make_dataset

    csv = make_dataset(tmp_path / "data")
    runs = {}
    for w in ("fixed", "entropy"):
        cfg = load_config(None, [*TINY, "model.fusion=late", f"model.late_weighting={w}", "train.refit=false"])
        runs[w] = train(csv, cfg, output=tmp_path / w)
    def history(run):  # without the timing columns
        with open(run / "history.csv") as f:
            return [{k: v for k, v in row.items() if k not in ("samples_per_s", "seconds")} for row in csv_mod.DictReader(f)]

    fixed, entropy = (json.loads((runs[w] / "metrics.json").read_text()) for w in ("fixed", "entropy"))
    assert history(runs["fixed"]) == history(runs["entropy"]) and len(history(runs["fixed"])) >= 2
    assert fixed["late_fusion_weights"] == entropy["late_fusion_weights"]
    assert fixed["best_epoch"] == entropy["best_epoch"]
    assert fixed["val"]["loss"] != entropy["val"]["loss"]
    loaded = load_run(runs["entropy"])
    assert loaded.model.fusion.weighting == "entropy" and not loaded.model.fusion.fitting


def test_the_exported_graph_applies_entropy_weighting(tiny_sets, tmp_path):
    import numpy as np

    from mmcli.models.classifier import build_model
    from tests.helpers import onnx_parity

    cfg = load_config(None, [*tiny_sets, "model.fusion=late", "model.late_weighting=entropy"])
    inputs = [{"name": "image", "kind": "image", "columns": ["image"]},
              {"name": "text", "kind": "text", "columns": ["text"]}]
    model = build_model(cfg, inputs, 3, vocab_size=50).eval()
    assert model.fusion.weighting == "entropy" and not model.fusion.fitting
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(5, 3, 16, 16)).astype(np.float32), rng.integers(0, 50, size=(5, 32)).astype(np.int64)]
    present = np.ones((5, 2), bool)
    present[0, 1] = False
    report = onnx_parity(model, arrays, present, tmp_path / "m.onnx")
    assert report["max_abs_diff"] <= 1e-4 and report["argmax_agreement"] == 1.0, report
