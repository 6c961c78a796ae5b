"""`train.lp_epochs`: the head trains alone over the encoders' embeddings before fine-tuning starts (LP-FT)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import load_file

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mmcli import lpft
from mmcli.config import load_config
from tests.helpers import TINY, make_dataset
from tests.test_pretrained import tiny_bert  # noqa: F401 - the fixture


def _cfg(folder: Path, *extra: str):
    return load_config(None, [*TINY, "model.text_encoder=hf", f"model.text_weights={folder}", "model.fusion=late",
                              "model.freeze=[text]", "model.unfreeze_last=1", "train.refit=false", "data.image_columns=[]",
                              *extra])


def _train(csv: Path, cfg, out: Path) -> dict[str, torch.Tensor]:
    from mmcli.train import train

    return load_file(str(train(csv, cfg, output=out) / "model.safetensors"))


def _spy(monkeypatch) -> list[dict]:
    """Wrap `lpft.probe_head` -> [{before, after: the model's state dicts, tuned: inputs, prefix: cached_prefix}]."""
    calls, real = [], lpft.probe_head

    def spy(model, *args, **kwargs):
        before = {k: v.clone() for k, v in model.state_dict().items()}
        real(model, *args, **kwargs)
        calls.append({"before": before, "after": {k: v.clone() for k, v in model.state_dict().items()},
                      "tuned": lpft.tuned_inputs(model), "prefix": model.encoders["text"].cached_prefix,
                      "grad": [p.requires_grad for p in model.encoders["text"].parameters()]})

    monkeypatch.setattr(lpft, "probe_head", spy)
    return calls


def test_the_probe_trains_the_head_only_and_leaves_the_encoders_as_they_were(tmp_path, tiny_bert, monkeypatch):  # noqa: F811
    csv = make_dataset(tmp_path / "data")
    calls = _spy(monkeypatch)
    _train(csv, _cfg(tiny_bert, "train.lp_epochs=3"), tmp_path / "lp")
    assert len(calls) == 1
    call = calls[0]
    assert "text" in call["tuned"]
    enc = [k for k in call["before"] if k.startswith("encoders.")]
    head = [k for k in call["before"] if not k.startswith("encoders.") and call["before"][k].is_floating_point()]
    assert enc and head
    assert all(torch.equal(call["before"][k], call["after"][k]) for k in enc)  # encoders untouched
    assert any(not torch.equal(call["before"][k], call["after"][k]) for k in head)  # the head learnt
    assert call["prefix"] > 0 and any(call["grad"])  # the prefix table and the trainable blocks are back
    cache = Path(os.environ["MM_CACHE_DIR"])
    assert list(cache.rglob("embeddings_text_*.npy"))  # the embeddings it probed over are kept for reuse


def test_probing_changes_the_fine_tuned_model_and_is_deterministic(tmp_path, tiny_bert):  # noqa: F811
    csv = make_dataset(tmp_path / "data")
    plain = _train(csv, _cfg(tiny_bert), tmp_path / "plain")
    first = _train(csv, _cfg(tiny_bert, "train.lp_epochs=2"), tmp_path / "lp1")
    second = _train(csv, _cfg(tiny_bert, "train.lp_epochs=2"), tmp_path / "lp2")
    assert first.keys() == plain.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], plain[k]) for k in first)


def test_without_a_fine_tuned_encoder_there_is_no_probe(tmp_path, monkeypatch):
    csv = make_dataset(tmp_path / "data")
    called = []
    monkeypatch.setattr(lpft, "frozen_embeddings", lambda *a, **k: called.append(1))
    cfg = load_config(None, [*TINY, "model.fusion=concat", "train.refit=false", "train.lp_epochs=2"])
    _train(csv, cfg, tmp_path / "scratch")  # scratch encoders train from the start: nothing to probe over
    assert called == []
    assert lpft.tuned_inputs(type("M", (), {"names": [], "encoders": {}})()) == []
