"""Read and preprocess throughput of a Parquet file with the images stored inside it (the struct {bytes, path} that
Hugging Face datasets writes) against a CSV of the same rows naming image files, with each run's peak memory.

Rows cycle over 1,000 distinct 64 px PNGs (as benchmarks/preprocess.py does), so every row is still decoded; the
Parquet file holds every row's bytes (no de-duplication), in row groups of 1,000 rows. Each measurement runs in a
fresh process; peak RSS is that process's own maximum and, with workers, the largest worker's.
  python benchmarks/formats.py [--rows 100000] [--workers 0 2]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from preprocess import make_images  # the same generated pictures as the CSV benchmark

GROUP = 1000

# run in a child: read (or preprocess) the manifest, then report seconds and peak RSS as one JSON line
CHILD = """
import json, resource, sys, time
from pathlib import Path
from mmcli.config import load_config
path, mode, workers, out = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
cfg = load_config(None, [f"data.workers={workers}"])
start = time.perf_counter()
if mode == "read":
    from mmcli.data.manifest import read_manifest
    rows = len(read_manifest(path, cfg.data, need_label=False).rows)
else:
    from mmcli.preprocess import preprocess
    rows = preprocess(path, cfg, out)["valid_rows"]
seconds = time.perf_counter() - start
own, kids = (resource.getrusage(w).ru_maxrss / 1024 for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(json.dumps({"rows": rows, "seconds": seconds, "rss": own, "worker_rss": kids}))
"""


def write_csv(path: Path, names: list[str], rows: int) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "text", "label"])
        for i in range(rows):
            w.writerow([f"img/{names[i % len(names)]}", f"item {i % 97}", f"c{i % 5}"])
    return path


def write_parquet(path: Path, folder: Path, names: list[str], rows: int) -> Path:
    """The same rows with each picture's bytes stored in the file, written a row group at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    blobs = [(folder / n).read_bytes() for n in names]
    image = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    schema = pa.schema([("image", image), ("text", pa.string()), ("label", pa.string())])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, rows, GROUP):
            idx = range(start, min(rows, start + GROUP))
            images = [{"bytes": blobs[i % len(names)], "path": names[i % len(names)]} for i in idx]
            writer.write_table(pa.table({"image": pa.array(images, image), "text": [f"item {i % 97}" for i in idx],
                                         "label": [f"c{i % 5}" for i in idx]}, schema=schema))
    return path


def measure(path: Path, mode: str, workers: int, out: Path) -> dict:
    env = {**os.environ, "MM_QUIET": "1"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), mode, str(workers), str(out)], env=env,
                          check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="mm-formats-") as tmp:  # about 1 GB at 100,000 rows: never left behind
        run_all(Path(tmp), args)


def run_all(tmp: Path, args: argparse.Namespace) -> None:
    names = make_images(tmp / "img", 1000, (64, 64), "png")
    files = {"CSV of files": write_csv(tmp / "data.csv", names, args.rows),
             "Parquet, bytes inside": write_parquet(tmp / "data.parquet", tmp / "img", names, args.rows)}
    sizes = {k: p.stat().st_size / 2**20 for k, p in files.items()}
    pictures = sum((tmp / "img" / n).stat().st_size for n in names) / len(names)
    print(f"{os.cpu_count()} CPU cores; {args.rows} rows over 1000 distinct 64 px PNGs (mean {pictures / 1024:.1f} "
          f"KiB); cache images at 64 px; Parquet row groups of {GROUP} rows\n")
    print("| input | file size | read manifest | preprocess | workers | rows/s | peak RSS (main / worker) |")
    print("|---|---|---|---|---|---|---|")
    for label, path in files.items():
        read = measure(path, "read", 0, tmp / "unused")
        for workers in args.workers:
            run = measure(path, "preprocess", workers, tmp / f"cache-{path.suffix[1:]}-{workers}")
            assert run["rows"] == args.rows, run
            worker = f" / {run['worker_rss']:.0f} MiB" if workers else ""
            print(f"| {label} | {sizes[label]:.0f} MiB | {read['seconds']:.1f} s ({read['rss']:.0f} MiB) | "
                  f"{run['seconds']:.1f} s | {workers} | {args.rows / run['seconds']:.0f} | {run['rss']:.0f} MiB"
                  f"{worker} |", flush=True)


if __name__ == "__main__":
    main()
