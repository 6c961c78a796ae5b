#!/usr/bin/env python3
"""Build an image+text classification dataset from the Google Noto emoji set.

Source: the npm package ``emoji-datasource-google@16.0.0`` (metadata MIT, iamcal; images Apache-2.0,
Google Noto Emoji). Each base emoji (no skin-tone variants, no "Component" category) becomes one row:
``image`` (64x64 RGB PNG, composited on white), ``text`` (lowercased emoji name), ``label`` (category).

Default mode writes a small stratified subset split train/val/test 70/15/15; ``--full`` writes every
base emoji split train/test 70/30. Standalone: needs only the standard library and Pillow.

    python sample_data/build.py --out sample_data --seed 0 --workdir /tmp/emoji_src
    python sample_data/build.py --full --out /tmp/emoji_full --seed 0 --workdir /tmp/emoji_src
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import tarfile
from collections import Counter
from pathlib import Path

from PIL import Image

PACKAGE_SPEC = "emoji-datasource-google@16.0.0"
TARBALL_NAME = "emoji-datasource-google-16.0.0.tgz"
DROPPED_CATEGORIES = {"Component"}
SPLIT_ORDER = ("train", "val", "test")


def fetch_emoji(workdir: Path) -> Path:
    """Download (``npm pack``) and extract the emoji package into ``workdir``; return the package folder.

    Does nothing if ``workdir/package/emoji.json`` already exists.
    """
    workdir = Path(workdir)
    pkg = workdir / "package"
    if (pkg / "emoji.json").is_file():
        return pkg
    workdir.mkdir(parents=True, exist_ok=True)
    tarball = workdir / TARBALL_NAME
    if not tarball.is_file():
        subprocess.run(
            ["npm", "pack", "--loglevel=error", PACKAGE_SPEC], cwd=workdir, check=True, stdout=subprocess.DEVNULL
        )
    with tarfile.open(tarball, "r:gz") as tar:
        extra = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
        tar.extractall(workdir, **extra)
    return pkg


def load_base_emoji(pkg: Path) -> list[dict]:
    """Read ``emoji.json`` and return base emoji as dicts with ``image_path``, ``name``, ``category``,
    ``subcategory``.

    Skin-tone variants are ignored, the "Component" category is dropped, entries whose 64px image is
    missing are skipped, and the result is sorted by the ``unified`` code point sequence.
    """
    pkg = Path(pkg)
    img_dir = pkg / "img" / "google" / "64"
    entries = json.loads((pkg / "emoji.json").read_text(encoding="utf-8"))
    items = []
    for entry in sorted(entries, key=lambda e: e["unified"]):
        if entry["category"] in DROPPED_CATEGORIES:
            continue
        image_path = img_dir / entry["image"]
        if not image_path.is_file():
            continue
        name = (entry.get("name") or "").strip()
        if not name:
            name = entry["short_names"][0].replace("_", " ")
        items.append({"image_path": image_path, "name": name.lower(), "category": entry["category"],
                      "subcategory": entry.get("subcategory", "")})
    return items


def _by_category(items: list[dict]) -> dict[str, list[dict]]:
    """Group items by category, categories in sorted order, items in their input order."""
    groups: dict[str, list[dict]] = {}
    for item in items:
        groups.setdefault(item["category"], []).append(item)
    return {cat: groups[cat] for cat in sorted(groups)}


def select_subset(
    items: list[dict], fraction: float, min_per_class: int, max_per_class: int | None, seed: int
) -> list[dict]:
    """Pick a seeded stratified subset, per category.

    Takes ``fraction`` of each category, at least ``min_per_class`` (where available) and at most
    ``max_per_class`` (if given), after a ``random.Random(seed)`` shuffle of that category.
    """
    chosen = []
    for group in _by_category(items).values():
        n = max(min_per_class, round(fraction * len(group)))
        if max_per_class is not None:
            n = min(n, max_per_class)
        group = list(group)
        random.Random(seed).shuffle(group)
        chosen.extend(group[: min(n, len(group))])
    return chosen


def stratified_split(items: list[dict], fractions: dict[str, float], seed: int) -> dict[str, list]:
    """Split items per category after a seeded shuffle (``random.Random(seed)`` for each category).

    Each split gets ``round(fraction * n)`` items of a category; the last split takes the remainder.
    """
    total = sum(fractions.values())
    names = list(fractions)
    splits: dict[str, list] = {name: [] for name in names}
    for group in _by_category(items).values():
        group = list(group)
        random.Random(seed).shuffle(group)
        start = 0
        for i, name in enumerate(names):
            if i == len(names) - 1:
                stop = len(group)
            else:
                stop = min(len(group), start + round(fractions[name] / total * len(group)))
            splits[name].extend(group[start:stop])
            start = stop
    return splits


def _to_rgb_on_white(src: Path, size: int) -> Image.Image:
    """Load an RGBA emoji, composite it over white and return a ``size`` x ``size`` RGB image."""
    with Image.open(src) as im:
        rgba = im.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    rgb = Image.alpha_composite(canvas, rgba).convert("RGB")
    if rgb.size != (size, size):
        rgb = rgb.resize((size, size), Image.Resampling.LANCZOS)
    return rgb


def write_dataset(items_by_split: dict[str, list], out_dir: Path, image_subdir: str = "images", size: int = 64) -> None:
    """Write images and ``<split>.csv`` files (``image,text,label``) plus ``all.csv`` (with ``split``).

    Images are saved as optimized RGB PNGs named after the emoji code points (e.g. ``images/1f600.png``);
    image paths in the CSVs are relative to ``out_dir``. Rows are sorted by label, then image.
    """
    out_dir = Path(out_dir)
    (out_dir / image_subdir).mkdir(parents=True, exist_ok=True)
    all_rows = []
    order = [s for s in SPLIT_ORDER if s in items_by_split] + [s for s in items_by_split if s not in SPLIT_ORDER]
    for split in order:
        rows = []
        for item in items_by_split[split]:
            rel = f"{image_subdir}/{Path(item['image_path']).name}"
            _to_rgb_on_white(Path(item["image_path"]), size).save(out_dir / rel, format="PNG", optimize=True)
            rows.append([rel, item["name"], item["category"]])
        rows.sort(key=lambda r: (r[2], r[0]))
        _write_csv(out_dir / f"{split}.csv", ["image", "text", "label"], rows)
        all_rows.extend(row + [split] for row in rows)
    _write_csv(out_dir / "all.csv", ["image", "text", "label", "split"], all_rows)


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    """Write a UTF-8 CSV with Unix line endings."""
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def count_table(items_by_split: dict[str, list]) -> str:
    """Return a Markdown table of per-category counts for each split."""
    splits = list(items_by_split)
    counts = {s: Counter(item["category"] for item in items_by_split[s]) for s in splits}
    cats = sorted(set().union(*counts.values()))
    lines = ["| label | " + " | ".join(splits) + " | total |", "|---" * (len(splits) + 2) + "|"]
    for cat in cats + ["**total**"]:
        vals = [sum(counts[s].values()) if cat == "**total**" else counts[s][cat] for s in splits]
        lines.append(f"| {cat} | " + " | ".join(map(str, vals)) + f" | {sum(vals)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent, help="output folder")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/emoji_src"), help="download/extract folder")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fraction", type=float, default=0.26, help="share of each category in the subset")
    parser.add_argument("--per-class-min", type=int, default=20, help="minimum items per category (subset)")
    parser.add_argument("--per-class-max", type=int, default=None, help="maximum items per category (subset)")
    parser.add_argument("--full", action="store_true", help="all base emoji, 70/30 train/test split")
    args = parser.parse_args(argv)

    items = load_base_emoji(fetch_emoji(args.workdir))
    if args.full:
        splits = stratified_split(items, {"train": 0.7, "test": 0.3}, args.seed)
    else:
        items = select_subset(items, args.fraction, args.per_class_min, args.per_class_max, args.seed)
        splits = stratified_split(items, {"train": 0.7, "val": 0.15, "test": 0.15}, args.seed)
    write_dataset(splits, args.out)
    print(count_table(splits))


if __name__ == "__main__":
    main()
