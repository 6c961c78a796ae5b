"""mm serve on a real run folder and on its ONNX bundle, over HTTP on 127.0.0.1: the same answers as `mm predict`,
bad inputs as 4xx naming the field, and the bundle served without torch in the request path."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("onnxruntime")

from helpers import TINY, make_dataset, write_bomb_png
from serve_helpers import ThreadedServer, call, predict_json
from typer.testing import CliRunner

from mmcli.cli import app
from mmcli.deploy.loader import load_predictor
from mmcli.deploy.serve import create_app


def mm(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("served")
    csv = make_dataset(root, n=45)
    sets = [a for s in TINY for a in ("--set", s)]
    assert mm("train", csv, "-o", root / "run", "--preset", "fast", *sets).exit_code == 0
    assert mm("export", root / "run", "-o", root / "bundle").exit_code == 0
    return root


@pytest.mark.parametrize("target", ["run", "bundle"])
def test_served_answers_match_mm_predict(trained, target, tmp_path):
    image = min((trained / "images").iterdir())
    expected = json.loads(mm("predict", trained / target, image, "a red square", "--json").stdout)["predictions"]
    predictor = load_predictor(trained / target)
    assert [i["kind"] for i in predictor.inputs] == ["image", "text"]
    with ThreadedServer(create_app(predictor, max_batch=8, max_wait_ms=5)) as port:
        status, _, info = call(port, "GET", "/info")
        assert status == 200 and info["labels"] == predictor.labels and info["version"] == predictor.version
        status, _, body = predict_json(port, image=image.read_bytes(), text="a red square")
        assert status == 200 and body["label"] == expected[0]["label"]
        assert abs(body["probabilities"][expected[0]["label"]] - expected[0]["probability"]) <= 1e-4
        status, _, body = predict_json(port, image=b"not a png", text="x")
        assert status == 400 and body["error"]["field"] == "image" and "cannot decode" in body["error"]["reason"]
        status, _, body = predict_json(port, image=write_bomb_png(tmp_path / "bomb.png", 20000, 20000).read_bytes())
        assert status == 413 and body["error"]["field"] == "image"
        status, _, body = predict_json(port, colour="red")
        assert status == 422 and body["error"]["field"] == "colour"
        status, _, body = predict_json(port, text="")
        assert status == 422
