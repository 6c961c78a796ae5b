#!/usr/bin/env bash
# Fine-tuning with and without the table of the frozen blocks' outputs (train.cache_prefix): the same runs, 3 epochs
# each, on the full Noto emoji set (built by benchmarks/emoji.py into $DATA when it has no all.csv). Compare the
# "epochs s" columns; the accuracies should agree.
#     bash benchmarks/emoji_prefix_cache.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-/tmp/emoji_full}
export HF_HUB_OFFLINE=1
for flag in true false; do
  echo "== train.cache_prefix=$flag"
  .venv/bin/python benchmarks/emoji.py --data "$DATA" --only "fine-tuned: image only" "fine-tuned: text only" \
    --set train.epochs=3 --set train.patience=0 --set "train.cache_prefix=$flag" 2>&1 | grep -v Warn
done
