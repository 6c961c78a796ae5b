"""Class imbalance: inverse-frequency loss weights and the weighted sampler."""

from __future__ import annotations

import json

import numpy as np
import torch
from helpers import dataset_rows, write_csv

from mmcli.config import load_config
from mmcli.data.cache import build_cache
from mmcli.data.dataset import Batches
from mmcli.data.manifest import read_manifest
from mmcli.fit import class_weights
from mmcli.train import train


def test_inverse_frequency_weights():
    w = class_weights(np.array([0, 0, 0, 1]), 3)
    # n / (C * count): 4 / (3 * 3), 4 / (3 * 1), and 0 for the class that never occurs
    assert torch.allclose(w, torch.tensor([4 / 9, 4 / 3, 0.0]))
    assert torch.allclose(class_weights(np.array([0, 1, 2]), 3), torch.ones(3))


def _imbalanced(tmp_path):
    rows = dataset_rows(tmp_path, n=60)
    rows = [r for r in rows if r[2] == "red"] + [r for r in rows if r[2] != "red"][:8]  # 20 red, 8 others
    return write_csv(tmp_path / "data.csv", ["image", "text", "label"], rows)


def test_weighted_sampler_balances_classes(tmp_path, tiny_cfg):
    csv_path = _imbalanced(tmp_path)
    cache, _, _ = build_cache(read_manifest(csv_path, tiny_cfg.data), tiny_cfg)
    idx = cache.indices()
    plain = Batches(cache, idx, 8, {}, shuffle=True, seed=0)
    balanced = Batches(cache, idx, 8, {}, shuffle=True, seed=0, balanced=True)
    counts_plain, counts_bal = np.zeros(3), np.zeros(3)
    for epoch in range(50):
        plain.set_epoch(epoch)
        balanced.set_epoch(epoch)
        counts_plain += np.bincount(cache.labels[plain._order()], minlength=3)
        counts_bal += np.bincount(cache.labels[balanced._order()], minlength=3)
    share_plain, share_bal = counts_plain / counts_plain.sum(), counts_bal / counts_bal.sum()
    red = cache.meta["label_names"].index("red")
    assert share_plain[red] > 0.65
    assert np.all(np.abs(share_bal - 1 / 3) < 0.05), share_bal


def test_training_with_class_weights_and_sampler(tmp_path, tiny_sets):
    csv_path = _imbalanced(tmp_path)
    cfg = load_config(None, tiny_sets + ["train.class_weights=auto", "train.sampler=weighted"])
    run = train(csv_path, cfg, output=tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val"]["n"] > 0
    assert "support" in next(iter(metrics["val"]["per_class"].values()))
