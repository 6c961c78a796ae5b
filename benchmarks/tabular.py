"""Accuracy on scikit-learn's bundled tables (no download), beside two baselines computed on the same splits.

Sets (written as CSVs under --data, with a fixed seeded stratified 55 / 15 / 30 train / val / test `split` column):
wine, breast_cancer, iris, digits, all numeric; and breast_cancer_binned, whose categorical columns are made from the
real data: its ten "mean ..." features binned into tertiles ("low" / "mid" / "high", edges from the training rows),
the other twenty kept numeric. The CSVs hold nothing else, so mmcli infers every input column itself.

mmcli: `python -m mmcli train CSV --output RUN --set train.seed=S <recipe>` for each seed (epochs chosen on val,
then by default refitted on train + val), then `python -m mmcli eval RUN CSV --split test`; test accuracy as
mean ± std over the seeds, the mean wall time of a `train` call (a subprocess, so it includes start-up) and the input
kinds mmcli inferred. A failing run is reported (in the table, its output tail on stderr) and the script goes on.
Baselines, on the same rows (deterministic, so one run each), scored on test:
- StandardScaler + LogisticRegression (categorical columns one-hot), C from C_GRID chosen on val by a fit on
  train, then refitted on train + val as mmcli refits;
- HistGradientBoostingClassifier with its defaults (categorical columns as categorical features), on train + val.

    .venv/bin/python benchmarks/tabular.py | tee benchmarks/results/tabular.log
    .venv/bin/python benchmarks/tabular.py --sets wine iris --recipes fast --seeds 0
    .venv/bin/python benchmarks/tabular.py --sets iris --recipes fast --set train.batch_size=16   # try a change
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SPLIT_SEED = 0
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
LOADERS = {"wine": "load_wine", "breast_cancer": "load_breast_cancer", "iris": "load_iris", "digits": "load_digits",
           "breast_cancer_binned": "load_breast_cancer"}
RECIPES = {  # name -> extra `mm train` arguments
    "fast": ["--preset", "fast"],
    "fast-tokens": ["--preset", "fast", "--set", "model.numeric_encoder=numeric_tokens", "--set", "model.fusion=concat"],
}
BINS = ("low", "mid", "high")


def split_column(y: np.ndarray, seed: int = SPLIT_SEED) -> np.ndarray:
    """Labels `[N]` -> "train" / "val" / "test" `[N]`: stratified 55 / 15 / 30, fixed by `seed`."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    rest, test = train_test_split(idx, test_size=0.30, stratify=y, random_state=seed)
    train, val = train_test_split(rest, test_size=0.15 / 0.70, stratify=y[rest], random_state=seed)
    out = np.empty(len(y), dtype=object)
    out[train], out[val], out[test] = "train", "val", "test"
    return out


def column_name(name: str) -> str:
    """"mean radius" -> "mean_radius", "sepal length (cm)" -> "sepal_length_cm"."""
    return re.sub(r"[^0-9a-zA-Z]+", "_", str(name)).strip("_").lower()


