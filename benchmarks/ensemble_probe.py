"""Seed ensembles of the zero-config model: the test accuracy of the mean of 3 or 5 runs' probabilities (seeds
0..4, `mm predict` on the test rows) against the single runs, per set; cross scores noto's runs on its own test rows.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ensemble_probe.py | tee benchmarks/results/ensemble_probe.log
"""
import csv
import os
import sys

os.environ.setdefault("MM_CACHE_DIR", "/tmp/exp/cache")  # the accuracy benchmark's --keep-cache folder
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import COMMON

from mmcli.config import load_config
from mmcli.predict import predict_csv
from mmcli.train import train

SEEDS = range(5)


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def main() -> None:
    root = Path(os.environ.get("MM_ENSEMBLE_DIR", "/tmp/mm-ensembles"))  # the runs and their predictions
    sets = Path(os.environ.get("MM_SETS", "/tmp/mm-sets"))
    for name in ("noto", "openmoji", "mdi", "cross"):
        src = sets / name / "all.csv"
        rows = read_rows(src)
        test = [r for r in rows if r["split"] == "test"]
        tcsv = root / f"{name}_test.csv"
        root.mkdir(parents=True, exist_ok=True)
        with open(tcsv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=rows[0].keys())
            w.writeheader()
            w.writerows(test)
        train_set = "noto" if name == "cross" else name
        probs = []
        for s in SEEDS:
            out = root / train_set / f"s{s}"
            if not (out / "metrics.json").exists():
                cfg = load_config(None, COMMON + [f"train.seed={s}"], preset="pretrained")
                train(sets / train_set / "all.csv", cfg, output=out)
            pred = predict_csv(out, tcsv, out=root / f"{name}_s{s}.csv")
            pr = read_rows(pred)
            labels = [k[2:] for k in pr[0] if k.startswith("p_")]
            probs.append(np.array([[float(r["p_" + k]) for k in labels] for r in pr]))
        y = np.array([labels.index(r["label"]) if r["label"] in labels else -1 for r in test])
        single = [float((p.argmax(1) == y).mean()) for p in probs]
        e3 = float((sum(probs[:3]).argmax(1) == y).mean())
        e5 = float((sum(probs).argmax(1) == y).mean())
        print(f"{name}: single {np.mean(single[:3]):.3f} (seeds 0-2; all {', '.join(f'{a:.3f}' for a in single)})  "
              f"ensemble of 3 {e3:.3f}  of 5 {e5:.3f}", flush=True)


if __name__ == "__main__":
    main()
