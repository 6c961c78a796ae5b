"""PNG plots for report.md: confusion matrix, training curves, reliability diagram.

matplotlib is imported inside the functions (it costs ~0.5 s, and `mm --help` must not pay it). Figures are
drawn on the Agg canvas directly, never through pyplot, so no display or global figure state is involved.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from mmcli.files import atomic_path


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")


def confusion_png(path: Path, cm: list[list[int]], labels: list[str]) -> None:
    """Counts `[C, C]` (rows = true) as a heat map coloured by row share, so rare classes show their errors."""
    m = np.array(cm, dtype=np.float64)
    share = m / np.maximum(m.sum(1, keepdims=True), 1)
    c = len(labels)
    side = min(4 + 0.45 * c, 20)
    fig = _figure(side + 1, side)
    ax = fig.add_subplot()
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, label="share of the true class", shrink=0.8)
    ax.set_xticks(range(c), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(c), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (counts)")
    if c <= 30:  # beyond that the numbers overlap and only the colours carry information
        for i in range(c):
            for j in range(c):
                if m[i, j]:
                    ax.text(j, i, str(int(m[i, j])), ha="center", va="center", fontsize=7,
                            color="white" if share[i, j] > 0.5 else "black")
    _save(fig, path)


def read_history(path: Path) -> list[dict[str, float | None]]:
    """history.csv rows as {column: float or None} (None for an empty cell, e.g. no validation rows)."""
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        return [{k: float(v) if v not in ("", None) else None for k, v in row.items()} for row in csv.DictReader(fh)]


def curves_png(path: Path, history: list[dict]) -> None:
    """Loss (left) and accuracy / macro F1 (right) per epoch, train vs validation."""
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] for h in history]
    fig = _figure(9, 3.5)
    panels = ((("train_loss", "train"), ("val_loss", "val")),
              (("train_accuracy", "train accuracy"), ("val_accuracy", "val accuracy"), ("val_macro_f1", "val macro F1")))
    for k, (panel, ylabel) in enumerate(zip(panels, ("loss", "score"))):
        ax = fig.add_subplot(1, 2, k + 1)
        for key, label in panel:
            ys = [h.get(key) for h in history]
            if any(y is not None for y in ys):
                ax.plot(epochs, [np.nan if y is None else y for y in ys], marker="o", markersize=3, label=label)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("training curves")
    _save(fig, path)


def reliability_png(path: Path, table: dict, ece: float | None) -> None:
    """Accuracy per confidence bin against the diagonal (perfect calibration), row counts below."""
    edges = np.array(table["bin_edges"])
    centers, width = (edges[:-1] + edges[1:]) / 2, edges[1] - edges[0]
    acc = np.array([np.nan if a is None else a for a in table["accuracy"]])
    conf = np.array([np.nan if c is None else c for c in table["confidence"]])
    fig = _figure(4.5, 5.5)
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    top.bar(centers, np.nan_to_num(acc), width=width, edgecolor="black", alpha=0.8, label="accuracy")
    top.bar(centers, np.nan_to_num(conf - acc), bottom=np.nan_to_num(acc), width=width, color="red", alpha=0.25,
            label="gap to confidence")
    top.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect calibration")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.legend(fontsize=8, loc="upper left")
    top.set_title("reliability" + ("" if ece is None else f" (ECE {ece:.4f}, {len(centers)} bins)"))
    bottom.bar(centers, table["count"], width=width, color="grey", edgecolor="black")
    bottom.set_xlabel("confidence (top probability)")
    bottom.set_ylabel("rows")
    bottom.set_xlim(0, 1)
    _save(fig, path)


def write_plots(out_dir: Path, metrics: dict, history: list[dict]) -> dict[str, str]:
    """Draw every plot the data allows into `out_dir`. -> {kind: file name} for "confusion", "reliability",
    "curves"."""
    out: dict[str, str] = {}
    if metrics.get("n"):
        confusion_png(out_dir / "confusion_matrix.png", metrics["confusion_matrix"], metrics["labels"])
        out["confusion"] = "confusion_matrix.png"
        if metrics.get("reliability"):
            reliability_png(out_dir / "reliability.png", metrics["reliability"], metrics.get("ece"))
            out["reliability"] = "reliability.png"
    if history:
        curves_png(out_dir / "training_curves.png", history)
        out["curves"] = "training_curves.png"
    return out
