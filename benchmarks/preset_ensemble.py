"""Screen: does averaging a `best` run's and a zero-config run's probabilities (same set, same seed) beat either?

Reads the runs `benchmarks/accuracy.py --keep-runs RUNS --keep-cache CACHE` trained (noto, openmoji, mdi; cross
scores noto's runs on its own test rows) and scores them on the test split: each alone, the mean of their
probabilities, the mean of their log-probabilities, and a weight w * best + (1 - w) * zero-config chosen on the
val split (grid 0, 0.1, ..., 1).

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/preset_ensemble.py RUNS CACHE > benchmarks/results/preset_ensemble.log
"""
import os
import sys
from pathlib import Path

import numpy as np

SETS = ("noto", "openmoji", "mdi", "cross")


def probs(run: Path, csv: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """-> (probabilities [N, C], labels [N]) of `run` over `csv`'s `split`, in cache order."""
    from mmcli.data.dataset import Batches, input_specs
    from mmcli.evaluate import _scored_rows, predict_probs
    from mmcli.frozen import kept_tables
    from mmcli.loading import load_run, prepare_csv

    loaded = load_run(run)
    cache, _ = prepare_csv(loaded, csv, need_label=True)
    idx, _, _ = _scored_rows(cache, csv, split)
    cached, skip = kept_tables(loaded.model, cache, loaded.device)
    p, y, pos = predict_probs(loaded.model, Batches(cache, idx, 64, input_specs(loaded.model), device=loaded.device,
                                                    skip=skip), cached)
    order = np.argsort(pos)
    return p[order], y[order]


def scores(runs: Path, name: str, seed: int, data: Path) -> tuple[dict, float]:
    src = "noto" if name == "cross" else name
    csv = data / name / "all.csv"
    out = {}
    for split in ("val", "test"):
        pb, y = probs(runs / f"{src}-best-fused-{seed}", csv, split)
        pz, y2 = probs(runs / f"{src}-zero-config-fused-{seed}", csv, split)
        assert (y == y2).all()
        out[split] = (pb, pz, y)
    vb, vz, vy = out["val"]
    w = max(np.linspace(0, 1, 11), key=lambda w: (((w * vb + (1 - w) * vz).argmax(1) == vy).mean(), w))
    pb, pz, y = out["test"]

    def acc(p: np.ndarray) -> float:
        return float((p.argmax(1) == y).mean())

    return {"best": acc(pb), "zero-config": acc(pz), "mean": acc((pb + pz) / 2),
            "log mean": acc(np.log(pb + 1e-9) + np.log(pz + 1e-9)), "w on val": acc(w * pb + (1 - w) * pz)}, w


def main() -> None:
    runs, cache = Path(sys.argv[1]), sys.argv[2]
    data = Path(sys.argv[3]) if len(sys.argv) > 3 else Path("/tmp/mm-sets")
    os.environ.update(MM_QUIET="1", HF_HUB_OFFLINE="1", MM_CACHE_DIR=cache)
    res: dict[str, list[dict]] = {}
    for name in SETS:
        for seed in range(3):
            r, w = scores(runs, name, seed, data)
            res.setdefault(name, []).append(r)
            print(f"{name} seed {seed}: " + ", ".join(f"{k} {v:.4f}" for k, v in r.items()) + f"; w {w:.1f}",
                  flush=True)
    keys = list(res[SETS[0]][0])
    print(f"\n# {runs}: test accuracy, mean ± std over seeds 0-2\n\n| set | " + " | ".join(keys) + " |")
    print("|---" * (len(keys) + 1) + "|")
    for name, rs in res.items():
        print(f"| {name} | " + " | ".join(f"{np.mean([r[k] for r in rs]):.3f} ± {np.std([r[k] for r in rs]):.3f}"
                                          for k in keys) + " |")
    print("| mean | " + " | ".join(f"{np.mean([np.mean([r[k] for r in rs]) for rs in res.values()]):.3f}"
                                   for k in keys) + " |")


if __name__ == "__main__":
    main()
