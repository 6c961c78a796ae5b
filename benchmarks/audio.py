"""Spoken digits on unseen voices in noise: mmcli's audio input (log-mel + audio_cnn, from scratch) beside baselines.

The set is benchmarks/audio_data.py (espeak-ng, 10 digit words, 8 accents x 12 voice variants x 2 takes, 1,920 clips):
train / val / test hold disjoint voice variants (6 / 2 / 4 of 12), and the test clips carry white noise at
`--noise` dB SNR (default 20), so the test score is on voices never heard in training, with noise samples never seen
in training. Two data variants (`--train-noise`): train / val clips clean (audio_data.py's default), and train / val
clips each with white noise at a seeded SNR uniform in 5..40 dB (`audio_data.py --train-noise 5:40`, multi-condition
training; the test clips are the same files in both).

For each variant and recipe, `python -m mmcli preprocess CSV -o CACHE` is timed once (clips/s including start-up,
cache size on disk), then for each seed `python -m mmcli train CSV -o RUN --cache-dir CACHE --preset fast
--set train.seed=S --set data.audio_seconds=1.25 --set train.epochs=12 --set train.refit=false <recipe>` (timed: a
subprocess, so start-up included) and `python -m mmcli eval RUN CSV --split test --json`. Recipes:
- audio: only the clip column (`--set data.inputs={audio: audio}`; the accent column is then ignored);
- audio + accent: both columns as inferred (the accent name comes out categorical; it carries no label information).
12 epochs without the refit on train + val (the defaults are 20 epochs and a refit) keep the whole script near
15 minutes on 2 shared cores; validation accuracy on the held-out voices is already at 0.99+ by epoch 10.

Baselines, on the same splits, scored on test: the majority class of train, and a logistic regression (standardised
mean and std over time of each of the 80 log-mel bands from mmcli.modalities.audio_signal, the same features mmcli
caches; C from C_GRID chosen on val, fitted on train).

    .venv/bin/python benchmarks/audio.py | tee benchmarks/results/audio.log
    .venv/bin/python benchmarks/audio.py --seeds 0 --epochs 4 --recipes audio --train-noise off
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SECONDS = 1.25
C_GRID = (0.01, 0.1, 1.0, 10.0)
RECIPES = {"audio": ["--set", "data.inputs={audio: audio}"], "audio + accent": []}


def mm(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-m", "mmcli", *args], check=False, capture_output=True, text=True, env=env,
                          cwd=ROOT)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def du_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def baselines(csv_path: Path) -> dict[str, float]:
    """Test accuracy of the majority class and of logistic regression on per-band log-mel mean + std."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    from mmcli.modalities.audio_signal import load_audio, log_mel

    rows = read_rows(csv_path)
    feats = []
    for r in rows:
        mel = log_mel(load_audio(csv_path.parent / r["audio"], seconds=SECONDS))
        feats.append(np.concatenate([mel.mean(axis=1), mel.std(axis=1)]))
    x, y = np.stack(feats), np.array([r["label"] for r in rows])
    split = np.array([r["split"] for r in rows])
    tr, va, te = (split == s for s in ("train", "val", "test"))
    majority = Counter(y[tr]).most_common(1)[0][0]
    scaler = StandardScaler().fit(x[tr])
    xs = scaler.transform(x)
    best = max(C_GRID, key=lambda c: LogisticRegression(C=c, max_iter=2000).fit(xs[tr], y[tr]).score(xs[va], y[va]))
    logreg = LogisticRegression(C=best, max_iter=2000).fit(xs[tr], y[tr])
    return {"majority class": float(np.mean(y[te] == majority)),
            f"logreg on log-mel mean+std (C={best:g})": float(logreg.score(xs[te], y[te]))}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=Path("/tmp/mm-sets/spoken"))
    ap.add_argument("--work", type=Path, default=Path("/tmp/mm-bench-audio"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    ap.add_argument("--takes", type=int, default=2)
    ap.add_argument("--noise", default="20", help="test-clip SNR in dB for audio_data.py ('off': clean)")
    ap.add_argument("--train-noise", nargs="+", default=["off", "5:40"],
                    help="train/val noise of each data variant, audio_data.py --train-noise (off or LOW:HIGH dB)")
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--refit", choices=("true", "false"), default="false")
    ap.add_argument("--extra", nargs="*", default=[], help="more `mm train` arguments for every run")
    args = ap.parse_args(argv)

    sys.path.insert(0, str(ROOT / "benchmarks"))
    import audio_data

    common = ["--preset", "fast", "--set", f"data.audio_seconds={SECONDS}", "--set", f"train.epochs={args.epochs}",
              "--set", f"train.refit={args.refit}", *args.extra]
    print(f"train recipe: {' '.join(common)}; seeds {args.seeds}; test noise SNR {args.noise} dB", flush=True)
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)

    table = []
    for train_noise in args.train_noise:
        out = args.data if train_noise == "off" else args.data.with_name(f"{args.data.name}-train-noise")
        audio_data.main(["--out", str(out), "--takes", str(args.takes), "--noise", args.noise,
                         *(["--train-noise", train_noise] if train_noise != "off" else [])])
        csv_path = out / "all.csv"
        rows = read_rows(csv_path)
        data = "clean" if train_noise == "off" else f"white noise {train_noise.replace(':', '..')} dB"
        print(f"\n{csv_path}: {len(rows)} clips {dict(Counter(r['split'] for r in rows))}; train/val {data}",
              flush=True)
        for name in args.recipes:
            tag = f"{name.replace(' + ', '_')}_{'clean' if train_noise == 'off' else 'noisy'}"
            cache = args.work / f"cache_{tag}"
            start = time.perf_counter()
            pre = mm("preprocess", str(csv_path), "-o", str(cache), "--json", *common, *RECIPES[name])
            pre_s = time.perf_counter() - start
            if pre.returncode != 0:
                print(f"{name}: preprocess failed\n{pre.stdout[-2000:]}{pre.stderr[-2000:]}", file=sys.stderr)
                continue
            kinds = ", ".join(f"{i['name']} ({i['kind']})" for i in json.loads(pre.stdout)["inputs"])
            accs, walls = [], []
            for seed in args.seeds:
                run = args.work / f"run_{tag}_{seed}"
                start = time.perf_counter()
                tr = mm("train", str(csv_path), "-o", str(run), "--cache-dir", str(cache), *common, *RECIPES[name],
                        "--set", f"train.seed={seed}")
                wall = time.perf_counter() - start
                if tr.returncode != 0:
                    print(f"{name} seed {seed}: train failed\n{tr.stdout[-2000:]}{tr.stderr[-2000:]}", file=sys.stderr)
                    continue
                ev = mm("eval", str(run), str(csv_path), "--split", "test", "--json")
                if ev.returncode != 0:
                    print(f"{name} seed {seed}: eval failed\n{ev.stdout[-2000:]}{ev.stderr[-2000:]}", file=sys.stderr)
                    continue
                acc = json.loads(ev.stdout)["accuracy"]
                val = json.loads((run / "metrics.json").read_text()).get("val", {}).get("accuracy") \
                    if (run / "metrics.json").exists() else None
                accs.append(acc)
                walls.append(wall)
                print(f"{name}, train/val {data}, seed {seed}: test accuracy {acc:.4f}"
                      + (f" (val {val:.4f})" if isinstance(val, float) else "") + f", train {wall:.0f} s", flush=True)
            if accs:
                std = statistics.stdev(accs) if len(accs) > 1 else 0.0
                table.append((f"mmcli {name}", data, kinds, f"{statistics.mean(accs):.4f} ± {std:.4f}", len(accs),
                              f"{statistics.mean(walls):.0f}", f"{len(rows) / pre_s:.0f}", f"{du_mb(cache):.1f}"))
        start = time.perf_counter()
        base = baselines(csv_path)
        base_s = time.perf_counter() - start
        for name, acc in base.items():
            table.append((name, data, "audio", f"{acc:.4f}", 1, f"{base_s:.0f} (features + fit)", "", ""))

    print("\n| model | train/val clips | inputs | test accuracy (mean ± std) | seeds | train wall s | "
          "preprocess clips/s | cache MB |")
    print("|---|---|---|---|---|---|---|---|")
    for row in table:
        print("| " + " | ".join(str(c) for c in row) + " |")


if __name__ == "__main__":
    main()
