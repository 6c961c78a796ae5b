"""Modality ablation: score a model with modalities hidden, and slice its scores by the inputs rows really have.

Hiding a modality sets its presence entry to False in every row, so the model takes the same missing-modality
path (its learned "missing" embedding, the fusion's mask) that it takes for a row without that input. Inputs
are left in place: what is measured is the model's behaviour without the modality, not a corrupted input.
"""

from __future__ import annotations

import numpy as np
import torch

from mmcli.metrics import classification_metrics, summary


def ablation_masks(modalities: list[str]) -> dict[str, np.ndarray]:
    """Keep-masks bool [M] by setting: "full", "only:<name>" and "without:<name>" for every modality."""
    m = len(modalities)
    masks = {"full": np.ones(m, dtype=bool)}
    for j, name in enumerate(modalities):
        masks[f"only:{name}"] = np.arange(m) == j
    for j, name in enumerate(modalities):
        masks[f"without:{name}"] = np.arange(m) != j
    return masks


@torch.inference_mode()
def predict_with_masks(model, batches, masks: list[np.ndarray], cached=None,
                       ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Score every batch once per keep-mask (batches are read and decoded once, and each encoder runs once per
    batch: the masks only change which rows of its output the fusion sees).

    `masks` bool [M] each; a row's presence becomes `present & mask`. `cached(pos)`: precomputed tables' rows, as
    `predict_probs` takes them. -> (probs float [N, C] per mask, labels int [N], cache positions int [N]).
    """
    model.eval()
    probs: list[list[torch.Tensor]] = [[] for _ in masks]
    labels, positions = [], []
    for inputs, present, y, pos in batches:
        encoded = model.encode_inputs(inputs, cached(pos) if cached else None)
        for i, keep in enumerate(masks):
            visible = present & torch.as_tensor(keep, device=present.device)[None, :]
            logits = model.classify(model.with_missing(encoded, visible), visible)
            probs[i].append(torch.softmax(logits.float(), dim=1).cpu())
        labels.append(y.cpu())
        positions.append(pos)
    if not labels:
        empty = np.zeros((0, model.num_classes), np.float32)
        return [empty for _ in masks], np.zeros(0, np.int64), np.zeros(0, np.int64)
    return [torch.cat(p).numpy() for p in probs], torch.cat(labels).numpy(), torch.cat(positions).numpy()


def presence_slices(present: np.ndarray, modalities: list[str]) -> dict[str, np.ndarray]:
    """Group rows by the inputs they actually have. `present` bool [N, M] -> {"image+text": row indices, ...}."""
    groups: dict[str, list[int]] = {}
    for i, row in enumerate(present):
        key = "+".join(n for n, p in zip(modalities, row) if p) or "none"
        groups.setdefault(key, []).append(i)
    return {k: np.array(v) for k, v in sorted(groups.items(), key=lambda kv: -len(kv[1]))}


def run_ablation(model, batches, names: list[str], modalities: list[str], present: np.ndarray,
                 modality_dropout: float = 0.0, cached=None) -> tuple:
    """Score the full model and every ablation setting in one pass over `batches`.

    `present` bool [rows in the cache, M] (the cache's presence array); `modality_dropout` the run's setting,
    recorded because it decides how meaningful hiding a modality is; `cached` as `predict_probs` takes it.
    -> (full probs [N, C], labels [N], positions [N], ablation dict as described in docs/eval-json.md).
    """
    masks = ablation_masks(modalities)
    # with two modalities "only image" equals "without text": score each distinct mask once
    keys = list(dict.fromkeys(tuple(m) for m in masks.values()))
    distinct = {k: i for i, k in enumerate(keys)}
    probs, labels, positions = predict_with_masks(model, batches, [np.array(k) for k in keys], cached)
    scored = {name: summary(classification_metrics(probs[distinct[tuple(m)]], labels, names))
              for name, m in masks.items()}
    full = scored["full"]
    single = {n: scored[f"only:{n}"] for n in modalities}
    dropped = {n: scored[f"without:{n}"] for n in modalities}
    best = max(modalities, key=lambda n: single[n]["accuracy"])
    full_probs = probs[distinct[tuple(masks["full"])]]
    slices = {key: summary(classification_metrics(full_probs[rows], labels[rows], names))
              for key, rows in presence_slices(present[positions], modalities).items()}
    result = {
        "modalities": list(modalities),
        "modality_dropout": modality_dropout,
        "full": full,
        "single": single,
        "dropped": dropped,
        "contribution": {n: full["accuracy"] - dropped[n]["accuracy"] for n in modalities},
        "best_single": best,
        "fusion_gain": full["accuracy"] - single[best]["accuracy"],
        "by_presence": slices,
    }
    return full_probs, labels, positions, result


def _settings(ab: dict) -> list[tuple[str, str, dict]]:
    """Table rows (setting, inputs used, summary); "without" rows only when they differ from an "only" row."""
    mods = ab["modalities"]
    rows = [("full model", "+".join(mods), ab["full"])]
    rows += [(f"{n} only", n, ab["single"][n]) for n in mods]
    if len(mods) > 2:
        rows += [(f"without {n}", "+".join(m for m in mods if m != n), ab["dropped"][n]) for n in mods]
    return rows


def _f(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "-"
    return f"{x:+.4f}" if signed else f"{x:.4f}"


def ablation_caption(ab: dict) -> str:
    gain = f"fusion gain (full - best single, {ab['best_single']}): {_f(ab['fusion_gain'], True)}"
    contrib = ", ".join(f"{n} {_f(v, True)}" for n, v in ab["contribution"].items())
    return f"{gain}; accuracy lost without each modality: {contrib}"


def ablation_table(ab: dict):
    """A rich table: full model vs each single modality (vs each one dropped when there are 3+)."""
    from rich.table import Table

    table = Table(title="modality ablation", caption=ablation_caption(ab))
    for col in ("setting", "inputs", "accuracy", "macro_f1", "loss", "vs full"):
        table.add_column(col, justify="left" if col in ("setting", "inputs") else "right")
    full_acc = ab["full"]["accuracy"]
    for setting, used, m in _settings(ab):
        table.add_row(setting, used, _f(m["accuracy"]), _f(m["macro_f1"]), _f(m["loss"]),
                      _f(m["accuracy"] - full_acc, True))
    return table


def ablation_markdown(ab: dict) -> list[str]:
    """The report.md section: settings table, then scores by which inputs rows have."""
    lines = ["## Modality ablation", "",
             "Each setting hides modalities in every row (the model's missing-input path); the inputs are kept.", "",
             "| setting | inputs | accuracy | macro F1 | loss | vs full |", "|---|---|---|---|---|---|"]
    full_acc = ab["full"]["accuracy"]
    for setting, used, m in _settings(ab):
        lines.append(f"| {setting} | {used} | {_f(m['accuracy'])} | {_f(m['macro_f1'])} | {_f(m['loss'])} | "
                     f"{_f(m['accuracy'] - full_acc, True)} |")
    caption = ablation_caption(ab)
    lines += ["", caption[0].upper() + caption[1:] + "."]
    if not ab.get("modality_dropout"):
        lines += ["", ("Note: this model was trained with `train.modality_dropout=0`, so it never saw a missing "
                       "input; these numbers show how it copes with one more than what each modality is worth alone.")]
    lines += ["", "### By the inputs each row has", "",
              "| inputs present | rows | accuracy | macro F1 |", "|---|---|---|---|"]
    for key, m in ab["by_presence"].items():
        lines.append(f"| {key} | {m['n']} | {_f(m['accuracy'])} | {_f(m['macro_f1'])} |")
    return lines
