"""Preprocessing throughput and memory: `mm preprocess` (decode -> resize -> uint8 memory-mapped cache) against a
plain single-process Pillow loop, for 64 px PNGs and 500x375 JPEGs, with 0 (in-process), 1 and 2 workers.

Also prints the cache size on disk (uint8) next to what float32 would take, and with --rows-big N the peak
memory (max RSS of a child process) while preprocessing an N-row manifest (default 100,000 rows cycling over
1,000 distinct files, so every row is still decoded).
  python benchmarks/preprocess.py [--png 2000] [--jpeg 500] [--rows-big 100000]
"""

from __future__ import annotations

import argparse
import csv
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def make_images(folder: Path, n: int, size: tuple[int, int], ext: str) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    names = []
    for i in range(n):
        arr = (rng.random((size[1] // 8, size[0] // 8, 3)) * 255).astype(np.uint8)
        img = Image.fromarray(arr).resize(size, Image.BILINEAR)  # smooth content compresses like a photo
        name = f"{i:06d}.{ext}"
        img.save(folder / name, quality=90) if ext == "jpg" else img.save(folder / name)
        names.append(name)
    return names


def write_manifest(path: Path, folder: str, names: list[str], rows: int | None = None) -> Path:
    rows = rows or len(names)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "text", "label"])
        for i in range(rows):
            w.writerow([f"{folder}/{names[i % len(names)]}", f"item {i % 97}", f"c{i % 5}"])
    return path


def pil_loop(root: Path, names: list[str], size: int) -> float:
    start = time.perf_counter()
    for name in names:
        with Image.open(root / name) as im:
            np.asarray(im.convert("RGB").resize((size, size), Image.BILINEAR))
    return time.perf_counter() - start


def mm_preprocess(csv_path: Path, workers: int, cache: Path) -> float:
    from mmcli.config import load_config
    from mmcli.preprocess import preprocess

    cfg = load_config(None, [f"data.workers={workers}"])
    start = time.perf_counter()
    preprocess(csv_path, cfg, cache)
    return time.perf_counter() - start


def peak_rss_mib(csv_path: Path, cache: Path) -> tuple[float, float]:
    """(seconds, max RSS MiB) of `mm preprocess` in a child process."""
    env = {**os.environ, "MM_QUIET": "1"}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "mmcli", "preprocess", str(csv_path), "-o", str(cache)], env=env,
                   check=True, capture_output=True)
    seconds = time.perf_counter() - start
    return seconds, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--png", type=int, default=2000)
    ap.add_argument("--jpeg", type=int, default=500)
    ap.add_argument("--rows-big", type=int, default=0)
    args = ap.parse_args()
    os.environ["MM_QUIET"] = "1"
    with tempfile.TemporaryDirectory(prefix="mm-preprocess-") as tmp:  # over 1 GB with --rows-big: never left behind
        run_all(Path(tmp), args)


def run_all(tmp: Path, args: argparse.Namespace) -> None:
    sets = [("64 px PNG", "png", (64, 64), args.png), ("500x375 JPEG", "jpg", (500, 375), args.jpeg)]
    print(f"{os.cpu_count()} CPU cores; cache images at 64 px\n")
    print("| images | Pillow loop, 1 process | mm, in-process | mm, 1 worker | mm, 2 workers |\n|---|---|---|---|---|")
    for label, ext, size, n in sets:
        names = make_images(tmp / ext, n, size, ext)
        csv_path = write_manifest(tmp / f"{ext}.csv", ext, names)
        rates = [n / pil_loop(tmp / ext, names, 64)]
        for workers in (0, 1, 2):
            rates.append(n / mm_preprocess(csv_path, workers, tmp / f"cache-{ext}-{workers}"))
        print(f"| {n} x {label} | " + " | ".join(f"{r:.0f}/s" for r in rates) + " |")
    cache_file = next((tmp / "cache-png-0").glob("images_*.npy"))
    mb = cache_file.stat().st_size / 1e6
    print(f"\ncache for {args.png} 64 px images: {mb:.1f} MB as uint8 (float32 would be {4 * mb:.1f} MB)")
    if args.rows_big:
        names = make_images(tmp / "big", 1000, (64, 64), "png")
        big = write_manifest(tmp / "big.csv", "big", names, args.rows_big)
        seconds, rss = peak_rss_mib(big, tmp / "cache-big")
        print(f"{args.rows_big} rows: {seconds:.0f} s, peak RSS {rss:.0f} MiB")


if __name__ == "__main__":
    main()
