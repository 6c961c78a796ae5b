"""What every encoder shares: fine-tuning controls (freeze, unfreeze the last N blocks, pretrained marking) and the
small helpers that image, text and pretrained encoders all use.

Freezing lives here, once, rather than in each encoder: an encoder only has to list its `blocks()` in input-to-output
order and set `pretrained`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn


def model_opt(cfg: Any, key: str, default: Any) -> Any:
    """`cfg.model.<key>`, or `default` when there is no config or the key does not exist (yet)."""
    value = getattr(getattr(cfg, "model", None), key, None)
    return default if value is None else value


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """`[B, L, D]`, bool `[B, L]` -> `[B, D]` mean over unmasked positions (zeros for an all-padding row)."""
    m = mask.unsqueeze(-1).to(x.dtype)
    return (x * m).sum(1) / m.sum(1).clamp(min=1.0)


class Encoder(nn.Module):
    """Base of every encoder: `out_dim`, a `pretrained` flag and the fine-tuning surface.

    Subclasses set `out_dim` (and, for images, `image_size`, `mean`, `std`) and may override `blocks()`.
    """

    kind: str = ""  # the input kind it reads (mmcli/modalities/): image, text, numeric, categorical, audio
    pretrained: bool = False  # True when the weights came from a pretrained checkpoint (lower learning rate)
    out_dim: int

    def blocks(self) -> list[nn.Module]:
        """The encoder's stages in input-to-output order, for `unfreeze_last`; default: its child modules."""
        return list(self.children())

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Parameters the optimiser should update (empty when fully frozen)."""
        return [p for p in self.parameters() if p.requires_grad]

    def frozen_blocks(self) -> int:
        """How many leading `blocks()` have no trainable parameter: the frozen prefix of a partly frozen encoder."""
        n = 0
        for block in self.blocks():
            if any(p.requires_grad for p in block.parameters()):
                break
            n += 1
        return n

    def forward_until(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """The output of the first `k` blocks (encoders that support prefix caching override this)."""
        raise NotImplementedError(f"{type(self).__name__} cannot be split into blocks")

    def forward_from(self, h: torch.Tensor, k: int) -> torch.Tensor:
        """`forward_until(x, k)`'s output -> the encoder's output `[B, out_dim]`, running blocks `k` onward."""
        raise NotImplementedError(f"{type(self).__name__} cannot be split into blocks")

    supports_prefix: bool = False  # True where forward_until / forward_from are implemented
    cached_prefix: int = 0  # k while training reads this encoder's `forward_until(x, k)` from a precomputed table

    def cacheable_prefix(self) -> int:
        """`k` > 0 when the first `k` blocks are frozen, some later part trains and the encoder can be run in two
        halves: their output then never changes during training and can be computed once per row."""
        k = self.frozen_blocks()
        return k if self.supports_prefix and 0 < k < len(self.blocks()) else 0

    @property
    def fully_frozen(self) -> bool:
        """True when no parameter trains, so the output for a given input never changes (cacheable)."""
        params = list(self.parameters())
        return bool(params) and not any(p.requires_grad for p in params)

    def freeze(self, unfreeze_last: int = 0) -> None:
        """Freeze every parameter, then let the last `unfreeze_last` blocks (and all after them) train again."""
        params = list(self.named_parameters())
        blocks = [b for b in self.blocks() if next(b.parameters(), None) is not None]  # e.g. an Identity projection
        for _, p in params:
            p.requires_grad_(False)
        if unfreeze_last <= 0:
            return
        if unfreeze_last >= len(blocks):
            for _, p in params:
                p.requires_grad_(True)
            return
        # Parameters are registered in forward order, so "the last N blocks" is every parameter from the first
        # one of block[-N] onward: this also catches the final norm / pooler that follow the last block.
        start = {id(p) for p in blocks[-unfreeze_last].parameters()}
        on = False
        for _, p in params:
            on = on or id(p) in start
            p.requires_grad_(on)

    def train(self, mode: bool = True) -> Encoder:
        """As `nn.Module.train`, but frozen parts stay in eval mode.

        A frozen encoder must give the same features in training as at prediction time: BatchNorm running statistics
        must not drift and dropout must stay off; otherwise "frozen" weights would still change the model. The same
        holds for the frozen leading blocks of a partly frozen encoder, which is what makes their output cacheable.
        """
        super().train(mode)
        if not mode:
            return self
        if self.fully_frozen:
            return super().train(False)
        for block in self.blocks()[: self.frozen_blocks()]:  # no dropout / drop-connect in a frozen prefix either
            block.eval()
        for m in self.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and not any(p.requires_grad for p in m.parameters()):
                m.eval()
        return self


def wants_freeze(names: Iterable[str], column: str | None, encoder_name: str, kind: str, pretrained: bool) -> bool:
    """Does the `model.freeze` list select this encoder? Entries may name the column, the encoder (e.g. minilm),
    the modality kind (image / text), or "pretrained" for every pretrained encoder."""
    names = set(names)
    return bool(names & {column, encoder_name, kind}) or (pretrained and "pretrained" in names)


def apply_finetuning(encoder: nn.Module, cfg: Any, column: str | None, encoder_name: str, kind: str) -> None:
    """Apply `model.freeze` (list[str]) and `model.unfreeze_last` (int) to one built encoder.

    `unfreeze_last: N > 0` keeps the last N blocks of every selected encoder trainable; when `model.freeze` is empty
    it selects the pretrained encoders, so `unfreeze_last: 2` alone fine-tunes only their top two blocks.
    """
    if not isinstance(encoder, Encoder):
        return
    names = list(model_opt(cfg, "freeze", []))
    last = int(model_opt(cfg, "unfreeze_last", 0))
    # model.unfreeze {selector: N} overrides unfreeze_last for the encoders it selects (e.g. {text: 3}: fine-tune
    # the text encoder's top 3 blocks while the image encoder stays fully frozen)
    for selector, n in dict(model_opt(cfg, "unfreeze", {})).items():
        if wants_freeze([selector], column, encoder_name, kind, encoder.pretrained):
            last = int(n)
    if not names and last > 0:
        names = ["pretrained"]
    if wants_freeze(names, column, encoder_name, kind, encoder.pretrained):
        encoder.freeze(last)


def num_heads(width: int, head_dim: int = 32) -> int:
    """Attention heads for a `width`: about `head_dim` channels each, and a divisor of `width` (as MHA requires)."""
    n = max(1, width // head_dim)
    while width % n:
        n -= 1
    return n
