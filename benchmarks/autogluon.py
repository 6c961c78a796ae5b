"""AutoGluon's MultiModalPredictor on the accuracy benchmark's sets, on the very same fixed train / val / test splits.

AutoGluon runs with mmcli's two pretrained encoders (MiniLM-L6, EfficientNet-Lite0) through the peer harness in
`../shared/peers/autogluon/` (install it first with its `install.sh`). It is slow (its fit stops at the time limit,
600 s by default), so it runs once per set (one seed); its log sits beside the accuracy benchmark's logs:

    python benchmarks/autogluon.py | tee benchmarks/results/autogluon.log
    python benchmarks/autogluon.py --sets noto --limit 300

On `cross` (trained on Noto's artwork, tested on OpenMoji's artwork of the same emoji, with the same texts) the same
fitted predictor is also scored on the Noto test split, the very emoji in the training artwork (`in-style test`), so
the log tells a style-shift collapse (in-style fine, cross low) from a fault in the split files (both low).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from datasets import BUILDERS, build

PEER = Path(__file__).resolve().parents[2] / "shared" / "peers" / "autogluon"


def split_csvs(csv_path: Path, out: Path) -> dict[str, Path]:
    """Write `train.csv`, `val.csv`, `test.csv` (image,text,label; absolute image paths) from a set's `all.csv`."""
    rows = {"train": [], "val": [], "test": []}
    with open(csv_path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            rows[r["split"]].append([str((csv_path.parent / r["image"]).resolve()), r["text"], r["label"]])
    paths = {}
    for name, items in rows.items():
        paths[name] = out / f"{name}.csv"
        with open(paths[name], "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["image", "text", "label"])
            w.writerows(items)
    return paths


def run_set(name: str, args, tmp: Path) -> dict:
    csv_path = build(name, args.data, args.src)
    paths = split_csvs(csv_path, tmp)
    env = dict(os.environ, HF_HOME=str(args.peers / "autogluon-hf"), HF_HUB_OFFLINE="1")
    cmd = [str(args.peers / "autogluon-venv" / "bin" / "python"), str(PEER / "run_ag.py"), str(paths["train"]),
           str(paths["val"]), str(paths["test"]), str(tmp / "ag"), "both", str(args.limit)]
    if name == "cross":  # the same emoji in the training artwork: Noto's own test split
        (tmp / "noto").mkdir()
        cmd.append(str(split_csvs(build("noto", args.data, args.src), tmp / "noto")["test"]))
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        sys.exit(f"AutoGluon failed on {name} (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    res = json.loads(line[len("RESULT "):])
    res.update(set=name, total_wall_s=round(wall, 1))
    print(json.dumps(res), file=sys.stderr, flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sets", nargs="+", default=list(BUILDERS), choices=list(BUILDERS))
    ap.add_argument("--limit", type=int, default=600, help="AutoGluon's fit time limit in seconds")
    ap.add_argument("--data", type=Path, default=Path("/tmp/mm-sets"), help="built sets (reused)")
    ap.add_argument("--src", type=Path, default=Path("/tmp/mm-src"), help="npm download / extract folder")
    ap.add_argument("--peers", type=Path, default=Path(tempfile.gettempdir()) / "peers", help="install.sh's PEERS")
    args = ap.parse_args()
    results = []
    for name in args.sets:
        with tempfile.TemporaryDirectory(prefix=f"mm-ag-{name}-") as tmp:
            results.append(run_set(name, args, Path(tmp)))
    print(f"# AutoGluon MultiModalPredictor (same encoders), fit limit {args.limit} s, seed 0, "
          f"{os.cpu_count()} CPU cores\n")
    print("| set | test accuracy | in-style test | fit wall s |")
    print("|---|---|---|---|")
    for r in results:
        extra = f"{r['extra_accuracy']:.3f}" if "extra_accuracy" in r else "—"
        print(f"| {r['set']} | {r['test_accuracy']:.3f} | {extra} | {r['fit_wall_s']:.0f} |")


if __name__ == "__main__":
    main()
