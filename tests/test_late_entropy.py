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
