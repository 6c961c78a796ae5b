"""Do EfficientNet-Lite0's mid-level stages help? The linear probe of benchmarks/accuracy.py (StandardScaler +
LogisticRegression, C on val) over the pooled 1280-d features alone, and with the average-pooled outputs of the
last stages appended (stage 7: block 16, 320 channels; 6: block 15, 192; 5: block 11, 112; 4: block 8, 80), image
only and fused with MiniLM's features, on each set's test split.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/stage_probe.py noto openmoji mdi cross | tee benchmarks/results/stage_probe.log
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import COMMON, probe

TAPS = (8, 11, 15, 16)  # blocks() indices of the last MBConv block of stages 4, 5, 6 and 7
COMBOS = {"final": ["final"], "+7": ["final", 16], "+6+7": ["final", 15, 16], "+5+6+7": ["final", 11, 15, 16],
          "+4..7": ["final", 8, 11, 15, 16]}


@torch.inference_mode()
def stage_features(csv: Path) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """-> ({tap or "final": [N, C]}, text [N, 384], labels [N], split codes [N]) over the valid rows."""
    from mmcli.config import load_config
    from mmcli.data.dataset import Batches, input_specs
    from mmcli.fit import _states
    from mmcli.frozen import frozen_embeddings
    from mmcli.models.classifier import build_model, frozen_inputs
    from mmcli.train import _prepare

    cfg = load_config(None, COMMON, preset="pretrained")
    _, cache, _ = _prepare(csv, cfg, None)
    model = build_model(cfg, cache.inputs, len(cache.meta["label_names"]), states=_states(cache))
    img, txt = (next(n for n in frozen_inputs(model) if model.kinds[n] == kind) for kind in ("image", "text"))
    text = frozen_embeddings(model, cache, [txt], 128, "cpu")[txt]
    enc, last = model.encoders[img].eval(), len(model.encoders[img].blocks()) - 1
    tabs: dict = {}
    for inputs, _, _, pos in Batches(cache, cache.indices(), 128, input_specs(model), device="cpu", skip={txt}):
        x = inputs[img]
        for i in range(last + 1):
            x = enc._run(x, i, i + 1)
            if i in TAPS or i == last:
                pooled = x.mean(dim=(2, 3))
                key = "final" if i == last else i
                tabs.setdefault(key, torch.zeros(len(cache.rows), pooled.shape[1]))[pos] = pooled
    keep = cache.valid
    return {k: v.numpy()[keep] for k, v in tabs.items()}, text.numpy()[keep], cache.labels[keep], cache.split[keep]


def main() -> None:
    torch.set_num_threads(2)
    data = Path(os.environ.get("MM_SETS", "/tmp/mm-sets"))  # where benchmarks/datasets.py built the sets
    print("# test accuracy, image only / fused; columns: the pooled features used")
    for name in sys.argv[1:]:
        t0 = time.time()
        tabs, text, y, split = stage_features(data / name / "all.csv")
        cells = []
        for cname, keys in COMBOS.items():
            xi = np.concatenate([tabs[k] for k in keys], 1)
            image = probe(xi, y, split, "test")["accuracy"]
            fused = probe(np.concatenate([xi, text], 1), y, split, "test")["accuracy"]
            cells.append(f"{cname} {image:.3f}/{fused:.3f}")
        print(f"{name} ({time.time() - t0:.0f} s): " + "  ".join(cells), flush=True)


if __name__ == "__main__":
    main()
