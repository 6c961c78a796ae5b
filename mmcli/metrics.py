"""Classification metrics as a JSON-ready dict (scikit-learn does the arithmetic), plus quality gates.

Keys (stable; docs/eval-json.md describes each): n, accuracy, top{k}_accuracy, macro_f1, weighted_f1, loss
(log loss), ece, roc_auc, pr_auc, per_class {name: precision/recall/f1/support}, confusion_matrix (rows = true,
columns = predicted, class order = labels), labels, reliability (the binned table behind `ece`).

A value that is undefined for the data (recall of a class with no true rows, ROC-AUC when only one class
occurs, anything on zero rows) is None (JSON null), never a made-up 0.
"""

from __future__ import annotations

import math

import numpy as np

ECE_BINS = 15
# Metrics where higher is better and a threshold makes sense; `--fail-under` accepts only these.
GATE_METRICS = ("accuracy", "top3_accuracy", "macro_f1", "weighted_f1", "roc_auc", "pr_auc", "micro_f1", "mAP")


def _num(x) -> float | None:
    """A float for JSON, or None for NaN (sklearn's "undefined" with zero_division=nan)."""
    x = float(x)
    return None if math.isnan(x) else x


def reliability_table(confidence: np.ndarray, correct: np.ndarray, bins: int = ECE_BINS) -> dict:
    """Bin predictions by confidence into `bins` equal-width bins over [0, 1].

    `confidence` float [N] (the top probability), `correct` bool [N]. Bins follow `np.histogram`: [a, b) except
    the last, which is [a, 1]. -> {bin_edges [bins+1], count [bins], accuracy [bins], confidence [bins]}; the
    accuracy and mean confidence of an empty bin are None.
    """
    edges = np.linspace(0.0, 1.0, bins + 1)
    count, _ = np.histogram(confidence, bins=edges)
    conf_sum, _ = np.histogram(confidence, bins=edges, weights=confidence)
    hit_sum, _ = np.histogram(confidence, bins=edges, weights=correct.astype(np.float64))
    with np.errstate(invalid="ignore", divide="ignore"):
        acc, conf = hit_sum / count, conf_sum / count
    return {"bin_edges": edges.tolist(), "count": count.astype(int).tolist(),
            "accuracy": [_num(a) for a in acc], "confidence": [_num(c) for c in conf]}


def expected_calibration_error(table: dict) -> float | None:
    """ECE = sum over bins of (bin share of rows) * |bin accuracy - bin mean confidence|; None on zero rows."""
    count = np.array(table["count"], dtype=np.float64)
    if count.sum() == 0:
        return None
    used = count > 0
    acc = np.array([a for a, u in zip(table["accuracy"], used) if u])
    conf = np.array([c for c, u in zip(table["confidence"], used) if u])
    return float((count[used] / count.sum() * np.abs(acc - conf)).sum())


def ranking_metrics(probs: np.ndarray, targets: np.ndarray) -> dict:
    """ROC-AUC and average precision (PR-AUC): plain for 2 classes, one-vs-rest macro for more.

    `probs` float [N, C], `targets` int [N]. sklearn's multi-class ROC-AUC raises when a class is absent from
    the targets, so the one-vs-rest columns are scored as a multilabel indicator restricted to the classes where
    the score is defined (ROC: both positives and negatives; AP: at least one positive).
    """
    from sklearn.metrics import average_precision_score, roc_auc_score

    c = probs.shape[1]
    if c == 2:
        pos = targets == 1
        defined = 0 < pos.sum() < len(pos)
        return {"roc_auc": float(roc_auc_score(pos, probs[:, 1])) if defined else None,
                "pr_auc": float(average_precision_score(pos, probs[:, 1])) if pos.any() else None}
    onehot = targets[:, None] == np.arange(c)[None, :]
    n_pos = onehot.sum(0)
    roc_cols = np.nonzero((n_pos > 0) & (n_pos < len(targets)))[0]
    ap_cols = np.nonzero(n_pos > 0)[0]
    roc = roc_auc_score(onehot[:, roc_cols], probs[:, roc_cols], average="macro") if len(roc_cols) else None
    ap = average_precision_score(onehot[:, ap_cols], probs[:, ap_cols], average="macro") if len(ap_cols) else None
    return {"roc_auc": None if roc is None else float(roc), "pr_auc": None if ap is None else float(ap)}


