"""Public image + text classification sets for the accuracy benchmark, built offline from npm packages.

Every builder writes `<out>/<name>/all.csv` (`image,text,label,split`) and its 64 px RGB PNGs (composited on white)
beside it. The train / val / test split (55 / 15 / 30 %, stratified per label, seed 0) is fixed, so that seeds vary
the training only. Nothing here is committed: the images are rendered at run time from the packages.

- `noto`: the 1,906 base Noto emoji (emoji-datasource-google), 9 categories, text = the emoji name.
- `openmoji`: OpenMoji (CC-BY-SA-4.0) base emoji and extras, 10 groups, text = the annotation; SVGs rasterised with
  cairosvg; at most 200 rows per group (the largest groups are subsampled, so the set stays near 1,800 rows).
- `mdi`: Material Design Icons that carry exactly one tag, tags with at least 40 such icons (monochrome line art),
  text = the name and aliases with dashes as spaces; at most 80 rows per tag.
- `cross`: Noto's split and texts, but the test rows show OpenMoji's artwork of the same emoji (joined on code point;
  test emoji that OpenMoji lacks are dropped): trained on one artwork style, tested on another.
- `noto-sub`: the base Noto emoji labelled by subcategory (those with 10 or more emoji): many small classes. Not in
  the benchmark's default sets; `benchmarks/accuracy.py --sets noto-sub` runs it.
- `fa`: Font Awesome Free icons that belong to exactly one category, the categories with at least 10 such icons,
  text = the icon's label ("Alarm Clock"). The only set whose pictures are not square: each is drawn 64 px high
  and as wide as its viewBox says (32-80 px), so cropping to a square cuts the ends off the wide and tall ones
  (`data.resize`). Not in the default sets.

    python benchmarks/datasets.py --out /tmp/mm-sets noto openmoji mdi cross
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import subprocess
import sys
import tarfile
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "sample_data"))
from build import fetch_emoji, load_base_emoji

PACKAGES = {"openmoji": "openmoji@17.0.0", "mdi": "@mdi/svg@7.4.47", "fa": "@fortawesome/fontawesome-free@7.3.1"}
FRACTIONS = (("train", 0.55), ("val", 0.15), ("test", 0.30))
SIZE = 64


def _package(name: str, src: Path) -> Path:
    """`npm pack` + extract one package into `src/<name>/` (once); -> its `package/` folder."""
    dest = src / name
    if not (dest / "package" / "package.json").is_file():
        dest.mkdir(parents=True, exist_ok=True)
        out = subprocess.run(["npm", "pack", "--loglevel=error", PACKAGES[name]], cwd=dest, check=True,
                             capture_output=True, text=True).stdout.split()[-1]
        with tarfile.open(dest / out, "r:gz") as tar:
            tar.extractall(dest, filter="data")
    return dest / "package"


def _on_white(im: Image.Image, size: tuple[int, int] = (SIZE, SIZE)) -> Image.Image:
    rgba = im.convert("RGBA")
    rgb = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba).convert("RGB")
    return rgb if rgb.size == size else rgb.resize(size, Image.Resampling.LANCZOS)


def _svg_size(src: str) -> tuple[int, int]:
    """(width, height) of an SVG drawn SIZE px high, as wide as its viewBox's aspect ratio says."""
    import re

    box = re.search(r'viewBox="\s*[-\d.]+\s+[-\d.]+\s+([\d.]+)\s+([\d.]+)', Path(src).read_text(encoding="utf-8"))
    return (round(SIZE * float(box[1]) / float(box[2])), SIZE) if box else (SIZE, SIZE)


