"""Accuracy on several public image + text sets, beside a linear-probe baseline computed in the same run.

For each set (benchmarks/datasets.py builds them offline: Noto emoji, OpenMoji, Material Design Icons, and a
cross-style split trained on Noto and tested on OpenMoji's artwork), on the set's fixed train / val / test split:
- the baseline: frozen EfficientNet-Lite0 + MiniLM features (the very tables mmcli caches), StandardScaler and a
  scikit-learn LogisticRegression whose C is chosen on the val split, trained on the train split;
- mmcli's recipes (RECIPES: the zero-config default, `--preset best`), each for image only, text only and both,
  over several seeds; test accuracy and macro-F1 as mean ± standard deviation, and the median wall time of a
  `train` call.
The source images are 64 px, so every run caches them at 64 px (`data.image_size=64`); EfficientNet still sees 224 px
(resized per batch), and the probe reads the same tables.

`cross` trains on exactly Noto's train and val rows (the same texts, labels and image bytes: checked, row by row):
when both sets are in one invocation, its rows reuse the Noto runs (same recipe, input and seed) and only score them
on `cross`'s test split (OpenMoji's artwork), instead of training the same models twice. Its wall time column is
then the Noto run's.

A late-fusion recipe (`best`) trains one head per input, each on its own loss, so its fused runs are also scored
with each input hidden (`mm eval --ablate`): a single-input model of the same recipe, printed as "<input> (fused
run's <input> head)" rows. `--single heads` takes the recipe's image-only and text-only rows from those instead
of training them apart, which halves the recipe's time; it is the default (`--single runs` trains them apart).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/accuracy.py > benchmarks/results/accuracy_full.log 2>&1
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/accuracy.py --sets noto --recipes best --split val --seeds 0 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import BUILDERS, DEFAULT_SETS, build

COMMON = ["data.image_size=64"]
RECIPES = {  # name -> (preset, overrides)
    "zero-config": ("pretrained", []),
    "best": ("best", []),
}
MODALITIES = {"image": ["data.text_columns=[]"], "text": ["data.image_columns=[]"], "fused": []}
C_GRID = (0.01, 0.03, 0.1, 0.3, 1.0)


def features(csv_path: Path, overrides: tuple[str, ...] = (), cache_dir: Path | None = None,
             ) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """-> ({"image": [N, 1280], "text": [N, 384]}, labels [N], split codes [N]) over the valid rows, from the
    `pretrained` preset's frozen encoders (with `overrides`, e.g. another image encoder)."""
    from mmcli.config import load_config
    from mmcli.fit import _states
    from mmcli.frozen import frozen_embeddings
    from mmcli.models.classifier import build_model, frozen_inputs
    from mmcli.train import _prepare

    cfg = load_config(None, COMMON + list(overrides), preset="pretrained")
    _, cache, _ = _prepare(csv_path, cfg, cache_dir)
    model = build_model(cfg, cache.inputs, len(cache.meta["label_names"]), states=_states(cache))
    tables = frozen_embeddings(model, cache, frozen_inputs(model), 128, "cpu")
    keep = cache.valid
    return {k: v.numpy()[keep] for k, v in tables.items()}, cache.labels[keep], cache.split[keep]


