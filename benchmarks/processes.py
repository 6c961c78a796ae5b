"""One process against two (DDP, gloo on CPU): does early stopping give the same model either way?

Trains on the Noto emoji set (benchmarks/datasets.py) with `mm train --nproc-per-node 1|2` for a preset and
seeds, once with the early stopping of earlier versions (raw validation accuracy, patience 5, no minimum share of the
schedule, no refit) and once with today's defaults, and prints test accuracy per setting (mean ± standard deviation
over seeds) and the gap between 1 and 2 processes.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/processes.py --preset fast | tee benchmarks/results/processes.log
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import build

ROOT = Path(__file__).resolve().parents[1]
MM = [sys.executable, "-m", "mmcli"]
STOPPING = {
    "before (raw metric, no minimum, no refit)": ["train.monitor_smoothing=0", "train.min_epochs=0",
                                                   "train.refit=false"],
    "now (defaults)": [],
}


def run(csv_path: Path, preset: str, sets: list[str], nproc: int, out: Path, port: int) -> dict:
    cmd = [*MM, "train", str(csv_path), "-o", str(out), "--preset", preset, "--nproc-per-node", str(nproc),
           "--master-port", str(port)]
    for s in sets:
        cmd += ["--set", s]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, cwd=out.parent)
    m = json.loads((out / "metrics.json").read_text())
    return {"accuracy": m["test"]["accuracy"], "epochs": f"{m['best_epoch']}/{m['epochs_run']}",
            "wall": time.perf_counter() - start}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", default="fast")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--data", type=Path, default=Path("/tmp/mm-sets"))
    ap.add_argument("--src", type=Path, default=Path("/tmp/mm-src"))
    args = ap.parse_args()
    csv_path = build("noto", args.data, args.src)
    env_before = os.getloadavg()[0]
    start = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory(prefix="mm-procs-") as tmp:
        os.environ.update({"MM_QUIET": "1", "HF_HUB_OFFLINE": "1", "MM_CACHE_DIR": str(Path(tmp) / "cache")})
        port = 29611
        for name, sets in STOPPING.items():
            for nproc in (1, 2):
                for seed in args.seeds:
                    port += 1
                    out = Path(tmp) / f"{len(results)}-{nproc}-{seed}"
                    r = run(csv_path, args.preset, [*sets, f"train.seed={seed}", f"train.epochs={args.epochs}",
                                                    "data.image_size=64", f"train.threads={max(1, 2 // nproc)}"], nproc, out, port)
                    results.setdefault((name, nproc), []).append(r)
                    print(f"{name} nproc {nproc} seed {seed}: test acc {r['accuracy']:.4f}, epochs {r['epochs']}, "
                          f"{r['wall']:.0f} s", file=sys.stderr, flush=True)
    print(f"# Noto emoji, preset {args.preset}, {args.epochs} epochs, seeds {args.seeds}, 2 CPU threads in all; "
          f"load average {env_before:.1f} before; {(time.perf_counter() - start) / 60:.1f} min\n")
    print("| early stopping | 1 process | 2 processes | gap | best/run epochs (1 proc; 2 procs) |")
    print("|---|---|---|---|---|")
    for name in STOPPING:
        one, two = ([r["accuracy"] for r in results[(name, n)]] for n in (1, 2))
        gap = statistics.mean(one) - statistics.mean(two)
        epochs = " ".join(r["epochs"] for r in results[(name, 1)]) + "; " + " ".join(
            r["epochs"] for r in results[(name, 2)])
        print(f"| {name} | {statistics.mean(one):.3f} ± {statistics.pstdev(one):.3f} | {statistics.mean(two):.3f} ± "
              f"{statistics.pstdev(two):.3f} | {gap:+.3f} | {epochs} |")


if __name__ == "__main__":
    main()
