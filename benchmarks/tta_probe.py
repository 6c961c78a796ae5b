"""Screen test-time views of the image (a mirror, a zoom) on trained runs, without retraining.

Each test row is scored as it is and as one or more altered views of its image; the views' class probabilities
are averaged (the text and other inputs are the same in every view). Printed per set: test accuracy of the fused
model and of its image head alone (the late-fusion heads, `best`), as is and with each set of views, mean ± sd over
the seeds' runs.

Runs come from `benchmarks/accuracy.py --recipes best --modalities fused --keep-runs DIR` (folders named
`<set>-<recipe>-fused-<seed>`); `cross` is scored with Noto's runs.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/tta_probe.py --runs /tmp/exp/runs_best | tee benchmarks/results/tta_probe.log
"""

from __future__ import annotations

import argparse
import os
import statistics
from pathlib import Path

import torch
import torch.nn.functional as F

TWINS = {"cross": "noto"}


def zoom(x: torch.Tensor, scale: float) -> torch.Tensor:
    """`[B, 3, S, S]` -> the centre `scale` share (< 1: zoom in) or the picture shrunk onto its border colour
    (> 1: zoom out), back at `S` px."""
    size = x.shape[-1]
    if scale < 1:
        cut = round(size * scale)
        lo = (size - cut) // 2
        return F.interpolate(x[..., lo : lo + cut, lo : lo + cut], size=(size, size), mode="bilinear",
                             antialias=True, align_corners=False)
    inner = round(size / scale)
    small = F.interpolate(x, size=(inner, inner), mode="bilinear", antialias=True, align_corners=False)
    lo = (size - inner) // 2
    out = x[..., :1, :1].expand_as(x).clone()  # the top-left pixel's colour: the background of these sets
    out[..., lo : lo + inner, lo : lo + inner] = small
    return out


VIEWS = {
    "flip": lambda x: x.flip(-1),
    "zoom-in 0.9": lambda x: zoom(x, 0.9),
    "zoom-out 1.15": lambda x: zoom(x, 1.15),
}
RULES = {  # name -> the views averaged (identity is always in)
    "as is": (),
    "+ flip": ("flip",),
    "+ zoom-in": ("zoom-in 0.9",),
    "+ zoom-out": ("zoom-out 1.15",),
    "+ flip + zoom-in + zoom-out": ("flip", "zoom-in 0.9", "zoom-out 1.15"),
    "flip, embeddings averaged": "flip-emb",
}


@torch.no_grad()
def view_probs(run: Path, csv: Path, split: int) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor]], torch.Tensor]:
    """-> ({view: (fused probabilities `[N, C]`, image-head probabilities `[N, C]` or None)}, labels `[N]`)."""
    from mmcli.data.dataset import Batches, input_specs
    from mmcli.loading import load_run, prepare_csv

    loaded = load_run(run)
    model = loaded.model.eval()
    cache, _ = prepare_csv(loaded, csv, need_label=True)
    images = [i["name"] for i in cache.inputs if i["kind"] == "image"]
    batches = Batches(cache, cache.indices(split), 128, input_specs(model), device=loaded.device)
    out: dict[str, list] = {}
    labels = []
    for inputs, present, y, _ in batches:
        labels.append(y)
        for view, fn in {"id": lambda x: x, **VIEWS}.items():
            shown = {k: fn(v) if k in images else v for k, v in inputs.items()}
            logits, aux = model(shown, present, return_aux=True)
            head = aux.get(images[0]) if images else None
            out.setdefault(view, []).append((logits.float().softmax(-1),
                                             None if head is None else head.float().softmax(-1)))
        # the mirror averaged at the embedding (what an encoder-level rule would do) rather than the probabilities
        embs = model.encode_inputs(inputs)
        flipped = model.encode_inputs({k: v.flip(-1) if k in images else v for k, v in inputs.items()})
        embs = {k: (v + flipped[k]) / 2 if k in images else v for k, v in embs.items()}
        logits, aux = model.classify(model.with_missing(embs, present), present, return_aux=True)
        head = aux.get(images[0]) if images else None
        out.setdefault("flip-emb", []).append((logits.float().softmax(-1),
                                               None if head is None else head.float().softmax(-1)))
    merged = {}
    for view, parts in out.items():
        fused = torch.cat([p[0] for p in parts])
        head = None if parts[0][1] is None else torch.cat([p[1] for p in parts])
        merged[view] = (fused, head)
    return merged, torch.cat(labels)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=Path, required=True, help="folder of <set>-<recipe>-fused-<seed> run folders")
    ap.add_argument("--recipe", default="best", help="the recipe part of the run folders' names")
    ap.add_argument("--data", type=Path, default=Path("/tmp/mm-sets"), help="built sets (benchmarks/datasets.py)")
    ap.add_argument("--sets", nargs="+", default=["noto", "cross", "openmoji", "mdi"])
    args = ap.parse_args()
    os.environ.setdefault("MM_QUIET", "1")
    from mmcli.allocator import keep_freed_memory

    keep_freed_memory()  # as `mm eval` does: several times faster through the image encoder on a CPU
    table: dict[tuple[str, str], dict[str, list[float]]] = {}
    for name in args.sets:
        pattern = f"{TWINS.get(name, name)}-{args.recipe}-fused-*"
        for run in sorted(r for r in args.runs.glob(pattern) if "-on-" not in r.name):
            probs, labels = view_probs(run, args.data / name / "all.csv", 2)
            for rule, views in RULES.items():
                for part, k in (("fused", 0), ("image head", 1)):
                    if probs["id"][k] is None:
                        continue
                    if isinstance(views, str):  # one precomputed view stands alone
                        p = probs[views][k]
                    else:
                        p = sum(probs[v][k] for v in ("id", *views)) / (1 + len(views))
                    acc = (p.argmax(1) == labels).float().mean().item()
                    table.setdefault((part, rule), {}).setdefault(name, []).append(acc)
    print(f"# test-time image views over trained {args.recipe} runs ({args.runs}), test accuracy, mean ± sd\n")
    print("| model | views | " + " | ".join(args.sets) + " | mean |")
    print("|---|---|" + "---|" * (len(args.sets) + 1))
    for (part, rule), per_set in table.items():
        sets = [s for s in args.sets if s in per_set]
        cells = [f"{statistics.mean(per_set[s]):.3f} ± {statistics.pstdev(per_set[s]):.3f}" for s in sets]
        mean = statistics.mean(statistics.mean(per_set[s]) for s in sets)
        print(f"| {part} | {rule} | " + " | ".join(cells) + f" | {mean:.3f} |")


if __name__ == "__main__":
    main()
