"""Classification metrics from scikit-learn, as a JSON-ready dict.

Keys: accuracy, macro_f1, weighted_f1, loss (mean cross-entropy), top{k}_accuracy, per_class
{name: precision/recall/f1/support}, confusion_matrix (rows = true, columns = predicted, class order = labels),
labels, n.
"""

from __future__ import annotations

import numpy as np


def classification_metrics(probs: np.ndarray, targets: np.ndarray, names: list[str], top_k: int = 3) -> dict:
    """`probs` float [N, C] (rows sum to 1), `targets` int [N] in 0..C-1."""
    from sklearn.metrics import (accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support,
                                 top_k_accuracy_score)

    n, c = probs.shape
    labels = list(range(c))
    if n == 0:
        return {"n": 0, "accuracy": None, "macro_f1": None, "loss": None, "labels": names}
    preds = probs.argmax(1)
    p, r, f, s = precision_recall_fscore_support(targets, preds, labels=labels, zero_division=0)
    eps = 1e-12
    out = {
        "n": int(n),
        "accuracy": float(accuracy_score(targets, preds)),
        "macro_f1": float(f1_score(targets, preds, labels=labels, average="macro", zero_division=0)),
        "weighted_f1": float(f1_score(targets, preds, labels=labels, average="weighted", zero_division=0)),
        "loss": float(-np.log(np.clip(probs[np.arange(n), targets], eps, 1.0)).mean()),
    }
    k = min(top_k, c - 1)
    if k >= 2:
        out[f"top{k}_accuracy"] = float(top_k_accuracy_score(targets, probs, k=k, labels=labels))
    out["per_class"] = {
        name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
        for i, name in enumerate(names)
    }
    out["confusion_matrix"] = confusion_matrix(targets, preds, labels=labels).tolist()
    out["labels"] = list(names)
    return out
