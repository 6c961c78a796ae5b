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


def write_jsonl(path: Path, records: list) -> Path:
    """One JSON value per line (records are usually dicts; anything else tests the reader)."""
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_parquet(path: Path, columns: dict[str, list], row_group_size: int | None = None) -> Path:
    """A Parquet file through pyarrow; a column of {"bytes", "path"} dicts becomes the struct that Hugging Face
    datasets writes for an Image feature."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    arrays = {k: pa.array(v, type=image_type) if v and isinstance(v[0], dict) and "bytes" in v[0] else pa.array(v)
              for k, v in columns.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(arrays), path, row_group_size=row_group_size)
    return path


def corrupt_row_group(path: Path, group: int) -> None:
    """Overwrite every column chunk of one row group with 0xff bytes: that group can no longer be read."""
    import pyarrow.parquet as pq

    rg = pq.ParquetFile(path).metadata.row_group(group)
    first, last = rg.column(0), rg.column(rg.num_columns - 1)
    # a chunk's compressed size counts from its dictionary page, when it has one
    start = first.dictionary_page_offset or first.data_page_offset
    end = (last.dictionary_page_offset or last.data_page_offset) + last.total_compressed_size
    raw = bytearray(path.read_bytes())
    raw[start:end] = b"\xff" * (end - start)
    path.write_bytes(bytes(raw))


def make_image_tree(root: Path, splits: dict[str, int], captions: bool = True, seed: int = 0) -> list[dict]:
    """root/<split>/<class>/NNN.png (+ NNN.txt captions); `splits` {split: images per class}, a split named ""
    puts class folders directly under root. -> the rows a CSV of the same data holds, in sorted path order."""
    rng = np.random.default_rng(seed)
    rows = []
    for split, per_class in splits.items():
        for label in CLASSES:
            for k in range(per_class):
                rel = Path(split, label, f"{k:03d}.png") if split else Path(label, f"{k:03d}.png")
                write_png(root / rel, COLOURS[label], seed=seed * 1000 + len(rows))
                text = " ".join([str(rng.choice(WORDS[label])), str(rng.choice(SHARED_WORDS))])
                if captions:
                    (root / rel).with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
                rows.append({"image": rel.as_posix(), **({"text": text} if captions else {}), "label": label,
                             **({"split": split} if split else {})})
    return sorted(rows, key=lambda r: r["image"].split("/"))


def onnx_parity(model, arrays: list[np.ndarray], present: np.ndarray, path: Path) -> dict:
    """Export `model` (in eval mode) to ONNX at `path` and return the parity report of onnxruntime against torch on
    `arrays` (one per input) with presence `present` bool [B, M]."""
    from mmcli.deploy.export import ProbabilityGraph, export_onnx, parity, session

    graph = ProbabilityGraph(model, model.names).eval()
    export_onnx(graph, arrays, present, path)
    report, _ = parity(graph, session(path), arrays, present)
    return report