def _empty(names: list[str], top_k: int) -> dict:
    """The same keys for zero rows, every value undefined."""
    c = len(names)
    out = {"n": 0, "accuracy": None, f"top{top_k}_accuracy": None, "macro_f1": None, "weighted_f1": None,
           "loss": None, "ece": None, "roc_auc": None, "pr_auc": None}
    out["per_class"] = {n: {"precision": None, "recall": None, "f1": None, "support": 0} for n in names}
    out["confusion_matrix"] = [[0] * c for _ in range(c)]
    out["labels"] = list(names)
    out["reliability"] = reliability_table(np.zeros(0), np.zeros(0, bool))
    return out


def classification_metrics(probs: np.ndarray, targets: np.ndarray, names: list[str], top_k: int = 3) -> dict:
    """Every evaluation metric for single-label predictions.

    `probs` float [N, C] (rows sum to 1), `targets` int [N] in 0..C-1, `names` the C class names in index order.
    `top{top_k}_accuracy` is 1.0 by definition when top_k >= C.
    """
    from sklearn.metrics import (
        accuracy_score,
        confusion_matrix,
        f1_score,
        log_loss,
        precision_recall_fscore_support,
        top_k_accuracy_score,
    )

    n, c = probs.shape
    if n == 0:
        return _empty(names, top_k)
    # float64 and renormalised: float32 softmax rows can miss 1.0 by enough for sklearn's sum check to warn
    probs = probs.astype(np.float64)
    probs /= probs.sum(1, keepdims=True)
    labels = list(range(c))
    preds = probs.argmax(1)
    p, r, f, s = precision_recall_fscore_support(targets, preds, labels=labels, zero_division=np.nan)
    out = {
        "n": int(n),
        "accuracy": float(accuracy_score(targets, preds)),
        f"top{top_k}_accuracy": float(top_k_accuracy_score(targets, probs, k=top_k, labels=labels))
        if top_k < c else 1.0,
        # zero_division=nan leaves classes absent from both targets and predictions out of the averages
        "macro_f1": _num(f1_score(targets, preds, labels=labels, average="macro", zero_division=np.nan)),
        "weighted_f1": _num(f1_score(targets, preds, labels=labels, average="weighted", zero_division=np.nan)),
        "loss": float(log_loss(targets, probs, labels=labels)),
    }
    table = reliability_table(probs.max(1), preds == targets)
    out["ece"] = expected_calibration_error(table)
    out.update(ranking_metrics(probs, targets))
    out["per_class"] = {
        name: {"precision": _num(p[i]), "recall": _num(r[i]), "f1": _num(f[i]), "support": int(s[i])}
        for i, name in enumerate(names)
    }
    out["confusion_matrix"] = confusion_matrix(targets, preds, labels=labels).tolist()
    out["labels"] = list(names)
    out["reliability"] = table
    return out


def summary(metrics: dict, top_k: int = 3) -> dict:
    """The scalar headline metrics of a `classification_metrics` dict (for ablation rows and slices)."""
    keys = ("n", "accuracy", f"top{top_k}_accuracy", "macro_f1", "weighted_f1", "loss", "ece")
    return {k: metrics.get(k) for k in keys}


def parse_gates(specs: list[str] | None) -> dict[str, float]:
    """`["accuracy=0.9", "macro_f1=0.85"]` -> {"accuracy": 0.9, "macro_f1": 0.85}; UsageError (exit 2) on an
    unknown metric name or a threshold that is not a number."""
    from mmcli.errors import UsageError

    gates: dict[str, float] = {}
    for spec in specs or []:
        name, sep, value = spec.partition("=")
        name = name.strip()
        if not sep or name not in GATE_METRICS:
            what = f"unknown metric {name!r}" if sep else f"expected METRIC=THRESHOLD, got {spec!r}"
            raise UsageError(f"--fail-under: {what}; valid metrics: {', '.join(GATE_METRICS)}")
        try:
            gates[name] = float(value)
        except ValueError:
            raise UsageError(f"--fail-under {spec}: threshold {value!r} is not a number") from None
    return gates


def check_gates(metrics: dict, gates: dict[str, float]) -> list[dict]:
    """-> [{metric, threshold, value, passed}] in `gates` order. An undefined value (None) fails its gate."""
    results = []
    for name, threshold in gates.items():
        value = metrics.get(name)
        results.append({"metric": name, "threshold": threshold, "value": value,
                        "passed": value is not None and value >= threshold})
    return results
