"""Multi-label targets end to end: detection, BCE training, tuned thresholds, metrics, prediction."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import CLASSES, COLOURS, write_csv, write_png
from typer.testing import CliRunner

from mmcli.cli import app
from mmcli.multilabel import is_multi_label, multi_hot, multilabel_metrics, split_labels, tune_thresholds

SETS = ["model.embed_dim=16", "model.hidden_dim=16", "data.image_size=16", "train.batch_size=16", "train.epochs=8",
        "train.lr=1e-2", "train.threads=1"]


def test_detection_and_parsing():
    assert is_multi_label(["a|b", "c"], "|", "auto") and not is_multi_label(["a", "c"], "|", "auto")
    assert is_multi_label(["a"], "|", "true") and not is_multi_label(["a|b"], "|", "false")
    assert split_labels(" cat| dog |cat|", "|") == ["cat", "dog"]
    assert multi_hot(["a|c", "b", "z"], ["a", "b", "c"], "|").tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]


def test_metrics_hand_computed():
    targets = np.array([[1, 0], [1, 1], [0, 1], [0, 0]])
    probs = np.array([[0.9, 0.2], [0.8, 0.3], [0.1, 0.7], [0.6, 0.1]])
    m = multilabel_metrics(probs, targets, ["a", "b"])
    # at 0.5: predictions [[1,0],[1,0],[0,1],[1,0]] -> exact match rows 0 and 2
    assert m["accuracy"] == 0.5
    # label a: tp 2, fp 1, fn 0 -> f1 0.8; label b: tp 1, fp 0, fn 1 -> f1 2/3; micro: tp 3, fp 1, fn 1 -> 0.75
    assert abs(m["macro_f1"] - (0.8 + 2 / 3) / 2) < 1e-9 and abs(m["micro_f1"] - 0.75) < 1e-9
    assert m["mAP"] == 1.0  # both labels rank their positives first
    th = tune_thresholds(probs, targets)
    assert 0.25 <= th[1] <= 0.3  # b's positives score 0.3 and 0.7: the best cut lets 0.3 through


def _data(root):
    rows = []
    rng = np.random.default_rng(0)
    for i in range(90):
        colour = CLASSES[i % 3]
        tagged = bool(rng.random() < 0.5)
        img = write_png(root / "images" / f"{i:03d}.png", COLOURS[colour], seed=i)
        text = ("urgent tagged item" if tagged else "plain quiet item") + f" {rng.integers(100)}"
        rows.append([img.relative_to(root).as_posix(), text, colour + ("|tagged" if tagged else "")])
    return write_csv(root / "data.csv", ["image", "text", "label"], rows)


# the default late fusion, and the zero-config preset's heads: an MLP per input, weighted per row by entropy
@pytest.mark.parametrize("extra", [[], ["model.late_hidden=16", "model.late_weighting=entropy"]],
                         ids=["linear-heads", "mlp-heads-entropy"])
def test_multilabel_end_to_end(tmp_path, extra):
    csv_path = _data(tmp_path / "d")
    runner = CliRunner()
    args = [a for s in [*SETS, *extra] for a in ("--set", s)]
    res = runner.invoke(app, ["train", str(csv_path), "-o", str(tmp_path / "run"), *args])
    assert res.exit_code == 0, res.output
    run = tmp_path / "run"
    assert json.loads((run / "labels.json").read_text()) == ["blue", "green", "red", "tagged"]
    assert set(json.loads((run / "thresholds.json").read_text())) == {"blue", "green", "red", "tagged"}
    res = runner.invoke(app, ["eval", str(run), str(csv_path), "--json", "-o", str(tmp_path / "ev")])
    assert res.exit_code == 0, res.output
    metrics = json.loads(res.stdout)
    assert {"micro_f1", "macro_f1", "mAP", "per_class"} <= set(metrics)
    assert metrics["micro_f1"] > 0.8, metrics
    res = runner.invoke(app, ["predict", str(run), str(tmp_path / "d" / "images" / "000.png"), "urgent tagged item",
                              "--json"])
    assert res.exit_code == 0, res.output
    chosen = {p["label"] for p in json.loads(res.stdout)["predictions"] if p["selected"]}
    assert chosen == {"red", "tagged"}, res.stdout
    res = runner.invoke(app, ["predict", str(run), str(csv_path), "-o", str(tmp_path / "p.csv")])
    assert res.exit_code == 0, res.output
    first = (tmp_path / "p.csv").read_text().splitlines()[1].split(",")
    assert "|" in first[1] or first[1] in ("red", "green", "blue")
