"""Metric values against hand-computed cases; calibration; undefined values; quality-gate parsing."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mmcli.errors import UsageError
from mmcli.metrics import (
    check_gates,
    classification_metrics,
    expected_calibration_error,
    parse_gates,
    reliability_table,
)

# 6 rows, 3 classes. Predictions (argmax) 0,0,1,1,2,2 for targets 0,0,0,1,1,2:
# confusion [[2,1,0],[0,1,1],[0,0,1]]; the true class is 2nd most probable in row 2 and 3rd in row 4.
PROBS = np.array([[0.80, 0.15, 0.05], [0.80, 0.05, 0.15], [0.15, 0.80, 0.05],
                  [0.05, 0.80, 0.15], [0.15, 0.05, 0.80], [0.15, 0.05, 0.80]])
TARGETS = np.array([0, 0, 0, 1, 1, 2])
NAMES = ["a", "b", "c"]


def test_hand_computed_confusion_case():
    m = classification_metrics(PROBS, TARGETS, NAMES, top_k=2)
    assert m["n"] == 6
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["top2_accuracy"] == pytest.approx(5 / 6)
    # per class: a P=2/2 R=2/3 F1=0.8; b P=1/2 R=1/2 F1=0.5; c P=1/2 R=1/1 F1=2/3
    assert m["per_class"]["a"] == pytest.approx({"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert m["per_class"]["b"] == pytest.approx({"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2})
    assert m["per_class"]["c"] == pytest.approx({"precision": 0.5, "recall": 1.0, "f1": 2 / 3, "support": 1})
    assert m["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["weighted_f1"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 2 / 3) / 6)
    # log loss: the true class gets 0.8 four times, 0.15 and 0.05 once
    assert m["loss"] == pytest.approx(-(4 * math.log(0.8) + math.log(0.15) + math.log(0.05)) / 6)
    # every confidence is 0.8 (one bin) while 4/6 are right
    assert m["ece"] == pytest.approx(0.8 - 4 / 6)
    assert m["labels"] == NAMES


def test_default_keys_are_stable():
    m = classification_metrics(PROBS, TARGETS, NAMES)
    for key in ("n", "accuracy", "top3_accuracy", "macro_f1", "weighted_f1", "loss", "ece", "roc_auc", "pr_auc",
                "per_class", "confusion_matrix", "labels", "reliability"):
        assert key in m
    assert m["top3_accuracy"] == 1.0  # k >= number of classes: every true class is in the top 3
    empty = classification_metrics(np.zeros((0, 3)), np.zeros(0, int), NAMES)
    assert set(empty) == set(m)
    assert empty["n"] == 0 and empty["accuracy"] is None and empty["ece"] is None
    assert empty["per_class"]["a"] == {"precision": None, "recall": None, "f1": None, "support": 0}


def test_binary_auc_matches_hand_values():
    # the classic example: scores 0.1, 0.4 (negatives), 0.35, 0.8 (positives): 3 of 4 pairs ordered -> 0.75;
    # average precision = (1/2)*(1) + (1/2)*(2/3) = 0.8333
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    m = classification_metrics(np.stack([1 - scores, scores], 1), np.array([0, 0, 1, 1]), ["neg", "pos"])
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["pr_auc"] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_multiclass_auc_is_one_vs_rest_macro():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), 40)
    targets = rng.integers(0, 4, 40)
    m = classification_metrics(probs, targets, list("abcd"))
    assert m["roc_auc"] == pytest.approx(roc_auc_score(targets, probs, multi_class="ovr", average="macro"))


def test_absent_classes_are_null_not_a_crash():
    # class "d" never occurs and is never predicted; class "c" is predicted once but never true
    probs = np.array([[0.7, 0.1, 0.1, 0.1], [0.1, 0.7, 0.1, 0.1], [0.1, 0.1, 0.7, 0.1], [0.6, 0.2, 0.1, 0.1]])
    targets = np.array([0, 1, 1, 0])
    m = classification_metrics(probs, targets, list("abcd"))
    assert m["per_class"]["d"] == {"precision": None, "recall": None, "f1": None, "support": 0}
    assert m["per_class"]["c"]["recall"] is None and m["per_class"]["c"]["precision"] == 0.0
    # macro F1 averages the defined classes a (1.0), b (2/3), c (0.0); d is left out
    assert m["macro_f1"] == pytest.approx((1.0 + 2 / 3 + 0.0) / 3)
    assert m["roc_auc"] is not None and m["pr_auc"] is not None
    one_class = classification_metrics(probs[[0, 3]], np.array([0, 0]), list("abcd"))
    assert one_class["roc_auc"] is None  # one class present: no negatives for it, no positives for the rest
    assert one_class["pr_auc"] == pytest.approx(1.0)


def _toy(confidence: list[float], correct: list[bool]) -> float:
    return expected_calibration_error(reliability_table(np.array(confidence), np.array(correct)))


def test_ece_perfectly_calibrated_is_zero():
    # 0.9 confident and right 9 of 10 times; 0.6 confident and right 3 of 5 times
    conf = [0.9] * 10 + [0.6] * 5
    correct = [True] * 9 + [False] + [True] * 3 + [False] * 2
    assert _toy(conf, correct) == pytest.approx(0.0, abs=1e-12)


def test_ece_overconfident_has_known_value():
    # bin 0.9: right half the time (gap 0.4); bin 0.6: right 6 of 10 (gap 0) -> ECE = 0.5 * 0.4
    conf = [0.9] * 10 + [0.6] * 10
    correct = [True, False] * 5 + [True] * 6 + [False] * 4
    assert _toy(conf, correct) == pytest.approx(0.2)
    assert _toy([0.95] * 20, [True, False] * 10) == pytest.approx(0.45)


def test_reliability_table_uses_15_equal_bins():
    table = reliability_table(np.array([0.0, 0.5, 1.0]), np.array([True, False, True]))
    assert len(table["bin_edges"]) == 16 and table["bin_edges"][1] == pytest.approx(1 / 15)
    assert sum(table["count"]) == 3 and table["count"][-1] == 1  # 1.0 falls in the last, closed bin
    assert table["accuracy"][3] is None  # empty bins are undefined, not 0


def test_parse_gates():
    assert parse_gates(["accuracy=0.9", "macro_f1=0.85"]) == {"accuracy": 0.9, "macro_f1": 0.85}
    assert parse_gates(None) == {}
    with pytest.raises(UsageError, match="unknown metric 'acc'.*accuracy, top3_accuracy, macro_f1"):
        parse_gates(["acc=0.9"])
    with pytest.raises(UsageError, match="METRIC=THRESHOLD"):
        parse_gates(["accuracy"])
    with pytest.raises(UsageError, match="not a number"):
        parse_gates(["accuracy=high"])


def test_check_gates():
    results = check_gates({"accuracy": 0.8, "macro_f1": 0.9, "roc_auc": None},
                          {"accuracy": 0.9, "macro_f1": 0.85, "roc_auc": 0.5})
    assert [(r["metric"], r["passed"]) for r in results] == [("accuracy", False), ("macro_f1", True),
                                                            ("roc_auc", False)]
    assert results[0]["value"] == 0.8 and results[0]["threshold"] == 0.9
