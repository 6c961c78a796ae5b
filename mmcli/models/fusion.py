"""Fusion modules: `{modality: [B, D_m]}` plus a presence mask bool `[B, M]` (in the order of `dims`) -> `[B, F]`,
or logits `[B, C]` for a fusion with `produces_logits = True`. All work for any number M of modalities.

Missing modalities have already been replaced by a learned "missing" embedding in the classifier; the mask lets a
fusion treat them specially where it can (attention masks them out, late fusion leaves them out of the average).
"""

from __future__ import annotations

import torch
from torch import nn

from mmcli.models.encoder import num_heads
from mmcli.models.registry import FUSIONS

__all__ = [
    "FUSIONS",
    "AttentionFusion",
    "ConcatFusion",
    "GatedFusion",
    "LateFusion",
    "LowRankFusion",
    "ProductFusion",
    "SumFusion",
]


def _projections(dims: dict[str, int], width: int) -> nn.ModuleDict:
    return nn.ModuleDict({n: nn.Linear(d, width) for n, d in dims.items()})


def _width(fusion_dim: int, embed_dim: int, dims: dict[str, int]) -> int:
    """Common width F of the fusions that project: model.fusion_dim, else model.embed_dim, else the widest input."""
    return int(fusion_dim or embed_dim or max(dims.values()))


