"""Human-readable outputs: report.md (+ PNG plots beside it) for an evaluation, and rich tables for the terminal."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmcli.files import atomic_write_text

# The headline metrics in display order, with what each means (shown in report.md).
METRIC_HELP = {
    "accuracy": "share of rows whose most probable class is the true one",
    "top3_accuracy": "share of rows whose true class is among the 3 most probable",
    "macro_f1": "F1 averaged over classes, each class counting equally",
    "weighted_f1": "F1 averaged over classes, weighted by their number of rows",
    "loss": "log loss (mean cross-entropy of the true class); lower is better",
    "ece": "expected calibration error over 15 equal-width confidence bins; lower is better",
    "roc_auc": "ROC-AUC (one-vs-rest, macro over classes for more than 2 classes)",
    "pr_auc": "average precision, i.e. area under the precision-recall curve (one-vs-rest macro)",
}


def _fmt(x: float | None, digits: int = 4) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _cell(value: object, width: int = 60) -> str:
    """Text safe inside a markdown table cell: no pipes or newlines, long values shortened."""
    s = str(value).replace("|", "\\|").replace("\n", " ")
    return s if len(s) <= width else s[: width - 3] + "..."


def worst_confusions(cm: list[list[int]], names: list[str], k: int = 5) -> list[tuple[str, str, int]]:
    """The k largest off-diagonal cells of `cm` [C, C]: (true, predicted, count), largest first."""
    m = np.array(cm)
    np.fill_diagonal(m, 0)
    flat = [(int(m[i, j]), i, j) for i in range(len(names)) for j in range(len(names)) if m[i, j] > 0]
    return [(names[i], names[j], c) for c, i, j in sorted(flat, key=lambda t: (-t[0], t[1], t[2]))[:k]]


def _headline(metrics: dict) -> list[str]:
    """One paragraph that says how good the model is, where it is weakest and what it mixes up most."""
    if not metrics.get("n"):
        return ["No rows were scored."]
    text = (f"The model classifies **{metrics['accuracy']:.1%}** of {metrics['n']} rows correctly "
            f"(macro F1 {_fmt(metrics.get('macro_f1'))}).")
    scored = [(pc["f1"], name) for name, pc in metrics["per_class"].items() if pc["support"] and pc["f1"] is not None]
    if scored:
        f1, name = min(scored)
        text += f" Weakest class: **{name}** (F1 {f1:.3f})."
    pairs = worst_confusions(metrics["confusion_matrix"], metrics["labels"], k=1)
    if pairs:
        t, p, c = pairs[0]
        text += f" Most frequent confusion: {t} predicted as {p} ({c} rows)."
    return [text]


def _summary_section(metrics: dict) -> list[str]:
    lines = ["## Summary", ""] + _headline(metrics) + ["", "| metric | value | meaning |", "|---|---|---|"]
    lines += [f"| {key} | {_fmt(metrics.get(key))} | {help_} |" for key, help_ in METRIC_HELP.items()]
    gates = metrics.get("gates")
    if gates:
        lines += ["", "### Quality gates", "", "| metric | threshold | value | result |", "|---|---|---|---|"]
        lines += [f"| {g['metric']} | {g['threshold']} | {_fmt(g['value'])} | {'pass' if g['passed'] else '**FAIL**'} |"
                  for g in gates]
    return lines


def _class_section(metrics: dict, plots: dict) -> list[str]:
    lines = ["## Per class", "", "`-`: undefined (precision: never predicted; recall: no rows of the class).", "",
             "| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    for name, pc in metrics["per_class"].items():
        lines.append(f"| {_cell(name)} | {_fmt(pc['precision'], 3)} | {_fmt(pc['recall'], 3)} | {_fmt(pc['f1'], 3)} "
                     f"| {pc['support']} |")
    pairs = worst_confusions(metrics["confusion_matrix"], metrics["labels"])
    if pairs:
        support = {n: pc["support"] for n, pc in metrics["per_class"].items()}
        lines += ["", "## Most confused pairs", "", "| true | predicted | rows | share of the true class |",
                  "|---|---|---|---|"]
        lines += [f"| {_cell(t)} | {_cell(p)} | {c} | {c / max(support.get(t, 0), 1):.1%} |" for t, p, c in pairs]
    if "confusion" in plots:
        lines += ["", f"![confusion matrix]({plots['confusion']})"]
    return lines


def _training_section(history: list[dict], plots: dict) -> list[str]:
    if not history:
        return []
    lines = ["## Training", "", f"{len(history)} epochs."]
    val = [(h["val_accuracy"], int(h["epoch"])) for h in history if h.get("val_accuracy") is not None]
    if val:
        best, epoch = max(val, key=lambda t: (t[0], -t[1]))
        lines[-1] += f" Best validation accuracy {best:.4f} at epoch {epoch}; last {val[-1][0]:.4f}."
    if "curves" in plots:
        lines += ["", f"![training curves]({plots['curves']})"]
    return lines


def _examples_section(examples: list[dict]) -> list[str]:
    if not examples:
        return []
    inputs = list(examples[0]["inputs"])
    lines = ["## Misclassified examples", "", "The most confident mistakes first; paths are relative to the CSV's folder.", "",
             "| CSV row | " + " | ".join(inputs) + " | true | predicted | probability |",
             "|---|" + "---|" * len(inputs) + "---|---|---|"]
    for ex in examples:
        cells = " | ".join(f"`{_cell(ex['inputs'][n])}`" if ex["inputs"][n] else "(missing)" for n in inputs)
        lines.append(f"| {ex['row']} | {cells} | {_cell(ex['true'])} | {_cell(ex['predicted'])} | "
                     f"{ex['probability']:.2f} |")
    return lines


def eval_markdown(metrics: dict, examples: list[dict], plots: dict | None = None,
                  history: list[dict] | None = None) -> str:
    """report.md text. `plots`: {kind: file name} from `plots.write_plots`; `history`: history.csv rows."""
    from mmcli.ablation import ablation_markdown

    plots = plots or {}
    where = f"`{metrics['csv']}`" + (f" (split {metrics['split']})" if metrics.get("split") else "")
    lines = ["# Evaluation report", "",
             (f"Data: {where}: {metrics['n']} rows scored, {metrics.get('bad_rows', 0)} bad rows skipped, "
              f"{metrics.get('unseen_label_rows', 0)} rows with labels the model never saw.")]
    if metrics.get("run"):
        lines += ["", f"Run: `{metrics['run']}`"]
    sections = [_summary_section(metrics)]
    if metrics.get("n"):
        sections.append(_class_section(metrics, plots))
    if "reliability" in plots:
        sections.append(["## Calibration", "", ("Accuracy against confidence in 15 equal-width bins; bars on the "
                                                "diagonal mean the probabilities can be taken at face value."), "",
                         f"![reliability diagram]({plots['reliability']})"])
    sections += [_training_section(history or [], plots),
                 ablation_markdown(metrics["ablation"]) if metrics.get("ablation") else [],
                 _examples_section(examples)]
    for section in sections:
        if section:
            lines += [""] + section
    return "\n".join(lines) + "\n"


def misclassified_examples(cache, positions: np.ndarray, probs: np.ndarray, labels: np.ndarray,
                           names: list[str], k: int = 10) -> list[dict]:
    """The `k` most confident wrong predictions with their raw CSV cells.

    `positions` int [N] cache positions, `probs` float [N, C], `labels` int [N]. -> [{row, inputs {column: cell},
    true, predicted, probability}].
    """
    from mmcli.data.manifest import read_table

    wrong = np.nonzero(probs.argmax(1) != labels)[0]
    if len(wrong) == 0:
        return []
    wrong = wrong[np.argsort(-probs[wrong].max(1), kind="stable")][:k]
    _, rows, _ = read_table(cache.meta["manifest"], cache.meta.get("format"))
    out = []
    for w in wrong:
        row = rows[int(positions[w])]
        out.append({"row": int(cache.rows[positions[w]]), "inputs": {c: row.get(c, "") for i in cache.inputs
                                                                     for c in i.get("columns") or [i["name"]]},
                    "true": names[labels[w]], "predicted": names[int(probs[w].argmax())],
                    "probability": float(probs[w].max())})
    return out


def write_report(out_dir: Path, metrics: dict, examples: list[dict] | None = None,
                 history_csv: Path | None = None) -> dict[str, str]:
    """Write report.md and its PNG plots into `out_dir`. -> {kind: plot file name}."""
    from mmcli.plots import read_history, write_plots

    out_dir.mkdir(parents=True, exist_ok=True)
    history = read_history(history_csv) if history_csv else []
    plots = write_plots(out_dir, metrics, history)
    atomic_write_text(out_dir / "report.md", eval_markdown(metrics, examples or [], plots, history))
    return plots


def metrics_table(metrics: dict, title: str = "metrics"):
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_row("n", str(metrics.get("n", 0)))
    for key in METRIC_HELP:
        table.add_row(key, _fmt(metrics.get(key)))
    return table


def per_class_table(metrics: dict):
    from rich.table import Table

    table = Table(title="per class")
    for col in ("class", "precision", "recall", "f1", "support"):
        table.add_column(col, justify="left" if col == "class" else "right")
    for name, pc in metrics["per_class"].items():
        table.add_row(name, _fmt(pc["precision"], 3), _fmt(pc["recall"], 3), _fmt(pc["f1"], 3), str(pc["support"]))
    return table


def print_eval(metrics: dict, title: str) -> None:
    """The terminal view of `mm eval`: metrics, per-class, ablation and gates (stderr, like all progress)."""
    from mmcli.progress import console

    console.print(metrics_table(metrics, title=title))
    console.print(per_class_table(metrics))
    if metrics.get("ablation"):
        from mmcli.ablation import ablation_table

        console.print(ablation_table(metrics["ablation"]))
    for g in metrics.get("gates", []):
        mark = "[green]pass[/green]" if g["passed"] else "[red]FAIL[/red]"
        console.print(f"gate {g['metric']} >= {g['threshold']}: {_fmt(g['value'])} {mark}")
