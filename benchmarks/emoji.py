"""Full Noto emoji benchmark: image only, text only and every fusion over frozen pretrained encoders, then image
only, text only and late fusion with the encoders' top blocks fine-tuned (configs/pretrained.yaml as it is).

Builds the full Noto emoji set with `sample_data/build.py --full --seed 0` (1,906 base emoji, 9 categories, text =
the emoji name only, stratified 70/30 train/test split; needs npm, or the extracted npm package in --src), then
trains one model per setting from configs/pretrained.yaml (EfficientNet-Lite0 + MiniLM-L6) plus the
overrides in SETTINGS, in this process, and prints a markdown table: test accuracy, macro-F1, training wall time.

mmcli holds out a stratified 15 % of the training rows for validation (early stopping, best checkpoint); the
settings below were chosen on that validation share (`--split val`), never on the test split.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/emoji.py                     # the table (about 11 min, 2 cores)
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/emoji.py --split val --seeds 0 1 2 --only concat late \
        --set train.lr=3e-3                                                   # compare settings on validation

Frozen encoders' embeddings (and the outputs of the frozen blocks below the fine-tuned ones) are computed by the
first setting that needs them and kept in the cache folder (mmcli does that for every run); the later settings reuse
them for training, validation and final scoring alike.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "pretrained.yaml"
FUSIONS = ("concat", "sum", "product", "gated", "attention", "lmf", "late")
# Overrides on top of configs/pretrained.yaml, for every setting.
COMMON = [
    "data.image_size=64",  # the emoji are 64 px: cache them as they are; EfficientNet still sees 224 px (resized per batch)
]
# Frozen encoders: only the fusion and the head train, over embeddings computed once (a table in the cache folder,
# shared by all these settings), so one thread is enough.
FROZEN = ["model.unfreeze_last=0", "train.threads=1"]
# The config as it is: the top 3 blocks of each encoder train (EfficientNet: its last 2 MBConv blocks and head conv;
# MiniLM: its last 3 layers) at train.pretrained_lr; the frozen blocks below run once per image / text (again a table
# in the cache folder, shared). Late fusion, whose heads train apart, so that neither encoder leans on the other.
# A single input gets concat's head (an MLP over its embedding), which scored higher alone than late fusion's linear
# head (frozen text only: 0.864 vs 0.825, benchmarks/results/emoji_single_late_head.log): the fused rows are compared
# with the stronger single-input baseline.
SINGLE = "model.fusion=concat"
SETTINGS = {
    "image only": [*FROZEN, SINGLE, "data.text_columns=[]"],
    "text only": [*FROZEN, SINGLE, "data.image_columns=[]"],
    **{f"fused: {f}": [*FROZEN, f"model.fusion={f}"] for f in FUSIONS},
    "fine-tuned: image only": [SINGLE, "data.text_columns=[]"],
    "fine-tuned: text only": [SINGLE, "data.image_columns=[]"],
    "fine-tuned: late": ["model.fusion=late"],
}


def build_data(out: Path, src: Path) -> Path:
    """The full emoji set in `out` (built with sample_data/build.py unless out/all.csv exists)."""
    if not (out / "all.csv").is_file():
        cmd = [sys.executable, str(ROOT / "sample_data" / "build.py"), "--full", "--out", str(out), "--seed", "0",
               "--workdir", str(src)]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return out / "all.csv"


def run_once(csv_path: Path, overrides: list[str], seed: int, out: Path) -> dict:
    from mmcli.config import load_config
    from mmcli.train import train

    cfg = load_config(CONFIG, COMMON + overrides + [f"train.seed={seed}"])
    start = time.perf_counter()
    run = train(csv_path, cfg, output=out)
    wall = time.perf_counter() - start
    metrics = json.loads((run / "metrics.json").read_text())
    with open(run / "history.csv") as fh:
        epoch_s = sum(float(h["seconds"]) for h in csv.DictReader(fh))
    return {"metrics": metrics, "wall": wall, "epoch_s": epoch_s, "epochs": metrics["epochs_run"],
            "best_epoch": metrics["best_epoch"]}


def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ({min(values):.3f}..{max(values):.3f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="folder for the built set (reused when it holds all.csv)")
    ap.add_argument("--src", type=Path, default=Path("/tmp/emoji_src"), help="npm download / extract folder")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="train.seed values (also the val share)")
    ap.add_argument("--split", choices=("test", "val"), default="test", help="split to report")
    ap.add_argument("--only", nargs="+", help="settings to run, by name or fusion (e.g. concat 'image only' 'fine-tuned: late')")
    ap.add_argument("--set", dest="sets", action="append", default=[], help="extra override for every setting")
    args = ap.parse_args()
    os.environ.setdefault("MM_QUIET", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    settings = {k: v for k, v in SETTINGS.items()
                if not args.only or k in args.only or k.removeprefix("fused: ") in args.only}
    total_start = time.perf_counter()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="mm-emoji-") as tmp:
        tmp = Path(tmp)
        os.environ.setdefault("MM_CACHE_DIR", str(tmp / "cache"))
        build_start = time.perf_counter()
        csv_path = build_data(args.data or tmp / "emoji", args.src)
        build_s = time.perf_counter() - build_start
        rows = []
        for name, extra in settings.items():
            results = []
            for seed in args.seeds:
                out = tmp / "runs" / f"{name.replace(': ', '-').replace(' ', '-')}-{seed}"
                results.append(run_once(csv_path, extra + args.sets, seed, out))
                m = results[-1]["metrics"][args.split]
                print(f"{name} seed {seed}: {args.split} acc {m['accuracy']:.4f} f1 {m['macro_f1']:.4f}, "
                      f"{results[-1]['wall']:.1f} s, best epoch {results[-1]['best_epoch']}/"
                      f"{results[-1]['epochs']}", file=sys.stderr, flush=True)
            rows.append((name, results))
    total_s = time.perf_counter() - total_start
    with open(csv_path) as fh:
        counts = {}
        for r in csv.DictReader(fh):
            counts[r["split"]] = counts.get(r["split"], 0) + 1
    print(f"Full Noto emoji set: {sum(counts.values())} rows ({', '.join(f'{v} {k}' for k, v in counts.items())}); "
          f"{args.split} split; seeds {args.seeds}; {os.cpu_count()} CPU cores; load average "
          f"{load_before[0]:.1f} before, {os.getloadavg()[0]:.1f} after")
    print(f"config: {CONFIG.relative_to(ROOT)} + {COMMON + args.sets}; data build {build_s:.0f} s; "
          f"whole benchmark {total_s / 60:.1f} min\n")
    split = args.split
    print(f"| model | {split} accuracy | {split} macro-F1 | train wall s | epochs s | best / run epochs |")
    print("|---|---|---|---|---|---|")
    for name, res in rows:
        acc = [r["metrics"][split]["accuracy"] for r in res]
        f1 = [r["metrics"][split]["macro_f1"] for r in res]
        wall = statistics.median(r["wall"] for r in res)
        epoch_s = statistics.median(r["epoch_s"] for r in res)
        epochs = "; ".join(f"{r['best_epoch']}/{r['epochs']}" for r in res)
        print(f"| {name} | {_fmt(acc)} | {_fmt(f1)} | {wall:.1f} | {epoch_s:.1f} | {epochs} |")
    print("\ntrain wall s: the whole `train` call (cache check, model build, epochs, final scoring; the first setting "
          "that needs a frozen encoder's features computes them); epochs s: the epochs alone.")


if __name__ == "__main__":
    main()
