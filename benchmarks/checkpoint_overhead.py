"""What checkpointing costs a `mm train` run: `train.checkpoint_seconds` 0 (best weights and last/ written every
epoch) against the default (snapshotted in memory, written at most every 60 s and at the end).

Each setting trains the same zero-config run (`mm train CSV`, the pretrained preset) --repeats times in turn, in
fresh processes, over one warm cache (the frozen embeddings are computed once, before timing). Prints each call's
wall time, the median per setting and the test accuracy, which must not differ: the same weights are saved either
way (tests/test_checkpoints.py).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/checkpoint_overhead.py --csv /tmp/mm-sets/noto/all.csv \
        | tee benchmarks/results/checkpoint_overhead.log
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def train(csv: Path, out: Path, cache: Path, sets: list[str]) -> float:
    """One `mm train` call in a fresh process -> wall seconds."""
    cmd = [sys.executable, "-m", "mmcli", "train", str(csv), "-o", str(out)]
    cmd += [a for s in sets for a in ("--set", s)]
    env = {**os.environ, "MM_CACHE_DIR": str(cache), "MM_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", type=Path, required=True, help="a manifest with a test split (benchmarks/datasets.py)")
    ap.add_argument("--repeats", type=int, default=3, help="calls per setting")
    ap.add_argument("--settings", nargs="+", default=["0", "60"], help="train.checkpoint_seconds values")
    ap.add_argument("--cache", type=Path, help="a cache folder to reuse (default: a new one, built first)")
    args = ap.parse_args()
    common = ["data.image_size=64"]  # as benchmarks/accuracy.py: the sets' images are 64 px
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = args.cache or tmp / "cache"
        train(args.csv, tmp / "warm-up", cache, common)  # builds the cache (or checks it is warm); not timed
        walls: dict[str, list[float]] = {s: [] for s in args.settings}
        accs: dict[str, set] = {s: set() for s in args.settings}
        for i in range(args.repeats):
            for s in args.settings:  # interleaved, so that a slower stretch of the machine hits both settings
                out = tmp / f"run-{s}-{i}"
                walls[s].append(train(args.csv, out, cache, [*common, f"train.checkpoint_seconds={s}"]))
                metrics = json.loads((out / "metrics.json").read_text())
                accs[s].add(round(metrics["test"]["accuracy"], 4))
                print(f"checkpoint_seconds={s} call {i}: {walls[s][-1]:.1f} s, test accuracy "
                      f"{metrics['test']['accuracy']:.4f}, {metrics['epochs_run']} epochs", flush=True)
    for s in args.settings:
        print(f"checkpoint_seconds={s}: median {statistics.median(walls[s]):.1f} s "
              f"(min {min(walls[s]):.1f}, max {max(walls[s]):.1f}); test accuracy {sorted(accs[s])}")
    print(f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
