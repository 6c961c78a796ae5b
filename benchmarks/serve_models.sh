#!/usr/bin/env bash
# mm serve with real models: trains sample_data with the fast and pretrained presets, exports both, and runs
# benchmarks/serve.py on each bundle and on the pretrained run folder (torch). Log: benchmarks/results/serve_models.log
#   bash benchmarks/serve_models.sh | tee benchmarks/results/serve_models.log
set -e
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1 MM_QUIET=1
B=/tmp/sb; rm -rf $B; mkdir -p $B
.venv/bin/mm train sample_data/all.csv -o $B/fast --preset fast --set train.epochs=3 > $B/train_fast.log 2>&1
.venv/bin/mm export $B/fast -o $B/fast_bundle > $B/export_fast.log 2>&1
.venv/bin/mm train sample_data/all.csv -o $B/pre --preset pretrained --set train.epochs=3 > $B/train_pre.log 2>&1
.venv/bin/mm export $B/pre -o $B/pre_bundle > $B/export_pre.log 2>&1
echo "## fast preset bundle (sample_data, mm train --preset fast; mm export)"
.venv/bin/python benchmarks/serve.py --path $B/fast_bundle --requests 400
echo
echo "## pretrained preset bundle (EfficientNet-Lite0 + MiniLM, mm train --preset pretrained; mm export)"
.venv/bin/python benchmarks/serve.py --path $B/pre_bundle --requests 200
echo
echo "## pretrained preset run folder (torch)"
.venv/bin/python benchmarks/serve.py --path $B/pre --requests 200
