"""Which EfficientNet-Lite? The linear probe of benchmarks/accuracy.py (StandardScaler + LogisticRegression, C on
val) over the frozen pooled features of EfficientNet-Lite0, Lite1 and Lite2 (224 / 240 / 260 px inputs), image only
and fused with MiniLM's features, on each set's test split; with the seconds the frozen features took (cold cache).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/encoder_probe.py noto openmoji mdi cross | tee benchmarks/results/encoder_probe.log
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import features, probe

ENCODERS = ("effnet_lite0", "effnet_lite1", "effnet_lite2")


def main() -> None:
    torch.set_num_threads(2)
    data = Path(os.environ.get("MM_SETS", "/tmp/mm-sets"))  # where benchmarks/datasets.py built the sets
    print("# test accuracy of the probe: image only / fused (image + MiniLM); seconds for the frozen features")
    for name in sys.argv[1:]:
        cells = []
        for encoder in ENCODERS:
            with tempfile.TemporaryDirectory() as tmp:
                t0 = time.time()
                tabs, y, split = features(data / name / "all.csv", (f"model.image_encoder={encoder}",), Path(tmp))
                secs = time.time() - t0
            image = probe(tabs["image"], y, split, "test")["accuracy"]
            fused = probe(np.concatenate([tabs["image"], tabs["text"]], 1), y, split, "test")["accuracy"]
            cells.append(f"{encoder} {image:.3f}/{fused:.3f} ({secs:.0f} s)")
        print(f"{name}: " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
