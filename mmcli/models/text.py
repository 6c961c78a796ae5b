"""Text encoders: token ids `[B, L]` (0 = padding) -> `[B, D]`. Each exposes `out_dim`."""

from __future__ import annotations

import torch
from torch import nn

from mmcli.models.registry import Registry

TEXT_ENCODERS = Registry("text encoder")


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`[B, L, D]`, bool `[B, L]` -> `[B, D]` mean over unmasked positions (zeros for an all-padding row)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


class BagOfWords(nn.Module):
    """Mean of learned token embeddings, then a linear layer with ReLU."""

    def __init__(self, vocab_size: int, out_dim: int = 128):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, out_dim, padding_idx=0)
        self.proj = nn.Sequential(nn.Linear(out_dim, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """`[B, L]` -> `[B, out_dim]`."""
        return self.proj(masked_mean(self.embed(ids), ids != 0))


class BiLSTM(nn.Module):
    """Bidirectional LSTM over learned embeddings; the last forward and backward states, concatenated."""

    def __init__(self, vocab_size: int, out_dim: int = 128, embed_dim: int = 128):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, out_dim // 2, batch_first=True, bidirectional=True)
        self.out_dim = 2 * (out_dim // 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """`[B, L]` -> `[B, out_dim]`. Padding is skipped with a packed sequence."""
        lengths = (ids != 0).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths, batch_first=True, enforce_sorted=False)
        _, (h, _) = self.lstm(packed)
        return torch.cat([h[-2], h[-1]], dim=1)


@TEXT_ENCODERS.register("bow")
def build_bow(vocab_size: int, embed_dim: int = 128, **_: object) -> BagOfWords:
    """Bag of words: averaged token embeddings (fastest)."""
    return BagOfWords(vocab_size, embed_dim)


@TEXT_ENCODERS.register("lstm")
def build_lstm(vocab_size: int, embed_dim: int = 128, **_: object) -> BiLSTM:
    """Bidirectional LSTM from scratch."""
    return BiLSTM(vocab_size, embed_dim)
