"""A run folder as the server's Predictor (`mm serve RUN`): rows prepared in numpy as a bundle prepares them
(mmcli/deploy/rows.py), one torch forward per batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmcli.deploy.rows import RowPredictor, RowPreparer, stack


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


class RunPredictor(RowPredictor):
    """`inputs` [{"name": column, "kind"}], `labels`, `version` (the run folder and a hash of its weights)."""

    def __init__(self, run: Path | str):
        from mmcli.deploy.export import sha256
        from mmcli.loading import load_run

        self.loaded = load_run(Path(run))
        self.preparer = run_preparer(self.loaded)
        self.labels = self.loaded.labels
        self.names = self.loaded.model.names
        self.multi_label, self.thresholds = self.loaded.model.multi_label, self.loaded.thresholds
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