def binned(x: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Values `[N]` -> "low" / "mid" / "high" `[N]` by the tertiles of the training rows (no test leakage)."""
    edges = np.quantile(x[train], [1 / 3, 2 / 3])
    return np.array(BINS, dtype=object)[np.digitize(x, edges)]


def build_set(name: str, folder: Path) -> Path:
    """Write `folder/<name>.csv` (features, label, split) from scikit-learn's bundled copy; returns its path."""
    import sklearn.datasets

    data = getattr(sklearn.datasets, LOADERS[name])()
    x, y = np.asarray(data.data, dtype=np.float64), np.asarray(data.target)
    names = [column_name(n) for n in list(data.feature_names)]
    split = split_column(y)
    cols = [[format(v, ".10g") for v in x[:, j]] for j in range(x.shape[1])]
    if name == "breast_cancer_binned":  # the ten "mean ..." features become categories
        for j, n in enumerate(names):
            if n.startswith("mean_"):
                cols[j] = list(binned(x[:, j], split == "train"))
    labels = [str(data.target_names[t]) for t in y]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow([*names, "label", "split"])
        w.writerows(zip(*cols, labels, split))
    return path


def read_set(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The CSV as mmcli sees it -> (numeric `[N, Fn]` float, categorical `[N, Fc]` str, labels `[N]`, split `[N]`).
    A column is numeric when every value parses as a number (mmcli's rule)."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    features = [c for c in rows[0] if c not in ("label", "split")]

    def is_number(c: str) -> bool:
        try:
            [float(r[c]) for r in rows]
        except ValueError:
            return False
        return True

    num = [c for c in features if is_number(c)]
    cat = [c for c in features if c not in num]
    x_num = np.array([[float(r[c]) for c in num] for r in rows]).reshape(len(rows), len(num))
    x_cat = np.array([[r[c] for c in cat] for r in rows], dtype=object).reshape(len(rows), len(cat))
    return x_num, x_cat, np.array([r["label"] for r in rows]), np.array([r["split"] for r in rows])


def logreg(x_num, x_cat, y, split) -> dict:
    """StandardScaler (numeric) + one-hot (categorical) + LogisticRegression, C chosen on val -> test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    start = time.perf_counter()
    tr, va, te = split == "train", split == "val", split == "test"
    parts = [StandardScaler().fit(x_num[tr]).transform(x_num)]
    if x_cat.shape[1]:
        parts.append(OneHotEncoder(handle_unknown="ignore", sparse_output=False).fit(x_cat[tr]).transform(x_cat))
    z = np.hstack(parts)

    def fitted(c: float, rows: np.ndarray):
        return LogisticRegression(C=c, max_iter=5000).fit(z[rows], y[rows])

    best = max(C_GRID, key=lambda c: (fitted(c, tr).score(z[va], y[va]), -c))  # ties: the stronger regularisation
    acc = fitted(best, tr | va).score(z[te], y[te])
    return {"accuracy": [float(acc)], "wall": time.perf_counter() - start, "note": f"C={best}"}


def hgb(x_num, x_cat, y, split) -> dict:
    """HistGradientBoostingClassifier (defaults; categorical columns as categorical features), fitted on train + val
    -> test accuracy."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.preprocessing import OrdinalEncoder

    start = time.perf_counter()
    tr, te = split != "test", split == "test"
    x, mask = x_num, [False] * x_num.shape[1]
    if x_cat.shape[1]:
        enc = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan).fit(x_cat[tr])
        x, mask = np.hstack([x_num, enc.transform(x_cat)]), mask + [True] * x_cat.shape[1]
    model = HistGradientBoostingClassifier(categorical_features=np.array(mask), random_state=0).fit(x[tr], y[tr])
    return {"accuracy": [float(model.score(x[te], y[te]))], "wall": time.perf_counter() - start, "note": "defaults"}


def mm(args: list[str], env: dict, cwd: Path) -> subprocess.CompletedProcess:
    """`python -m mmcli ARGS` in `cwd`; a non-zero exit is the caller's to report."""
    return subprocess.run([sys.executable, "-m", "mmcli", *args], env=env, cwd=cwd, capture_output=True, text=True,
                          check=False)


def failure(step: str, proc: subprocess.CompletedProcess) -> str:
    """Print a failed command's output tail to stderr; -> a one-line note for the table."""
    tail = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
    print(f"    {step} failed (exit {proc.returncode}):\n      " + "\n      ".join(tail[-8:]), file=sys.stderr)
    return f"{step} failed (exit {proc.returncode}): {tail[-1][:100]}"


def run_mm(path: Path, recipe: list[str], seed: int, out: Path, env: dict) -> dict | str:
    """One `mm train` + `mm eval --split test` -> {accuracy, wall, epochs}, or the error note."""
    # not quiet, so that train's "inputs: name (kind), ..." line says which columns the model read
    loud = {k: v for k, v in env.items() if k != "MM_QUIET"} | {"COLUMNS": "100000"}  # COLUMNS: rich never wraps
    start = time.perf_counter()
    proc = mm(["train", str(path), "--output", str(out), "--set", f"train.seed={seed}", *recipe], loud, out.parent)
    wall = time.perf_counter() - start
    if proc.returncode:
        return failure("train", proc)
    inputs = input_kinds(proc.stderr)
    proc = mm(["eval", str(out), str(path), "--split", "test", "--output", str(out / "eval-test")], env, out.parent)
    if proc.returncode:
        return failure("eval", proc)
    try:
        metrics = json.loads((out / "eval-test" / "metrics.json").read_text(encoding="utf-8"))
        trained = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # a run that exits 0 without its outputs is a result to report too
        print(f"    reading metrics failed: {exc}", file=sys.stderr)
        return f"metrics unreadable: {exc}"
    return {"accuracy": metrics["accuracy"], "n": metrics["n"], "wall": wall, "inputs": inputs,
            "epochs": f"{trained.get('best_epoch')}/{trained.get('epochs_run')}"}


def input_kinds(log: str) -> str:
    """train's log -> "20 numeric, 10 categorical": the input columns by kind, as mmcli inferred them."""
    line = next((ln for ln in log.splitlines() if ln.startswith("data:") and "inputs:" in ln), "")
    kinds = Counter(re.findall(r"\((\w+)\)", line.split("inputs:", 1)[-1].split(";", 1)[0]))
    return ", ".join(f"{n} {k}" for k, n in kinds.items()) or "not logged"


def bench_mm(name: str, path: Path, recipe: str, seeds: list[int], tmp: Path, env: dict,
             extra: list[str]) -> dict:
    """All seeds of one recipe on one set -> a table row's {accuracy: [...], wall, note}."""
    accs, walls, epochs, notes = [], [], [], {}
    for seed in seeds:
        out = tmp / "runs" / f"{name}-{recipe}-{seed}"
        out.parent.mkdir(parents=True, exist_ok=True)
        res = run_mm(path, RECIPES[recipe] + extra, seed, out, env)
        if isinstance(res, str):
            notes.setdefault(res, []).append(seed)
            continue
        print(f"  {name} {recipe} seed {seed}: test acc {res['accuracy']:.4f} (n={res['n']}) {res['wall']:.1f} s "
              f"epochs {res['epochs']}; inputs {res['inputs']}", file=sys.stderr, flush=True)
        accs.append(res["accuracy"])
        walls.append(res["wall"])
        epochs.append(res["epochs"])
        notes.setdefault(f"inputs {res['inputs']}", [])
    # one note per distinct message (the same failure for every seed is said once)
    note = "; ".join(f"seed{'s' * (len(s) > 1)} {' '.join(map(str, s))}: {m}" if s else m for m, s in notes.items())
    if epochs:
        note = f"best/run epochs {' '.join(epochs)}; {note}"
    return {"accuracy": accs, "wall": statistics.mean(walls) if walls else None, "note": note}


def mean_std(values: list[float]) -> str:
    if not values:
        return "—"
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.pstdev(values):.4f}"


def bench_set(name: str, args: argparse.Namespace, tmp: Path, env: dict) -> list[tuple]:
    """Baselines and mmcli recipes on one set -> table rows (set, model, result dict)."""
    path = build_set(name, args.data)
    x_num, x_cat, y, split = read_set(path)
    counts = "/".join(str(int((split == s).sum())) for s in ("train", "val", "test"))
    print(f"{name}: {path}, {counts} train/val/test rows, {x_num.shape[1]} numeric + {x_cat.shape[1]} categorical "
          f"columns, {len(set(y))} labels", file=sys.stderr, flush=True)
    rows = [(name, counts, "LogReg (StandardScaler, C on val)", logreg(x_num, x_cat, y, split)),
            (name, counts, "HistGradientBoosting (defaults)", hgb(x_num, x_cat, y, split))]
    extra = [a for kv in args.overrides for a in ("--set", kv)]
    rows += [(name, counts, f"mmcli {r}", bench_mm(name, path, r, args.seeds, tmp, env, extra))
             for r in args.recipes]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=list(LOADERS), choices=list(LOADERS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--data", type=Path, default=Path("/tmp/mm-sets/tabular"), help="folder for the built CSVs")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="a config override added to every mmcli recipe (repeatable), to try a change")
    args = ap.parse_args()
    # the mm subprocesses run the mmcli next to this script, with a scratch cache and no network
    env = {**os.environ, "MM_QUIET": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)}
    start, load = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mm-tabular-") as tmp:
        env["MM_CACHE_DIR"] = str(Path(tmp) / "cache")
        rows = [r for name in args.sets for r in bench_set(name, args, Path(tmp), env)]
    print(f"# tabular benchmark: test split, mmcli seeds {args.seeds}, split seed {SPLIT_SEED}, {os.cpu_count()} CPU "
          f"cores, load average {load:.1f} before / {os.getloadavg()[0]:.1f} after, "
          f"{(time.perf_counter() - start) / 60:.1f} min\n")
    print("| set | train/val/test | model | test accuracy | wall s | note |")
    print("|---|---|---|---|---|---|")
    for name, counts, model, res in rows:
        wall = "—" if res["wall"] is None else f"{res['wall']:.1f}"
        print(f"| {name} | {counts} | {model} | {mean_std(res['accuracy'])} | {wall} | {res['note']} |")


if __name__ == "__main__":
    main()
