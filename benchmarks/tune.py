"""`mm tune` on the full Noto emoji set, over frozen pretrained encoders: the same search with and without pruning.

Builds the emoji set as benchmarks/emoji.py does (1,906 base emoji, 9 categories, text = the emoji name, 70/30
train/test; mmcli holds out 15 % of the training rows for validation), then runs one tune of N trials per pruner,
with the same space, sampler (TPE) and seed: without pruning, with the median pruner and with Hyperband. The base
config is configs/pretrained.yaml with the encoders fully frozen (`model.unfreeze_last=0`); it is trial 0 of each tune.

Before the timed tunes, one plain training run of the base config builds the cache and the frozen encoders' tables
(EfficientNet-Lite0 at 224 px and MiniLM-L6 over every row): every trial then reads them from the cache folder, so
no tune pays for them and the comparison is of the search alone.

Prints, per tune: wall time, trials complete / pruned / failed, epochs trained, the best trial's validation value
and its test accuracy (recorded by each trial, never used to choose), against the default config's (trial 0).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/tune.py --trials 30 --pruners none median hyperband
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emoji import COMMON, CONFIG, build_data

ROOT = Path(__file__).resolve().parents[1]
NAMES = {"none": "no pruning", "median": "median pruner", "hyperband": "hyperband pruner"}
SPACE = ROOT / "configs" / "spaces" / "pretrained_frozen.yaml"
# Frozen encoders: only the fusion and the head train, over tables computed once, so one thread is enough (and keeps
# the timings steady on a shared machine).
BASE = [*COMMON, "model.unfreeze_last=0", "train.threads=1"]


def run_tune(csv_path: Path, out: Path, trials: int, pruner: str, seed: int, extra: list[str]) -> dict:
    from mmcli.config import load_config
    from mmcli.tune.run import tune
    from mmcli.tune.space import load_space

    cfg = load_config(CONFIG, BASE + extra)
    start = time.perf_counter()
    tune(csv_path, load_space(SPACE), cfg, out, trials=trials, pruner=pruner, seed=seed)
    wall = time.perf_counter() - start
    with open(out / "trials.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return {"wall": wall, "rows": rows}


def _best(rows: list[dict]) -> dict:
    done = [r for r in rows if r["state"] == "complete"]
    return max(done, key=lambda r: (float(r["val_accuracy"]), -int(r["trial"])))


def summary(name: str, res: dict) -> str:
    rows = res["rows"]
    states = [r["state"] for r in rows]
    best, base = _best(rows), next(r for r in rows if r["base"] == "True")
    epochs = sum(int(r["epochs"]) for r in rows)
    return (f"| {name} | {res['wall']:.0f} | {states.count('complete')} / {states.count('pruned')} / "
            f"{states.count('failed')} | {epochs} | {float(base['val_accuracy']):.4f} | "
            f"{float(base['test_accuracy']):.4f} | {best['trial']} | {float(best['val_accuracy']):.4f} | "
            f"{float(best['test_accuracy']):.4f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="folder for the built set (reused when it holds all.csv)")
    ap.add_argument("--src", type=Path, default=Path("/tmp/emoji_src"), help="npm download / extract folder")
    ap.add_argument("--trials", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0, help="sampler seed of both tunes")
    ap.add_argument("--pruners", nargs="+", default=list(NAMES), choices=list(NAMES))
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra override of the base config")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    total = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mm-tune-bench-") as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("MM_CACHE_DIR", str(tmp / "cache"))
        csv_path = build_data(args.data or tmp / "emoji", args.src)
        from mmcli.config import load_config
        from mmcli.train import train

        os.environ["MM_QUIET"] = "1"
        start = time.perf_counter()
        train(csv_path, load_config(CONFIG, BASE + args.sets), output=tmp / "warm-up")
        warm = time.perf_counter() - start
        os.environ.pop("MM_QUIET")
        results = {NAMES[p]: run_tune(csv_path, tmp / p, args.trials, p, args.seed, args.sets) for p in args.pruners}
    space = yaml.safe_load(SPACE.read_text())
    print(f"\nFull Noto emoji set, {args.trials} trials per tune, sampler tpe (seed {args.seed}); "
          f"{os.cpu_count()} CPU cores; load average {load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"base config: {CONFIG.relative_to(ROOT)} + {BASE + args.sets}; space {SPACE.relative_to(ROOT)}: "
          f"{', '.join(space)}")
    print(f"warm-up run (cache + frozen tables, not in the tunes' times): {warm:.0f} s; whole benchmark "
          f"{(time.perf_counter() - total) / 60:.1f} min\n")
    print("| tune | wall s | complete / pruned / failed | epochs | default val acc | default test acc | best trial "
          "| best val acc | best test acc |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, res in results.items():
        print(summary(name, res))
    plain = results.get(NAMES["none"])
    for name, res in results.items():
        if plain is not None and res is not plain:
            best, plain_best = (float(_best(r["rows"])["val_accuracy"]) for r in (res, plain))
            print(f"\n{name}: {1 - res['wall'] / plain['wall']:.1%} less wall time than no pruning; best val acc "
                  f"{best:.4f} vs {plain_best:.4f}")


if __name__ == "__main__":
    main()
