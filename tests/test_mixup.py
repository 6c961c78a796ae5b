"""`train.mixup`: training rows' embeddings and labels mixed in pairs (manifold mixup), over any encoder."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from mmcli.config import load_config
from mmcli.loop import draw_mix, mix_targets
from mmcli.models.classifier import build_model
from tests.helpers import TINY, make_dataset


def test_the_pairing_is_a_permutation_with_the_row_itself_weighted_most():
    torch.manual_seed(0)
    for _ in range(20):
        perm, lam = draw_mix(8, 0.4, "cpu")
        assert sorted(perm.tolist()) == list(range(8)) and 0.5 <= lam <= 1.0
    assert draw_mix(8, 0.0, "cpu") is None and draw_mix(1, 0.4, "cpu") is None


def test_mixed_targets_are_the_same_mix_of_the_labels():
    labels, perm = torch.tensor([0, 2, 1]), torch.tensor([1, 2, 0])
    target = mix_targets(labels, (perm, 0.75), 3, multi_label=False)
    torch.testing.assert_close(target, torch.tensor([[0.75, 0, 0.25], [0, 0.25, 0.75], [0.25, 0.75, 0]]))
    sets = torch.tensor([[1, 0], [1, 1]])
    torch.testing.assert_close(mix_targets(sets, (torch.tensor([1, 0]), 0.5), 2, multi_label=True),
                               torch.tensor([[1.0, 0.5], [1.0, 0.5]]))
    assert mix_targets(labels, None, 3, False) is labels


def test_embeddings_mix_row_by_row_and_an_absent_input_stays_absent():
    inputs = [{"name": "image", "kind": "image"}, {"name": "text", "kind": "text"}]
    cfg = load_config(None, [*TINY, "model.fusion=concat"])
    model = build_model(cfg, inputs, 3, vocab_size=50).eval()
    embs = {"image": torch.randn(3, 16), "text": torch.randn(3, 16)}
    present = torch.tensor([[True, True], [True, False], [True, True]])
    perm = torch.tensor([2, 0, 1])
    mixed, both = model._mix(embs, present, (perm, 0.7))
    assert both.tolist() == [[True, True], [True, False], [True, False]]
    torch.testing.assert_close(mixed["image"], 0.7 * embs["image"] + 0.3 * embs["image"][perm])
    torch.testing.assert_close(mixed["text"][0], 0.7 * embs["text"][0] + 0.3 * embs["text"][2])
    missing = model.missing["text"].expand(2, -1)
    torch.testing.assert_close(mixed["text"][1:], missing)  # row 1 had no text; row 2 mixes with row 1


@pytest.mark.parametrize("fusion", ["concat", "late"])
def test_training_with_mixup_is_deterministic_and_differs(tmp_path, fusion):
    from mmcli.train import train

    csv = make_dataset(tmp_path / "data")

    def weights(out: str, *extra: str) -> dict[str, torch.Tensor]:
        cfg = load_config(None, [*TINY, f"model.fusion={fusion}", "train.refit=false", *extra])
        return load_file(str(train(csv, cfg, output=tmp_path / out) / "model.safetensors"))

    plain, mixed, again = weights("plain"), weights("mix", "train.mixup=0.4"), weights("again", "train.mixup=0.4")
    assert any(not torch.equal(plain[k], mixed[k]) for k in plain)
    assert all(torch.equal(mixed[k], again[k]) for k in mixed)
