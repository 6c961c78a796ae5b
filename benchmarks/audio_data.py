"""A small real spoken-digit set, synthesised offline with espeak-ng: "zero".."nine" in many voices.

Each clip is one digit word spoken by one of 8 English accents x 12 voice variants (`+m1..+m7`, `+f1..+f5`), `--takes`
times with a seeded random speed (`-s`), pitch (`-p`) and amplitude (`-a`); espeak-ng writes 22.05 kHz 16-bit mono WAV.
The manifest `<out>/all.csv` has `audio,text,label,split`: `audio` is the WAV's path relative to the CSV, `label` the
digit word, `text` the accent's name (weak side text: every accent says every digit, so it gives the label away no
better than chance), `split` a fixed stratified 55 / 15 / 30 % train / val / test (per label, seeded). With the
default 2 takes that is 1,920 clips of 0.4..1.3 s (65 MB), built in about 7 s on 2 cores. Nothing here is committed.

    apt-get install espeak-ng
    python benchmarks/audio_data.py                      # -> /tmp/mm-sets/spoken/all.csv + wav/
    python benchmarks/audio_data.py --out DIR --takes 1 --seed 0
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = {"en-us": "American", "en-us-nyc": "New York City", "en-gb": "British",
           "en-gb-x-rp": "Received Pronunciation", "en-gb-scotland": "Scottish", "en-gb-x-gbclan": "Lancastrian",
           "en-gb-x-gbcwmd": "West Midlands", "en-029": "Caribbean"}
VARIANTS = tuple(f"m{i}" for i in range(1, 8)) + tuple(f"f{i}" for i in range(1, 6))
SPEEDS, PITCHES, AMPLITUDES = range(120, 221), range(20, 81), range(60, 161)  # words/min, 0..99, espeak's 0..200
FRACTIONS = (("train", 0.55), ("val", 0.15), ("test", 0.30))


def plan(takes: int, seed: int) -> list[dict]:
    """One row per clip to synthesise: digit x accent x variant x take, with seeded speed / pitch / amplitude."""
    rng = random.Random(seed)
    rows = []
    for digit in DIGITS:
        for voice, accent in ACCENTS.items():
            for variant in VARIANTS:
                for take in range(takes):
                    speed, pitch, amp = rng.choice(SPEEDS), rng.choice(PITCHES), rng.choice(AMPLITUDES)
                    key = f"{digit}_{voice}_{variant}_{take}"
                    rows.append({"key": key, "audio": f"wav/{key}.wav", "text": accent, "label": digit,
                                 "args": ["-v", f"{voice}+{variant}", "-s", str(speed), "-p", str(pitch),
                                          "-a", str(amp)]})
    return rows


def split_rows(rows: list[dict], seed: int) -> None:
    """Set `row["split"]` per label: a seeded shuffle, then 55 / 15 / 30 % train / val / test."""
    by_label = defaultdict(list)
    for row in rows:
        by_label[row["label"]].append(row)
    for label in sorted(by_label):
        group = sorted(by_label[label], key=lambda r: r["key"])
        random.Random(f"{seed}-{label}").shuffle(group)
        n, start = len(group), 0
        for i, (name, frac) in enumerate(FRACTIONS):
            stop = n if i == len(FRACTIONS) - 1 else start + round(frac * n)
            for row in group[start:stop]:
                row["split"] = name
            start = stop


def synthesise(row: dict, out: Path) -> bool:
    """Write one clip with espeak-ng -> True when a non-empty WAV came out."""
    path = out / row["audio"]
    if not (path.is_file() and path.stat().st_size > 44):  # reruns reuse finished clips
        cmd = ["espeak-ng", *row["args"], "-w", str(path), row["label"]]
        subprocess.run(cmd, check=False, capture_output=True, timeout=30)
    return path.is_file() and path.stat().st_size > 44  # 44 bytes: a WAV header with no samples


def write_manifest(rows: list[dict], out: Path) -> Path:
    path = out / "all.csv"
    with open(path, "w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["audio", "text", "label", "split"], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/mm-sets/spoken"))
    ap.add_argument("--takes", type=int, default=2, help="clips per digit x accent x variant (random speed/pitch)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    args = ap.parse_args(argv)
    if shutil.which("espeak-ng") is None:
        sys.exit("espeak-ng not found: apt-get install espeak-ng")
    (args.out / "wav").mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    rows = plan(args.takes, args.seed)
    with ThreadPoolExecutor(args.jobs) as pool:  # threads suffice: each job waits on an espeak-ng process
        ok = list(pool.map(lambda r: synthesise(r, args.out), rows))
    failed = [r["key"] for r, good in zip(rows, ok, strict=True) if not good]
    rows = [r for r, good in zip(rows, ok, strict=True) if good]
    split_rows(rows, args.seed)
    path = write_manifest(rows, args.out)
    per_split = Counter(r["split"] for r in rows)
    print(f"spoken digits: {len(rows)} clips, {len(DIGITS)} labels, {len(ACCENTS)} accents x {len(VARIANTS)} "
          f"variants x {args.takes} takes; {dict(per_split)}; {time.perf_counter() - start:.1f} s -> {path}")
    print("per label:", dict(sorted(Counter(r["label"] for r in rows).items())))
    if failed:
        print(f"{len(failed)} clips failed to synthesise, e.g. {failed[:3]}", file=sys.stderr)


if __name__ == "__main__":
    main()
