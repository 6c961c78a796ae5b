"""What running EfficientNet's depthwise convolutions in fp32 while fine-tuning on a CPU is worth (mmcli/models/
effnet.py, `fp32_on_cpu_while_training`), against leaving them to bf16 autocast.

Three levels, each variant in its own process:
- one depthwise convolution as EfficientNet-Lite0's top blocks have it (5x5 over `[64, 1152, 11, 11]`), forward
  and backward pass, fp32 and bf16 autocast, NCHW and channels_last;
- a training step of the top 3 blocks (what `--preset best` fine-tunes) over a cached `[64, 192, 7, 7]` feature
  map, bf16 autocast, channels_last, with and without the fp32 depthwise convolutions;
- `--preset best` on a built set (benchmarks/datasets.py), seeds 0-2, with and without (the frozen blocks' table is
  computed once by a warm-up run, so every timed run reads it from the cache): train wall seconds and test accuracy.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/depthwise_fp32.py | tee benchmarks/results/depthwise_fp32.log
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"fp32 depthwise (mmcli)": "1", "bf16 depthwise (autocast's choice)": "0"}

PRELUDE = """
import json, sys, time
import torch
from mmcli.allocator import keep_freed_memory
import mmcli.models.effnet as effnet
keep_freed_memory()
if sys.argv[1] == "0":  # leave the depthwise convolutions to autocast, as before the change
    effnet.fp32_on_cpu_while_training = lambda conv: None
torch.manual_seed(0)
def timed(step, n=8):
    times = []
    for _ in range(n):
        t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
    return 1000 * sorted(times[2:])[len(times[2:]) // 2]
"""

CONV = PRELUDE + """
out = {}
for layout in ("NCHW", "channels_last"):
    for amp in (False, True):
        conv = torch.nn.Conv2d(1152, 1152, 5, groups=1152, bias=False)
        x = torch.randn(64, 1152, 11, 11)
        if layout == "channels_last":
            conv, x = conv.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
        x.requires_grad_(True)
        def step():
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                y = conv(x)
            y.float().sum().backward()
        out[f"{layout}, {'bf16' if amp else 'fp32'}"] = timed(step)
print(json.dumps(out))
"""

TOP = PRELUDE + """
enc = effnet.EfficientNetLite(0).to(memory_format=torch.channels_last)
k = len(enc.blocks()) - 3
with torch.no_grad():
    h = enc.forward_until(torch.rand(64, 3, 224, 224).contiguous(memory_format=torch.channels_last), k)
enc.train()
def step():
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = enc.forward_from(h, k)
    y.float().pow(2).mean().backward()
print(json.dumps({"ms": timed(step)}))
"""

TRAIN = PRELUDE + """
from pathlib import Path
from mmcli.config import load_config
from mmcli.train import train
cfg = load_config(None, ["data.image_size=64", f"train.seed={sys.argv[3]}"], preset="best")
t = time.perf_counter()
run = train(Path(sys.argv[2]), cfg, output=Path(sys.argv[4]))
wall = time.perf_counter() - t
m = json.loads((run / "metrics.json").read_text())
print(json.dumps({"wall": wall, "accuracy": m["test"]["accuracy"], "epochs": f"{m['best_epoch']}/{m['epochs_run']}"}))
"""


def child(code: str, variant: str, *args: str, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, "-c", code, variant, *args], capture_output=True, text=True, check=True,
                         cwd=ROOT, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", dest="name", default="noto", help="built set for the training runs")
    ap.add_argument("--data", type=Path, default=Path("/tmp/mm-sets"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    print(f"# depthwise convolutions in fp32 while fine-tuning on a CPU; {os.cpu_count()} CPUs\n")
    conv = child(CONV, "1")
    print("## one depthwise 5x5 convolution over [64, 1152, 11, 11], forward and backward pass (median ms)\n")
    print("| layout, precision | ms |\n|---|---|")
    for name, ms in conv.items():
        print(f"| {name} | {ms:.1f} |")
    print("\n## a training step of EfficientNet-Lite0's top 3 blocks, batch 64, bf16 autocast, channels_last "
          "(median ms)\n")
    print("| variant | ms |\n|---|---|")
    for name, flag in VARIANTS.items():
        print(f"| {name} | {child(TOP, flag)['ms']:.1f} |")
    csv_path = args.data / args.name / "all.csv"
    with tempfile.TemporaryDirectory(prefix="mm-depthwise-") as tmp:
        env = {**os.environ, "MM_CACHE_DIR": str(Path(tmp) / "cache"), "MM_QUIET": "1", "HF_HUB_OFFLINE": "1"}
        child(TRAIN, "1", str(csv_path), "0", str(Path(tmp) / "warm-up"), env=env)  # fills the cache's tables
        rows = {name: [] for name in VARIANTS}
        for seed in args.seeds:  # variants alternate, so a slower spell of the machine hits both
            for name, flag in VARIANTS.items():
                r = child(TRAIN, flag, str(csv_path), str(seed), str(Path(tmp) / f"{flag}-{seed}"), env=env)
                print(f"  {name} seed {seed}: {r}", file=sys.stderr, flush=True)
                rows[name].append(r)
    print(f"\n## `--preset best` on {args.name}, seeds {args.seeds}, frozen blocks' table cached\n")
    print("| variant | train wall s (each seed) | test accuracy (each seed) | mean accuracy |\n|---|---|---|---|")
    for name, rs in rows.items():
        walls = " / ".join(f"{r['wall']:.1f}" for r in rs)
        accs = " / ".join(f"{r['accuracy']:.4f}" for r in rs)
        print(f"| {name} | {walls} | {accs} | {statistics.mean(r['accuracy'] for r in rs):.4f} |")


if __name__ == "__main__":
    main()
