"""A small real spoken-digit set, synthesised offline with espeak-ng: "zero".."nine" in many voices.

Each clip is one digit word spoken by one of 8 English accents x 12 voice variants (`+m1..+m7`, `+f1..+f5`), `--takes`
times with a seeded random speed (`-s`), pitch (`-p`) and amplitude (`-a`); espeak-ng writes 22.05 kHz 16-bit mono WAV.
The manifest `<out>/all.csv` has `audio,text,label,split`: `audio` is the WAV's path relative to the CSV, `label` the
digit word, `text` the accent's name (weak side text: every accent says every digit, so it gives the label away no
better than chance).

`split` is by voice variant, so no test (or val) voice is ever heard in training: of the 7 male and 5 female variants,
a seeded draw holds out 2 male + 2 female variants for test and 1 male + 1 female for val, in every accent; the other
6 variants (4 male, 2 female) are train. That is 50 / 17 / 33 % of the clips train / val / test, and every split has
every digit and accent equally often.

`--noise SNR_DB` (default 20) adds white Gaussian noise to the test clips only, at that signal-to-noise ratio over the
whole clip's mean power (leading and trailing silence included, so over the speech alone the SNR is somewhat higher), seeded per
clip by `--seed` and the clip's name. Noisy copies go to `<out>/wav_snr<SNR_DB>/` and the manifest points the test rows
at them; the clean clips stay in `<out>/wav/` (train and val use those). `--noise off` keeps test clean.

`--train-noise LOW:HIGH` (default off) is multi-condition training data: every train and val clip gets white noise at
its own seeded SNR drawn uniformly from LOW..HIGH dB (other noise samples than the test clips', in
`<out>/wav_train_noise/`). The test voices and test noise stay unseen either way.

With the default 2 takes that is 1,920 clips of 0.4..1.3 s (65 MB, plus 22 MB of noisy test copies), built in about
7 s on 2 cores. Nothing here is committed.

    apt-get install espeak-ng
    python benchmarks/audio_data.py                      # -> /tmp/mm-sets/spoken/all.csv + wav/ + wav_snr20/
    python benchmarks/audio_data.py --out DIR --takes 1 --seed 0 --noise 10
    python benchmarks/audio_data.py --noise off          # clean test clips
    python benchmarks/audio_data.py --out /tmp/mm-sets/spoken-mc --train-noise 5:40   # noisy train/val too
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
ACCENTS = {"en-us": "American", "en-us-nyc": "New York City", "en-gb": "British",
           "en-gb-x-rp": "Received Pronunciation", "en-gb-scotland": "Scottish", "en-gb-x-gbclan": "Lancastrian",
           "en-gb-x-gbcwmd": "West Midlands", "en-029": "Caribbean"}
VARIANTS = tuple(f"m{i}" for i in range(1, 8)) + tuple(f"f{i}" for i in range(1, 6))
SPEEDS, PITCHES, AMPLITUDES = range(120, 221), range(20, 81), range(60, 161)  # words/min, 0..99, espeak's 0..200


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
                                 "variant": variant,
                                 "args": ["-v", f"{voice}+{variant}", "-s", str(speed), "-p", str(pitch),
                                          "-a", str(amp)]})
    return rows


def held_out_variants(seed: int) -> dict[str, str]:
    """{variant: split}: a seeded draw of 2 male + 2 female variants for test, 1 + 1 for val, the rest train."""
    rng = random.Random(f"{seed}-variants")
    males, females = [v for v in VARIANTS if v[0] == "m"], [v for v in VARIANTS if v[0] == "f"]
    rng.shuffle(males)
    rng.shuffle(females)
    split = {v: "train" for v in VARIANTS}
    for group in (males, females):
        for v in group[:2]:
            split[v] = "test"
        split[group[2]] = "val"
    return split


def split_rows(rows: list[dict], seed: int) -> dict[str, str]:
    """Set `row["split"]` from the row's voice variant (`held_out_variants`) -> {variant: split}."""
    by_variant = held_out_variants(seed)
    for row in rows:
        row["split"] = by_variant[row["variant"]]
    return by_variant


