"""Mixed inputs: Noto emoji (image + name, 9 categories) with real metadata columns beside them.

The set is the accuracy benchmark's `noto` (benchmarks/datasets.py: same images, names, labels and fixed split),
joined on the hexcode with three more columns from the same emoji-datasource-google package's `emoji.json`:
  added_in      numeric: the Emoji version that introduced it ("0.6" .. "15.1")
  codepoints    numeric: how many code points the emoji is made of (flags and sequences have several)
  skin_tones    categorical: "yes" when the emoji has skin-tone variants
Nothing of the label is in them directly (no sort order, no sheet position), but they tell some categories apart
(people have skin tones, flags are pairs of regional indicators) where images and names are weak.

For seeds 0 1 2: `mm train` with the zero-config preset (frozen EfficientNet-Lite0 + MiniLM embeddings) on
(a) image + text only and (b) image + text + the three columns, then `mm eval --split test`, and for (b) once
`mm eval --ablate` (each input hidden in turn). Baseline in the same script: a logistic regression on the three
columns alone (StandardScaler / one-hot, C on val), which says how much they carry without images or text.

    python benchmarks/datasets.py noto                   # once: /tmp/mm-sets/noto/all.csv (see ASSETS.md)
    HF_HUB_OFFLINE=1 python benchmarks/mixed.py | tee benchmarks/results/mixed.log
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
EXTRA = ("added_in", "codepoints", "skin_tones")


def build(noto: Path, emoji_json: Path, out: Path) -> tuple[Path, Path]:
    """-> (base.csv: image,text,label,split; mixed.csv: the same plus EXTRA), both beside noto's images."""
    meta = {e["unified"].lower(): e for e in json.loads(emoji_json.read_text(encoding="utf-8"))}
    with (noto / "all.csv").open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    base, mixed = noto / "base.csv", noto / "mixed.csv"
    for path, extra in ((base, False), (mixed, True)):
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["image", "text", *(EXTRA if extra else ()), "label", "split"])
            for r in rows:
                e = meta[Path(r["image"]).stem]
                cols = [e.get("added_in") or "", str(len(e["unified"].split("-"))),
                        "yes" if e.get("skin_variations") else "no"] if extra else []
                w.writerow([r["image"], r["text"], *cols, r["label"], r["split"]])
    return base, mixed


def baseline(mixed: Path) -> float:
    """LogisticRegression on EXTRA alone (C from a grid on val, refitted on train + val) -> test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    with mixed.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    num = np.array([[float(r["added_in"] or 0), float(r["codepoints"])] for r in rows])
    cat = np.array([[r["skin_tones"]] for r in rows])
    y = np.array([r["label"] for r in rows])
    split = np.array([r["split"] for r in rows])
    tr, va, te = split == "train", split == "val", split == "test"
    x = np.hstack([StandardScaler().fit(num[tr]).transform(num), OneHotEncoder().fit(cat[tr]).transform(cat).toarray()])
    best = max((LogisticRegression(C=c, max_iter=2000).fit(x[tr], y[tr]).score(x[va], y[va]), c)
               for c in (0.01, 0.1, 1.0, 10.0, 100.0))[1]
    fit = LogisticRegression(C=best, max_iter=2000).fit(x[tr | va], y[tr | va])
    return float(fit.score(x[te], y[te]))


def mm(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmcli", *args], env=env, capture_output=True, text=True,
                          check=False)


def train_eval(csv_path: Path, seed: int, out: Path, env: dict, ablate: bool = False) -> dict:
    start = time.perf_counter()
    proc = mm(["train", str(csv_path), "-o", str(out), "--set", f"train.seed={seed}"], env)
    wall = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"train failed on {csv_path} seed {seed}:\n{proc.stderr[-2000:]}")
    args = ["eval", str(out), str(csv_path), "--split", "test", "--json", *(["--ablate"] if ablate else [])]
    proc = mm(args, env)
    if proc.returncode:
        raise SystemExit(f"eval failed:\n{proc.stderr[-2000:]}")
    metrics = json.loads(proc.stdout)
    return {"accuracy": metrics["accuracy"], "wall": wall, "ablation": metrics.get("ablation"),
            "inputs": [(i["name"], i["kind"]) for i in json.loads((out / "inputs.json").read_text())]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--noto", type=Path, default=Path("/tmp/mm-sets/noto"))
    ap.add_argument("--emoji-json", type=Path, default=Path("/tmp/mm-src/noto/package/emoji.json"))
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    base, mixed = build(args.noto, args.emoji_json, args.noto)
    tmp = Path(tempfile.mkdtemp(prefix="mm-mixed-"))
    env = {**os.environ, "MM_QUIET": "1", "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    results = {"image + text": [], "image + text + 3 columns": []}
    ablation = None
    for seed in args.seeds:
        for name, path in (("image + text", base), ("image + text + 3 columns", mixed)):
            first = seed == args.seeds[0] and path == mixed
            r = train_eval(path, seed, tmp / f"{path.stem}-{seed}", env, ablate=first)
            ablation = r["ablation"] if first else ablation
            results[name].append(r)
            print(f"  {name} seed {seed}: test acc {r['accuracy']:.4f} ({r['wall']:.0f} s); inputs {r['inputs']}",
                  file=sys.stderr, flush=True)
    probe = baseline(mixed)
    print(f"# mixed inputs on Noto emoji (9 categories), test split, seeds {args.seeds}, zero-config preset, "
          f"{os.cpu_count()} CPU cores, {(time.perf_counter() - start) / 60:.1f} min\n")
    print("| inputs | test accuracy | train wall s (median) |\n|---|---|---|")
    print(f"| LogReg on the 3 columns alone (baseline) | {probe:.4f} | - |")
    for name, rs in results.items():
        acc = [r["accuracy"] for r in rs]
        sd = statistics.stdev(acc) if len(acc) > 1 else 0.0
        print(f"| mmcli {name} | {statistics.mean(acc):.4f} ± {sd:.4f} | {statistics.median(r['wall'] for r in rs):.0f} |")
    print(f"\nablation of the mixed model, seed {args.seeds[0]} (`mm eval --ablate`):\n")
    print("```\n" + json.dumps(ablation, indent=1) + "\n```")


if __name__ == "__main__":
    main()
