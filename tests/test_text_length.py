"""Each text column's length is fitted on its training texts (its longest) (mmcli/text.py `fitted_length`), kept with the run's
inputs, and used alike by training, eval and predict; runs saved before that keep `data.max_tokens`."""

from __future__ import annotations

import json

from helpers import read_csv, write_csv, write_png
from typer.testing import CliRunner

from mmcli.cli import app
from mmcli.config import load_config
from mmcli.loading import run_inputs
from mmcli.text import encode, fitted_length, train_tokenizer

FILLER = "the quick brown fox jumps over a lazy dog and then"  # 11 words, one token each


def test_fitted_length_is_the_longest_text_in_steps_of_8_up_to_the_cap():
    texts = [" ".join(["sea"] * n) for n in range(1, 101)]  # 1..100 words, one token each
    tok = train_tokenizer(texts, "bpe", 100)
    assert fitted_length(tok, texts, cap=512) == 104  # the longest (100 tokens), rounded up to 8s
    assert fitted_length(tok, texts, cap=40) == 40  # never past the cap
    assert fitted_length(tok, ["sea"] * 5, cap=512) == 8  # at least 8
    assert fitted_length(tok, [], cap=512) == 8  # a column with no training text
    assert encode(tok, ["sea"], 4).shape == (1, 4)  # the tokenizer still encodes at any length afterwards


def _long_text_csv(root, n: int = 24):
    """Texts of a row number, 5 x 11 filler words, then the word that gives the label away (token 57)."""
    rows = []
    for i in range(n):
        label = ("red", "blue")[i % 2]
        image = write_png(root / "img" / f"{i}.png", (200, 30, 30) if i % 2 else (30, 30, 200), seed=i)
        rows.append([f"img/{i}.png", " ".join([str(i)] + [FILLER] * 5 + [label]), label])
    return write_csv(root / "data.csv", ["image", "text", "label"], rows), image


def test_a_long_text_is_cut_at_its_fitted_length_not_at_a_fixed_short_one(tmp_path, tiny_args):
    csv, image = _long_text_csv(tmp_path)
    res = CliRunner().invoke(app, ["train", str(csv), "-o", str(tmp_path / "run"), *tiny_args,
                                   "--set", "train.epochs=1"])
    assert res.exit_code == 0, res.output
    text = next(i for i in json.loads((tmp_path / "run" / "inputs.json").read_text()) if i["kind"] == "text")
    assert text["tokens"] == 64  # 57 words: every token, the last word included, fits in 64
    res = CliRunner().invoke(app, ["predict", str(tmp_path / "run"), str(image), " ".join([FILLER] * 5 + ["red"]),
                                   "--json"])
    assert res.exit_code == 0, res.output
    out = tmp_path / "pred.csv"
    res = CliRunner().invoke(app, ["predict", str(tmp_path / "run"), str(csv), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert len(read_csv(out)) == 24


def test_the_cap_still_applies(tmp_path, tiny_args):
    csv, _ = _long_text_csv(tmp_path)
    res = CliRunner().invoke(app, ["train", str(csv), "-o", str(tmp_path / "run"), *tiny_args,
                                   "--set", "train.epochs=1", "--set", "data.max_tokens=20"])
    assert res.exit_code == 0, res.output
    text = next(i for i in json.loads((tmp_path / "run" / "inputs.json").read_text()) if i["kind"] == "text")
    assert text["tokens"] == 20


def test_runs_saved_before_the_length_was_fitted_keep_max_tokens(tmp_path):
    (tmp_path / "inputs.json").write_text(json.dumps([{"name": "text", "kind": "text", "columns": ["text"]},
                                                      {"name": "image", "kind": "image", "columns": ["image"]}]))
    cfg = load_config(None, ["data.max_tokens=32"])
    inputs = run_inputs(tmp_path, cfg)
    assert inputs[0]["tokens"] == 32 and "tokens" not in inputs[1]
    (tmp_path / "inputs.json").unlink()  # older still: no inputs.json, columns named in the config
    cfg = load_config(None, ["data.max_tokens=32", "data.text_columns=[caption]", "data.image_columns=[]"])
    assert run_inputs(tmp_path, cfg) == [{"name": "caption", "kind": "text", "columns": ["caption"], "tokens": 32}]
    assert encode(train_tokenizer(["a b"]), ["a b"], inputs[0]["tokens"]).shape == (1, 32)
