"""What keeping freed memory in the process (mmcli/allocator.py) is worth, with glibc's default beside it.

Each measurement runs in its own process, once with mmcli's setting and once with `MM_SYSTEM_MALLOC=1` (glibc's
default: every large block mapped afresh and unmapped on free), in alternating order:
- the pretrained image encoder's forward pass alone (EfficientNet-Lite0, batches of 64 at 224 px, 512 images):
  fp32 with the weights as loaded (NCHW), fp32 in channels_last (as `mm` now loads a run), bf16 autocast in
  channels_last (what training uses where the CPU has bf16); images/s, and the seconds spent in the kernel;
- the `mm` commands on a built set (benchmarks/datasets.py), each from a fresh cache folder: `mm train` with the
  pretrained preset (zero-config: the frozen encoders' embeddings are computed, then the head trains), `mm eval`
  of that run on the test split (the encoders run on every test image), and `mm train --preset best` (its frozen
  blocks' table is computed, then 20 epochs fine-tune the top blocks); wall seconds.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/allocator.py | tee benchmarks/results/allocator.log
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MM = [sys.executable, "-m", "mmcli"]
SETTINGS = {"kept (mmcli)": {}, "glibc default": {"MM_SYSTEM_MALLOC": "1"}}

ENCODER = """
import json, resource, sys, time
import torch
from mmcli.allocator import keep_freed_memory
from mmcli.models.effnet import EfficientNetLite
applied = keep_freed_memory()
layout, amp = sys.argv[1], sys.argv[2] == "bf16"
torch.manual_seed(0)
m, x = EfficientNetLite(0).eval(), torch.randn(64, 3, 224, 224)
if layout == "channels_last":
    m, x = m.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
def run():
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
        return m(x)
run()
r0, t = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
for _ in range(8):
    run()
dt, r1 = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"applied": applied, "rate": 512 / dt, "sys": r1.ru_stime - r0.ru_stime,
                  "user": r1.ru_utime - r0.ru_utime, "peak_mb": r1.ru_maxrss / 1024}))
"""


def encoder(layout: str, precision: str, env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", ENCODER, layout, precision], env=env, capture_output=True,
                         text=True, check=True, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def commands(csv_path: Path, env: dict, tmp: Path, tag: str, best: bool) -> dict[str, float]:
    """-> {command: wall seconds}, each train from a fresh cache folder."""
    common = ["--set", "data.image_size=64", "--set", "train.seed=0"]
    out = {}
    zc = tmp / f"zc-{tag}"
    out["mm train (pretrained preset, cold cache)"] = timed(
        MM + ["train", str(csv_path), "--preset", "pretrained", "-o", str(zc), "--cache-dir", str(tmp / f"c1-{tag}"),
              *common], env)
    out["mm eval (that run, test split)"] = timed(
        MM + ["eval", str(zc), str(csv_path), "--split", "test", "-o", str(tmp / f"ev-{tag}")],
        {**env, "MM_CACHE_DIR": str(tmp / f"c1-{tag}")})
    if best:
        out["mm train --preset best (cold cache)"] = timed(
            MM + ["train", str(csv_path), "--preset", "best", "-o", str(tmp / f"best-{tag}"),
                  "--cache-dir", str(tmp / f"c2-{tag}"), *common], env)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=Path("/tmp/mm-sets/noto/all.csv"), help="a built set's all.csv")
    ap.add_argument("--no-best", action="store_true", help="skip the `--preset best` runs (minutes each)")
    args = ap.parse_args()
    base = {**os.environ, "MM_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    base.pop("MM_SYSTEM_MALLOC", None)
    print(f"# keeping freed memory (mmcli/allocator.py) against glibc's default; {os.cpu_count()} CPUs\n")
    print("## EfficientNet-Lite0 forward, batches of 64 at 224 px (images/s; CPU seconds in the kernel / in user code; "
          "peak resident MB)\n")
    print("| layout, precision | " + " | ".join(SETTINGS) + " | speed-up |")
    print("|---|---|---|---|")
    for layout, precision in (("NCHW", "fp32"), ("channels_last", "fp32"), ("channels_last", "bf16")):
        res = {}
        for name in (list(SETTINGS) if precision == "fp32" else list(SETTINGS)[::-1]):
            res[name] = encoder(layout, precision, {**base, **SETTINGS[name]})
        cells = [f"{r['rate']:.1f} ({r['sys']:.1f} / {r['user']:.1f} s; {r['peak_mb']:.0f} MB)"
                 for r in (res[n] for n in SETTINGS)]
        ratio = res["kept (mmcli)"]["rate"] / res["glibc default"]["rate"]
        print(f"| {layout}, {precision} | " + " | ".join(cells) + f" | {ratio:.2f}x |", flush=True)
    print(f"\n## mm commands on {args.data} (wall seconds)\n")
    with tempfile.TemporaryDirectory() as tmp:
        walls = {}
        for k, name in enumerate(SETTINGS):
            walls[name] = commands(args.data, {**base, **SETTINGS[name]}, Path(tmp), str(k), not args.no_best)
        print("| command | " + " | ".join(SETTINGS) + " | speed-up |")
        print("|---|---|---|---|")
        for cmd in walls["kept (mmcli)"]:
            kept, default = walls["kept (mmcli)"][cmd], walls["glibc default"][cmd]
            print(f"| {cmd} | {kept:.1f} | {default:.1f} | {default / kept:.2f}x |")


if __name__ == "__main__":
    main()
