"""Tables kept in the cache folder serve more than the run that computed them: a partly frozen encoder's prefix pass
also keeps the whole encoder's embeddings (for a frozen-encoder run over the same data), and `mm eval` over a file
training cached reads the tables instead of running the frozen parts again, with the same scores."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from mmcli.models.classifier import encoder_settings, fusion_settings  # noqa: F401

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from mmcli import frozen
from mmcli.config import load_config
from mmcli.evaluate import evaluate_run
from mmcli.models.pretrained import HFTextEncoder
from mmcli.models.text import TEXT_ENCODERS
from mmcli.train import train
from tests.helpers import TINY, make_dataset
from tests.test_pretrained import tiny_bert  # noqa: F401 - the fixture


def _cfg(folder: Path, *extra: str):
    return load_config(None, [*TINY, "model.text_encoder=hf", f"model.text_weights={folder}", "model.fusion=late",
                              "train.epochs=2", *extra])


def _tables(pattern: str) -> list[Path]:
    return sorted(Path(os.environ["MM_CACHE_DIR"]).rglob(pattern))


def test_a_prefix_pass_keeps_the_whole_encoders_embeddings_too(tmp_path, tiny_bert):  # noqa: F811
    csv = make_dataset(tmp_path / "data")
    train(csv, _cfg(tiny_bert, "model.unfreeze_last=1"), output=tmp_path / "partly")
    (kept,) = _tables("embeddings_text_*.npy")
    assert len(_tables("prefix_text_*.npy")) == 1
    # the same numbers as a pass of the whole (untrained) encoder
    enc = TEXT_ENCODERS.build("hf", **encoder_settings(_cfg(tiny_bert))).eval()
    ids = torch.from_numpy(np.load(next(kept.parent.glob("tokens_text.npy"))))
    valid = np.load(kept.parent / "valid.npy")
    with torch.no_grad():
        direct = enc(ids[torch.from_numpy(valid)])
    torch.testing.assert_close(torch.from_numpy(np.load(kept))[torch.from_numpy(valid)], direct, atol=1e-5,
                               rtol=1e-5)
    # a frozen-encoder run over the same data finds that table and runs no pass of its own
    before = kept.stat().st_mtime_ns
    calls = []
    real = frozen._run_encoder
    frozen._run_encoder = lambda *a, **k: calls.append(a[2]) or real(*a, **k)
    try:
        train(csv, _cfg(tiny_bert, "model.freeze=[text]"), output=tmp_path / "frozen")
    finally:
        frozen._run_encoder = real
    assert "text" not in calls and kept.stat().st_mtime_ns == before


@pytest.mark.parametrize("setting", ["model.unfreeze_last=1", "model.freeze=[text]"])
def test_eval_over_the_cached_file_reads_the_kept_tables(tmp_path, tiny_bert, monkeypatch, setting):  # noqa: F811
    csv = make_dataset(tmp_path / "data")
    run = train(csv, _cfg(tiny_bert, setting), output=tmp_path / "run")
    expected = evaluate_run(run, csv, ablate=True, out_dir=tmp_path / "first")
    assert _tables("embeddings_text_*.npy")  # the frozen text blocks' table exists
    # with the tables, the frozen part of the text encoder does not run again: the same scores, ablation included
    partly = setting.startswith("model.unfreeze_last")
    name = "forward_until" if partly else "forward"
    with monkeypatch.context() as m:
        m.setattr(HFTextEncoder, name, lambda *a, **k: (_ for _ in ()).throw(AssertionError(name)))
        again = evaluate_run(run, csv, ablate=True, out_dir=tmp_path / "again")
    assert again["accuracy"] == expected["accuracy"]
    for n in ("image", "text"):
        assert again["ablation"]["single"][n]["accuracy"] == expected["ablation"]["single"][n]["accuracy"]
    # without the tables, the encoder runs whole and scores the same
    for table in _tables("*_text_*.npy"):
        table.unlink()
    assert evaluate_run(run, csv, out_dir=tmp_path / "whole")["accuracy"] == expected["accuracy"]
