"""mm export: ONNX parity for the encoders and fusions of the registry (tiny sizes, random weights), a failing
module named, and the bundle end to end: same top-k and CSV as the run folder, --quantize, a tampered file refused,
and prediction in a process where importing torch is impossible."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import TINY, make_dataset
from typer.testing import CliRunner

from mmcli.cli import app

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def mm(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


INPUTS = {
    "image": ({"name": "image", "kind": "image", "columns": ["image"]},
              lambda rng, b: rng.normal(size=(b, 3, 16, 16)).astype(np.float32)),
    "text": ({"name": "text", "kind": "text", "columns": ["text"]},
             lambda rng, b: rng.integers(0, 50, size=(b, 32)).astype(np.int64)),
    "numeric": ({"name": "numeric", "kind": "numeric", "columns": ["a", "b"], "centre": [0, 0], "scale": [1, 1]},
                lambda rng, b: np.where(rng.random((b, 2)) < 0.2, np.nan, rng.normal(size=(b, 2))).astype(np.float32)),
    "categorical": ({"name": "country", "kind": "categorical", "columns": ["country"], "categories": ["fr", "de"]},
                    lambda rng, b: rng.integers(0, 3, size=b).astype(np.int64)),
    "audio": ({"name": "clip", "kind": "audio", "columns": ["clip"]},
              lambda rng, b: rng.normal(size=(b, 80, 26)).astype(np.float32)),
}

COMBOS = (
    [("cnn", "bow", f, ("image", "text")) for f in ("attention", "concat", "gated", "late", "lmf", "product", "sum")]
    + [(i, "bow", "concat", ("image", "text")) for i in ("vit", "resnet18")]
    + [("cnn", t, "late", ("image", "text")) for t in ("cnn", "transformer")]
    + [("cnn", "bow", "gated", ("image", "text", "numeric", "categorical", "audio"))]
)


@pytest.mark.parametrize("image_enc,text_enc,fusion,kinds", COMBOS,
                         ids=[f"{c[0]}-{c[1]}-{c[2]}-{len(c[3])}" for c in COMBOS])
def test_exported_graph_matches_torch(tiny_sets, image_enc, text_enc, fusion, kinds, tmp_path):
    from mmcli.config import load_config
    from mmcli.deploy.export import ProbabilityGraph, export_onnx, parity, session
    from mmcli.models.classifier import build_model

    extra = [f"model.image_encoder={image_enc}", f"model.text_encoder={text_enc}", f"model.fusion={fusion}",
             "model.vit_patch=4", "model.vit_layers=1", "data.audio_seconds=0.25"]
    cfg = load_config(None, tiny_sets + extra)
    inputs = [INPUTS[k][0] for k in kinds]
    model = build_model(cfg, inputs, 3, vocab_size=50).eval()
    rng = np.random.default_rng(0)
    arrays = [INPUTS[k][1](rng, 5) for k in kinds]
    present = rng.random((5, len(kinds))) < 0.8
    present[:, 0] = True
    graph = ProbabilityGraph(model, model.names).eval()
    export_onnx(graph, arrays, present, tmp_path / "m.onnx")
    report, ref = parity(graph, session(tmp_path / "m.onnx"), arrays, present)
    assert report["max_abs_diff"] <= 1e-4, report
    assert report["argmax_agreement"] == 1.0 and report["rows_at_batch_1"] == 5
    assert ref.shape == (5, 3) and np.allclose(ref.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize("text_enc", ["gru", "lstm"])
def test_recurrent_text_encoders_fail_loudly_naming_the_module(tiny_sets, text_enc, tmp_path):
    """Packed sequences (how BiRNN skips padding) have data-dependent shapes that torch.export cannot trace."""
    from mmcli.config import load_config
    from mmcli.deploy.export import ExportError, ProbabilityGraph, export_onnx
    from mmcli.models.classifier import build_model

    cfg = load_config(None, tiny_sets + [f"model.text_encoder={text_enc}"])
    model = build_model(cfg, [INPUTS["image"][0], INPUTS["text"][0]], 2, vocab_size=50).eval()
    rng = np.random.default_rng(0)
    arrays = [INPUTS["image"][1](rng, 3), INPUTS["text"][1](rng, 3)]
    with pytest.raises(ExportError, match="input 'text': encoder BiRNN"):
        export_onnx(ProbabilityGraph(model, model.names), arrays, np.ones((3, 2), bool), tmp_path / "m.onnx")


def test_a_module_that_cannot_export_is_named(tiny_cfg, tmp_path):
    import torch

    from mmcli.deploy.export import ExportError, ProbabilityGraph, export_onnx
    from mmcli.models.classifier import build_model

    model = build_model(tiny_cfg, [INPUTS["image"][0], INPUTS["text"][0]], 2, vocab_size=50).eval()
    enc = model.encoders["text"]
    original = enc.forward
    enc.forward = lambda ids: original(ids) * float(torch.from_numpy(np.asarray(ids.sum().item())).float())
    rng = np.random.default_rng(0)
    arrays = [INPUTS["image"][1](rng, 3), INPUTS["text"][1](rng, 3)]
    with pytest.raises(ExportError, match="input 'text': encoder"):
        export_onnx(ProbabilityGraph(model, model.names), arrays, np.ones((3, 2), bool), tmp_path / "m.onnx")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    csv = make_dataset(root, n=45)
    run = root / "run"
    sets = [a for s in TINY for a in ("--set", s)]
    assert mm("train", csv, "-o", run, "--preset", "fast", *sets).exit_code == 0
    result = mm("export", run, "-o", root / "bundle", "--quantize", "--json")
    assert result.exit_code == 0, result.output
    return root, csv, run, root / "bundle", json.loads(result.stdout)


def test_bundle_manifest_and_parity_report(exported):
    *_, bundle, meta = exported
    assert meta["parity"]["passed"] and meta["parity"]["max_abs_diff"] <= 1e-4
    assert meta["parity"]["rows"] > 1 and meta["parity"]["argmax_agreement"] == 1.0
    assert meta["model"] == "model.int8.onnx" and meta["quantized"]["argmax_agreement"] > 0.5
    assert "accuracy_int8" in meta["quantized"] and meta["versions"]["onnxruntime"]
    assert {"model.onnx", "model.int8.onnx", "tokenizer.json", "labels.json", "inputs.json", "preprocess.json",
            "placeholders.npz", "config.yaml"} <= set(meta["files"])
    saved = json.loads((bundle / "bundle.json").read_text())
    assert saved["files"] == meta["files"] and [i["name"] for i in saved["inputs"]] == ["image", "text"]
    assert saved["inputs"][0]["spec"]["size"] == 16


def test_bundle_predicts_as_the_run_folder(exported, tmp_path):
    root, csv, run, _, _ = exported
    fp32 = tmp_path / "fp32"
    assert mm("export", run, "-o", fp32).exit_code == 0
    image = next((root / "images").iterdir())
    a = json.loads(mm("predict", run, image, "a red square", "--json").stdout)["predictions"]
    b = json.loads(mm("predict", fp32, image, "a red square", "--json").stdout)["predictions"]
    assert [p["label"] for p in a] == [p["label"] for p in b]
    assert max(abs(x["probability"] - y["probability"]) for x, y in zip(a, b)) <= 1e-4
    out_run, out_bundle = tmp_path / "run.csv", tmp_path / "bundle.csv"
    assert mm("predict", run, csv, "-o", out_run).exit_code == 0
    assert mm("predict", fp32, csv, "-o", out_bundle).exit_code == 0
    rows_a, rows_b = out_run.read_text().splitlines(), out_bundle.read_text().splitlines()
    assert rows_a[0] == rows_b[0] and len(rows_a) == len(rows_b) == 46
    for x, y in zip(rows_a[1:], rows_b[1:]):
        xa, ya = x.split(","), y.split(",")
        assert xa[:2] == ya[:2]  # row number and predicted label
        assert max(abs(float(u) - float(v)) for u, v in zip(xa[2:-1], ya[2:-1])) <= 1e-4


def test_tampered_bundle_is_refused(exported, tmp_path):
    import shutil

    _, _, _, bundle, _ = exported
    copy = tmp_path / "b"
    shutil.copytree(bundle, copy)
    (copy / "labels.json").write_text('["x", "y", "z"]')
    result = mm("predict", copy, "--text", "red")
    assert result.exit_code == 1 and "labels.json does not match its sha256" in result.output


def test_bundle_predicts_without_torch(exported):
    root, _, _, bundle, _ = exported
    image = next((root / "images").iterdir())
    # torch (and torchvision, transformers) made unimportable in the child process
    code = ("import sys; [sys.modules.__setitem__(m, None) for m in ('torch', 'torchvision', 'transformers')]; "
            "from mmcli.cli import main; sys.argv = ['mm', 'predict', sys.argv[1], sys.argv[2], 'a red square', "
            "'--json']; main()")
    proc = subprocess.run([sys.executable, "-c", code, str(bundle), str(image)], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr
    top = json.loads(proc.stdout)["predictions"]
    assert top[0]["label"] in {"red", "green", "blue"} and abs(sum(p["probability"] for p in top) - 1) < 1e-3


def test_export_without_check_rows_says_what_to_do(exported, tmp_path):
    import shutil

    _, _, run, _, _ = exported
    copy = tmp_path / "run"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("bundle*"))
    (copy / "run.yaml").write_text("csv: /nonexistent/data.csv\n")
    result = mm("export", copy)
    assert result.exit_code == 2 and "--check DATA" in result.output
