"""`mm train`: prepare the data, create the run folder, then hand over to the epoch loop in fit.py.

Under torchrun (several processes), rank 0 preprocesses and owns the run folder; the other ranks wait for it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mmcli import distributed as D
from mmcli import modalities
from mmcli.config import Config, dump_config, load_config
from mmcli.data.cache import build_cache, check_bad_share
from mmcli.data.manifest import read_manifest
from mmcli.errors import DataError, UsageError
from mmcli.files import atomic_write_text
from mmcli.fit import fit
from mmcli.loading import resolve_device
from mmcli.loop import last_dir
from mmcli.progress import info
from mmcli.runs import RunLock, new_run_dir, write_json


def _pretrained_tokenizer(cfg: Config):
    """A pretrained text encoder's own tokenizer (MiniLM, a local Hugging Face folder), or None to train one."""
    from mmcli.models.pretrained import pretrained_tokenizer_path
    from mmcli.text import load_tokenizer

    path = pretrained_tokenizer_path(cfg)
    return load_tokenizer(path) if path else None


def _prepare(csv_path: Path, cfg: Config, cache_dir: Path | None):
    man = read_manifest(csv_path, cfg.data, need_label=True)
    # saved resolved: the run's config.yaml names every input column with its kind
    cfg.data.inputs = man.kinds
    cfg.data.image_columns, cfg.data.text_columns = man.image_columns, man.text_columns
    tokenizer = _pretrained_tokenizer(cfg)
    cache, bad, reused = build_cache(man, cfg, cache_dir, states={"text": tokenizer} if tokenizer else None)
    cfg.data.multi_label = "true" if cache.multi_label else "false"  # saved resolved: predict needs no guessing
    check_bad_share(bad, len(man.rows), cfg.data.max_bad_fraction, cache.dir / "bad_rows.csv",
                    cache.meta.get("row_label", "row"))
    info(f"data: {len(man.rows)} rows, {len(bad)} bad, inputs: "
         + ", ".join(f"{i['name']} ({i['kind']})" for i in cache.inputs)
         + f"; {len(cache.meta['label_names'])} classes; cache {'reused' if reused else 'built'} at {cache.dir}")
    if len(cache.indices(0)) == 0:
        raise DataError(f"{csv_path}: no valid training rows (see {cache.dir / 'bad_rows.csv'})")
    if len(cache.meta["label_names"]) < 2:
        raise DataError(f"{csv_path}: need at least 2 classes to train, found {cache.meta['label_names']}")
    return man, cache, bad


def _setup(cfg: Config, rank: int) -> None:
    # The model is initialised identically on every rank (DDP also broadcasts rank 0's weights); augmentation and
    # dropout then draw from per-rank streams.
    torch.manual_seed(cfg.train.seed)
    np.random.seed(cfg.train.seed)
    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    if rank:
        torch.manual_seed(cfg.train.seed * 1000 + rank)


def _start_run(csv_path: Path, cfg: Config, output, resume, cache_dir, main: bool = True):
    """-> (run folder (rank 0's is the one used), config, csv path, cache, bad rows)."""
    if resume is not None:
        run = Path(resume)
        if last_dir(run) is None or not (run / "config.yaml").exists():
            raise UsageError(f"{run} has no checkpoint to resume from (expected {run}/last/state.pt)")
        import yaml

        cfg = load_config(base=yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8")))
        info_blob = yaml.safe_load((run / "run.yaml").read_text(encoding="utf-8"))
        csv_path = csv_path or Path(info_blob["csv"])
    elif csv_path is None:
        raise UsageError("mm train needs a CSV manifest (or --resume RUN)")
    _, cache, bad = _prepare(Path(csv_path), cfg, cache_dir)
    run = Path(resume) if resume is not None else (new_run_dir(output) if main else Path("."))
    return run, cfg, Path(csv_path), cache, bad


def _write_run_files(run: Path, cfg: Config, csv_path: Path, cache) -> None:
    import yaml

    atomic_write_text(run / "config.yaml", dump_config(cfg))
    write_json(run / "labels.json", cache.meta["label_names"])
    atomic_write_text(run / "run.yaml", yaml.safe_dump({"csv": str(csv_path.resolve()), "cache": str(cache.dir)}))
    write_json(run / "inputs.json", cache.inputs)  # kinds, columns and fitted statistics (scalers, vocabularies)
    for kind in {i["kind"] for i in cache.inputs}:  # kind-wide fitted state (the tokenizer), under its run path
        for name, dest in modalities.get(kind).state_files.items():
            if (cache.dir / name).exists():
                (run / dest).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(cache.dir / name, run / dest)
    shutil.copyfile(cache.dir / "bad_rows.csv", run / "bad_rows.csv")


def train(csv_path: Path | None, cfg: Config, output: Path | None = None, resume: Path | None = None,
          cache_dir: Path | None = None, on_epoch: Callable[[int, dict], None] | None = None) -> Path:
    """Train a model on `csv_path` and write a run folder; returns its path. Under torchrun every rank calls this;
    rank 0 preprocesses and writes, the others wait for the cache and then train on their shard.

    `on_epoch(epoch, row)`: called after each epoch's validation with its history row (see `fit`)."""
    dinfo, device = D.setup(resolve_device(cfg.train.device))
    if not dinfo.main:
        os.environ["MM_QUIET"] = "1"  # one progress display, from rank 0
    threads = torch.get_num_threads()
    try:
        if not dinfo.main:
            D.barrier(dinfo)  # rank 0 builds the cache first; the others then find it fresh
        run, cfg, csv_path, cache, _ = _start_run(csv_path, cfg, output, resume, cache_dir, dinfo.main)
        if dinfo.main:
            D.barrier(dinfo)
        run = Path(D.broadcast_object(dinfo, str(run)))
        _setup(cfg, dinfo.rank)
        with RunLock(run) if dinfo.main else contextlib.nullcontext():
            if resume is None and dinfo.main:
                _write_run_files(run, cfg, csv_path, cache)
            return fit(run, cfg, cache, device, resume is not None, dinfo, on_epoch)
    finally:
        torch.set_num_threads(threads)  # train.threads is for this run only (matters when called in-process)
        D.teardown()