def _render(job: tuple[str, str, bool]) -> bool:
    """(source PNG or SVG, destination PNG, keep the aspect ratio) -> an RGB PNG on white, 64 px square or (SVG with
    the aspect kept) 64 px high; False when the source can't be drawn (cairosvg fails on a few SVGs that use
    unusual markers; those rows are left out and counted)."""
    src, dst, aspect = job
    if Path(dst).exists():
        return True
    if src.endswith(".svg"):
        import cairosvg  # outside the try: a missing renderer is a set-up error, not a bad row (pip install '.[bench]')
    try:
        size = _svg_size(src) if aspect and src.endswith(".svg") else (SIZE, SIZE)
        if src.endswith(".svg"):
            im = Image.open(io.BytesIO(cairosvg.svg2png(url=src, output_width=size[0], output_height=size[1])))
        else:
            im = Image.open(src)
        _on_white(im, size).save(dst, format="PNG")
    except Exception as exc:  # noqa: BLE001 - any renderer failure drops that one row
        print(f"skipped {src}: {type(exc).__name__}", file=sys.stderr)
        return False
    return True


def split_rows(items: list[dict], seed: int = 0) -> None:
    """Set `item["split"]` per label: a seeded shuffle, then 55 / 15 / 30 % train / val / test."""
    by_label = defaultdict(list)
    for item in items:
        by_label[item["label"]].append(item)
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda it: it["key"])
        random.Random(f"{seed}-{label}").shuffle(group)
        n, start = len(group), 0
        for i, (name, frac) in enumerate(FRACTIONS):
            stop = n if i == len(FRACTIONS) - 1 else start + round(frac * n)
            for item in group[start:stop]:
                item["split"] = name
            start = stop


def _cap(items: list[dict], per_label: int, seed: int = 0) -> list[dict]:
    by_label = defaultdict(list)
    for item in sorted(items, key=lambda it: it["key"]):
        by_label[item["label"]].append(item)
    out = []
    for label in sorted(by_label):
        group = by_label[label]
        random.Random(f"cap-{seed}-{label}").shuffle(group)
        out.extend(group[:per_label])
    return out


