"""Linear probes on the frozen features of the emoji benchmark: how far can any fusion of them go?

Computes (or reuses from the cache folder) the frozen EfficientNet-Lite0 and MiniLM features that
`benchmarks/emoji.py` trains on, fits scikit-learn logistic regressions on the train split for image, text and both
(concatenated), and prints test accuracy plus the "oracle": the share of test rows that the image or the text probe
gets right. No fusion of these two probes' decisions can beat that share by much.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/emoji_linear_probe.py --data /tmp/emoji_full
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from emoji import COMMON, CONFIG, FROZEN, build_data


def features(csv_path: Path) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """-> ({"image": [N, 1280], "text": [N, 384]}, labels [N], split codes [N]) over the valid rows."""
    from mmcli.config import load_config
    from mmcli.fit import _states
    from mmcli.frozen import frozen_embeddings
    from mmcli.models.classifier import build_model, frozen_inputs
    from mmcli.train import _prepare

    cfg = load_config(CONFIG, COMMON + FROZEN)  # the config fine-tunes; the probes need fully frozen encoders
    _, cache, _ = _prepare(csv_path, cfg, None)
    model = build_model(cfg, cache.inputs, len(cache.meta["label_names"]), states=_states(cache))
    tables = frozen_embeddings(model, cache, frozen_inputs(model), 128, "cpu")
    keep = cache.valid
    return {k: v.numpy()[keep] for k, v in tables.items()}, cache.labels[keep], cache.split[keep]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder of the built set (see benchmarks/emoji.py)")
    ap.add_argument("--src", type=Path, default=Path("/tmp/emoji_src"))
    ap.add_argument("--C", type=float, nargs="+", default=[0.01, 0.1, 1.0], help="inverse regularisation strengths")
    args = ap.parse_args()
    os.environ.setdefault("MM_QUIET", "1")
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    feats, y, split = features(build_data(args.data, args.src))
    tr, te = split == 0, split == 2

    def probe(x: np.ndarray, c: float) -> np.ndarray:
        x = StandardScaler().fit(x[tr]).transform(x)
        return LogisticRegression(C=c, max_iter=3000).fit(x[tr], y[tr]).predict(x[te])

    print(f"{tr.sum()} train / {te.sum()} test rows; features {[f'{k} {v.shape[1]}-d' for k, v in feats.items()]}\n")
    print("| C | image | text | both (concatenated) | oracle (image or text right) |\n|---|---|---|---|---|")
    for c in args.C:
        img, txt = probe(feats["image"], c), probe(feats["text"], c)
        both = probe(np.hstack([feats["image"], feats["text"]]), c)
        acc = {k: float((p == y[te]).mean()) for k, p in (("image", img), ("text", txt), ("both", both))}
        oracle = float(((img == y[te]) | (txt == y[te])).mean())
        print(f"| {c} | {acc['image']:.3f} | {acc['text']:.3f} | {acc['both']:.3f} | {oracle:.3f} |")


if __name__ == "__main__":
    main()
