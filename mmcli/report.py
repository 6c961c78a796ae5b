"""Human-readable outputs: report.md for an evaluation and rich tables for the terminal."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmcli.files import atomic_write_text
from mmcli.runs import write_json


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def worst_confusions(cm: list[list[int]], names: list[str], k: int = 5) -> list[tuple[str, str, int]]:
    """The k largest off-diagonal cells: (true, predicted, count)."""
    m = np.array(cm)
    np.fill_diagonal(m, 0)
    flat = [(int(m[i, j]), i, j) for i in range(len(names)) for j in range(len(names)) if m[i, j] > 0]
    return [(names[i], names[j], c) for c, i, j in sorted(flat, key=lambda t: (-t[0], t[1], t[2]))[:k]]


def eval_markdown(metrics: dict, examples: list[str]) -> str:
    lines = [
        "# Evaluation report", "",
        f"Data: `{metrics.get('csv', '')}` - {metrics['n']} rows scored, {metrics.get('bad_rows', 0)} bad rows "
        f"skipped, {metrics.get('unseen_label_rows', 0)} rows with unseen labels.", "",
        "| metric | value |", "|---|---|",
    ]
    for key in ("accuracy", "macro_f1", "weighted_f1", "loss"):
        lines.append(f"| {key} | {_fmt(metrics.get(key))} |")
    lines += ["", "## Per class", "", "| class | precision | recall | f1 | support |", "|---|---|---|---|---|"]
    for name, pc in metrics["per_class"].items():
        lines.append(f"| {name} | {pc['precision']:.3f} | {pc['recall']:.3f} | {pc['f1']:.3f} | {pc['support']} |")
    pairs = worst_confusions(metrics["confusion_matrix"], metrics["labels"])
    if pairs:
        lines += ["", "## Most confused pairs", "", "| true | predicted | count |", "|---|---|---|"]
        lines += [f"| {t} | {p} | {c} |" for t, p, c in pairs]
    if examples:
        lines += ["", "## Misclassified examples", ""] + examples
    return "\n".join(lines) + "\n"


def _examples(cache, positions: np.ndarray, probs: np.ndarray, labels: np.ndarray, names: list[str],
              k: int = 10) -> list[str]:
    from mmcli.data.manifest import read_table

    wrong = np.nonzero(probs.argmax(1) != labels)[0][:k]
    if len(wrong) == 0:
        return []
    _, rows, _ = read_table(cache.meta["manifest"])
    out = []
    for w in wrong:
        row = rows[int(positions[w])]
        shown = ", ".join(f"{i['name']}=`{row.get(i['name'], '')}`" for i in cache.inputs)
        out.append(f"- row {int(cache.rows[positions[w]])}: {shown}: true **{names[labels[w]]}**, "
                   f"predicted **{names[int(probs[w].argmax())]}** ({probs[w].max():.2f})")
    return out


def write_eval_report(out_dir: Path, metrics: dict, cache, positions, probs, labels, names) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "metrics.json", metrics)
    atomic_write_text(out_dir / "report.md", eval_markdown(metrics, _examples(cache, positions, probs, labels, names)))


def metrics_table(metrics: dict, title: str = "metrics"):
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key in ("n", "accuracy", "macro_f1", "weighted_f1", "top3_accuracy", "loss"):
        if metrics.get(key) is not None:
            v = metrics[key]
            table.add_row(key, str(v) if isinstance(v, int) else f"{v:.4f}")
    return table


def per_class_table(metrics: dict):
    from rich.table import Table

    table = Table(title="per class")
    for col in ("class", "precision", "recall", "f1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, pc in metrics["per_class"].items():
        table.add_row(name, f"{pc['precision']:.3f}", f"{pc['recall']:.3f}", f"{pc['f1']:.3f}", str(pc["support"]))
    return table
