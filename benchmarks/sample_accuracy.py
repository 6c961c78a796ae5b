"""Fused vs image-only vs text-only on sample_data/ (the same settings otherwise).

Prints a markdown table: test accuracy and macro-F1 (mean and min..max over seeds), training wall time and
training samples/s. Usage: python benchmarks/sample_accuracy.py [--seeds 0 1 2] [--set key=value ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODES = {
    "fused (image + text)": [],
    "image only": ["data.text_columns=[]"],
    "text only": ["data.image_columns=[]"],
}


def run_once(csv_path: Path, overrides: list[str], seed: int, workdir: Path, config: Path | None = None) -> dict:
    from mmcli.config import load_config
    from mmcli.train import train

    cfg = load_config(config, overrides + [f"train.seed={seed}"])
    out = workdir / f"run-{abs(hash((tuple(overrides), seed)))}"
    start = time.perf_counter()
    run = train(csv_path, cfg, output=out)
    wall = time.perf_counter() - start
    metrics = json.loads((run / "metrics.json").read_text())
    with open(run / "history.csv") as fh:
        hist = list(csv.DictReader(fh))
    rates = [float(h["samples_per_s"]) for h in hist]
    return {"acc": metrics["test"]["accuracy"], "f1": metrics["test"]["macro_f1"], "wall": wall,
            "sps": statistics.median(rates), "epochs": len(hist)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--csv", type=Path, default=ROOT / "sample_data" / "all.csv")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--set", dest="sets", action="append", default=[])
    ap.add_argument("--config", type=Path, default=None, help="a YAML config, e.g. configs/pretrained.yaml")
    args = ap.parse_args()
    os.environ.setdefault("MM_QUIET", "1")
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("MM_CACHE_DIR", str(Path(tmp) / "cache"))
        rows = []
        for mode, extra in MODES.items():
            res = [run_once(args.csv, args.sets + extra, s, Path(tmp), args.config) for s in args.seeds]
            accs = [r["acc"] for r in res]
            rows.append((mode, statistics.mean(accs), min(accs), max(accs), statistics.mean(r["f1"] for r in res),
                         statistics.median(r["wall"] for r in res), statistics.median(r["sps"] for r in res),
                         statistics.mean(r["epochs"] for r in res)))
    print(f"sample_data test split, seeds {args.seeds}, config {args.config or 'defaults'}, "
          f"overrides {args.sets or 'none'}, "
          f"{os.cpu_count()} CPU cores\n")
    print("| model | test accuracy (mean) | min..max | macro-F1 | train wall s | train samples/s | epochs |")
    print("|---|---|---|---|---|---|---|")
    for mode, acc, lo, hi, f1, wall, sps, ep in rows:
        print(f"| {mode} | {acc:.3f} | {lo:.3f}..{hi:.3f} | {f1:.3f} | {wall:.1f} | {sps:.0f} | {ep:.1f} |")


if __name__ == "__main__":
    main()
