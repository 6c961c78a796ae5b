"""Text columns: tokenized once (one tokenizer for every text column) into int32 ids `[N, L]`, L the column's
fitted length (`inp["tokens"]`: its longest training text's, up to `data.max_tokens`)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np

from mmcli.files import atomic_write_text, save_npy
from mmcli.modalities.base import Modality, register


def length(inp: dict, dc) -> int:
    """A text input's token length: fitted on its training texts; runs saved before that was fitted used
    `data.max_tokens` (`mmcli.loading.run_inputs` fills it in for them)."""
    return int(inp.get("tokens") or dc.max_tokens)


class Text(Modality):
    kind = "text"
    fits = True
    empty_what = "text"
    state_files: ClassVar[dict[str, str]] = {"tokenizer.json": "tokenizer/tokenizer.json"}

    def detect(self, values: list[str], column: str) -> bool:
        return any(values)  # the string columns no other kind took

    def fit(self, inputs, values, dc, state=None):
        """A given tokenizer (pretrained, or the run's at eval time) is kept; else one is trained on the
        training split's texts of every text column. Each column's length (`tokens`) is fitted on its training
        texts, unless the input has one already (a trained run's, at eval / predict time)."""
        from mmcli import text as textlib

        if state is None and inputs:
            state = textlib.train_tokenizer([v for i in inputs for v in values[i["name"]]], dc.tokenizer,
                                            dc.vocab_size)
        for inp in inputs:
            if "tokens" not in inp:
                inp["tokens"] = textlib.fitted_length(state, [v for v in values[inp["name"]] if v], dc.max_tokens)
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

        ids = textlib.encode(state, [r[inp["name"]] for r in man.rows], length(inp, dc))
        save_npy(folder / self.file_name(inp), ids)
        return ids, {}

    def open(self, folder: Path, inp: dict) -> np.ndarray:
        return np.load(folder / self.file_name(inp))

    def batch(self, array, pos, spec, device, augment):
        """int32 ids -> int64 `[B, L]`."""
        import torch

        return torch.from_numpy(array[pos].astype(np.int64)).to(device)

    def prepare(self, values, inp, state, dc, spec) -> np.ndarray:
        """A text -> int64 ids `[1, L]`."""
        from mmcli import text as textlib

        return textlib.encode(state, [str(values[inp["name"]])], length(inp, dc)).astype(np.int64)

    def empty(self, inp, state, dc) -> np.ndarray:
        from mmcli import text as textlib

        return textlib.encode(state, [""], length(inp, dc))

    def encoder_args(self, inp, state, dc) -> dict:
        return {"vocab_size": state.get_vocab_size() if state is not None else None, "max_tokens": length(inp, dc)}


register(Text())
