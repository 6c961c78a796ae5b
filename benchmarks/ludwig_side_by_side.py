"""Side by side with Ludwig 0.11 on the shapes x colour-words task of ../shared/peers/ludwig (12 classes,
2,000 train / 250 val / 500 test rows), one tool after the other, --rounds times.

Per round: Ludwig's own harness (run_ludwig.sh: train, evaluate, predict, cold caches), then mmcli's default
scratch model: `mm train` on train+val (3 epochs), `mm eval` and `mm predict` on test.csv, each a fresh process
with a cold cache; then time to Ludwig's accuracy: `mm train` with 1, 2, ... epochs (fresh process, cold cache)
until its test accuracy reaches that round's Ludwig accuracy. Prints median wall times, the ratios, and test
accuracy. Needs Ludwig installed once:
  INSTALL=1 bash ../shared/peers/ludwig/run_ludwig.sh
  python benchmarks/ludwig_side_by_side.py [--rounds 3] [--epochs 3]
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
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PEER = ROOT.parent / "shared" / "peers" / "ludwig"


def timed(cmd: list[str], env: dict) -> tuple[float, str]:
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    return time.perf_counter() - start, out.stdout


def ludwig_round(peers: Path) -> dict:
    run_dir = peers / "runs" / f"side-{time.time_ns()}"
    env = {**os.environ, "PEERS": str(peers), "RUN_DIR": str(run_dir)}
    # cwd: Ludwig leaves a .lock_preprocessing file in its working folder
    subprocess.run(["bash", str(PEER / "run_ludwig.sh")], env=env, check=True, capture_output=True, cwd=peers)
    s = json.loads((run_dir / "summary.json").read_text())
    return {"train": s["train"]["wall_s"], "eval": s["evaluate"]["wall_s"], "predict": s["predict"]["wall_s"],
            "acc": s["test"]["accuracy_plain(ludwig accuracy_micro)"]}


def trainval_csv(data: Path) -> Path:
    out = data / "mm_trainval.csv"
    with open(out, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image_path", "text", "label", "split"])
        for split in ("train", "val"):
            with open(data / f"{split}.csv", newline="") as src:
                for r in csv.DictReader(src):
                    w.writerow([r["image_path"], r["text"], r["label"], split])
    return out


def mm_round(data: Path, work: Path, epochs: int, sets: list[str]) -> dict:
    shutil.rmtree(work, ignore_errors=True)
    env = {**os.environ, "MM_CACHE_DIR": str(work / "cache"), "MM_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    mm = [sys.executable, "-m", "mmcli"]
    run = work / "run"
    extra = [a for s in [f"train.epochs={epochs}", *sets] for a in ("--set", s)]
    t_train, _ = timed([*mm, "train", str(trainval_csv(data)), "-o", str(run), *extra], env)
    t_eval, out = timed([*mm, "eval", str(run), str(data / "test.csv"), "--json", "-o", str(work / "eval")], env)
    t_pred, _ = timed([*mm, "predict", str(run), str(data / "test.csv"), "-o", str(work / "pred.csv")], env)
    shutil.rmtree(work, ignore_errors=True)  # each round's cache and run folder are only measured, never kept
    return {"train": t_train, "eval": t_eval, "predict": t_pred, "acc": json.loads(out)["accuracy"]}


def time_to_match(data: Path, target: float, max_epochs: int, sets: list[str]) -> dict:
    """Fewest epochs whose `mm train` (cold cache, fresh process) reaches `target` test accuracy, and its wall."""
    for epochs in range(1, max_epochs + 1):
        res = mm_round(data, Path(tempfile.mkdtemp()), epochs, sets)
        if res["acc"] >= target:
            return {"epochs": epochs, "train": res["train"], "acc": res["acc"]}
    return {"epochs": None, "train": float("nan"), "acc": res["acc"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--peers", type=Path, default=Path(tempfile.gettempdir()) / "peers")
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    if not (args.peers / "ludwig-venv" / "bin" / "ludwig").exists():
        sys.exit(f"Ludwig is not installed under {args.peers}; run: INSTALL=1 bash {PEER / 'run_ludwig.sh'}")
    lud, mine, match = [], [], []
    for _ in range(args.rounds):
        lud.append(ludwig_round(args.peers))
        mine.append(mm_round(args.peers / "data", Path(tempfile.mkdtemp()), args.epochs, args.sets))
        match.append(time_to_match(args.peers / "data", lud[-1]["acc"], args.epochs, args.sets))
    med = {k: (statistics.median(r[k] for r in lud), statistics.median(r[k] for r in mine))
           for k in ("train", "eval", "predict", "acc")}
    print(f"{args.rounds} rounds, one tool after the other; {os.cpu_count()} CPU cores; mmcli overrides "
          f"{args.sets or 'none'}, {args.epochs} epochs\n")
    print("| step | Ludwig 0.11 (median s) | mmcli (median s) | mmcli / Ludwig |\n|---|---|---|---|")
    for k in ("train", "eval", "predict"):
        print(f"| {k} | {med[k][0]:.1f} | {med[k][1]:.1f} | {med[k][1] / med[k][0]:.2f} |")
    print(f"| test accuracy | {med['acc'][0]:.3f} | {med['acc'][1]:.3f} | |")
    ratios = [m["train"] / r["train"] for m, r in zip(match, lud)]
    print(f"\nmmcli reaches Ludwig's {args.epochs}-epoch test accuracy after {[m['epochs'] for m in match]} epoch(s): "
          f"`mm train` wall {statistics.median(m['train'] for m in match):.1f} s, "
          f"{statistics.median(ratios):.2f} of Ludwig's train wall (median over rounds)")
    print("\nper round:", json.dumps({"ludwig": lud, "mmcli": mine, "mmcli_time_to_ludwig_accuracy": match}))


if __name__ == "__main__":
    main()
