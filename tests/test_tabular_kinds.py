"""Numeric and categorical columns end to end through the CLI: inference, bad cells, missing values, unknown
categories, eval --ablate, compare, predict --input, multi-label, and a CSV of numbers only."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import TINY, write_csv, write_png
from typer.testing import CliRunner

from mmcli.cli import app

SETS = [a for s in TINY + ["train.epochs=40", "model.fusion=concat", "data.max_bad_fraction=0.5"]
        for a in ("--set", s)]
COUNTRIES = ("fr", "de", "uk", "es")


def mm(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def numeric_rows(n: int, seed: int = 0) -> list[list]:
    """[x1, x2, noise, label]: the class moves x1 and x2; `noise` carries nothing and has an outlier."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        k = i % 3
        rows.append([f"{rng.normal(3 * k, 1):.3f}", f"{rng.normal(-2 * k, 1) * 100:.1f}",
                     f"{rng.normal() if i != 7 else 1e9:.3f}", "abc"[k]])
    return rows


@pytest.fixture
def numeric_run(tmp_path):
    csv = write_csv(tmp_path / "num.csv", ["x1", "x2", "noise", "label"], numeric_rows(120))
    run = tmp_path / "run"
    result = mm("train", csv, "-o", run, "--preset", "fast", *SETS)
    assert result.exit_code == 0, result.output
    return csv, run


def test_numbers_only_is_tabular_classification(numeric_run):
    csv, run = numeric_run
    inputs = json.loads((run / "inputs.json").read_text())
    assert [(i["name"], i["kind"], i["columns"]) for i in inputs] == [("numeric", "numeric", ["x1", "x2", "noise"])]
    assert inputs[0]["centre"][0] == pytest.approx(3.0, abs=0.6)  # the training split's median of x1
    metrics = json.loads(mm("eval", run, csv, "--json").stdout)
    assert metrics["accuracy"] > 0.85
    pred = mm("predict", run, "--input", "x1=6.2", "--input", "x2=-400", "--input", "noise=0", "--json")
    assert pred.exit_code == 0, pred.output
    assert json.loads(pred.stdout)["predictions"][0]["label"] == "c"
    bad = mm("predict", run, "--input", "x1=lots")
    assert bad.exit_code == 2 and "input 'x1': not a number: 'lots'" in bad.output


def test_bad_and_missing_numbers_are_rows_with_reasons(tmp_path):
    rows = numeric_rows(60)
    rows[3][0], rows[4][1], rows[5][2] = "abc", "", "inf"
    csv = write_csv(tmp_path / "num.csv", ["x1", "x2", "noise", "label"], rows)
    summary = json.loads(mm("preprocess", csv, "--json", "--set", "data.max_bad_fraction=0.5").stdout)
    reasons = (tmp_path / "num.csv").parent
    assert summary["bad_rows"] == 3, reasons
    text = Path(summary["bad_rows_csv"]).read_text()
    assert "5,x1,not a number: 'abc'" in text and "6,x2,number is empty" in text and "7,noise,number is infinite" in text
    kept = json.loads(mm("preprocess", csv, "--json", "--set", "data.allow_missing=true",
                         "--set", "data.max_bad_fraction=0.5").stdout)
    assert kept["bad_rows"] == 2  # the empty cell is now a missing value; the text and the infinity stay bad


def test_text_and_categorical_with_an_unknown_category(tmp_path):
    rng = np.random.default_rng(1)
    rows = [[COUNTRIES[i % 4], f"note {i} {rng.integers(1000)}", "yes" if i % 4 < 2 else "no"] for i in range(96)]
    csv = write_csv(tmp_path / "c.csv", ["country", "note", "label"], rows)
    run = tmp_path / "run"
    assert mm("train", csv, "-o", run, "--preset", "fast", *SETS).exit_code == 0
    assert json.loads((run / "inputs.json").read_text())[0]["kind"] == "categorical"
    test = write_csv(tmp_path / "t.csv", ["country", "note", "label"],
                     [["fr", "x", "yes"], ["jp", "y", "no"], ["jp", "z", "no"], ["uk", "w", "no"]])
    result = mm("eval", run, test, "--json", "--ablate", "-o", tmp_path / "ev")
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["unknown_categories"] == {"country": 2}
    assert set(metrics["ablation"]["single"]) == {"country", "note"}
    pred = mm("predict", run, "--input", "country=jp", "--input", "note=hello", "--json")
    assert pred.exit_code == 0 and "not a category seen in training" in pred.output


def test_image_and_numeric_with_missing_numbers(tmp_path):
    rng = np.random.default_rng(2)
    rows = []
    for i in range(60):
        k = i % 2
        img = write_png(tmp_path / "images" / f"{i}.png", ((200, 30, 30), (30, 30, 200))[k], seed=i)
        value = "" if i % 5 == 0 else f"{rng.normal(4 * k, 1):.2f}"
        rows.append([img.relative_to(tmp_path).as_posix(), value, "rb"[k]])
    csv = write_csv(tmp_path / "m.csv", ["image", "size", "label"], rows)
    run = tmp_path / "run"
    result = mm("train", csv, "-o", run, "--preset", "fast", "--set", "data.allow_missing=true", *SETS)
    assert result.exit_code == 0, result.output
    metrics = json.loads(mm("eval", run, csv, "--json").stdout)
    assert metrics["accuracy"] > 0.9 and metrics["bad_rows"] == 0
    other = tmp_path / "run2"
    assert mm("train", csv, "-o", other, "--preset", "fast", "--set", "data.allow_missing=true",
              "--set", "data.inputs={image: image}", *SETS).exit_code == 0
    table = json.loads(mm("compare", run, other, "--json").stdout)
    assert len(table["runs"]) == 2
    pred = mm("predict", run, "--input", f"image={tmp_path / 'images' / '1.png'}", "--json")  # size missing
    assert pred.exit_code == 0 and json.loads(pred.stdout)["predictions"][0]["label"] == "b"


def test_multilabel_over_numbers(tmp_path):
    rng = np.random.default_rng(3)
    rows = []
    for i in range(120):
        a, b = bool(i % 2), bool((i // 2) % 2)
        labels = "|".join(n for n, on in (("hot", a), ("big", b)) if on) or "none"
        rows.append([f"{rng.normal(3 * a, 0.5):.2f}", f"{rng.normal(3 * b, 0.5):.2f}", labels])
    csv = write_csv(tmp_path / "ml.csv", ["temp", "mass", "label"], rows)
    run = tmp_path / "run"
    assert mm("train", csv, "-o", run, "--preset", "fast", *SETS).exit_code == 0
    metrics = json.loads(mm("eval", run, csv, "--json").stdout)
    assert metrics["micro_f1"] > 0.8
    pred = json.loads(mm("predict", run, "--input", "temp=3.1", "--input", "mass=3.0", "--json").stdout)
    assert {p["label"] for p in pred["predictions"] if p["selected"]} == {"hot", "big"}
