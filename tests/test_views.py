"""`train.views`: cached image tables over re-rendered images too (mirrored, in grey), one rendering per row and
step, so that the frozen blocks still run once per view."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mmcli import frozen, modalities
from mmcli.config import load_config
from mmcli.errors import UsageError
from tests.helpers import TINY, make_dataset

FROZEN_IMAGE = [*TINY, "model.freeze=[image]", "model.fusion=concat", "train.augment=false", "train.refit=false"]


def _fake_tables(monkeypatch, value_of_view: dict) -> None:
    """frozen_embeddings -> an image table filled with value_of_view[view]."""
    monkeypatch.setattr(frozen, "frozen_embeddings",
                        lambda *a, view=None, **k: {"image": torch.full((300, 2, 3), value_of_view[view])})


def test_each_row_gets_one_whole_rendering_and_other_inputs_stay_as_they_are(monkeypatch):
    table = {"image": torch.zeros(300, 2, 3), "text": torch.full((300, 4), 7.0)}
    _fake_tables(monkeypatch, {"flip": 1.0, "gray": 2.0})
    model = SimpleNamespace(kinds={"image": "image", "text": "text"})
    lookup = frozen.view_tables(model, None, 8, "cpu", table, {}, ["flip", "gray"])
    torch.manual_seed(0)
    rows = lookup(torch.arange(300))
    per_row = rows["image"].flatten(1)
    assert (per_row == per_row[:, :1]).all()  # never a mix of two renderings within a row
    shares = [(per_row[:, 0] == v).float().mean().item() for v in (0.0, 1.0, 2.0)]
    assert all(0.2 < s < 0.47 for s in shares)  # all three drawn, about a third each (fixed seed: same every run)
    torch.testing.assert_close(rows["text"], table["text"])
    torch.manual_seed(0)
    torch.testing.assert_close(lookup(torch.arange(300))["image"], rows["image"])  # seeded, so repeatable


def test_no_image_table_means_no_other_view(monkeypatch):
    monkeypatch.setattr(frozen, "frozen_embeddings", lambda *a, **k: (_ for _ in ()).throw(AssertionError))
    model = SimpleNamespace(kinds={"text": "text"})
    assert frozen.view_tables(model, None, 8, "cpu", {"text": torch.zeros(3, 4)}, {}, ["flip"]) is None


def test_image_views_flip_and_grey_the_batch():
    image = modalities.get("image")
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(image.view("flip", x), x.flip(-1))
    gray = image.view("gray", x)
    assert gray.shape == x.shape and torch.equal(gray[:, 0], gray[:, 2])
    torch.testing.assert_close(gray[:, 1], 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    with pytest.raises(UsageError, match="no view 'blur'; valid: flip, gray"):
        image.view("blur", x)


def test_unknown_or_repeated_views_are_config_errors():
    with pytest.raises(UsageError, match=r"train.views.*from: flip, gray"):
        load_config(None, ["train.views=[blur]"])
    with pytest.raises(UsageError, match="train.views"):
        load_config(None, ["train.views=[flip, flip]"])
    assert load_config(None, ["train.views=[gray, flip]"]).train.views == ["gray", "flip"]


def _train(csv: Path, out: Path, *extra: str) -> dict[str, torch.Tensor]:
    from mmcli.train import train

    return load_file(str(train(csv, load_config(None, [*FROZEN_IMAGE, *extra]), output=out) / "model.safetensors"))


def test_training_reads_the_view_tables_and_stays_deterministic(tmp_path):
    csv = make_dataset(tmp_path / "data")
    plain = _train(csv, tmp_path / "plain")
    viewed = _train(csv, tmp_path / "views", "train.views=[flip, gray]")
    cache = Path(os.environ["MM_CACHE_DIR"])
    (table,) = cache.rglob("embeddings_image_*.npy")
    a = np.load(table)
    for view in ("flip", "gray"):  # the noisy, coloured test images are neither symmetric nor grey
        (other,) = cache.rglob(f"embeddings_{view}_image_*.npy")
        b = np.load(other)
        assert a.shape == b.shape and not np.allclose(a, b), view
    head = [k for k in plain if k.startswith("head.")]
    assert head and any(not torch.equal(plain[k], viewed[k]) for k in head)  # the other views were trained on
    again = _train(csv, tmp_path / "again", "train.views=[flip, gray]")
    assert all(torch.equal(viewed[k], again[k]) for k in viewed)
