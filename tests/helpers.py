"""Generators for tiny test data: images of every awkward kind, CSV manifests, and a CLI runner wrapper."""

from __future__ import annotations

import csv
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

CLASSES = ("red", "green", "blue")
COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (40, 60, 220)}
WORDS = {"red": ["apple", "fire", "rose"], "green": ["leaf", "grass", "frog"], "blue": ["sea", "sky", "whale"]}
SHARED_WORDS = ["the", "a", "photo", "of", "small", "big", "thing"]
TINY = ["model.embed_dim=16", "model.hidden_dim=16", "train.epochs=2", "data.image_size=16", "train.batch_size=16"]


def write_png(path: Path, rgb: tuple[int, int, int], size: int = 16, noise: int = 20, seed: int = 0) -> Path:
    """A size x size RGB PNG of colour `rgb` plus uniform noise in [-noise, noise]."""
    rng = np.random.default_rng(seed)
    arr = np.clip(np.array(rgb)[None, None, :] + rng.integers(-noise, noise + 1, (size, size, 3)), 0, 255)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8), "RGB").save(path)
    return path


def write_csv(path: Path, header: list[str], rows: list[list], delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def dataset_rows(root: Path, n: int = 45, seed: int = 0) -> list[list]:
    """`n` rows [image, text, label] over 3 classes; the PNGs are written under `root/images/`.

    Image colour depends on the class (plus noise); two of each text's four words name the class."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = CLASSES[i % len(CLASSES)]
        img = write_png(root / "images" / f"{i:03d}.png", COLOURS[label], seed=seed * 1000 + i)
        words = [str(w) for w in rng.choice(WORDS[label], 2)] + [str(w) for w in rng.choice(SHARED_WORDS, 2)]
        rng.shuffle(words)
        rows.append([img.relative_to(root).as_posix(), " ".join(words), label])
    return rows


def make_dataset(root: Path, n: int = 45, seed: int = 0, name: str = "data.csv") -> Path:
    """`root/<name>` with header image,text,label."""
    return write_csv(root / name, ["image", "text", "label"], dataset_rows(root, n, seed))


def two_colour(width: int = 16, height: int = 8) -> np.ndarray:
    """uint8 [H, W, 3]: left half pure red, right half pure blue (orientation is visible)."""
    arr = np.zeros((height, width, 3), np.uint8)
    arr[:, : width // 2] = (255, 0, 0)
    arr[:, width // 2 :] = (0, 0, 255)
    return arr


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bytes(width: int, height: int, bit_depth: int, colour_type: int, raw_rows: bytes) -> bytes:
    """A hand-made PNG (Pillow cannot write 16-bit RGB); `raw_rows` are filter-byte-prefixed scanlines."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw_rows))
            + _chunk(b"IEND", b""))


def write_rgb16_png(path: Path, arr16: np.ndarray) -> Path:
    """uint16 [H, W, 3] -> a 16-bit RGB PNG."""
    rows = b"".join(b"\x00" + arr16[y].astype(">u2").tobytes() for y in range(arr16.shape[0]))
    path.write_bytes(png_bytes(arr16.shape[1], arr16.shape[0], 16, 2, rows))
    return path


def write_bomb_png(path: Path, width: int, height: int) -> Path:
    """A PNG whose header claims width x height pixels but holds almost no data (a decompression bomb's header)."""
    path.write_bytes(png_bytes(width, height, 8, 2, b"\x00" * 64))
    return path
