"""One row of cells -> the model's input arrays, in numpy (no torch), for every prediction path.

A run folder (`mm predict RUN`, `mm serve RUN`) and an ONNX bundle (`mm predict BUNDLE`, `mm serve BUNDLE`) both
call `prepare_row`, so their inputs agree by construction; each kind prepares its own cells
(`Modality.prepare`, mmcli/modalities/). An absent input gets its placeholder array (what the model reads where
`present` is False), so every prepared row has one array per input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from mmcli.errors import MMError, TooLarge, UsageError


class RowError(UsageError):
    """A row the model cannot take as a whole (an unknown column, no input at all): 422 from the server."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass
class RowPreparer:
    """What preparing a row needs: the model's inputs (with fitted statistics), the kinds' states (the tokenizer),
    the data config, each input's spec (an image encoder's size and normalisation) and placeholders `[1, ...]`."""

    inputs: list[dict]
    states: dict[str, Any]
    data_cfg: Any
    specs: dict[str, Any]
    placeholders: dict[str, np.ndarray]

    @property
    def columns(self) -> list[tuple[str, str]]:
        """[(column, kind)] over every input's columns, in model order."""
        from mmcli import modalities

        return [(c, i["kind"]) for i in self.inputs for c in modalities.columns(i)]

    def prepare(self, values: dict[str, Any]) -> tuple[dict[str, np.ndarray], list[bool]]:
        """{column: cell (a path or bytes for files, a string otherwise)} -> ({input name: array `[1, ...]`},
        present per input). Raises RowError (unknown column, no input) or the kind's MMError naming the cell."""
        from mmcli import modalities

        known = {c for c, _ in self.columns}
        unknown = sorted(set(values) - known)
        if unknown:
            raise RowError(unknown[0], f"unknown input column(s) {', '.join(unknown)}; this model takes "
                             f"{', '.join(f'{c} ({k})' for c, k in self.columns)}")
        arrays, present = {}, []
        for inp in self.inputs:
            kind = modalities.get(inp["kind"])
            cells = {c: values.get(c, "") for c in modalities.columns(inp)}
            has = any(isinstance(v, (bytes, bytearray)) or not kind.is_missing(str(v)) for v in cells.values())
            present.append(has)
            if has:
                state = self.states.get(inp["kind"])
                arrays[inp["name"]] = kind.prepare(cells, inp, state, self.data_cfg, self.specs.get(inp["name"]))
            else:
                arrays[inp["name"]] = self.placeholders[inp["name"]]
        if not any(present):
            raise RowError("body", f"give at least one input (this model takes "
                             f"{', '.join(f'{c} ({k})' for c, k in self.columns)})")
        return arrays, present


def stack(prepared: list[tuple[dict[str, np.ndarray], list[bool]]], names: list[str]) -> tuple[list, np.ndarray]:
    """Prepared rows -> ([one `[B, ...]` array per input, in `names` order], present bool `[B, M]`)."""
    arrays = [np.concatenate([p[0][n] for p in prepared]) for n in names]
    return arrays, np.array([p[1] for p in prepared], dtype=bool)


def decide(probs: np.ndarray, labels: list[str], multi_label: bool, thresholds: list[float] | None,
           top_k: int) -> dict:
    """One row's probabilities `[C]` -> {"label", "probabilities", "top_k"}; multi-label: `label` joins every label
    at or above its threshold with "|" and `selected` lists them."""
    order = np.argsort(-probs, kind="stable")
    out = {"probabilities": {labels[i]: float(probs[i]) for i in range(len(labels))},
           "top_k": [{"label": labels[i], "probability": float(probs[i])} for i in order[:top_k]]}
    if not multi_label:
        out["label"] = labels[int(order[0])]
        return out
    th = thresholds or [0.5] * len(labels)
    out["selected"] = [labels[i] for i in order if probs[i] >= th[i]]
    out["label"] = "|".join(out["selected"])
    return out


