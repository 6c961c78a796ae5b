"""Text encoders: token ids `[B, L]` (0 = padding) -> `[B, D]`. Each exposes `out_dim`.

From-scratch encoders live here; pretrained ones (hf, minilm) in `pretrained.py`, and bring their own tokenizer:
`pretrained_tokenizer_path(cfg)` says where it is.
"""

from __future__ import annotations

import torch
from torch import nn

from mmcli.models.encoder import Encoder, masked_mean, num_heads
from mmcli.models.registry import TEXT_ENCODERS

__all__ = [
    "TEXT_ENCODERS",
    "BagOfWords",
    "BiLSTM",
    "BiRNN",
    "KimCNN",
    "TextTransformer",
    "masked_mean",
    "pretrained_tokenizer_path",
]


class BagOfWords(Encoder):
    """Mean of learned token embeddings, then a linear layer with ReLU."""

    kind = "text"

    def __init__(self, vocab_size: int, out_dim: int = 128):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, out_dim, padding_idx=0)
        self.proj = nn.Sequential(nn.Linear(out_dim, out_dim), nn.ReLU())
        self.out_dim = out_dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """`[B, L]` -> `[B, out_dim]`."""
        return self.proj(masked_mean(self.embed(ids), ids != 0))


class BiRNN(Encoder):
    """Bidirectional LSTM or GRU over learned embeddings; the last forward and backward states, concatenated."""

    kind = "text"

    def __init__(self, vocab_size: int, out_dim: int = 128, embed_dim: int = 128, cell: str = "lstm"):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        # Named `lstm` for either cell so that runs saved before GRU existed keep their state-dict keys.
        self.lstm = rnn(embed_dim, out_dim // 2, batch_first=True, bidirectional=True)
        self.out_dim = 2 * (out_dim // 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """`[B, L]` -> `[B, out_dim]`. Padding is skipped with a packed sequence."""
        lengths = (ids != 0).sum(1).clamp(min=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(self.embed(ids), lengths, batch_first=True, enforce_sorted=False)
        _, h = self.lstm(packed)
        h = h[0] if isinstance(h, tuple) else h  # LSTM returns (h, c), GRU returns h: [2, B, out_dim / 2]
        return torch.cat([h[-2], h[-1]], dim=1)


BiLSTM = BiRNN  # the original name


class KimCNN(Encoder):
    """Parallel 1-D convolutions of several widths over word embeddings, max-pooled over time, concatenated and
    projected (Kim 2014, "Convolutional Neural Networks for Sentence Classification")."""

    kind = "text"

    def __init__(self, vocab_size: int, out_dim: int = 128, embed_dim: int = 128, widths: tuple[int, ...] = (3, 4, 5),
                 filters: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        # "Wide" convolutions (padding k - 1) so that a text shorter than the kernel still gets a feature.
        self.convs = nn.ModuleList(nn.Conv1d(embed_dim, filters, k, padding=k - 1) for k in widths)
        self.proj = nn.Linear(filters * len(widths), out_dim)
        self.widths, self.out_dim = widths, out_dim

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """`[B, L]` -> `[B, out_dim]`."""
        x = self.embed(ids).transpose(1, 2)  # [B, E, L]
        lengths = (ids != 0).sum(1, keepdim=True)  # [B, 1]
        pooled = []
        for k, conv in zip(self.widths, self.convs):
            h = torch.relu(conv(x))  # [B, F, L + k - 1]; output t sees tokens t - k + 1 .. t
            t = torch.arange(h.shape[-1], device=ids.device)
            valid = (t.unsqueeze(0) < lengths + k - 1).unsqueeze(1)  # windows that touch a real token
            h = h.masked_fill(~valid, float("-inf")).amax(-1)  # [B, F]
            pooled.append(torch.where(torch.isfinite(h), h, torch.zeros_like(h)))  # empty text -> zeros
        return self.proj(torch.cat(pooled, dim=1))


class TextTransformer(Encoder):
    """Transformer encoder from scratch (Vaswani et al. 2017): token + learned position embeddings, pre-norm layers
    with a padding mask, masked mean pool."""

    kind = "text"

    def __init__(self, vocab_size: int, out_dim: int = 128, max_tokens: int = 32, layers: int = 2,
                 dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, out_dim, padding_idx=0)
        self.pos = nn.Embedding(max_tokens, out_dim)
        layer = nn.TransformerEncoderLayer(out_dim, num_heads(out_dim), 2 * out_dim, dropout, batch_first=True,
                                           norm_first=True)
        # No nested tensors: they are an inference fast path that warns with norm_first and changes nothing here.
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(out_dim), enable_nested_tensor=False)
        self.out_dim, self.max_tokens = out_dim, max_tokens

    def blocks(self) -> list[nn.Module]:
        return [nn.ModuleList([self.embed, self.pos]), *self.encoder.layers]

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """`[B, L]` with L <= max_tokens -> `[B, out_dim]`."""
        ids = ids[:, : self.max_tokens]
        mask = ids != 0
        # An all-padding row would make attention softmax over nothing (NaN): let it attend to its first slot.
        attend = mask.clone()
        attend[:, 0] |= ~mask.any(1)
        x = self.embed(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))
        return masked_mean(self.encoder(x, src_key_padding_mask=~attend), mask)


@TEXT_ENCODERS.register("bow")
def build_bow(vocab_size: int, embed_dim: int = 128, **_: object) -> BagOfWords:
    """Bag of words: averaged token embeddings (fastest)."""
    return BagOfWords(vocab_size, embed_dim)


@TEXT_ENCODERS.register("lstm")
def build_lstm(vocab_size: int, embed_dim: int = 128, **_: object) -> BiRNN:
    """Bidirectional LSTM from scratch."""
    return BiRNN(vocab_size, embed_dim, cell="lstm")


@TEXT_ENCODERS.register("gru")
def build_gru(vocab_size: int, embed_dim: int = 128, **_: object) -> BiRNN:
    """Bidirectional GRU from scratch."""
    return BiRNN(vocab_size, embed_dim, cell="gru")


@TEXT_ENCODERS.register("cnn")
def build_text_cnn(vocab_size: int, embed_dim: int = 128, **_: object) -> KimCNN:
    """Kim (2014) CNN: convolutions of widths 3, 4, 5 over embeddings, max-pooled."""
    return KimCNN(vocab_size, embed_dim, embed_dim, filters=max(8, embed_dim // 2))


@TEXT_ENCODERS.register("transformer")
def build_transformer(vocab_size: int, embed_dim: int = 128, max_tokens: int = 32, text_layers: int = 2,
                      **_: object) -> TextTransformer:
    """Transformer encoder from scratch (2 layers, masked mean pool)."""
    return TextTransformer(vocab_size, embed_dim, max_tokens, layers=text_layers)


from mmcli.models.pretrained import pretrained_tokenizer_path
