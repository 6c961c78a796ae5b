"""Screen rules for combining a late-fusion model's per-input heads, on trained `best` runs.

A late-fusion run (`--preset best`) averages its heads' logits with weights fitted on the validation split. Under a
style shift (`cross`: trained on Noto's artwork, tested on OpenMoji's) the image head is confidently wrong where
the validation split said it was reliable. This script scores other rules over the same heads' logits, without
retraining: the mean of the heads' probabilities (a mixture), and per-row weights that favour the more confident
head (inverse entropy, or the single most confident head).

Runs come from `benchmarks/accuracy.py --recipes best --modalities fused --keep-runs DIR` (folders named
`<set>-best-fused-<seed>`); `cross` is scored with Noto's runs.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/fusion_probe.py --runs /tmp/exp/bestruns | tee benchmarks/results/fusion_probe.log
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import torch

TWINS = {"cross": "noto"}  # a set scored with another set's runs (same train / val rows)


def head_logits(run: Path, csv: Path, split: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """-> (per-head logits `[N, M, C]` with the fitted weights applied, presence `[N, M]`, labels `[N]`)."""
    from mmcli.data.dataset import Batches, input_specs
    from mmcli.late_weights import _collect
    from mmcli.loading import load_run, prepare_csv

    loaded = load_run(run)
    cache, _ = prepare_csv(loaded, csv, need_label=True)
    batches = Batches(cache, cache.indices(split), 128, input_specs(loaded.model), device=loaded.device)
    logits, present, labels = _collect(loaded.model, batches)
    return logits * loaded.model.fusion.weights[None, :, None], present, labels


def rules(logits: torch.Tensor, present: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each rule's class scores `[N, C]` (arg-max is the prediction) from weighted head logits `[N, M, C]`."""
    w = present.float().unsqueeze(-1)
    probs = logits.softmax(-1)
    entropy = -(probs * probs.clamp_min(1e-12).log()).sum(-1, keepdim=True)  # [N, M, 1]
    conf = probs.max(-1, keepdim=True).values
    inv_h = w / (entropy + 1e-3)
    return {
        "weighted logits (late_weighting fixed)": (logits * w).sum(1),
        "mean probabilities": (probs * w).sum(1),
        "inverse-entropy weighted probabilities": (probs * inv_h).sum(1),
        "inverse-entropy weighted logits (entropy, in best)": (logits * inv_h).sum(1),
        "most confident head": torch.gather(probs, 1, (conf * w).argmax(1, keepdim=True).expand(-1, 1,
                                                                                            probs.shape[-1])).squeeze(1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, required=True, help="folder of <set>-best-fused-<seed> run folders")
    ap.add_argument("--data", type=Path, default=Path("/tmp/mm-sets"), help="built sets (benchmarks/datasets.py)")
    ap.add_argument("--sets", nargs="+", default=["noto", "cross", "openmoji", "mdi"])
    args = ap.parse_args()
    os.environ.setdefault("MM_QUIET", "1")
    table: dict[str, dict[str, list[float]]] = {}
    for name in args.sets:
        runs = sorted(r for r in args.runs.glob(f"{TWINS.get(name, name)}-best-fused-*") if "-on-" not in r.name)
        for run in runs:
            logits, present, labels = head_logits(run, args.data / name / "all.csv", 2)
            for rule, scores in rules(logits, present).items():
                acc = (scores.argmax(1) == labels).float().mean().item()
                table.setdefault(rule, {}).setdefault(name, []).append(acc)
    print(f"# late-fusion rules over trained best runs ({args.runs}), test accuracy, mean ± sd over seeds\n")
    print("| rule | " + " | ".join(args.sets) + " | mean |")
    print("|---|" + "---|" * (len(args.sets) + 1))
    for rule, per_set in table.items():
        means = [statistics.mean(per_set[s]) for s in args.sets]
        cells = [f"{statistics.mean(v):.3f} ± {statistics.pstdev(v):.3f}" for v in (per_set[s] for s in args.sets)]
        print(f"| {rule} | " + " | ".join(cells) + f" | {statistics.mean(means):.3f} |")


if __name__ == "__main__":
    main()
