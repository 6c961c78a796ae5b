"""One typed, nested config: defaults <- YAML file <- `--set a.b=c` overrides.

Every key is a dataclass field; unknown keys and values of the wrong type or outside their choices raise a
`UsageError` that names the key and what is allowed. No torch import here: the CLI loads this for `--help`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mmcli.config_merge import merge
from mmcli.errors import UsageError


def opt(default: Any, help: str, choices: tuple | None = None, **kw: Any) -> Any:
    """A config field with help text and (optionally) the allowed values."""
    meta = {"help": help, "choices": choices}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass
class DataConfig:
    format: str = opt("auto", "how to read the data: auto (by extension; a folder is a class-per-folder image tree), "
                      "csv, tsv, jsonl, json, parquet or folder",
                      ("auto", "csv", "tsv", "jsonl", "json", "parquet", "folder"))
    label: str = opt("label", "label column name")
    inputs: dict[str, str] = opt({}, "input columns and their kinds, {column: image|text|numeric|categorical|audio}; "
                                 "empty: inferred (saved resolved in the run folder)")
    image_columns: list[str] | None = opt(None, "image columns (paths); inferred when null")
    text_columns: list[str] | None = opt(None, "text columns; inferred when null (the other string columns)")
    multi_label: str = opt("auto", "several labels per row: auto (when a label cell holds the separator), true, false",
                           ("auto", "true", "false"))
    label_separator: str = opt("|", "separator between the labels of a multi-label cell")
    split_column: str = opt("split", "optional column with train/val/test per row")
    val_fraction: float = opt(0.15, "share of rows held out for validation when there is no split column")
    image_size: int = opt(64, "images are made square at this size in the cache (data.resize says how)")
    resize: str = opt("crop", "how an image becomes a square: crop (shorter side to data.image_size, then a centre "
                      "crop: fills the frame, cuts the ends of a wide or tall image) or pad (longer side to "
                      "data.image_size, centred on white: nothing is cut)", ("crop", "pad"))
    max_tokens: int = opt(128, "texts are cut at this many tokens at most; each text column's length is its longest "
                          "training text's (rounded up to a multiple of 8), up to this")
    max_categories: int = opt(50, "a string column with at most this many distinct values, each repeated 5 times on "
                              "average, is inferred as categorical")
    audio_seconds: float = opt(2.0, "audio clips are resampled to 16 kHz mono and cropped (centre) or padded to this "
                               "length")
    max_audio_seconds: float = opt(600.0, "longer audio clips are refused (bad rows)")
    tokenizer: str = opt("bpe", "tokenizer trained on the training texts (bpe is reproducible; the wordpiece "
                         "trainer breaks ties at random, so its vocabulary varies between fresh caches)",
                         ("bpe", "wordpiece"))
    vocab_size: int = opt(8000, "maximum vocabulary size of a trained tokenizer")
    max_bad_fraction: float = opt(0.05, "fail (exit 1) when more than this share of rows is bad")
    allow_missing: bool = opt(False, "a row may lack some (not all) of its inputs; else such a row is bad")
    max_image_pixels: int = opt(50_000_000, "images with more pixels are refused (decompression bombs)")
    workers: int = opt(0, "worker processes that decode images while preprocessing (0: in-process)")


@dataclass
class ModelConfig:
    image_encoder: str = opt("cnn", "encoder for every image column (see `mm list`)")
    text_encoder: str = opt("bow", "encoder for every text column (see `mm list`)")
    numeric_encoder: str = opt("numeric_mlp", "encoder of the numeric columns, one group (see `mm list`)")
    categorical_encoder: str = opt("embedding", "encoder for every categorical column (see `mm list`)")
    audio_encoder: str = opt("audio_cnn", "encoder for every audio column (see `mm list`)")
    encoders: dict[str, str] = opt({}, "per-input encoder overrides, {input: encoder name} (the numeric group's "
                                   "input is named numeric)")
    fusion: str = opt("late", "how modality embeddings are combined (see `mm list`); late (per-modality heads "
                      "trained separately, weighted on val) generalises best on small data "
                      "(benchmarks/sample_accuracy.py)")
    fusion_dim: int = opt(0, "common width of projecting fusions (sum, product, gated, attention, lmf; 0: embed_dim)")
    lmf_rank: int = opt(4, "rank of the low-rank multimodal fusion (lmf)")
    late_weighting: str = opt("fixed", "late fusion: fixed (each head's logits times its weight fitted on "
                              "validation) or entropy (the finished model also weights each row's heads by how sure each "
                              "is of it, 1 / entropy of its softmax; training and the weight fit use fixed)",
                              ("fixed", "entropy"))
    late_hidden: int = opt(0, "late fusion: hidden width of each input's head, an MLP (dropout, linear, ReLU, "
                           "dropout, linear) trained on its own loss; 0: a linear head")
    freeze: list[str] = opt([], "encoders to freeze: column names, encoder names, 'image', 'text' or 'pretrained'")
    unfreeze_last: int = opt(0, "keep the last N blocks trainable: of each frozen encoder, or (freeze empty) of each "
                             "pretrained encoder, the rest frozen")
    unfreeze: dict[str, int] = opt({}, "per-encoder unfreeze_last, keyed like model.freeze (column, encoder name, "
                                   "kind or 'pretrained'), e.g. {text: 3} with unfreeze_last 0")
    image_weights: str | None = opt(None, "local weights for resnet* (a state-dict file) or the hf image encoder "
                                    "(a Hugging Face model folder)")
    text_weights: str | None = opt(None, "local Hugging Face model folder for the hf text encoder")
    text_pooling: str = opt("mean", "pooling of the hf text encoder", ("mean", "cls"))
    text_layers: int = opt(2, "layers of the from-scratch transformer text encoder")
    cnn_widths: list[int] = opt([8, 16, 32, 64], "channels of the from-scratch cnn image encoder's conv blocks "
                                "(each block halves the resolution)")
    vit_patch: int = opt(8, "patch size of the from-scratch vit image encoder")
    vit_layers: int = opt(4, "layers of the from-scratch vit image encoder")
    vit_hidden: int = opt(128, "width of the from-scratch vit image encoder")
    embed_dim: int = opt(128, "width D of every from-scratch encoder's output [B, D]")
    hidden_dim: int = opt(256, "hidden width of the classifier head (0: a single linear layer)")
    dropout: float = opt(0.2, "dropout before and inside the head")


@dataclass
class TrainConfig:
    epochs: int = opt(20, "maximum number of epochs")
    batch_size: int = opt(64, "rows per optimisation step (smaller on a small training set: train.min_steps)")
    min_steps: int = opt(8, "optimisation steps per epoch at least: a training set under batch_size x min_steps rows "
                         "trains in smaller batches, never under 16 rows (0: always batch_size)")
    lr: float = opt(3e-3, "peak learning rate (AdamW)")
    weight_decay: float = opt(0.01, "AdamW weight decay")
    warmup: float = opt(0.05, "share of all steps spent warming the learning rate up, then cosine decay")
    grad_clip: float = opt(1.0, "clip the gradient norm to this value (0: off)")
    monitor: str = opt("val_accuracy", "validation metric for early stopping and the best checkpoint",
                       ("val_accuracy", "val_macro_f1", "val_loss"))
    patience: int = opt(5, "stop after this many epochs without improvement (0: never stop early); at least a "
                        "quarter of train.epochs")
    min_epochs: float = opt(0.5, "early stopping never stops before this share of train.epochs (while the learning "
                            "rate is still high, a noisy validation metric dips and recovers)")
    monitor_smoothing: float = opt(0.5, "the monitored metric is an exponential moving average with this weight on "
                                   "the past (0: the raw epoch value); it picks the best checkpoint and drives "
                                   "patience, so one lucky or unlucky epoch on a small validation split decides less")
    refit: bool = opt(True, "after training, train again from scratch on the training and validation rows together "
                      "for the best epoch count and keep that model (validation metrics stay those of the first "
                      "model, which never saw them)")
    soup: bool = opt(False, "with train.refit: keep the average of the selected model's and the refit model's "
                     "weights (a uniform model soup: both start from the same initialisation) instead of the refit "
                     "model alone")
    seed: int = opt(0, "random seed (splits, initialisation, shuffling, augmentation)")
    augment: bool = opt(True, "random crops and flips of training images")
    views: list[str] = opt([], "with train.augment off: also cache the image encoders' tables (frozen "
                           "embeddings, or a partly frozen encoder's first blocks' outputs) of every image re-rendered "
                           "as each view (flip: mirrored left to right; gray: in grey), and train each row of a step "
                           "on one of its renderings at random; augmentation that keeps the frozen blocks running "
                           "once per view")
    mixup: float = opt(0.0, "mixup of training rows' embeddings (after the encoders, before fusion) and of their "
                       "labels, with weights drawn from Beta(mixup, mixup); a regulariser for small data, and it "
                       "works over cached tables (0: off)")
    ema: float = opt(0.0, "validate, select and save an exponential moving average of the trained weights instead of "
                     "the weights themselves, averaged over about this share of the schedule's steps (0.1: the last "
                     "tenth; 0: off)")
    lp_epochs: int = opt(0, "with fine-tuned encoders: first train the head alone this many epochs over the "
                         "encoders' embeddings before fine-tuning (cached like a frozen encoder's, so seconds), then "
                         "fine-tune from that head (LP-FT); 0: fine-tune from a random head")
    label_smoothing: float = opt(0.0, "cross-entropy label smoothing")
    aux_weight: float = opt(0.0, "weight of per-modality auxiliary heads' loss beside the fused loss (0: none)")
    modality_dropout: float = opt(0.3, "probability of hiding each modality of a training row (never all of them); "
                                  "unused while late fusion trains its heads apart")
    device: str = opt("auto", "auto, cpu, cuda, cuda:N or mps")
    threads: int = opt(0, "torch CPU threads (0: torch's default)")
    checkpoint_every: int = opt(0, "also save a resumable checkpoint every N optimiser steps (0: between epochs only)")
    checkpoint_seconds: float = opt(60.0, "seconds between end-of-epoch checkpoints (best weights and last/; also "
                                    "written at the end and on Ctrl-C); a SIGKILL loses at most this much training; "
                                    "0: every epoch")
    class_weights: str = opt("none", "weight the loss by inverse class frequency", ("none", "auto"))
    sampler: str = opt("shuffle", "batch sampling: shuffle; weighted (rows drawn with probability 1/class "
                       "frequency, with replacement); or length (shuffled, then rows of similar text length share "
                       "a batch: less padding for text encoders that trim it per batch, i.e. fine-tuned pretrained "
                       "ones)", ("shuffle", "weighted", "length"))
    precision: str = opt("32", "32, or bf16 / fp16 autocast (fp16 with a gradient scaler; CUDA); auto: bf16 where the "
                         "hardware computes it natively (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), else 32",
                         ("32", "bf16", "fp16", "auto"))
    pretrained_lr: float = opt(1e-4, "learning rate of the trainable parts of pretrained encoders")
    pretrained_lrs: dict[str, float] = opt({}, "train.pretrained_lr per pretrained encoder, keyed by its column or "
                                           "its kind, e.g. {image: 3e-4}")
    cache_prefix: bool = opt(True, "partly frozen encoders (model.unfreeze_last): compute the frozen first blocks' "
                             "outputs once and keep them in the cache folder (false: run them every step)")


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _validate(cfg: Config) -> None:
    checks = [
        ("data.val_fraction", 0.0 <= cfg.data.val_fraction < 1.0, "must be in [0, 1)"),
        ("data.image_size", cfg.data.image_size >= 8, "must be at least 8"),
        ("data.max_tokens", cfg.data.max_tokens >= 1, "must be at least 1"),
        ("data.audio_seconds", 0.1 <= cfg.data.audio_seconds <= cfg.data.max_audio_seconds,
         "must be at least 0.1 and at most data.max_audio_seconds"),
        ("data.max_bad_fraction", 0.0 <= cfg.data.max_bad_fraction <= 1.0, "must be in [0, 1]"),
        ("model.embed_dim", cfg.model.embed_dim >= 1, "must be positive"),
        ("model.dropout", 0.0 <= cfg.model.dropout < 1.0, "must be in [0, 1)"),
        ("model.late_hidden", cfg.model.late_hidden >= 0, "must be at least 0 (0: a linear head per input)"),
        ("model.cnn_widths", bool(cfg.model.cnn_widths) and min(cfg.model.cnn_widths) >= 1,
         "must list at least one positive channel count, e.g. [16, 32, 64, 128]"),
        ("train.epochs", cfg.train.epochs >= 1, "must be at least 1"),
        ("train.batch_size", cfg.train.batch_size >= 1, "must be at least 1"),
        ("train.min_steps", cfg.train.min_steps >= 0, "must be at least 0"),
        ("train.lr", cfg.train.lr > 0, "must be positive"),
        ("train.warmup", 0.0 <= cfg.train.warmup < 1.0, "must be in [0, 1)"),
        ("train.modality_dropout", 0.0 <= cfg.train.modality_dropout < 1.0, "must be in [0, 1)"),
        ("train.min_epochs", 0.0 <= cfg.train.min_epochs <= 1.0, "must be in [0, 1]"),
        ("train.mixup", cfg.train.mixup >= 0, "must be at least 0 (0: off)"),
        ("train.ema", 0.0 <= cfg.train.ema < 1.0, "must be in [0, 1) (0: off)"),
        ("train.monitor_smoothing", 0.0 <= cfg.train.monitor_smoothing < 1.0, "must be in [0, 1)"),
        ("train.soup", cfg.train.refit or not cfg.train.soup,
         "needs train.refit=true: it averages the selected model with the refit one"),
    ]
    for key, ok, why in checks:
        if not ok:
            raise UsageError(f"config key '{key}' {why}")
    if cfg.train.views:
        _check_views(cfg.train.views)


def _check_views(views: list[str]) -> None:
    """`train.views` names views some input kind has (mmcli/modalities/), each once."""
    from mmcli import modalities

    known = sorted({v for kind in modalities.KIND_ORDER for v in modalities.get(kind).views})
    unknown = [v for v in views if v not in known]
    if unknown or len(set(views)) < len(views):
        raise UsageError(f"config key 'train.views': {views} must name each view once, from: {', '.join(known)}")


def parse_override(text: str) -> tuple[list[str], Any]:
    """`a.b=c` -> (["a", "b"], parsed c). Values are read as YAML: 3e-4, true, [a, b], {col: enc}. Numbers that
    YAML leaves as strings (3e-4) are converted where the key's type is a float, so `data.label=1e5` stays text."""
    if "=" not in text:
        raise UsageError(f"--set expects key=value (e.g. train.lr=3e-4), got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise UsageError(f"--set: bad key {key!r} (expected dotted names such as train.epochs)")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except (yaml.YAMLError, ValueError):  # ValueError: e.g. an integer past Python's 4300-digit limit
        value = raw
    return key.split("."), value


def load_config(path: str | Path | None = None, overrides: list[str] | tuple = (), base: dict | None = None,
                preset: str | None = None) -> Config:
    """Build the resolved config: defaults <- `base` (a saved run's config) or `preset` (mmcli/presets.py) <- YAML
    `path` <- `overrides`."""
    cfg = Config()
    if base:
        merge(cfg, base)
    elif preset:
        from mmcli.presets import preset_values

        merge(cfg, preset_values(preset))
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UsageError(f"config file not found: {path}")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (yaml.YAMLError, UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"config file {path} is not valid YAML: {exc}") from None
        merge(cfg, data)
    for text in overrides:
        keys, value = parse_override(text)
        nested: Any = value
        for part in reversed(keys):
            nested = {part: nested}
        merge(cfg, nested)
    _validate(cfg)
    return cfg


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def describe_keys() -> list[tuple[str, str, str]]:
    """(key, default, help) for every config key, for `mm config --help`-style listings."""
    rows = []
    for section in dataclasses.fields(Config):
        for f in dataclasses.fields(section.default_factory()):  # type: ignore[misc]
            choices = f.metadata.get("choices")
            help_text = f.metadata["help"] + (f" ({'|'.join(choices)})" if choices else "")
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
            rows.append((f"{section.name}.{f.name}", repr(default), help_text))
    return rows
