"""Longer texts: the OpenMoji set (benchmarks/datasets.py) with its text made of the annotation, the CLDR tags and
OpenMoji's own tags (12 tokens at the median, up to 68; 5 % over 32), trained with each text column cut at its
longest training text (the default) against a fixed 32 tokens (`data.max_tokens=32`, the earlier default), and
with batches of rows of similar length (`train.sampler=length`): test accuracy over 3 seeds and the median `train`
time, per recipe, beside the probe on the same features.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/long_text.py | tee benchmarks/results/long_text.log
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/long_text.py --recipes best --variants fitted length-batches
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import COMMON, RECIPES, features, probe, run_mm
from datasets import build

VARIANTS = {  # name -> (label, overrides)
    "fitted": ("fitted (default)", []),
    "32": ("32 tokens", ["data.max_tokens=32"]),
    "length-batches": ("fitted, length batches", ["train.sampler=length"]),
}


def tagged_set(data: Path, src: Path) -> Path:
    """openmoji/all.csv with the text replaced -> <data>/openmoji-tags/all.csv (images shared by absolute path)."""
    base = build("openmoji", data, src)
    meta = json.loads((src / "openmoji" / "package" / "data" / "openmoji.json").read_text(encoding="utf-8"))
    text = {e["hexcode"].lower(): ", ".join(t for t in (e["annotation"], e["tags"], e["openmoji_tags"]) if t)
            for e in meta}
    out = data / "openmoji-tags" / "all.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(base, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["text"] = text[Path(r["image"]).stem]
        r["image"] = str((base.parent / r["image"]).resolve())
    with open(out, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipes", nargs="+", default=["zero-config"], choices=list(RECIPES))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS),
                    help="fitted: each text column's fitted length; 32: a fixed 32 tokens; length-batches: fitted, "
                         "with train.sampler=length (rows of similar length share a batch)")
    ap.add_argument("--data", type=Path, default=Path("/tmp/mm-sets"))
    ap.add_argument("--src", type=Path, default=Path("/tmp/mm-src"))
    args = ap.parse_args()
    path = tagged_set(args.data, args.src)
    feats, y, split = features(path)  # the probe reads the default (fitted-length) tables
    p = probe(np.hstack([feats["image"], feats["text"]]), y, split, "test")
    print(f"openmoji-tags: probe fused {p['accuracy']:.3f} (C={p['C']})")
    print("| recipe | text length | fused test accuracy | median train s | fitted length |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for recipe in args.recipes:
            preset, extra = RECIPES[recipe]
            for variant in args.variants:
                label, sets = VARIANTS[variant]
                res = [run_mm(path, preset, extra + sets, s, Path(tmp) / f"{recipe}-{variant}-{s}", "test")
                       for s in args.seeds]
                acc = [r["accuracy"] for r in res]
                inputs = json.loads((res[0]["run"] / "inputs.json").read_text(encoding="utf-8"))
                tokens = next(i["tokens"] for i in inputs if i["kind"] == "text")
                print(f"| {recipe} | {label} | {statistics.mean(acc):.3f} ± {statistics.pstdev(acc):.3f} | "
                      f"{statistics.median(r['wall'] for r in res):.1f} | {tokens} |", flush=True)
    print(f"common overrides: {COMMON}")


if __name__ == "__main__":
    main()