def input_error(exc: MMError, row: dict) -> Exception:
    """A prediction-time MMError -> the server's InputError: 422 for an unknown column or no input, 413 for too
    many pixels, 400 for a cell that cannot be read; the field is the column at fault (else "body")."""
    from mmcli.deploy.predictor import InputError

    text = str(exc)
    if isinstance(exc, RowError):
        return InputError(422, exc.field, text)
    for c in row:  # kinds name the cell as "column: reason" or "input 'column': reason"
        for prefix in (f"{c}:", f"input '{c}':"):
            if text.startswith(prefix):
                return InputError(413 if isinstance(exc, TooLarge) else 400, c, text[len(prefix):].strip())
    return InputError(413 if isinstance(exc, TooLarge) else 400, "body", text)


def assign_inputs(inputs: list[dict], image: str | None, text: str | None, extra: dict[str, str]) -> dict[str, str]:
    """The CLI's inputs -> {column: cell}: the positional image / text fill the first free image / text input;
    `extra` names columns explicitly (`--input column=value`)."""
    from mmcli import modalities

    values = dict(extra)
    names = [c for i in inputs for c in modalities.columns(i)]
    unknown = set(values) - set(names)
    if unknown:
        raise UsageError(f"unknown input column(s) {', '.join(sorted(unknown))}; this model takes {', '.join(names)}")
    for kind, value in (("image", image), ("text", text)):
        if value is None:
            continue
        slots = [i["name"] for i in inputs if i["kind"] == kind and i["name"] not in values]
        if not slots:
            raise UsageError(f"this model has no (free) {kind} input for {value!r}")
        values[slots[0]] = value
    return values


def top_list(probs: np.ndarray, labels: list[str], multi_label: bool, thresholds: list[float] | None,
             top_k: int) -> list[dict]:
    """`[C]` -> [{"label", "probability"}] for the top-k classes, most likely first. Multi-label: every label at or
    above its threshold (marked `"selected": true`), then the rest of the top k."""
    order = [int(i) for i in np.argsort(-probs, kind="stable")]
    if not multi_label:
        return [{"label": labels[i], "probability": float(probs[i])} for i in order[:top_k]]
    th = thresholds or [0.5] * len(labels)
    out = [{"label": labels[i], "probability": float(probs[i]), "selected": bool(probs[i] >= th[i])} for i in order]
    return [o for k, o in enumerate(out) if o["selected"] or k < top_k]


def csv_cells(p: np.ndarray, labels: list[str], multi_label: bool, thresholds: list[float] | None,
              separator: str) -> tuple[str, str]:
    """(prediction, probability) cells of a predictions CSV: the arg-max class, or (multi-label) every label at or
    above its threshold, joined with the label separator, with the highest probability."""
    if not multi_label:
        best = int(p.argmax())
        return labels[best], f"{p[best]:.6f}"
    th = thresholds or [0.5] * len(labels)
    chosen = [n for n, v, t in zip(labels, p, th) if v >= t]
    return separator.join(chosen), f"{p.max():.6f}"


def predictions_header(row_label: str, labels: list[str]) -> list[str]:
    return [row_label, "prediction", "probability"] + [f"p_{n}" for n in labels] + ["error"]


class RowPredictor:
    """The server's Predictor protocol (mmcli/deploy/predictor.py) over `probabilities(prepared) -> [B, C]`, shared
    by run folders and bundles. Subclasses set `preparer`, `names` (model input order), `labels`, `multi_label`,
    `thresholds`, `inputs` and `version`."""

    preparer: RowPreparer
    names: list[str]
    labels: list[str]
    multi_label: bool = False
    thresholds: list[float] | None = None

    def probabilities(self, prepared: list) -> np.ndarray:
        raise NotImplementedError

    def prepare(self, row: dict) -> tuple:
        try:
            return self.preparer.prepare(row)
        except MMError as exc:
            raise input_error(exc, row) from None

    def run(self, prepared: list, top_k: int | None = None) -> list[dict]:
        return [decide(p, self.labels, self.multi_label, self.thresholds, top_k or len(self.labels))
                for p in self.probabilities(prepared)]

    def warm_up(self) -> None:
        """One call on the placeholders, so that the first request does not pay the set-up."""
        self.probabilities([({n: self.preparer.placeholders[n] for n in self.names}, [True] * len(self.names))])