def probe(x: np.ndarray, y: np.ndarray, split: np.ndarray, report: str) -> dict:
    """StandardScaler + LogisticRegression, C chosen on val, fitted on train -> {accuracy, macro_f1, C}."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import StandardScaler

    tr, va, te = split == 0, split == 1, split == (2 if report == "test" else 1)
    z = StandardScaler().fit(x[tr]).transform(x)

    fits = {c: LogisticRegression(C=c, max_iter=3000).fit(z[tr], y[tr]) for c in C_GRID}
    best = max(C_GRID, key=lambda c: (fits[c].score(z[va], y[va]), -c))
    pred = fits[best].predict(z[te])
    return {"accuracy": float((pred == y[te]).mean()), "macro_f1": float(f1_score(y[te], pred, average="macro")),
            "C": best}


def fit_rows(csv_path: Path) -> list[tuple]:
    """The train and val rows of a set as (split, text, label, sha256 of the image bytes), in file order."""
    import csv
    import hashlib

    with open(csv_path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] in ("train", "val")]
    return [(r["split"], r["text"], r["label"],
             hashlib.sha256((csv_path.parent / r["image"]).read_bytes()).hexdigest()) for r in rows]


def score_run(run: Path, csv_path: Path, report: str, wall: float, heads: bool = False) -> dict:
    """A trained run scored on a CSV's `report` split -> run_mm's result dict. `heads`: also score it with each
    input hidden (`mm eval --ablate`), under "heads": {input: (accuracy, macro-F1)}."""
    from mmcli.evaluate import evaluate_run

    m = evaluate_run(run, csv_path, split=report, out_dir=run.parent / f"{run.name}-on-{csv_path.parent.name}",
                     ablate=heads)
    t = json.loads((run / "metrics.json").read_text())
    out = {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "wall": wall, "run": run,
           "epochs": f"{t['best_epoch']}/{t['epochs_run']}"}
    if heads:
        out["heads"] = {n: (r["accuracy"], r["macro_f1"]) for n, r in m["ablation"]["single"].items()}
    return out


def run_mm(csv_path: Path, preset: str, overrides: list[str], seed: int, out: Path, report: str) -> dict:
    from mmcli.config import load_config
    from mmcli.train import train

    cfg = load_config(None, COMMON + overrides + [f"train.seed={seed}"], preset=preset)
    start = time.perf_counter()
    run = train(csv_path, cfg, output=out)
    wall = time.perf_counter() - start
    m = json.loads((run / "metrics.json").read_text())
    return {"accuracy": m[report]["accuracy"], "macro_f1": m[report]["macro_f1"], "wall": wall,
            "epochs": f"{m['best_epoch']}/{m['epochs_run']}", "run": run}


def _ms(values: list[float]) -> str:
    return f"{statistics.mean(values):.3f} ± {statistics.pstdev(values):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def bench_set(name: str, args, tmp: Path, trained: dict) -> list[tuple]:
    """Probe and recipes on one set -> table rows. `trained`: {(set, recipe, input, seed): (run, wall)} of the runs
    so far, which a set with the very same train / val rows (cross after noto) scores instead of retraining.

    Order: `best` first, whose prefix pass also keeps the frozen encoders' embeddings (mmcli/frozen.py), then the
    probe and the other recipes, which read them; the table keeps the order probe, recipes as listed."""
    csv_path = build(name, args.data, args.src)
    twin = next((other for other in ("noto",) if name == "cross" and any(k[0] == other for k in trained)
                 and fit_rows(csv_path) == fit_rows(build(other, args.data, args.src))), None)
    if twin:
        print(f"{name}: train / val rows identical to {twin}'s: scoring {twin}'s runs", file=sys.stderr, flush=True)
    results = {}
    for recipe in [r for r in args.recipes if r == "best"]:
        results[recipe] = recipe_rows(name, recipe, csv_path, args, tmp, trained, twin)
    t = time.perf_counter()
    feats, y, split = features(csv_path, tuple(s for s in args.sets if s.startswith("data.")))  # e.g. data.resize
    feat_s = time.perf_counter() - t
    x = {"image": feats["image"], "text": feats["text"], "fused": np.hstack([feats["image"], feats["text"]])}
    rows = []
    for mod in args.modalities:
        p = probe(x[mod], y, split, args.split)
        rows.append((name, "probe (LogReg, C on val)", mod, [p["accuracy"]], [p["macro_f1"]], 0.0, f"C={p['C']}"))
    counts = [int((split == s).sum()) for s in (0, 1, 2)]
    print(f"{name}: {counts[0]} train / {counts[1]} val / {counts[2]} test rows, {len(set(y))} labels; frozen "
          f"features {feat_s:.0f} s (kept by the first run that computed them)", file=sys.stderr, flush=True)
    for recipe in [r for r in args.recipes if r not in results]:
        results[recipe] = recipe_rows(name, recipe, csv_path, args, tmp, trained, twin)
    return rows + [r for recipe in args.recipes for r in results[recipe]]


def recipe_rows(name: str, recipe: str, csv_path: Path, args, tmp: Path, trained: dict, twin: str | None,
                ) -> list[tuple]:
    """One recipe's runs on one set, every input of `args.modalities` over every seed -> table rows."""
    preset, extra = RECIPES[recipe]
    late = _late(preset, extra + args.sets)
    rows = []
    for mod in args.modalities:
        if mod != "fused" and late and args.single == "heads":
            continue  # the fused runs' own per-input heads give these rows (below)
        res = []
        for seed in args.seeds:
            out = (args.keep_runs or tmp / "runs") / f"{name}-{recipe}-{mod}-{seed}"
            heads = late and mod == "fused"
            if twin and (twin, recipe, mod, seed) in trained:
                run, wall = trained[twin, recipe, mod, seed]
                r = score_run(run, csv_path, args.split, wall, heads)
            else:
                r = run_mm(csv_path, preset, extra + MODALITIES[mod] + args.sets, seed, out, args.split)
                trained[name, recipe, mod, seed] = (r["run"], r["wall"])
                if heads:
                    r = score_run(r["run"], csv_path, args.split, r["wall"], heads)
            res.append(r)
            print(f"  {recipe} {mod} seed {seed}: acc {res[-1]['accuracy']:.4f} f1 {res[-1]['macro_f1']:.4f} "
                  f"{res[-1]['wall']:.1f} s epochs {res[-1]['epochs']}"
                  + "".join(f"; {n} head {a:.4f}" for n, (a, _) in res[-1].get("heads", {}).items()),
                  file=sys.stderr, flush=True)
        rows.append((name, recipe, mod, [r["accuracy"] for r in res], [r["macro_f1"] for r in res],
                     statistics.median(r["wall"] for r in res), " ".join(r["epochs"] for r in res)))
        for n in res[0].get("heads", {}) if len(res[0].get("heads", {})) > 1 else ():
            rows.append((name, recipe, f"{n} (fused run's {n} head)", [r["heads"][n][0] for r in res],
                         [r["heads"][n][1] for r in res], rows[-1][5], rows[-1][6]))
    return rows


