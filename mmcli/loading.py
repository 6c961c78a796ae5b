"""Load a finished run folder (config, labels, tokenizer, best weights) and prepare new CSVs for it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from mmcli.config import Config, load_config
from mmcli.errors import MMError


@dataclass
class LoadedRun:
    run: Path
    cfg: Config
    labels: list[str]
    tokenizer: object | None
    model: object
    device: str
    inputs: list[dict]
    thresholds: list[float] | None = None  # multi-label: per-label decision thresholds tuned on validation
    states: dict | None = None  # {kind: fitted state}: the tokenizer under "text"


def resolve_device(name: str) -> str:
    """auto -> cuda, then mps, then cpu."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        from mmcli.errors import UsageError

        raise UsageError(f"device {name!r} requested but CUDA is not available; use --set train.device=cpu")
    return name


def run_inputs(run: Path, cfg: Config) -> list[dict]:
    """The run's inputs with their fitted statistics (inputs.json); runs saved before it existed had image and
    text columns only, named in their config."""
    f = run / "inputs.json"
    if f.exists():
        inputs = json.loads(f.read_text(encoding="utf-8"))
    else:
        inputs = [{"name": c, "kind": "image", "columns": [c]} for c in cfg.data.image_columns or []] + [
            {"name": c, "kind": "text", "columns": [c]} for c in cfg.data.text_columns or []]
    for inp in inputs:  # runs saved before text lengths were fitted used data.max_tokens for every text
        if inp["kind"] == "text":
            inp.setdefault("tokens", cfg.data.max_tokens)
    return inputs


def load_run(run: Path, device: str | None = None) -> LoadedRun:
    import torch

    from mmcli import modalities
    from mmcli.models.classifier import build_model
    from mmcli.runs import load_weights

    try:
        saved = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
        labels = json.loads((run / "labels.json").read_text(encoding="utf-8"))
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise MMError(f"{run}: cannot read config.yaml/labels.json: {exc}") from None
    if isinstance(saved, dict) and isinstance(saved.get("model"), dict):
        # runs saved before `model.cnn_widths` existed were trained with the widths of that time
        saved["model"].setdefault("cnn_widths", [32, 64, 128, 128])
    cfg = load_config(base=saved)
    inputs = run_inputs(run, cfg)
    states = {k: modalities.get(k).load_state(run, run=True) for k in {i["kind"] for i in inputs}}
    model = build_model(cfg, inputs, len(labels), states=states, multi_label=cfg.data.multi_label == "true")
    load_weights(model, run / "model.safetensors")
    thresholds = None
    if model.multi_label and (run / "thresholds.json").exists():
        saved = json.loads((run / "thresholds.json").read_text(encoding="utf-8"))
        thresholds = [float(saved.get(n, 0.5)) for n in labels]
    dev = resolve_device(device or cfg.train.device)
    # channels_last, as in training: image batches come in that layout, and a CNN's forward pass over them runs
    # about 1.4x as fast on a CPU with its weights in it too (benchmarks/allocator.py)
    model.to(dev, memory_format=torch.channels_last).eval()
    return LoadedRun(run, cfg, labels, states.get("text"), model, dev, inputs, thresholds, states)


def prepare_csv(loaded: LoadedRun, csv: Path, need_label: bool, cache_dir: Path | None = None,
                enforce_bad_share: bool = True, fmt: str = "auto"):
    """Validate and cache `csv` (any supported format: `fmt`, or "auto" by extension; never the training data's
    format) with the run's columns, tokenizer and classes. -> (Cache, bad rows).

    `enforce_bad_share`: fail past data.max_bad_fraction (evaluation); prediction keeps going and reports each
    bad row in its output instead."""
    from mmcli.data.cache import build_cache, check_bad_share
    from mmcli.data.manifest import read_manifest
    from mmcli.progress import warn

    # the run's own inputs, not ones inferred again from this data (which may hold other columns)
    loaded.cfg.data.inputs = {c: i["kind"] for i in loaded.inputs for c in i.get("columns") or [i["name"]]}
    man = read_manifest(csv, loaded.cfg.data, need_label=need_label, fmt=fmt)
    if not need_label:
        man.label_column = None
        man.split_column = None
    cache, bad, _ = build_cache(man, loaded.cfg, cache_dir, states=loaded.states, label_names=loaded.labels,
                                fitted=loaded.inputs)
    for inp in cache.inputs:
        if inp.get("unknown"):
            warn(f"{inp['name']}: {inp['unknown']} row(s) hold a category never seen in training (read as unknown)")
    if enforce_bad_share:
        check_bad_share(bad, len(man.rows), loaded.cfg.data.max_bad_fraction, cache.dir / "bad_rows.csv",
                        cache.meta.get("row_label", "row"))
    elif bad:
        warn(f"{len(bad)} of {len(man.rows)} rows could not be read; their output rows carry the reason")
    return cache, bad