def write(items: list[dict], out: Path) -> Path:
    """Render every item's image into `out/images/` and write `out/all.csv`."""
    (out / "images").mkdir(parents=True, exist_ok=True)
    jobs = [(str(it["src"]), str(out / "images" / f"{it['key']}.png"), it.get("aspect", False)) for it in items]
    with ProcessPoolExecutor(2) as pool:
        ok = list(pool.map(_render, jobs, chunksize=32))
    items = [it for it, good in zip(items, ok) if good]
    with open(out / "all.csv", "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["image", "text", "label", "split"])
        for it in sorted(items, key=lambda it: (it["split"], it["label"], it["key"])):
            w.writerow([f"images/{it['key']}.png", it["text"], it["label"], it["split"]])
    return out / "all.csv"


def noto_items(src: Path) -> list[dict]:
    items = [{"key": Path(e["image_path"]).stem, "src": e["image_path"], "text": e["name"], "label": e["category"]}
             for e in load_base_emoji(fetch_emoji(src / "noto"))]
    split_rows(items)
    return items


def noto_sub_items(src: Path, least: int = 10) -> list[dict]:
    """The base Noto emoji labelled by their subcategory (fine-grained: "animal-mammal", "food-fruit" ...), the
    subcategories with at least `least` emoji."""
    base = load_base_emoji(fetch_emoji(src / "noto"))
    counts = defaultdict(int)
    for e in base:
        counts[e["subcategory"]] += 1
    items = [{"key": Path(e["image_path"]).stem, "src": e["image_path"], "text": e["name"], "label": e["subcategory"]}
             for e in base if counts[e["subcategory"]] >= least]
    split_rows(items)
    return items


def openmoji_items(src: Path) -> list[dict]:
    pkg = _package("openmoji", src)
    data = json.loads((pkg / "data" / "openmoji.json").read_text(encoding="utf-8"))
    items = [{"key": e["hexcode"].lower(), "src": pkg / "color" / "svg" / f"{e['hexcode']}.svg",
              "text": e["annotation"].strip().lower(), "label": e["group"]}
             for e in data if not e["skintone"] and e["group"] != "component" and e["annotation"].strip()]
    items = _cap([it for it in items if Path(it["src"]).is_file()], 200)
    split_rows(items)
    return items


def mdi_items(src: Path) -> list[dict]:
    pkg = _package("mdi", src)
    meta = json.loads((pkg / "meta.json").read_text(encoding="utf-8"))
    one = [m for m in meta if len(m["tags"]) == 1 and not m.get("deprecated")]
    counts = defaultdict(int)
    for m in one:
        counts[m["tags"][0]] += 1
    items = [{"key": m["name"], "src": pkg / "svg" / f"{m['name']}.svg", "label": m["tags"][0],
              "text": " ".join([m["name"], *m["aliases"]]).replace("-", " ")}
             for m in one if counts[m["tags"][0]] >= 40]
    items = _cap(items, 80)
    split_rows(items)
    return items


def cross_items(src: Path) -> list[dict]:
    """Noto rows; test rows swap their picture for OpenMoji's drawing of the same code point."""
    pkg = _package("openmoji", src)
    svgs = {p.stem.lower(): p for p in (pkg / "color" / "svg").glob("*.svg")}
    out = []
    for it in noto_items(src):
        if it["split"] == "test":
            svg = svgs.get(it["key"]) or svgs.get(it["key"].replace("-fe0f", ""))
            if svg is None:
                continue
            it = {**it, "src": svg, "key": f"openmoji-{it['key']}"}
        out.append(it)
    return out


def fa_items(src: Path, least: int = 10) -> list[dict]:
    """Font Awesome Free icons in exactly one category (categories.yml), drawn with their own aspect ratio."""
    import yaml

    pkg = _package("fa", src)
    cats = yaml.safe_load((pkg / "metadata" / "categories.yml").read_text(encoding="utf-8"))
    icons = yaml.safe_load((pkg / "metadata" / "icons.yml").read_text(encoding="utf-8"))
    member = defaultdict(list)
    for cat, entry in cats.items():
        for icon in entry["icons"]:
            member[icon].append(cat)
    svgs = {p.stem: p for style in ("regular", "solid") for p in (pkg / "svgs" / style).glob("*.svg")}  # solid wins
    one = {icon: cs[0] for icon, cs in member.items() if len(cs) == 1 and icon in svgs and icon in icons}
    counts = defaultdict(int)
    for cat in one.values():
        counts[cat] += 1
    items = [{"key": icon, "src": svgs[icon], "text": icons[icon]["label"].lower(), "label": cat, "aspect": True}
             for icon, cat in sorted(one.items()) if counts[cat] >= least]
    split_rows(items)
    return items


BUILDERS = {"noto": noto_items, "openmoji": openmoji_items, "mdi": mdi_items, "cross": cross_items,
            "noto-sub": noto_sub_items, "fa": fa_items}
DEFAULT_SETS = ["noto", "openmoji", "mdi", "cross"]  # the accuracy benchmark's; noto-sub is named when wanted


def build(name: str, out: Path, src: Path) -> Path:
    """-> `out/name/all.csv`, built unless it exists."""
    csv_path = out / name / "all.csv"
    if not csv_path.is_file():
        write(BUILDERS[name](src), out / name)
    return csv_path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="+", choices=sorted(BUILDERS))
    ap.add_argument("--out", type=Path, default=Path("/tmp/mm-sets"))
    ap.add_argument("--src", type=Path, default=Path("/tmp/mm-src"), help="npm download / extract folder")
    args = ap.parse_args()
    for name in args.names:
        path = build(name, args.out, args.src)
        with open(path, encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        per = {s: sum(r["split"] == s for r in rows) for s, _ in FRACTIONS}
        print(f"{name}: {len(rows)} rows, {len({r['label'] for r in rows})} labels, {per} -> {path}")


if __name__ == "__main__":
    main()
