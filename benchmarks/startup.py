"""Start-up cost: `mm --help`, `mm predict RUN IMAGE TEXT` against `python -c "import torch, torchvision"`, and
`mm predict BUNDLE IMAGE TEXT` on the run's `mm export` bundle (torch-free: onnxruntime, tokenizers, Pillow).

Trains a one-epoch scratch run on sample_data first and exports it (not timed), then times each command --repeats
times in fresh processes and prints the medians and the ratio. Also lists which heavy modules each predict imported.
  python benchmarks/startup.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
IMAGE = ROOT / "sample_data" / "images" / "1f42d.png"


def wall(cmd: list[str], env: dict, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def imported(target: Path, env: dict) -> str:
    """Which heavy modules `mm predict TARGET IMAGE TEXT` imports."""
    probe = (f"import sys, runpy; sys.argv = ['mm', 'predict', {str(target)!r}, {str(IMAGE)!r}, 'mouse face']\n"
             "try: runpy.run_module('mmcli', run_name='__main__')\nexcept SystemExit: pass\n"
             "print('HEAVY:' + ','.join(m for m in ('torch', 'torchvision', 'transformers', 'sklearn', 'matplotlib',"
             " 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=False).stdout
    found = [line.removeprefix("HEAVY:") for line in out.splitlines() if line.startswith("HEAVY:")]
    return found[-1] if found else "?"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp())
    env = {**os.environ, "MM_CACHE_DIR": str(tmp / "cache"), "MM_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    mm = [sys.executable, "-m", "mmcli"]
    run = tmp / "run"
    subprocess.run([*mm, "train", str(ROOT / "sample_data" / "all.csv"), "-o", str(run), "--set", "train.epochs=1"],
                   env=env, check=True, capture_output=True)
    bundle = tmp / "bundle"
    subprocess.run([*mm, "export", str(run), "-o", str(bundle)], env=env, check=True, capture_output=True)
    predict = [*mm, "predict", str(run), str(IMAGE), "mouse face"]
    heavy = {t: imported(t, env) for t in (run, bundle)}
    rows = [
        ("mm --help", wall([*mm, "--help"], env, args.repeats)),
        ('python -c "import torch, torchvision"', wall([sys.executable, "-c", "import torch, torchvision"], env,
                                                      args.repeats)),
        # what `mm`'s entry point does before exiting: frozen objects skip the interpreter's final collections
        ('python -c "import torch, torchvision, gc; gc.freeze()"',
         wall([sys.executable, "-c", "import torch, torchvision, gc; gc.freeze()"], env, args.repeats)),
        ("mm predict RUN IMAGE TEXT", wall(predict, env, args.repeats)),
        ("mm predict BUNDLE IMAGE TEXT", wall([*mm, "predict", str(bundle), str(IMAGE), "mouse face"], env,
                                              args.repeats)),
    ]
    print(f"median of {args.repeats} fresh processes, {os.cpu_count()} CPU cores\n")
    print("| command | wall s |\n|---|---|")
    for name, sec in rows:
        print(f"| `{name}` | {sec:.3f} |")
    print(f"\npredict / import torch+torchvision: {rows[3][1] / rows[1][1]:.2f}")
    for target, found in heavy.items():
        print(f"heavy modules imported by predict {target.name}: {found or 'none'}")


if __name__ == "__main__":
    main()
