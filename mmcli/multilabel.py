"""Multi-label targets: a label cell holding several labels ("cat|dog"), a sigmoid/BCE head, per-label thresholds
tuned on the validation split, and the metrics that fit (micro/macro F1, mAP, per-label figures)."""

from __future__ import annotations

import numpy as np


def is_multi_label(values: list[str], separator: str, mode: str) -> bool:
    """mode "auto": multi-label when any label cell contains the separator; "true"/"false" force it."""
    if mode != "auto":
        return mode == "true"
    return any(separator in v for v in values)


def split_labels(value: str, separator: str) -> list[str]:
    """"cat| dog |" -> ["cat", "dog"] (blank parts dropped, order kept, duplicates removed)."""
    seen: list[str] = []
    for part in value.split(separator):
        part = part.strip()
        if part and part not in seen:
            seen.append(part)
    return seen


def multi_hot(cells: list[str], names: list[str], separator: str) -> np.ndarray:
    """Label cells -> uint8 `[N, C]`; labels outside `names` are ignored (counted by the caller)."""
    index = {n: i for i, n in enumerate(names)}
    out = np.zeros((len(cells), len(names)), dtype=np.uint8)
    for r, cell in enumerate(cells):
        for lab in split_labels(cell, separator):
            if lab in index:
                out[r, index[lab]] = 1
    return out


def tune_thresholds(probs: np.ndarray, targets: np.ndarray, grid: np.ndarray | None = None) -> np.ndarray:
    """Per-label threshold `[C]` maximising that label's F1 on (`probs` `[N, C]`, `targets` `[N, C]`); labels with
    no positive row keep 0.5."""
    from sklearn.metrics import f1_score

    grid = np.linspace(0.05, 0.95, 19) if grid is None else grid
    out = np.full(probs.shape[1], 0.5)
    for c in range(probs.shape[1]):
        if targets[:, c].sum() == 0:
            continue
        scores = [f1_score(targets[:, c], probs[:, c] >= t, zero_division=0) for t in grid]
        out[c] = grid[int(np.argmax(scores))]
    return out


def multilabel_metrics(probs: np.ndarray, targets: np.ndarray, names: list[str],
                       thresholds: np.ndarray | None = None) -> dict:
    """Metrics for sigmoid outputs `probs` `[N, C]` against multi-hot `targets` `[N, C]` (scikit-learn).

    Keys: n, accuracy (exact match of the whole label set), micro_f1, macro_f1, mAP (macro average precision over
    labels with a positive row), loss (mean binary cross-entropy), per_class, labels, thresholds."""
    from sklearn.metrics import accuracy_score, average_precision_score, f1_score, precision_recall_fscore_support

    n, c = probs.shape
    th = np.full(c, 0.5) if thresholds is None else np.asarray(thresholds)
    if n == 0:
        return {"n": 0, "accuracy": None, "micro_f1": None, "macro_f1": None, "mAP": None, "loss": None,
                "labels": names, "thresholds": th.tolist(), "multi_label": True}
    preds = (probs >= th).astype(int)
    p, r, f, s = precision_recall_fscore_support(targets, preds, zero_division=0)
    has_pos = targets.sum(0) > 0
    ap = average_precision_score(targets[:, has_pos], probs[:, has_pos], average="macro") if has_pos.any() else None
    eps = 1e-7
    q = np.clip(probs, eps, 1 - eps)
    loss = float(-(targets * np.log(q) + (1 - targets) * np.log(1 - q)).mean())
    return {
        "n": int(n), "multi_label": True,
        "accuracy": float(accuracy_score(targets, preds)),
        "micro_f1": float(f1_score(targets, preds, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(targets, preds, average="macro", zero_division=0)),
        "mAP": None if ap is None else float(ap),
        "loss": loss,
        "per_class": {name: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]),
                             "support": int(s[i]), "threshold": float(th[i])} for i, name in enumerate(names)},
        "labels": list(names),
        "thresholds": th.tolist(),
    }


def multilabel_markdown(metrics: dict) -> str:
    """report.md for a multi-label evaluation: summary and per-label table with the tuned thresholds."""

    def fmt(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    summary = (f"Data: `{metrics.get('csv', '')}` - {metrics['n']} rows scored, {metrics.get('bad_rows', 0)} bad "
               "rows skipped.")
    lines = ["# Evaluation report (multi-label)", "", summary, "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {fmt(metrics.get(k))} |" for k in ("accuracy", "micro_f1", "macro_f1", "mAP", "loss")]
    lines += ["", "`accuracy` is the exact-match ratio (the whole label set right).", "",
              "| label | precision | recall | f1 | support | threshold |", "|---|---|---|---|---|---|"]
    for name, pc in metrics.get("per_class", {}).items():
        lines.append(f"| {name} | {pc['precision']:.3f} | {pc['recall']:.3f} | {pc['f1']:.3f} | {pc['support']} | "
                     f"{pc['threshold']:.2f} |")
    return "\n".join(lines) + "\n"
