"""`mm compare`: key metrics and differing config keys of several run folders, side by side."""

from __future__ import annotations

import json
from pathlib import Path

# Compared metrics and which direction is better (for highlighting the best run of each row).
KEY_METRICS = {"n": None, "accuracy": "max", "top3_accuracy": "max", "macro_f1": "max", "weighted_f1": "max",
               "loss": "min", "ece": "min", "roc_auc": "max", "pr_auc": "max"}


def flatten(tree: object, prefix: str = "") -> dict[str, object]:
    """Nested dicts -> {"a.b.c": leaf}; lists and empty dicts are leaves."""
    if isinstance(tree, dict) and tree:
        out: dict[str, object] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: tree}


def _read(path: Path) -> dict:
    """A JSON (.json) or YAML file as a dict; {} when it does not exist (e.g. a run stopped before its end)."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, yaml.YAMLError) as exc:
        from mmcli.errors import DataError

        raise DataError(f"cannot read {path}: {exc}") from None
    return data if isinstance(data, dict) else {}


def run_summary(run: Path) -> dict:
    """One run's comparable numbers: {run, name, split, best_epoch, epochs_run, metrics {key: value},
    eval {csv, key: value} or None}. The training metrics are the test split's when there is one, else val's."""
    saved = _read(run / "metrics.json")
    evaluation = saved.get("eval")
    if evaluation is None and "accuracy" in saved:  # a metrics.json written by `mm eval` alone
        evaluation, saved = saved, {}
    split = "test" if "test" in saved else "val" if "val" in saved else None
    chosen = saved.get(split, {}) if split else {}
    return {
        "run": str(run), "name": run.name, "split": split,
        "best_epoch": saved.get("best_epoch"), "epochs_run": saved.get("epochs_run"),
        "metrics": {k: chosen.get(k) for k in KEY_METRICS} if chosen else None,
        "eval": {"csv": evaluation.get("csv"), **{k: evaluation.get(k) for k in KEY_METRICS}} if evaluation else None,
    }


def config_diff(runs: list[Path]) -> dict[str, list]:
    """Dotted config keys whose values differ between runs -> the value in each run (None where absent)."""
    flat = [flatten(_read(r / "config.yaml")) for r in runs]
    keys = sorted({k for f in flat for k in f})
    return {k: [f.get(k) for f in flat] for k in keys if len({json.dumps(f.get(k), sort_keys=True) for f in flat}) > 1}


def compare_runs(runs: list[Path]) -> dict:
    """-> {"runs": [run_summary ...], "config_diff": {key: [value per run]}}; UsageError for a non-run folder."""
    from mmcli.errors import UsageError

    if not runs:
        raise UsageError("mm compare needs at least one run folder")
    for run in runs:
        if not (run / "config.yaml").is_file():
            raise UsageError(f"{run} is not a run folder (no config.yaml)")
    return {"runs": [run_summary(r) for r in runs], "config_diff": config_diff(runs)}


def _best(values: list, mode: str | None) -> set[int]:
    """Indices holding the best value of a row; none when there is no direction or nothing to choose between."""
    known = [v for v in values if isinstance(v, (int, float))]
    if mode is None or len(set(known)) < 2:
        return set()
    top = max(known) if mode == "max" else min(known)
    return {i for i, v in enumerate(values) if v == top}


def _cells(values: list, mode: str | None) -> list[str]:
    best = _best(values, mode)
    out = []
    for i, v in enumerate(values):
        text = "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)
        out.append(f"[bold green]{text}[/bold green]" if i in best else text)
    return out


def _columns(result: dict) -> list[str]:
    """Run names as column headers; full paths when two runs share a folder name."""
    names = [r["name"] for r in result["runs"]]
    return names if len(set(names)) == len(names) else [r["run"] for r in result["runs"]]


def metrics_table(result: dict):
    """Rows = metrics (training split, then `mm eval` results), columns = runs; the best value per row in bold."""
    from rich.table import Table

    runs = result["runs"]
    table = Table(title="runs: key metrics", caption="training metrics: test split if present, else val")
    table.add_column("metric")
    for name in _columns(result):
        table.add_column(name, justify="right")
    table.add_row("split", *[r["split"] or "-" for r in runs])
    table.add_row("best epoch", *_cells([r["best_epoch"] for r in runs], None))
    for key, mode in KEY_METRICS.items():
        table.add_row(key, *_cells([(r["metrics"] or {}).get(key) for r in runs], mode))
    if any(r["eval"] for r in runs):
        table.add_section()
        table.add_row("eval csv", *[(r["eval"] or {}).get("csv") or "-" for r in runs])
        for key, mode in KEY_METRICS.items():
            table.add_row(f"eval {key}", *_cells([(r["eval"] or {}).get(key) for r in runs], mode))
    return table


def config_table(result: dict):
    from rich.table import Table

    table = Table(title="config keys that differ")
    table.add_column("key")
    for name in _columns(result):
        table.add_column(name, justify="right")
    for key, values in result["config_diff"].items():
        table.add_row(key, *["-" if v is None else str(v) for v in values])
    return table


def print_compare(result: dict) -> None:
    """Both tables on stdout (the comparison is the command's output, not progress)."""
    from rich.console import Console

    console = Console(highlight=False)
    console.print(metrics_table(result))
    if result["config_diff"]:
        console.print(config_table(result))
    else:
        console.print("configs: identical")
