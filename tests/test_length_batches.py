"""`train.sampler=length`: shuffled batches of rows with similar text length (less padding to trim per batch)."""

from __future__ import annotations

import json

import numpy as np
from helpers import dataset_rows, write_csv

from mmcli.config import load_config
from mmcli.data.cache import build_cache
from mmcli.data.dataset import GROUP_BATCHES, Batches, length_grouped, text_lengths
from mmcli.data.manifest import read_manifest
from mmcli.train import train


def test_grouped_order_is_a_permutation_with_batches_of_similar_length():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 100, size=203)
    order = rng.permutation(203)
    grouped = length_grouped(order, lengths, 8, np.random.default_rng(1))
    assert sorted(grouped.tolist()) == list(range(203))
    # each full batch spans a narrow band of lengths: sorted runs of GROUP_BATCHES batches cut into batches
    spread = [np.ptp(lengths[grouped[k * 8 : (k + 1) * 8]]) for k in range(203 // 8)]
    shuffled = [np.ptp(lengths[order[k * 8 : (k + 1) * 8]]) for k in range(203 // 8)]
    assert np.mean(spread) < np.mean(shuffled) / 3
    # the short last batch stays last (batch k is always positions k*8..k*8+7 of the order): the 3 longest rows of
    # the last run of GROUP_BATCHES batches (rows 192..202)
    last = order[(203 // (8 * GROUP_BATCHES)) * 8 * GROUP_BATCHES :]
    assert grouped[-3:].tolist() == last[np.argsort(lengths[last], kind="stable")][-3:].tolist()


def _mixed_lengths(tmp_path):
    rows = dataset_rows(tmp_path, n=60)
    for i, r in enumerate(rows):
        r[1] = " ".join([r[1]] * (1 + i % 5))  # 4 to 20 words
    return write_csv(tmp_path / "data.csv", ["image", "text", "label"], rows)


def test_length_batches_change_with_the_epoch_and_cover_every_row(tmp_path, tiny_cfg):
    cache, _, _ = build_cache(read_manifest(_mixed_lengths(tmp_path), tiny_cfg.data), tiny_cfg)
    lengths = text_lengths(cache)
    ids = np.asarray(cache.arrays["text"])
    assert lengths.tolist() == (ids != 0).sum(1).tolist() and lengths.min() > 0
    idx = cache.indices()
    batches = Batches(cache, idx, 4, {}, shuffle=True, seed=0, lengths=lengths, skip={"image"})
    orders = []
    for epoch in range(3):
        batches.set_epoch(epoch)
        orders.append(batches._order())
        assert sorted(orders[-1].tolist()) == sorted(idx.tolist())
    assert not np.array_equal(orders[0], orders[1])
    plain = Batches(cache, idx, 4, {}, shuffle=True, seed=0, skip={"image"})
    grouped_spread = np.mean([np.ptp(lengths[p]) for _, _, _, p in batches])
    plain_spread = np.mean([np.ptp(lengths[p]) for _, _, _, p in plain])
    assert grouped_spread < plain_spread


def test_training_with_the_length_sampler(tmp_path, tiny_sets):
    cfg = load_config(None, [*tiny_sets, "train.sampler=length"])
    run = train(_mixed_lengths(tmp_path), cfg, output=tmp_path / "run")
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["val"]["n"] > 0
    assert (run / "config.yaml").read_text().count("sampler: length") == 1


def test_no_text_column_means_no_lengths(tmp_path, tiny_cfg):
    rows = [[r[0], r[2]] for r in dataset_rows(tmp_path, n=12)]
    csv_path = write_csv(tmp_path / "img.csv", ["image", "label"], rows)
    cache, _, _ = build_cache(read_manifest(csv_path, tiny_cfg.data), tiny_cfg)
    assert text_lengths(cache) is None
