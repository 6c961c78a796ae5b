"""Text columns: tokenized once (one tokenizer for every text column) into int32 ids `[N, max_tokens]`."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from mmcli.files import atomic_write_text, save_npy
from mmcli.modalities.base import Modality, register


class Text(Modality):
    kind = "text"
    fits = True
    empty_what = "text"
    state_files: ClassVar[dict[str, str]] = {"tokenizer.json": "tokenizer/tokenizer.json"}

    def detect(self, values: list[str], column: str) -> bool:
        return any(values)  # the string columns no other kind took

    def fit(self, inputs, values, dc, state=None):
        """A given tokenizer (pretrained, or the run's at eval time) is kept; else one is trained on the
        training split's texts of every text column."""
        from mmcli import text as textlib

        if state is None and inputs:
            state = textlib.train_tokenizer([v for i in inputs for v in values[i["name"]]], dc.tokenizer,
                                            dc.vocab_size)
        return state

    def save_state(self, state, folder: Path) -> None:
        if state is not None:
            atomic_write_text(folder / "tokenizer.json", state.to_str())

    def load_state(self, folder: Path, run: bool = False):
        from mmcli.text import load_tokenizer

        f = folder / ("tokenizer/tokenizer.json" if run else "tokenizer.json")
        return load_tokenizer(f) if f.exists() else None

    def file_name(self, inp: dict) -> str:
        return f"tokens_{inp['name']}.npy"

    def build(self, man, inp, state, dc, folder: Path, reuse):
        from mmcli import text as textlib

        ids = textlib.encode(state, [r[inp["name"]] for r in man.rows], dc.max_tokens)
        save_npy(folder / self.file_name(inp), ids)
        return ids, {}

    def open(self, folder: Path, inp: dict) -> np.ndarray:
        return np.load(folder / self.file_name(inp))

    def batch(self, array, pos, spec, device, augment):
        """int32 ids -> int64 `[B, max_tokens]`."""
        import torch

        return torch.from_numpy(array[pos].astype(np.int64)).to(device)

    def prepare(self, values, inp, state, dc, spec) -> np.ndarray:
        """A text -> int64 ids `[1, max_tokens]`."""
        from mmcli import text as textlib

        return textlib.encode(state, [str(values[inp["name"]])], dc.max_tokens).astype(np.int64)

    def empty(self, inp, state, dc) -> np.ndarray:
        from mmcli import text as textlib

        return textlib.encode(state, [""], dc.max_tokens)

    def encoder_args(self, inp, state, dc) -> dict:
        return {"vocab_size": state.get_vocab_size() if state is not None else None, "max_tokens": dc.max_tokens}


register(Text())
