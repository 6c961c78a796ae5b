"""Fusion modules: `{modality: [B, D_m]}` plus a presence mask `[B, M]` -> `[B, F]`.

Missing modalities have already been replaced by a learned "missing" embedding in the classifier; the mask lets a
fusion treat them specially where it can (attention masks them out).
"""

from __future__ import annotations

import torch
from torch import nn

from mmcli.models.registry import Registry

FUSIONS = Registry("fusion")


class ConcatFusion(nn.Module):
    """Concatenation of all modality embeddings ("early" fusion of features, e.g. Baltrusaitis et al. 2018)."""

    def __init__(self, dims: dict[str, int]):
        super().__init__()
        self.names = list(dims)
        self.out_dim = sum(dims.values())

    def forward(self, embs: dict[str, torch.Tensor], present: torch.Tensor) -> torch.Tensor:
        """`{m: [B, D_m]}`, `[B, M]` -> `[B, sum D_m]`."""
        return torch.cat([embs[n] for n in self.names], dim=1)


@FUSIONS.register("concat")
def build_concat(dims: dict[str, int], **_: object) -> ConcatFusion:
    """Concatenate the embeddings."""
    return ConcatFusion(dims)
