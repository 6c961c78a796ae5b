"""A new input kind, defined entirely in this file, goes through preprocess -> train -> eval -> predict with no
change in mmcli/: the worked example of docs/architecture.md ("adding an input kind")."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from helpers import TINY, write_csv
from typer.testing import CliRunner

from mmcli import modalities
from mmcli.cli import app
from mmcli.files import save_npy
from mmcli.models.encoder import Encoder
from mmcli.models.registry import ENCODERS, add_kind

HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


class HexColour(modalities.Modality):
    """Cells like `#ff8000`, stored as float32 `[N, 3]` in 0..1."""

    kind = "hexcolour"
    empty_what = "colour"

    def detect(self, values, column):
        filled = [v for v in values if v]
        return bool(filled) and sum(bool(HEX.match(v)) for v in filled) >= 0.9 * len(filled)

    def cell_problem(self, value):
        return None if HEX.match(value) else f"not a #rrggbb colour: {value!r}"

    def rgb(self, cells):
        return np.array([[int(c[k:k + 2], 16) / 255 for k in (1, 3, 5)] if c else [0, 0, 0] for c in cells],
                        dtype=np.float32)

    def build(self, man, inp, state, dc, folder, reuse):
        arr = self.rgb([r[inp["name"]] for r in man.rows])
        save_npy(folder / self.file_name(inp), arr)
        return arr, {}

    def batch(self, array, pos, spec, device, augment):
        return torch.from_numpy(np.ascontiguousarray(array[pos])).to(device)

    def prepare(self, values, inp, state, dc, spec):  # numpy only: the bundle runtime calls it too
        return self.rgb([values[inp["name"]]])

    def empty(self, inp, state, dc):
        return np.zeros((1, 3), dtype=np.float32)

    def default_encoder(self, model_cfg):
        return "rgb_linear"


class RGBLinear(Encoder):
    kind = "hexcolour"

    def __init__(self, out_dim: int):
        super().__init__()
        self.proj = torch.nn.Sequential(torch.nn.Linear(3, out_dim), torch.nn.ReLU())
        self.out_dim = out_dim

    def forward(self, x):
        """float `[B, 3]` -> `[B, out_dim]`."""
        return self.proj(x)


@pytest.fixture
def toy_kind():
    modalities.register(HexColour(), order=0)
    add_kind("hexcolour").register("rgb_linear")(lambda embed_dim=16, **_: RGBLinear(embed_dim))
    yield
    modalities.unregister("hexcolour")
    ENCODERS.pop("hexcolour")


def colour_rows(n: int, seed: int = 0) -> list[list[str]]:
    """`n` rows [colour, caption, label]: the label is the colour's dominant channel; captions carry nothing."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        label = i % 3
        rgb = rng.integers(0, 90, 3)
        rgb[label] = rng.integers(170, 256)
        rows.append(["#" + "".join(f"{v:02x}" for v in rgb), f"item {i} of {rng.integers(0, 9)}", "rgb"[label]])
    return rows


def mm(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_a_kind_defined_outside_mmcli_trains_evaluates_and_predicts(toy_kind, tmp_path):
    rows = colour_rows(90)
    rows[5][0] = "#12345"  # a bad cell: one row reported, the rest kept
    csv = write_csv(tmp_path / "c.csv", ["colour", "caption", "label"], rows)
    pre = mm("preprocess", csv, "--json", "--set", "data.max_bad_fraction=0.5")
    assert pre.exit_code == 0, pre.output
    summary = json.loads(pre.stdout)
    assert [i["kind"] for i in summary["inputs"]] == ["hexcolour", "text"]
    assert summary["bad_rows"] == 1
    sets = [a for s in TINY + ["train.epochs=15", "model.fusion=concat", "data.max_bad_fraction=0.5"]
            for a in ("--set", s)]
    run = tmp_path / "run"
    result = mm("train", csv, "--output", run, "--preset", "fast", *sets)
    assert result.exit_code == 0, result.output
    assert "hexcolour" in (run / "config.yaml").read_text()  # data.inputs saved resolved
    ev = mm("eval", run, csv, "--json", "--ablate")
    assert ev.exit_code == 0, ev.output
    metrics = json.loads(ev.stdout)
    assert metrics["accuracy"] > 0.8
    assert set(metrics["ablation"]["single"]) == {"colour", "caption"}
    assert metrics["ablation"]["single"]["colour"]["accuracy"] > metrics["ablation"]["single"]["caption"]["accuracy"]
    pred = mm("predict", run, "--input", "colour=#10f020", "--json")
    assert pred.exit_code == 0, pred.output
    assert json.loads(pred.stdout)["predictions"][0]["label"] == "g"


def test_an_unknown_kind_lists_the_valid_ones(tmp_path):
    csv = write_csv(tmp_path / "c.csv", ["colour", "label"], [["#ffffff", "a"], ["#000000", "b"]])
    result = mm("preprocess", csv, "--set", "data.inputs={colour: hexcolour}")
    assert result.exit_code == 2
    assert "unknown input kind 'hexcolour'; valid kinds: image, audio, numeric, categorical, text" in result.output
