"""`train.flip_views`: cached image tables over the mirrored images too, one of the two views per row and step."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from safetensors.torch import load_file

from mmcli import frozen
from mmcli.config import load_config
from tests.helpers import TINY, make_dataset

FROZEN_IMAGE = [*TINY, "model.freeze=[image]", "model.fusion=concat", "train.augment=false", "train.refit=false"]


def test_each_row_gets_one_whole_view_and_other_inputs_stay_as_they_are(monkeypatch):
    table = {"image": torch.zeros(200, 2, 3), "text": torch.full((200, 4), 7.0)}
    monkeypatch.setattr(frozen, "frozen_embeddings", lambda *a, **k: {"image": torch.ones(200, 2, 3)})
    model = SimpleNamespace(kinds={"image": "image", "text": "text"})
    lookup = frozen.flip_views(model, None, 8, "cpu", table, {})
    torch.manual_seed(0)
    rows = lookup(torch.arange(200))
    per_row = rows["image"].flatten(1)
    assert ((per_row == 0).all(1) | (per_row == 1).all(1)).all()  # never a mix of the two views within a row
    share = per_row[:, 0].mean().item()
    assert 0.35 < share < 0.65  # both views drawn (fixed seed: the same share every run)
    torch.testing.assert_close(rows["text"], table["text"])
    torch.manual_seed(0)
    torch.testing.assert_close(lookup(torch.arange(200))["image"], rows["image"])  # seeded, so repeatable


def test_no_image_table_means_no_second_view(monkeypatch):
    monkeypatch.setattr(frozen, "frozen_embeddings", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    model = SimpleNamespace(kinds={"text": "text"})
    assert frozen.flip_views(model, None, 8, "cpu", {"text": torch.zeros(3, 4)}, {}) is None


def _train(csv: Path, out: Path, *extra: str) -> dict[str, torch.Tensor]:
    from mmcli.train import train

    return load_file(str(train(csv, load_config(None, [*FROZEN_IMAGE, *extra]), output=out) / "model.safetensors"))


def test_training_reads_the_mirrored_table_and_stays_deterministic(tmp_path):
    csv = make_dataset(tmp_path / "data")
    plain = _train(csv, tmp_path / "plain")
    flipped = _train(csv, tmp_path / "flip", "train.flip_views=true")
    cache = Path(os.environ["MM_CACHE_DIR"])
    (table,) = cache.rglob("embeddings_image_*.npy")
    (mirror,) = cache.rglob("embeddings_flip_image_*.npy")
    a, b = np.load(table), np.load(mirror)
    assert a.shape == b.shape and not np.allclose(a, b)  # the noisy test images are not left-right symmetric
    head = [k for k in plain if k.startswith("head.")]
    assert head and any(not torch.equal(plain[k], flipped[k]) for k in head)  # the second view was trained on
    again = _train(csv, tmp_path / "again", "train.flip_views=true")
    assert all(torch.equal(flipped[k], again[k]) for k in flipped)
