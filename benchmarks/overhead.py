"""Pipeline overhead: one training epoch through mm's data path vs a bare loop over tensors already in memory.

(a) `mmcli.loop.train_one_epoch` over `Batches` (memory-mapped uint8 cache -> normalise -> optional augmentation
    -> model), exactly what `mm train` runs;
(b) the same model, optimiser and batch size in a bare PyTorch loop over pre-normalised float tensors.
Prints seconds per epoch (median of --repeats after one warm-up epoch) and the ratio (a)/(b).

  python benchmarks/overhead.py                                  # default scratch model, 64 px
  python benchmarks/overhead.py --set model.image_encoder=effnet_lite0 --set data.image_size=224 --rows 256
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def bare_epoch(model, images, tokens, present, labels, batch_size: int, opt) -> float:
    """Seconds for one epoch of forward/backward/step over in-memory tensors (no data pipeline at all)."""
    model.train()
    loss_fn = torch.nn.CrossEntropyLoss()
    n = labels.shape[0]
    perm = torch.randperm(n)
    start = time.perf_counter()
    for i in range(0, n, batch_size):
        idx = perm[i : i + batch_size]
        inputs = {k: v[idx] for k, v in images.items()} | {k: v[idx] for k, v in tokens.items()}
        loss = loss_fn(model(inputs, present[idx]), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
    return time.perf_counter() - start


def mm_epoch(model, batches, opt, sched, cfg) -> float:
    from mmcli.loop import LoopState, StopFlag, train_one_epoch
    from mmcli.progress import make_progress

    start = time.perf_counter()
    with make_progress() as progress:
        task = progress.add_task("epoch", total=len(batches))
        train_one_epoch(model, batches, opt, sched, cfg, LoopState(), lambda: None, StopFlag(), progress, task)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--csv", type=Path, default=ROOT / "sample_data" / "all.csv")
    ap.add_argument("--rows", type=int, default=0, help="use only the first N training rows (0: all)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--set", dest="sets", action="append", default=[])
    args = ap.parse_args()
    os.environ.setdefault("MM_QUIET", "1")
    os.environ.setdefault("MM_CACHE_DIR", tempfile.mkdtemp())
    from mmcli.config import load_config
    from mmcli.data.dataset import Batches
    from mmcli.distributed import DistInfo
    from mmcli.fit import build
    from mmcli.train import _prepare

    cfg = load_config(None, args.sets)
    torch.manual_seed(0)
    _, cache, _ = _prepare(args.csv, cfg, None)
    model, _, tr, _, opt, sched, _ = build(cfg, cache, "cpu", DistInfo())
    idx = tr.indices[: args.rows] if args.rows else tr.indices
    variants = {aug: Batches(cache, idx, cfg.train.batch_size, tr.specs, shuffle=True, augment=aug)
                for aug in (False, True)}
    full = Batches(cache, idx, len(idx), tr.specs)
    inputs, present, labels, _ = full.batch(idx)
    images = {k: v for k, v in inputs.items() if v.dtype.is_floating_point}
    tokens = {k: v for k, v in inputs.items() if not v.dtype.is_floating_point}
    # Interleaved repeats (bare, mm, mm+augment, bare, ...) so that drift in the machine's speed hits all alike.
    times: dict = {"bare": [], False: [], True: []}
    for rep in range(args.repeats + 1):  # the first round warms up and is dropped
        got = {"bare": bare_epoch(model, images, tokens, present, labels, cfg.train.batch_size, opt)}
        got.update({aug: mm_epoch(model, b, opt, sched, cfg) for aug, b in variants.items()})
        for key, sec in got.items():
            if rep:
                times[key].append(sec)
    bare = statistics.median(times["bare"])
    rows = {aug: statistics.median(times[aug]) for aug in (False, True)}
    print(f"{len(idx)} rows, batch {cfg.train.batch_size}, {torch.get_num_threads()} threads, "
          f"overrides {args.sets or 'none'}, python {sys.version.split()[0]}, torch {torch.__version__}\n")
    print("| path | s/epoch | rows/s | ratio to bare loop |\n|---|---|---|---|")
    print(f"| bare loop over in-memory tensors | {bare:.3f} | {len(idx) / bare:.0f} | 1.00 |")
    for augment, sec in rows.items():
        print(f"| mm data path, augment={str(augment).lower()} | {sec:.3f} | {len(idx) / sec:.0f} | "
              f"{sec / bare:.2f} |")


if __name__ == "__main__":
    main()
