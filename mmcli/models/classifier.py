"""The multimodal classifier: one encoder per input column, a fusion, a head; and `build_model` from config."""

from __future__ import annotations

import torch
from torch import nn

from mmcli.models.fusion import FUSIONS
from mmcli.models.image import IMAGE_ENCODERS
from mmcli.models.text import TEXT_ENCODERS


class MultimodalClassifier(nn.Module):
    """`inputs {name: tensor}` + presence `[B, M]` -> logits `[B, C]`.

    Image inputs are float `[B, 3, H, W]`, text inputs int64 ids `[B, L]`. A modality that a row lacks (present
    False) is replaced by a learned "missing" embedding before fusion.
    """

    def __init__(self, encoders: dict[str, nn.Module], fusion: nn.Module, num_classes: int, hidden_dim: int = 256,
                 dropout: float = 0.2):
        super().__init__()
        self.names = list(encoders)
        self.encoders = nn.ModuleDict(encoders)
        self.missing = nn.ParameterDict({n: nn.Parameter(torch.zeros(e.out_dim)) for n, e in encoders.items()})
        self.fusion = fusion
        if getattr(fusion, "produces_logits", False):
            self.head: nn.Module = nn.Identity()
        elif hidden_dim > 0:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(fusion.out_dim, hidden_dim), nn.ReLU(),
                                      nn.Dropout(dropout), nn.Linear(hidden_dim, num_classes))
        else:
            self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(fusion.out_dim, num_classes))
        self.num_classes = num_classes

    def embed(self, inputs: dict[str, torch.Tensor], present: torch.Tensor) -> dict[str, torch.Tensor]:
        """`{name: input}` -> `{name: [B, D]}` with absent rows swapped for the missing embedding."""
        out = {}
        for j, name in enumerate(self.names):
            emb = self.encoders[name](inputs[name])
            out[name] = torch.where(present[:, j : j + 1], emb, self.missing[name].to(emb.dtype))
        return out

    def forward(self, inputs: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """-> logits `[B, num_classes]`."""
        return self.head(self.fusion(self.embed(inputs, present), present))


def build_encoder(kind: str, name: str, cfg, vocab_size: int | None) -> nn.Module:
    """One encoder from config: `kind` is "image" or "text"."""
    if kind == "image":
        return IMAGE_ENCODERS.build(name, embed_dim=cfg.model.embed_dim, image_size=cfg.data.image_size, cfg=cfg)
    return TEXT_ENCODERS.build(name, vocab_size=vocab_size, embed_dim=cfg.model.embed_dim,
                               max_tokens=cfg.data.max_tokens, cfg=cfg)


def build_model(cfg, inputs: list[dict], num_classes: int, vocab_size: int | None) -> MultimodalClassifier:
    """`inputs`: [{"name": column, "kind": "image" | "text"}] in the cache's order."""
    from mmcli.errors import UsageError

    unknown = set(cfg.model.encoders) - {i["name"] for i in inputs}
    if unknown:
        raise UsageError(f"config key 'model.encoders' names unknown column(s): {', '.join(sorted(unknown))}; "
                         f"input columns are: {', '.join(i['name'] for i in inputs)}")
    encoders = {}
    for inp in inputs:
        default = cfg.model.image_encoder if inp["kind"] == "image" else cfg.model.text_encoder
        encoders[inp["name"]] = build_encoder(inp["kind"], cfg.model.encoders.get(inp["name"], default), cfg,
                                              vocab_size)
    dims = {n: e.out_dim for n, e in encoders.items()}
    fusion = FUSIONS.build(cfg.model.fusion, dims=dims, num_classes=num_classes, cfg=cfg)
    return MultimodalClassifier(encoders, fusion, num_classes, cfg.model.hidden_dim, cfg.model.dropout)