def _cpu() -> str:
    """The CPU's model name (Linux), since run times differ several-fold between machines of the same core count."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    name = next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name")), "?")
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return f"{name}, {'with' if 'avx512_bf16' in flags or 'amx_bf16' in flags else 'without'} native bf16"


def _late(preset: str, overrides: list[str]) -> bool:
    """Does the recipe fuse late? Its per-input heads then train apart, each on its own loss, so hiding the other
    inputs of a fused run scores a single-input model of the same recipe."""
    from mmcli.config import load_config

    return load_config(None, COMMON + overrides, preset=preset).model.fusion == "late"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", dest="names", nargs="+", default=DEFAULT_SETS, choices=list(BUILDERS))
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--modalities", nargs="+", default=list(MODALITIES), choices=list(MODALITIES))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--single", choices=("runs", "heads"), default="heads",
                    help="single-input rows of a late-fusion recipe: runs trained on that input alone, or the fused "
                         "runs' own per-input heads (no extra training; the fused runs' hidden-input scores are "
                         "printed either way)")
    ap.add_argument("--split", choices=("test", "val"), default="test", help="split to report (val: choose recipes)")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra override for every mm run")
    ap.add_argument("--data", type=Path, default=Path("/tmp/mm-sets"), help="built sets (reused)")
    ap.add_argument("--src", type=Path, default=Path("/tmp/mm-src"), help="npm download / extract folder")
    ap.add_argument("--keep-runs", type=Path, help="folder to train the runs into and keep (default: a scratch one)")
    ap.add_argument("--keep-cache", type=Path, help="cache folder to keep between runs (default: a scratch one)")
    args = ap.parse_args()
    os.environ.setdefault("MM_QUIET", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import tempfile

    from mmcli.allocator import keep_freed_memory

    keep_freed_memory()  # as the `mm` command does (mmcli/allocator.py), so the run times are what it takes
    start, load = time.perf_counter(), os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="mm-accuracy-") as tmp:
        os.environ["MM_CACHE_DIR"] = str(args.keep_cache or Path(tmp) / "cache")
        trained: dict = {}
        rows = [r for name in args.names for r in bench_set(name, args, Path(tmp), trained)]
    print(f"# accuracy benchmark: {args.split} split, seeds {args.seeds}, {os.cpu_count()} CPU cores ({_cpu()}), load average "
          f"{load:.1f} before / {os.getloadavg()[0]:.1f} after, {(time.perf_counter() - start) / 60:.1f} min\n")
    print(f"| set | model | input | {args.split} accuracy | macro-F1 | train wall s | best/run epochs |")
    print("|---|---|---|---|---|---|---|")
    for name, model, mod, acc, f1, wall, note in rows:
        print(f"| {name} | {model} | {mod} | {_ms(acc)} | {_ms(f1)} | {wall:.1f} | {note} |")


if __name__ == "__main__":
    main()
