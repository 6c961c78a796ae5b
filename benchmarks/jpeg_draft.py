"""What decoding large JPEGs at a reduced scale is worth (Pillow's `draft`: libjpeg scales by 1/2, 1/4 or 1/8 while it
decodes; mmcli/vision.py `decode_bytes(min_side=...)` and mmcli/modalities/image_signal.py `decode_rgb`), against
decoding every pixel and then resizing.

The pictures are phone-sized (4032x3024, landscape and portrait) JPEGs made from the two photos scikit-learn ships
(`load_sample_images`: china.jpg and flower.jpg, 640x427), upscaled and given sensor-like noise so that they do not
compress like flat colour; quality 90, 2-4 MB each. Three measurements:
- one picture decoded and made a 224 px square (what the cache stores for the pretrained presets), full decode
  (torchvision, as before) against reduced-scale decode: median ms per picture, one process;
- the cache build of a column of them (`decode_column`, 2 worker processes, as `mm preprocess` runs it): seconds,
  each variant in its own process;
- what the model sees: pixel differences between the two 224 px squares, and the cosine similarity of
  EfficientNet-Lite0's 1280-d features of each pair (needs the `[pretrained]` extra; skipped without it).
Also checked: the cache path and the prediction path (`image_signal.prepare`) give the same pixels.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/jpeg_draft.py | tee benchmarks/results/jpeg_draft.log
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SIZE = 224


def make_photos(folder: Path, n: int) -> list[Path]:
    """`n` noisy 4032x3024 JPEGs (every third one portrait) from scikit-learn's two sample photos."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    sources = load_sample_images().images
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        base = Image.fromarray(sources[i % len(sources)]).resize((4032, 3024), Image.BICUBIC)
        arr = np.asarray(base).astype(np.int16) + rng.normal(0, 6, (3024, 4032, 3)).astype(np.int16)
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
        if i % 3 == 2:
            img = img.transpose(Image.Transpose.ROTATE_90)
        path = folder / f"photo_{i:03d}.jpg"
        img.save(path, quality=90)
        paths.append(path)
    return paths


def per_picture(paths: list[Path], min_side: int | None, repeats: int = 3) -> tuple[float, list[np.ndarray]]:
    """-> (median ms to decode one picture and make it a 224 px square, the squares uint8 [3, 224, 224])."""
    from mmcli.vision import load_image, square_image

    times, squares = [], []
    for r in range(repeats):
        for p in paths:
            t = time.perf_counter()
            sq = square_image(load_image(p, min_side=min_side), SIZE)
            times.append(time.perf_counter() - t)
            if r == 0:
                squares.append(sq.numpy())
    return 1000 * statistics.median(times), squares


CACHE_BUILD = """
import sys, time
from pathlib import Path
import mmcli.vision as vision
if sys.argv[1] == "full":  # as before the change: every JPEG decoded at full size
    vision._jpeg_to_scale = lambda *a: False
from mmcli.data.images import decode_column
paths = [Path(p) for p in sys.argv[3:]]
t = time.perf_counter()
arr, problems = decode_column(paths, 224, Path(sys.argv[2]), workers=2, max_pixels=50_000_000, label="images")
print(time.perf_counter() - t, len(problems))
"""


def cache_build(paths: list[Path], variant: str, folder: Path) -> float:
    out = subprocess.run([sys.executable, "-c", CACHE_BUILD, variant, str(folder / f"{variant}.npy"),
                          *map(str, paths)], capture_output=True, text=True, check=True)
    seconds, problems = out.stdout.split()[-2:]
    assert problems == "0", out.stdout
    return float(seconds)


def features(squares: list[np.ndarray]) -> np.ndarray | None:
    """EfficientNet-Lite0 features [N, 1280] of uint8 squares, or None without the [pretrained] extra."""
    try:
        import torch

        from mmcli.models.effnet import EfficientNetLite
        from mmcli.vision import normalize
    except ImportError:
        return None
    try:
        enc = EfficientNetLite(0).eval()
    except Exception as exc:  # noqa: BLE001 - the extra is missing: say so and go on
        print(f"(EfficientNet-Lite0 not available: {exc}; feature check skipped)")
        return None
    with torch.inference_mode():
        x = normalize(torch.from_numpy(np.stack(squares)), enc.mean, enc.std)
        return enc(x).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--pictures", type=int, default=24)
    args = ap.parse_args()
    from mmcli.modalities.image_signal import prepare

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = make_photos(folder, args.pictures)
        mb = statistics.mean(p.stat().st_size for p in paths) / 1e6
        print(f"{len(paths)} JPEGs, 4032x3024 (every third portrait), {mb:.1f} MB on average; square {SIZE} px")
        full_ms, full = per_picture(paths, None)
        draft_ms, draft = per_picture(paths, SIZE)
        print(f"decode + square, one process: full {full_ms:.1f} ms, reduced scale {draft_ms:.1f} ms a picture "
              f"({full_ms / draft_ms:.1f}x faster)")
        builds = {v: [cache_build(paths, v, folder) for _ in range(3)] for v in ("full", "draft")}
        for v, s in builds.items():
            print(f"cache build of {len(paths)} pictures, 2 workers, {v}: "
                  f"{statistics.median(s):.2f} s median of {json.dumps([round(x, 2) for x in s])}")
        diff = np.abs(np.stack(full).astype(np.int16) - np.stack(draft).astype(np.int16))
        print(f"pixels, full vs reduced scale: mean |difference| {diff.mean():.2f} of 255, 99th percentile "
              f"{np.percentile(diff, 99):.0f}, max {diff.max()}")
        mean, std = (0.0,) * 3, (1 / 255,) * 3  # undo to_input's scaling: compare raw 0..255 pixels
        same = all(np.array_equal(np.round(prepare(p, SIZE, SIZE, mean, std)[0]).astype(np.uint8), sq)
                   for p, sq in zip(paths, draft))
        print(f"cache path == prediction path (image_signal.prepare), every picture: {same}")
        f_full, f_draft = features(full), features(draft)
        if f_full is not None:
            cos = (f_full * f_draft).sum(1) / (np.linalg.norm(f_full, axis=1) * np.linalg.norm(f_draft, axis=1))
            print(f"EfficientNet-Lite0 features, full vs reduced scale: cosine similarity mean {cos.mean():.4f}, "
                  f"min {cos.min():.4f}")


if __name__ == "__main__":
    main()
