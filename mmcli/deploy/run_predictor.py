"""A run folder as the server's Predictor (`mm serve RUN`): rows prepared in numpy as a bundle prepares them
(mmcli/deploy/rows.py), one torch forward per batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmcli.deploy.rows import RowPreparer, decide, input_error, stack
from mmcli.errors import MMError


def run_preparer(loaded) -> RowPreparer:
    """A LoadedRun -> its RowPreparer; an absent input's placeholder is what its kind's batches make of an empty
    cell."""
    from mmcli import modalities
    from mmcli.data.dataset import input_specs

    specs, states, placeholders = input_specs(loaded.model), loaded.states or {}, {}
    for inp in loaded.inputs:
        kind = modalities.get(inp["kind"])
        empty = kind.empty(inp, states.get(inp["kind"]), loaded.cfg.data)
        placeholders[inp["name"]] = kind.batch(empty, np.array([0]), specs[inp["name"]], "cpu", False).numpy()
    return RowPreparer(loaded.inputs, states, loaded.cfg.data, specs, placeholders)


class RunPredictor:
    """`inputs` [{"name": column, "kind"}], `labels`, `version` (the run folder and a hash of its weights)."""

    def __init__(self, run: Path | str):
        from mmcli.deploy.export import sha256
        from mmcli.loading import load_run

        self.loaded = load_run(Path(run))
        self.preparer = run_preparer(self.loaded)
        self.labels = self.loaded.labels
        self.inputs = [{"name": c, "kind": k} for c, k in self.preparer.columns]
        self.version = f"{Path(run).name}@{sha256(Path(run) / 'model.safetensors')[:12]}"

    def probabilities(self, prepared: list) -> np.ndarray:
        """Prepared rows -> float32 `[B, C]`."""
        import torch

        model, dev = self.loaded.model, self.loaded.device
        arrays, present = stack(prepared, model.names)
        with torch.inference_mode():
            logits = model({n: torch.from_numpy(a).to(dev) for n, a in zip(model.names, arrays)},
                           torch.from_numpy(present).to(dev)).float()
            probs = torch.sigmoid(logits) if model.multi_label else torch.softmax(logits, dim=-1)
        return probs.cpu().numpy()

    def prepare(self, row: dict) -> tuple:
        try:
            return self.preparer.prepare(row)
        except MMError as exc:
            raise input_error(exc, row) from None

    def run(self, prepared: list, top_k: int | None = None) -> list[dict]:
        return [decide(p, self.labels, self.loaded.model.multi_label, self.loaded.thresholds, top_k or len(self.labels))
                for p in self.probabilities(prepared)]

    def warm_up(self) -> None:
        names = self.loaded.model.names
        self.probabilities([({n: self.preparer.placeholders[n] for n in names}, [True] * len(names))])
