"""An exponential moving average of the weights training changes (`train.ema`), validated and saved in their place.

On small data the weights after any one step are a noisy sample of where the optimiser is heading; their running
average over the last part of the schedule is a cheap ensemble along the training path (Polyak averaging; used
this way by Tan & Le 2019 for EfficientNet). torch's `AveragedModel` copies and averages every parameter, the frozen
encoders' tens of millions included, on every step; this keeps only the tensors that can change (trainable
parameters and floating-point buffers such as BatchNorm's running statistics), so over cached frozen encoders an
update costs about as much as the head's optimiser step.
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import torch
from torch import nn


def decay_for(share: float, total_steps: int) -> float:
    """The per-step decay of an average that spans about `share` of `total_steps` (its time constant in steps)."""
    return 1.0 - 1.0 / max(1.0, share * total_steps)


class WeightEMA:
    """Shadow copies of `model`'s changing tensors, updated after every optimiser step."""

    def __init__(self, model: nn.Module, decay: float):
        state = model.state_dict(keep_vars=True)
        # live references: the optimiser and BatchNorm update these tensors in place, so they stay valid
        self.live = {k: v.detach() for k, v in state.items()
                     if v.is_floating_point() and (not isinstance(v, nn.Parameter) or v.requires_grad)}
        self.shadow = {k: v.clone() for k, v in self.live.items()}
        self.decay, self.updates = decay, 0

    @torch.no_grad()
    def update(self) -> None:
        """Move the average towards the current weights. The decay ramps up over the first steps (min(decay,
        (1 + n) / (10 + n)), as TensorFlow's ExponentialMovingAverage), so the random initial head fades fast."""
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        torch._foreach_lerp_(list(self.shadow.values()), list(self.live.values()), 1.0 - d)

    @contextmanager
    def applied(self):
        """The model holds the averaged weights inside the block and its own ones again after it."""
        saved = {k: v.clone() for k, v in self.live.items()}
        self.copy_to_model()
        try:
            yield
        finally:
            with torch.no_grad():
                for k, v in self.live.items():
                    v.copy_(saved[k])

    @torch.no_grad()
    def copy_to_model(self) -> None:
        """Put the averaged weights into the model for good (the end of a refit)."""
        for k, v in self.live.items():
            v.copy_(self.shadow[k])

    def state_dict(self) -> dict:
        return {"updates": self.updates, "shadow": {k: v.cpu() for k, v in self.shadow.items()}}

    @torch.no_grad()
    def load_state_dict(self, blob: dict) -> None:
        missing = set(self.shadow) - set(blob["shadow"])
        if missing:
            raise ValueError(f"the checkpoint's weight average lacks {sorted(missing)[:3]}")
        for k, v in self.shadow.items():
            v.copy_(blob["shadow"][k])
        self.updates = int(blob["updates"])


def make_ema(model: nn.Module, share: float, total_steps: int) -> WeightEMA | None:
    """The average for `train.ema` = `share` of the schedule, None when it is 0 (off)."""
    return WeightEMA(model, decay_for(share, total_steps)) if share > 0 else None


def applied(ema: WeightEMA | None):
    """`ema.applied()`, or nothing when there is no average."""
    return ema.applied() if ema is not None else nullcontext()
