"""When training writes its checkpoints: the best weights (`model.safetensors`) and `last/` (the resume state).

Each file holds the whole model, pretrained encoders included: for EfficientNet-Lite0 + MiniLM, 26M parameters and
about 0.4 s a write with fsync, most of it frozen. Written every epoch (last/) and on every improvement (best),
that was a third of a 24 s zero-config run. So an improved epoch only snapshots, in memory, the tensors training
changes (trainable parameters and every buffer), and both files are written together at most every
`train.checkpoint_seconds`, at the end of the epoch loop and on Ctrl-C. A SIGKILL loses at most that much
training, and since both are written at once, the best weights on disk always match the state in last/.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from torch import nn

from mmcli.loop import LoopState, save_last
from mmcli.runs import save_weights


class Checkpoints:
    """Rank 0's checkpoint writer for one run (other ranks' calls do nothing)."""

    def __init__(self, run: Path, model, opt, sched, state: LoopState, seconds: float, main: bool = True,
                 ema=None):
        self.run, self.model, self.opt, self.sched, self.state, self.ema = run, model, opt, sched, state, ema
        self.seconds, self.main = seconds, main
        self.best: dict[str, torch.Tensor] | None = None  # the best epoch's changing tensors, not yet on disk
        self.saved_at = time.monotonic()

    def improved(self) -> None:
        """The current weights (their average, with `train.ema`) are the best so far: keep a copy of what training
        can still change."""
        if not self.main:
            return
        state = self.model.state_dict(keep_vars=True)
        self.best = {k: v.detach().to("cpu", copy=True) for k, v in state.items()
                     if not isinstance(v, nn.Parameter) or v.requires_grad}
        if self.ema is not None:
            self.best.update({k: v.to("cpu", copy=True) for k, v in self.ema.shadow.items()})

    def save(self, force: bool = False) -> bool:
        """Write the pending best weights, then last/, when forced or `seconds` have passed. -> whether it wrote."""
        if not self.main or (not force and time.monotonic() - self.saved_at < self.seconds):
            return False
        if self.best is not None:  # first, so that last/ never records a best epoch whose weights are not on disk
            save_weights(self.model, self.run / "model.safetensors", self.best)
            self.best = None
        save_last(self.run, self.model, self.opt, self.sched, self.state, self.ema)
        self.saved_at = time.monotonic()
        return True
