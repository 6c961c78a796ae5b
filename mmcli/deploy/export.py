"""`mm export RUN`: a run folder -> a self-contained ONNX bundle that predicts without torch.

The bundle (the serving contract, read by mmcli/deploy/runtime.py):
  model.onnx         the classifier as one graph: one tensor per input (dynamic batch) + `present` bool [B, M]
                     -> probabilities float32 [B, C] (softmax, or sigmoid per label for multi-label runs)
  model.int8.onnx    with --quantize: int8 dynamic quantisation of the weights (then the default model)
  config.yaml        the run's resolved config (its `data` section drives preprocessing)
  inputs.json        the inputs with their fitted statistics (scaler centres and scales, category maps)
  preprocess.json    per input: kind, columns, the encoder's spec (image size, mean, std), array dtype and shape
  placeholders.npz   per input: the array `[1, ...]` that stands for an absent input
  labels.json, thresholds.json (multi-label), and each kind's state (tokenizer.json)
  bundle.json        format, versions, the parity report and the sha256 of every other file

Parity: the run's validation rows (or `--check DATA`) go through the torch model and through onnxruntime, at batch
1 and at batch N; a maximum absolute probability difference above `tolerance` (fp32) fails the export (exit 1),
after the bundle and its report are written so that they can be inspected.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmcli.errors import MMError, UsageError
from mmcli.files import atomic_write_text

BUNDLE_FORMAT = "mmcli-onnx-bundle"
FORMAT_VERSION = 1
PRESENT = "present"  # the graph input that holds the presence mask


class ExportError(MMError):
    """The model (or one of its modules) cannot be exported, or the exported graph disagrees with torch."""


class ProbabilityGraph(nn.Module):
    """The classifier as one exportable module: `(*inputs, present)` in `names` order -> probabilities `[B, C]`."""

    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        *xs, present = args
        logits = self.model(dict(zip(self.names, xs)), present).float()
        return torch.sigmoid(logits) if self.model.multi_label else torch.softmax(logits, dim=-1)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def check_rows(loaded, check: Path | None, limit: int):
    """Real rows for the parity check: -> (Cache, positions). The run's validation rows (all its valid rows when
    it has no validation split) or the rows of `check`."""
    import yaml

    from mmcli.loading import prepare_csv

    source = check
    if source is None:
        meta = yaml.safe_load((loaded.run / "run.yaml").read_text(encoding="utf-8")) if \
            (loaded.run / "run.yaml").exists() else {}
        source = Path(meta.get("csv") or "")
        if not meta.get("csv") or not source.exists():
            raise UsageError(f"the run's training data ({meta.get('csv') or 'unknown'}) is not there to check the "
                             "export on; give rows with --check DATA")
    try:
        cache, _ = prepare_csv(loaded, source, need_label=True, enforce_bad_share=False)
    except UsageError:  # no label column: parity still works, the int8 report then has no accuracy
        cache, _ = prepare_csv(loaded, source, need_label=False, enforce_bad_share=False)
    idx = cache.indices(1) if check is None else cache.indices()
    if len(idx) == 0:
        idx = cache.indices()
    if len(idx) == 0:
        raise UsageError(f"{source}: no usable rows to check the export on")
    return cache, idx[:limit]


def row_arrays(loaded, cache, idx: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, np.ndarray | None]:
    """Cache rows -> ([input arrays in model order], present `[B, M]`, labels `[B]` or None), as the model's batches
    prepare them (no augmentation)."""
    from mmcli.data.dataset import Batches, input_specs

    inputs, present, labels, _ = Batches(cache, idx, len(idx), input_specs(loaded.model)).batch(idx)
    arrays = [inputs[n].contiguous().numpy() for n in loaded.model.names]
    has_labels = cache.targets is None and cache.meta.get("label_column") is not None
    return arrays, present.numpy(), labels.numpy() if has_labels else None


def culprit(model: nn.Module, arrays: list[np.ndarray]) -> str:
    """Which module fails torch.export on its own: an encoder (named with its class) or else the fusion."""
    for name, x in zip(model.names, arrays):
        enc = model.encoders[name]
        try:
            torch.export.export(enc, (torch.from_numpy(x),), strict=False)
        except Exception as exc:  # noqa: BLE001 - any failure names this module
            return f"input {name!r}: encoder {type(enc).__name__} ({str(exc).splitlines()[0][:200]})"
    return f"fusion {type(model.fusion).__name__} or the head"


def export_onnx(graph: ProbabilityGraph, arrays: list[np.ndarray], present: np.ndarray, path: Path) -> None:
    """torch.onnx.export with the dynamo exporter, every input's first dimension dynamic."""
    from torch.export import Dim

    if len(present) < 2:  # an example batch of 1 would specialise the batch dimension to 1
        arrays, present = [np.concatenate([a, a]) for a in arrays], np.concatenate([present, present])
    example = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in arrays) + (torch.from_numpy(present),)
    shapes = (tuple({0: Dim.DYNAMIC} for _ in example),)
    try:
        torch.onnx.export(graph, example, str(path), dynamo=True, input_names=[*graph.names, PRESENT],
                          output_names=["probabilities"], dynamic_shapes=shapes, verbose=False,
                          external_data=False)
    except Exception as exc:  # noqa: BLE001 - re-raised naming the module at fault
        raise ExportError(f"cannot export the model to ONNX: {culprit(graph.model, arrays)}; "
                          f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None


def session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def ort_probs(sess, names: list[str], arrays: list[np.ndarray], present: np.ndarray) -> np.ndarray:
    feed = dict(zip(names, arrays)) | {PRESENT: present}
    return sess.run(None, feed)[0]


def parity(graph, sess, arrays, present, one_by_one: int = 16) -> tuple[dict, np.ndarray]:
    """torch vs onnxruntime on the same rows: at batch N and (for the first `one_by_one` rows) at batch 1.
    -> (report, torch probabilities `[N, C]`)."""
    with torch.inference_mode():
        ref = graph(*[torch.from_numpy(a) for a in arrays], torch.from_numpy(present)).numpy()
    full = ort_probs(sess, graph.names, arrays, present)
    k = min(one_by_one, len(present))
    single = np.concatenate([ort_probs(sess, graph.names, [a[i:i + 1] for a in arrays], present[i:i + 1])
                             for i in range(k)])
    report = {"rows": len(present), "rows_at_batch_1": k,
              "max_abs_diff_batch_n": float(np.abs(full - ref).max()),
              "max_abs_diff_batch_1": float(np.abs(single - ref[:k]).max()),
              "argmax_agreement": float((full.argmax(1) == ref.argmax(1)).mean())}
    report["max_abs_diff"] = max(report["max_abs_diff_batch_n"], report["max_abs_diff_batch_1"])
    return report, ref


def quantize(model_path: Path, out: Path, arrays, present, names, ref: np.ndarray, labels) -> dict:
    """int8 dynamic quantisation of the weights (onnxruntime.quantization) and its report on the check rows."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(model_path), str(out), weight_type=QuantType.QInt8)
    q = ort_probs(session(out), names, arrays, present)
    report = {"file": out.name, "size_bytes": out.stat().st_size, "fp32_size_bytes": model_path.stat().st_size,
              "rows": len(present), "max_abs_diff": float(np.abs(q - ref).max()),
              "argmax_agreement": float((q.argmax(1) == ref.argmax(1)).mean())}
    if labels is not None:
        report["accuracy_fp32"] = float((ref.argmax(1) == labels).mean())
        report["accuracy_int8"] = float((q.argmax(1) == labels).mean())
    return report


def write_preprocessing(loaded, out: Path) -> list[dict]:
    """Everything preprocessing needs, beside the graph; -> the graph's inputs as bundle.json lists them."""
    from mmcli import modalities
    from mmcli.data.dataset import input_specs

    shutil.copyfile(loaded.run / "config.yaml", out / "config.yaml")
    atomic_write_text(out / "inputs.json", json.dumps(loaded.inputs, indent=2))
    atomic_write_text(out / "labels.json", json.dumps(loaded.labels, indent=2))
    if loaded.thresholds is not None:
        atomic_write_text(out / "thresholds.json", json.dumps(dict(zip(loaded.labels, loaded.thresholds)), indent=2))
    for kind, state in (loaded.states or {}).items():
        modalities.get(kind).save_state(state, out)
    specs, placeholders, graph_inputs = input_specs(loaded.model), {}, []
    for inp in loaded.inputs:
        kind = modalities.get(inp["kind"])
        spec = specs[inp["name"]]
        empty = kind.empty(inp, (loaded.states or {}).get(inp["kind"]), loaded.cfg.data)
        placeholders[inp["name"]] = kind.batch(empty, np.array([0]), spec, "cpu", False).contiguous().numpy()
        graph_inputs.append({"name": inp["name"], "kind": inp["kind"], "columns": modalities.columns(inp),
                             "spec": dataclasses.asdict(spec) if dataclasses.is_dataclass(spec) else None,
                             "dtype": str(placeholders[inp["name"]].dtype),
                             "shape": ["batch", *placeholders[inp["name"]].shape[1:]]})
    np.savez(out / "placeholders.npz", **placeholders)
    atomic_write_text(out / "preprocess.json", json.dumps({"inputs": graph_inputs}, indent=2))
    return graph_inputs


def versions() -> dict:
    import importlib.metadata as md

    out = {}
    for pkg in ("mmcli", "torch", "onnx", "onnxscript", "onnxruntime", "tokenizers", "numpy", "pillow"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


def export_bundle(run: Path, out: Path | None = None, check: Path | None = None, rows: int = 64,
                  quantize_int8: bool = False, tolerance: float = 1e-4) -> dict:
    """Export the run at `run` to the bundle folder `out` (default RUN/bundle). -> bundle.json's content.
    Raises ExportError (exit 1) when a module cannot be exported or parity exceeds `tolerance`."""
    from datetime import datetime, timezone

    from mmcli.loading import load_run
    from mmcli.progress import console

    loaded = load_run(run, device="cpu")
    out = Path(out) if out else run / "bundle"
    if out.exists() and not (out / "bundle.json").exists() and any(out.iterdir()):
        raise UsageError(f"{out} exists and is not a bundle; choose another --output")
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    cache, idx = check_rows(loaded, check, rows)
    arrays, present, labels = row_arrays(loaded, cache, idx)
    graph = ProbabilityGraph(loaded.model, loaded.model.names).eval()
    with console.status("exporting to ONNX (torch.export, dynamo)"):
        export_onnx(graph, arrays, present, tmp / "model.onnx")
    report, ref = parity(graph, session(tmp / "model.onnx"), arrays, present)
    report.update(tolerance=tolerance, passed=report["max_abs_diff"] <= tolerance, source=str(check or "val rows"))
    meta = {"format": BUNDLE_FORMAT, "format_version": FORMAT_VERSION, "model": "model.onnx",
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), "run": str(run),
            "versions": versions(), "inputs": write_preprocessing(loaded, tmp), "present_input": PRESENT,
            "labels": loaded.labels, "multi_label": bool(loaded.model.multi_label),
            "label_separator": loaded.cfg.data.label_separator, "parity": report}
    if quantize_int8:
        meta["quantized"] = quantize(tmp / "model.onnx", tmp / "model.int8.onnx", arrays, present, graph.names, ref,
                                     labels)
        meta["model"] = "model.int8.onnx"
    meta["files"] = {p.name: sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
    atomic_write_text(tmp / "bundle.json", json.dumps(meta, indent=2))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    if not report["passed"]:
        raise ExportError(f"parity check failed: max |p_torch - p_onnx| = {report['max_abs_diff']:.2e} > "
                          f"{tolerance:.0e} on {report['rows']} rows (report in {out / 'bundle.json'})")
    return meta