class ConcatFusion(nn.Module):
    """Concatenation of all modality embeddings ("early" fusion of features; Baltrusaitis, Ahuja and Morency 2019,
    "Multimodal Machine Learning: A Survey and Taxonomy")."""

    def __init__(self, dims: dict[str, int]):
        super().__init__()
        self.names = list(dims)
        self.out_dim = sum(dims.values())

    def forward(self, embs: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """`{m: [B, D_m]}`, `[B, M]` -> `[B, sum D_m]`."""
        return torch.cat([embs[n] for n in self.names], dim=1)


class SumFusion(nn.Module):
    """Linear projection of each modality to a common width, then element-wise sum (the additive joint
    representation of Baltrusaitis et al. 2019, section 3.1)."""

    def __init__(self, dims: dict[str, int], width: int):
        super().__init__()
        self.proj, self.out_dim = _projections(dims, width), width

    def forward(self, embs: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """`{m: [B, D_m]}`, `[B, M]` -> `[B, width]`."""
        return torch.stack([p(embs[n]) for n, p in self.proj.items()]).sum(0)


class ProductFusion(nn.Module):
    """Hadamard (element-wise) product of tanh projections to a common width: the low-rank bilinear pooling of
    Kim et al. 2017 ("Hadamard Product for Low-rank Bilinear Pooling"), for M modalities."""

    def __init__(self, dims: dict[str, int], width: int):
        super().__init__()
        self.proj, self.out_dim = _projections(dims, width), width

    def forward(self, embs: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """`{m: [B, D_m]}`, `[B, M]` -> `[B, width]`."""
        return torch.stack([torch.tanh(p(embs[n])) for n, p in self.proj.items()]).prod(0)


class GatedFusion(nn.Module):
    """Gated Multimodal Unit (Arevalo et al. 2017, "Gated Multimodal Units for Information Fusion"), for M inputs.

    h_m = tanh(W_m x_m); gate logits g = W_z [x_1; ...; x_M] -> [B, M, F]; z = softmax over the modalities (for
    M = 2 this is the paper's sigmoid z and 1 - z); out = sum_m z_m * h_m. Absent modalities get no gate weight
    and enter the gate's input as zeros.
    """

    def __init__(self, dims: dict[str, int], width: int):
        super().__init__()
        self.names = list(dims)
        self.proj, self.out_dim = _projections(dims, width), width
        self.gate = nn.Linear(sum(dims.values()), len(dims) * width)

    def forward(self, embs: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """`{m: [B, D_m]}`, `[B, M]` -> `[B, width]`."""
        h = torch.stack([torch.tanh(self.proj[n](embs[n])) for n in self.names], dim=1)  # [B, M, F]
        # A row with nothing present keeps all modalities (its "missing" embeddings) rather than a softmax over
        # nothing; otherwise absent modalities neither feed the gate nor receive weight.
        keep = present | ~present.any(1, keepdim=True)
        gate_in = torch.cat([embs[n] * keep[:, j : j + 1] for j, n in enumerate(self.names)], dim=1)
        g = self.gate(gate_in).view(h.shape)  # [B, M, F]
        g = g.masked_fill(~keep.unsqueeze(-1), torch.finfo(g.dtype).min)
        return (g.softmax(dim=1) * h).sum(1)


class AttentionFusion(nn.Module):
    """Self-attention over modality tokens: each embedding projected to a token plus a learned modality-type
    embedding (the segment embeddings of Kiela et al. 2019, "Supervised Multimodal Bitransformers"), one Transformer
    encoder layer (Vaswani et al. 2017) with absent modalities masked out, then a masked mean over present tokens."""

    def __init__(self, dims: dict[str, int], width: int, dropout: float = 0.1):
        super().__init__()
        self.names = list(dims)
        self.proj, self.out_dim = _projections(dims, width), width
        self.type_embed = nn.Parameter(torch.randn(len(dims), width) * 0.02)
        self.layer = nn.TransformerEncoderLayer(width, num_heads(width), 2 * width, dropout, batch_first=True,
                                                norm_first=True)

    def forward(self, embs: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """`{m: [B, D_m]}`, `[B, M]` -> `[B, width]`."""
        tokens = torch.stack([self.proj[n](embs[n]) for n in self.names], dim=1) + self.type_embed  # [B, M, F]
        # A row with no modality present would mask every key (softmax over nothing -> NaN): let it attend to all.
        keep = present | ~present.any(1, keepdim=True)
        out = self.layer(tokens, src_key_padding_mask=~keep)
        w = keep.unsqueeze(-1).to(out.dtype)
        return (out * w).sum(1) / w.sum(1)


class LowRankFusion(nn.Module):
    """Low-rank Multimodal Fusion (Liu et al. 2018, "Efficient Low-rank Multimodal Fusion with Modality-Specific
    Factors"): the outer product of [x_m; 1] over all modalities, times a weight tensor factorised into `rank`
    modality-specific factors, computed without forming the product: out = sum_r w_r prod_m ([x_m; 1] W_m^(r)) + b.
    """

    def __init__(self, dims: dict[str, int], width: int, rank: int = 4):
        super().__init__()
        self.names, self.out_dim = list(dims), width
        self.factors = nn.ParameterDict({n: nn.Parameter(torch.empty(rank, d + 1, width)) for n, d in dims.items()})
        self.rank_weights = nn.Parameter(torch.empty(1, rank))
        self.bias = nn.Parameter(torch.zeros(width))
        for p in [*self.factors.values(), self.rank_weights]:
            nn.init.xavier_normal_(p)  # as in the authors' code

    def forward(self, embs: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """`{m: [B, D_m]}`, `[B, M]` -> `[B, width]`."""
        fused = None
        for n in self.names:
            x = embs[n]
            z = torch.cat([x, x.new_ones(x.shape[0], 1)], dim=1)  # appending 1 keeps the unimodal terms
            f = torch.einsum("bd,rdf->brf", z, self.factors[n])  # [B, rank, width]
            fused = f if fused is None else fused * f
        return torch.einsum("brf,r->bf", fused, self.rank_weights[0]) + self.bias


LATE_WEIGHTINGS = ("fixed", "entropy")


def _late_head(dim: int, num_classes: int, dropout: float, hidden: int) -> nn.Sequential:
    """One input's classifier `[B, dim]` -> `[B, C]`: linear, or with `hidden` > 0 an MLP with one hidden layer."""
    if hidden <= 0:
        return nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, num_classes))
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(hidden, num_classes))


class LateFusion(nn.Module):
    """Late fusion (Snoek, Worring and Smeulders 2005, "Early versus Late Fusion in Semantic Video Analysis"): one
    classifier per modality (linear, or with `hidden` an MLP), logits averaged over the modalities present in each
    row. -> logits `[B, C]`.

    While any encoder trains, or the heads are MLPs, each head is trained on its own loss, over the rows where its
    modality is present (`separate_heads`): trained through the averaged logits instead, the encoders (or the MLPs'
    hidden layers) co-adapt, each learning only what the other misses on the training rows, and on small data both
    end up weaker than the same encoder trained alone. Linear heads over frozen encoders train jointly (a linear
    model over fixed features).
    `weights` `[M]` scale each modality's logits (1 while training); `tune_late_weights` fits them on held-out rows
    after training (stacked generalisation, Wolpert 1992), so that a head that memorised its training rows, and is
    overconfident on new ones, counts for less.
    `weighting` "entropy" applies to the finished model only: while `fitting` is set (training, checkpoint choice and
    the weight fit; `fit.build` sets it, `finish.finish` clears it) the heads combine with the fixed weights. Fitted
    and selected under the per-row rule, the weights and checkpoints adapt to it and the gain is lost (mean test
    accuracy 0.8735 either way, against 0.878 with the rule applied afterwards; benchmarks/results/fusion_probe.log).
    """

    produces_logits = True
    separate_heads = True

    def __init__(self, dims: dict[str, int], num_classes: int, dropout: float = 0.0, weighting: str = "fixed",
                 hidden: int = 0):
        super().__init__()
        if weighting not in LATE_WEIGHTINGS:
            raise ValueError(f"unknown late-fusion weighting {weighting!r}; valid: {', '.join(LATE_WEIGHTINGS)}")
        self.names, self.out_dim, self.weighting, self.hidden = list(dims), num_classes, weighting, hidden
        self.heads = nn.ModuleDict({n: _late_head(d, num_classes, dropout, hidden) for n, d in dims.items()})
        self.register_buffer("weights", torch.ones(len(self.names)))
        self.fitting = False  # a plain flag, not state: a loaded model predicts with `weighting`

    def head_logits(self, embs: dict[str, torch.Tensor]) -> torch.Tensor:
        """`{m: [B, D_m]}` -> unweighted per-modality logits `[B, M, C]`."""
        return torch.stack([self.heads[n](embs[n]) for n in self.names], dim=1)

    def combine(self, logits: torch.Tensor, present: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """`[B, M, C]`, `[B, M]`, `[M]` -> `[B, C]`: the mean of the weighted logits over present modalities; with
        `weighting` "entropy", a mean weighted per row by 1 / (entropy of each head's softmax + 1e-3), so that a
        head unsure of a row (an image drawn in an unseen style) yields to a head that is sure of it."""
        # A row with nothing present averages all heads (fed the learned "missing" embeddings) instead of dividing by 0.
        w = (present | ~present.any(1, keepdim=True)).unsqueeze(-1).to(logits.dtype)
        scaled = logits * weights.to(logits.dtype)[None, :, None]
        if self.weighting == "entropy" and not self.fitting:
            p = scaled.float().softmax(-1)
            entropy = -(p * p.clamp_min(1e-12).log()).sum(-1, keepdim=True)  # [B, M, 1]
            w = w / (entropy.to(logits.dtype) + 1e-3)
        return (scaled * w).sum(1) / w.sum(1)

    def forward(self, embs: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """`{m: [B, D_m]}`, `[B, M]` -> `[B, num_classes]`."""
        return self.combine(self.head_logits(embs), present, self.weights)


@FUSIONS.register("concat")
def build_concat(dims: dict[str, int], **_: object) -> ConcatFusion:
    """Concatenate the embeddings."""
    return ConcatFusion(dims)


@FUSIONS.register("sum")
def build_sum(dims: dict[str, int], fusion_dim: int = 0, embed_dim: int = 0, dropout: float = 0.1,
                **_: object) -> SumFusion:
    """Project each embedding to a common width and add them."""
    return SumFusion(dims, _width(fusion_dim, embed_dim, dims))


@FUSIONS.register("product")
def build_product(dims: dict[str, int], fusion_dim: int = 0, embed_dim: int = 0, dropout: float = 0.1,
                **_: object) -> ProductFusion:
    """Element-wise product of tanh projections (Kim et al. 2017)."""
    return ProductFusion(dims, _width(fusion_dim, embed_dim, dims))


@FUSIONS.register("gated")
def build_gated(dims: dict[str, int], fusion_dim: int = 0, embed_dim: int = 0, dropout: float = 0.1,
                **_: object) -> GatedFusion:
    """Gated Multimodal Unit (Arevalo et al. 2017), softmax gate over modalities."""
    return GatedFusion(dims, _width(fusion_dim, embed_dim, dims))


@FUSIONS.register("attention")
def build_attention(dims: dict[str, int], fusion_dim: int = 0, embed_dim: int = 0, dropout: float = 0.1,
                **_: object) -> AttentionFusion:
    """One Transformer layer over modality tokens, absent ones masked."""
    return AttentionFusion(dims, _width(fusion_dim, embed_dim, dims), dropout=dropout)


@FUSIONS.register("lmf")
def build_lmf(dims: dict[str, int], fusion_dim: int = 0, embed_dim: int = 0, lmf_rank: int = 4,
                **_: object) -> LowRankFusion:
    """Low-rank multimodal fusion (Liu et al. 2018), rank model.lmf_rank (4)."""
    return LowRankFusion(dims, _width(fusion_dim, embed_dim, dims), rank=lmf_rank)


@FUSIONS.register("late")
def build_late(dims: dict[str, int], num_classes: int, dropout: float = 0.0, late_weighting: str = "fixed",
               late_hidden: int = 0, **_: object) -> LateFusion:
    """Late fusion: a head per modality (linear, or an MLP with model.late_hidden) trained alone; logits weighted
    (fitted on val) over present ones."""
    return LateFusion(dims, num_classes, dropout=dropout, weighting=late_weighting, hidden=late_hidden)