def add_noise(row: dict, out: Path, snr_db: float, seed: int, folder: str | None = None) -> None:
    """Write a copy of the row's clip with white noise at `snr_db` (whole-clip mean power) and point the row at it."""
    import numpy as np
    import soundfile as sf

    rel = f"{folder or f'wav_snr{snr_db:g}'}/{row['key']}.wav"
    path = out / rel  # rewritten on every build (cheap), so a copy made with another --seed never lingers
    wave, rate = sf.read(str(out / row["audio"]), dtype="float64", always_2d=False)
    digest = hashlib.sha256(f"{seed}|{snr_db:g}|{folder}|{row['key']}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    power = float(np.mean(wave**2)) or 1e-12
    noisy = wave + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), size=wave.shape)
    tmp = path.with_name(f".{path.stem}.tmp.wav")
    sf.write(str(tmp), np.clip(noisy, -1.0, 1.0).astype(np.float32), rate, subtype="PCM_16")
    tmp.replace(path)
    row["audio"] = rel


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


def _snr_range(text: str) -> tuple[float, float] | None:
    if text.strip().lower() in ("off", "none", "clean"):
        return None
    low, high = (float(x) for x in text.split(":"))
    return (min(low, high), max(low, high))


def _snr(text: str) -> float | None:
    if text.strip().lower() in ("off", "none", "clean"):
        return None
    return float(text)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/mm-sets/spoken"))
    ap.add_argument("--takes", type=int, default=2, help="clips per digit x accent x variant (random speed/pitch)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--noise", type=_snr, default=20.0, metavar="SNR_DB",
                    help="white noise on the test clips only, at this SNR in dB (default 20; 'off': clean test)")
    ap.add_argument("--train-noise", type=_snr_range, default=None, metavar="LOW:HIGH",
                    help="white noise on every train and val clip, SNR uniform in LOW..HIGH dB (default off)")
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
    by_variant = split_rows(rows, args.seed)
    if args.noise is not None:
        (args.out / f"wav_snr{args.noise:g}").mkdir(exist_ok=True)
        test = [r for r in rows if r["split"] == "test"]
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda r: add_noise(r, args.out, args.noise, args.seed), test))
    if args.train_noise is not None:
        (args.out / "wav_train_noise").mkdir(exist_ok=True)
        fit = [r for r in rows if r["split"] != "test"]
        rng = random.Random(f"{args.seed}-train-noise")
        snrs = [rng.uniform(*args.train_noise) for _ in fit]
        with ThreadPoolExecutor(args.jobs) as pool:
            list(pool.map(lambda r, snr: add_noise(r, args.out, snr, args.seed, "wav_train_noise"), fit, snrs))
    path = write_manifest(rows, args.out)
    per_split = Counter(r["split"] for r in rows)
    print(f"spoken digits: {len(rows)} clips, {len(DIGITS)} labels, {len(ACCENTS)} accents x {len(VARIANTS)} "
          f"variants x {args.takes} takes; {dict(per_split)}; {time.perf_counter() - start:.1f} s -> {path}")
    print("per label:", dict(sorted(Counter(r["label"] for r in rows).items())))
    print("variants per split:", {s: sorted(v for v, sp in by_variant.items() if sp == s) for s in ("train", "val", "test")},
          "; test noise:", "off" if args.noise is None else f"white, SNR {args.noise:g} dB",
          "; train/val noise:", "off" if args.train_noise is None else "white, SNR uniform in {:g}..{:g} dB".format(
              *args.train_noise))
    if failed:
        print(f"{len(failed)} clips failed to synthesise, e.g. {failed[:3]}", file=sys.stderr)


if __name__ == "__main__":
    main()
