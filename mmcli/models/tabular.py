"""Tabular encoders: a group of numeric columns, float32 `[B, F]` (robust-standardised on the train split, NaN where a
cell is missing), or one categorical column, int64 `[B]` (0 = unknown / unseen, 1..K the training vocabulary)
-> `[B, out_dim]`.

Numeric: `numeric_mlp` (NaN -> 0 plus a missing-indicator mask, then an MLP) and `numeric_tokens` (FT-Transformer's
feature tokenizer and a small Transformer over the feature tokens). Categorical: `embedding` (a learned vector per
category).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from mmcli.models.encoder import Encoder, num_heads
from mmcli.models.registry import CATEGORICAL_ENCODERS, NUMERIC_ENCODERS

__all__ = ["CATEGORICAL_ENCODERS", "NUMERIC_ENCODERS", "CategoryEmbedding", "FeatureTokenizer", "NumericMLP",
           "NumericTokens", "split_missing"]


def split_missing(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """float `[B, F]` with NaN for missing -> (`[B, F]` with NaN replaced by 0, bool `[B, F]` missing mask).

    0 is the training median after robust standardisation, so the filled value is a neutral guess; the mask keeps
    "missing" distinguishable from "exactly the median"."""
    missing = torch.isnan(x)
    return x.masked_fill(missing, 0.0), missing


class NumericMLP(Encoder):
    """Missing-indicator MLP: `[x with NaN -> 0, isnan(x)]` (width 2F) -> Linear-LayerNorm-ReLU-Dropout -> Linear."""

    def __init__(self, num_features: int, out_dim: int = 128, hidden: int | None = None, dropout: float = 0.1):
        super().__init__()
        hidden = hidden or out_dim
        # LayerNorm: the 2F inputs mix standardised values and 0/1 indicators, whose scales differ
        self.hidden = nn.Sequential(nn.Linear(2 * num_features, hidden), nn.LayerNorm(hidden), nn.ReLU(),
                                    nn.Dropout(dropout))
        self.proj = nn.Linear(hidden, out_dim)
        self.num_features, self.out_dim = num_features, out_dim

    def blocks(self) -> list[nn.Module]:
        return [self.hidden, self.proj]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, F]` (NaN = missing) -> `[B, out_dim]`."""
        filled, missing = split_missing(x)
        return self.proj(self.hidden(torch.cat([filled, missing.to(filled.dtype)], dim=1)))


class FeatureTokenizer(nn.Module):
    """FT-Transformer's feature tokenizer (Gorishniy et al. 2021, "Revisiting Deep Learning Models for Tabular
    Data"): token_j = x_j * W_j + b_j, `[B, F]` -> `[B, F, d]`; a learned token per feature where x_j is missing.
    Also holds the [CLS] token `[d]` that the Transformer reads out."""

    def __init__(self, num_features: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_features, dim))
        self.bias = nn.Parameter(torch.empty(num_features, dim))
        self.missing = nn.Parameter(torch.empty(num_features, dim))
        self.cls = nn.Parameter(torch.empty(dim))
        bound = 1 / math.sqrt(dim)  # the paper's (and rtdl's) uniform initialisation
        for p in (self.weight, self.bias, self.missing, self.cls):
            nn.init.uniform_(p, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, F]` (NaN = missing) -> `[B, F, d]`."""
        filled, missing = split_missing(x)
        tokens = filled.unsqueeze(-1) * self.weight + self.bias
        return torch.where(missing.unsqueeze(-1), self.missing.to(tokens.dtype), tokens)


class NumericTokens(Encoder):
    """FT-Transformer for a numeric group: one token per feature plus [CLS], pre-norm Transformer layers, the [CLS]
    output through LayerNorm-ReLU-Linear (the paper's prediction head, here ending at `out_dim`)."""

    def __init__(self, num_features: int, out_dim: int = 128, token_dim: int = 32, layers: int = 1,
                 dropout: float = 0.1):
        super().__init__()
        self.tokenizer = FeatureTokenizer(num_features, token_dim)
        # heads of 8 channels: at token widths of 16-64 the default 32 would leave a single head
        layer = nn.TransformerEncoderLayer(token_dim, num_heads(token_dim, 8), 2 * token_dim, dropout,
                                           batch_first=True, norm_first=True)
        # No nested tensors: an inference fast path that warns with norm_first and changes nothing here.
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(token_dim), nn.ReLU(), nn.Linear(token_dim, out_dim))
        self.num_features, self.token_dim, self.out_dim = num_features, token_dim, out_dim

    def blocks(self) -> list[nn.Module]:
        return [self.tokenizer, *self.encoder.layers, self.head]

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, F]` -> per-feature tokens `[B, F, token_dim]` (before the Transformer; for a fusion that attends)."""
        return self.tokenizer(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """`[B, F]` (NaN = missing) -> `[B, out_dim]`."""
        tokens = self.tokens(x)
        cls = self.tokenizer.cls.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
        h = self.encoder(torch.cat([cls, tokens], dim=1))  # [B, 1 + F, d]
        return self.head(h[:, 0])


class CategoryEmbedding(Encoder):
    """A learned vector per category, `[B]` int64 (0 = unknown) -> `[B, out_dim]`; projected when `dim` differs
    from `out_dim`.

    `num_categories` counts the rows of the table, index 0 included (K + 1 for a vocabulary of K)."""

    def __init__(self, num_categories: int, out_dim: int = 128, dim: int | None = None, dropout: float = 0.0):
        super().__init__()
        dim = dim or out_dim
        self.embed = nn.Embedding(num_categories, dim)
        # Unknown starts at zero rather than random: when no training row is unknown the vector never trains,
        # and an unseen category at test time then adds nothing instead of a random offset. It still learns
        # (no padding_idx) when training rows do map to 0.
        with torch.no_grad():
            self.embed.weight[0].zero_()
        self.dropout = nn.Dropout(dropout)
        self.proj = nn.Linear(dim, out_dim) if dim != out_dim else nn.Identity()
        self.num_categories, self.out_dim = num_categories, out_dim

    def blocks(self) -> list[nn.Module]:
        return [self.embed, self.proj]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """`[B]` int64 in 0..num_categories - 1 -> `[B, out_dim]`."""
        return self.proj(self.dropout(self.embed(ids)))


@NUMERIC_ENCODERS.register("numeric_mlp")
def build_numeric_mlp(embed_dim: int = 128, num_features: int = 1, **_: object) -> NumericMLP:
    """MLP over the values and their missing-indicator mask (fast default)."""
    return NumericMLP(num_features, embed_dim)


@NUMERIC_ENCODERS.register("numeric_tokens")
def build_numeric_tokens(embed_dim: int = 128, num_features: int = 1, token_dim: int = 32, layers: int = 1,
                         **_: object) -> NumericTokens:
    """FT-Transformer: a token per feature, Transformer layers, [CLS] readout."""
    return NumericTokens(num_features, embed_dim, token_dim=token_dim, layers=layers)


@CATEGORICAL_ENCODERS.register("embedding")
def build_embedding(embed_dim: int = 128, num_categories: int = 2, **_: object) -> CategoryEmbedding:
    """Learned embedding per category (index 0 = unknown)."""
    return CategoryEmbedding(num_categories, embed_dim)
