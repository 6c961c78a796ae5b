#!/usr/bin/env bash
# GPU check (under 5 minutes on one modern GPU): the emoji benchmark's fused model on CUDA in bf16.
# Prints samples/s, peak GPU memory and test accuracy. Run from the repository root on a machine with a GPU:
#   bash benchmarks/gpu_check.sh            (uses .venv if present, else python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
WORK=${WORK:-$(mktemp -d)}
export MM_CACHE_DIR="$WORK/cache" MM_QUIET=1 HF_HUB_OFFLINE=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || { echo "no GPU visible"; exit 1; }
# the full Noto emoji set (1,906 rows, 70/30 split) from the npm package; falls back to sample_data without npm
if command -v npm >/dev/null && "$PY" sample_data/build.py --full --out "$WORK/emoji" --seed 0 --workdir "$WORK/src" \
     >/dev/null 2>&1; then DATA="$WORK/emoji/all.csv"; else DATA=sample_data/all.csv; fi
echo "data: $DATA"
CONFIG=${CONFIG:-configs/pretrained.yaml}
[ -f "$CONFIG" ] || CONFIG=""
"$PY" - "$DATA" "$CONFIG" <<'PYEOF'
import json, sys, time
from pathlib import Path
import torch
from mmcli.config import load_config
from mmcli.train import train
data, config = sys.argv[1], sys.argv[2] or None
cfg = load_config(config, ["train.device=cuda", "train.precision=bf16", "train.epochs=15"])
torch.cuda.reset_peak_memory_stats()
start = time.perf_counter()
run = train(Path(data), cfg, output=Path(sys.argv[1]).parent / "gpu-run")
wall = time.perf_counter() - start
metrics = json.loads((run / "metrics.json").read_text())
import csv
hist = list(csv.DictReader(open(run / "history.csv")))
sps = sorted(float(h["samples_per_s"]) for h in hist)[len(hist) // 2]
split = "test" if "test" in metrics else "val"
print(json.dumps({"gpu": torch.cuda.get_device_name(0), "config": config, "train_wall_s": round(wall, 1),
                  "median_train_samples_per_s": round(sps), "peak_gpu_mem_mib":
                  round(torch.cuda.max_memory_allocated() / 2**20), f"{split}_accuracy":
                  round(metrics[split]["accuracy"], 4), "epochs": len(hist)}, indent=2))
PYEOF
