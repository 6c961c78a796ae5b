"""Config: defaults <- YAML <- --set, strict keys, typed values, and messages that name what is allowed."""

from __future__ import annotations

import pytest

from mmcli.config import Config, describe_keys, dump_config, load_config, parse_override
from mmcli.errors import UsageError


def test_defaults():
    cfg = load_config()
    assert cfg == Config()
    assert cfg.data.label == "label"
    assert cfg.data.max_bad_fraction == 0.05
    assert cfg.train.monitor == "val_accuracy"


def test_yaml_file_then_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 3e-4\n  epochs: 7\nmodel:\n  fusion: concat\n", encoding="utf-8")
    cfg = load_config(path, ["train.epochs=9"])
    assert cfg.train.lr == pytest.approx(3e-4)  # PyYAML reads 3e-4 as a string; it must still be a float
    assert cfg.train.epochs == 9  # --set wins over the file
    assert cfg.model.fusion == "concat"


def test_base_then_yaml_then_set(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("train: {epochs: 4}\n", encoding="utf-8")
    cfg = load_config(path, ["train.seed=3"], base={"train": {"epochs": 2, "seed": 1}, "data": {"label": "y"}})
    assert (cfg.train.epochs, cfg.train.seed, cfg.data.label) == (4, 3, "y")


@pytest.mark.parametrize(
    ("text", "get", "expected"),
    [
        ("train.lr=3e-4", lambda c: c.train.lr, 3e-4),
        ("train.lr=1", lambda c: c.train.lr, 1.0),  # an int where a float is expected
        ("train.augment=true", lambda c: c.train.augment, True),
        ("train.augment=false", lambda c: c.train.augment, False),
        ("data.image_columns=[a, b]", lambda c: c.data.image_columns, ["a", "b"]),
        ("data.image_columns=a,b", lambda c: c.data.image_columns, ["a", "b"]),
        ("data.text_columns=null", lambda c: c.data.text_columns, None),
        ("model.encoders={title: lstm}", lambda c: c.model.encoders, {"title": "lstm"}),
        ("data.label=1e5", lambda c: c.data.label, "1e5"),  # a string key keeps its text
        ("data.label=category", lambda c: c.data.label, "category"),
        ("train.epochs=3", lambda c: c.train.epochs, 3),
    ],
)
def test_set_parses_types(text, get, expected):
    value = get(load_config(None, [text]))
    assert value == (pytest.approx(expected) if isinstance(expected, float) else expected)
    assert type(value) is type(expected)


def test_unknown_key_names_key_and_valid_keys():
    with pytest.raises(UsageError) as exc:
        load_config(None, ["train.learning_rate=0.1"])
    msg = str(exc.value)
    assert "train.learning_rate" in msg
    for valid in ("lr", "epochs", "batch_size"):
        assert valid in msg


def test_unknown_section():
    with pytest.raises(UsageError, match=r"'optim'.*data, model, train"):
        load_config(None, ["optim.lr=1"])


def test_unknown_key_in_yaml(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("data:\n  lable: y\n", encoding="utf-8")
    with pytest.raises(UsageError, match=r"data\.lable"):
        load_config(path)


def test_bad_choice_names_choices():
    with pytest.raises(UsageError) as exc:
        load_config(None, ["data.tokenizer=spacy"])
    assert "data.tokenizer" in str(exc.value)
    assert "wordpiece" in str(exc.value) and "bpe" in str(exc.value)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("train.epochs=two", "expected int"),
        ("train.epochs=2.5", "expected int"),
        ("train.epochs=true", "expected int"),  # a bool is not an int here
        ("train.lr=fast", "expected float"),
        ("train.lr=.inf", "finite"),
        ("train.lr=.nan", "finite"),
        ("train.augment=maybe", "expected bool"),
        ("data.image_columns={a: b}", "data.image_columns"),
        ("model.encoders=[a]", "expected a mapping"),
        ("train=3", "must be a mapping"),
        ("train.epochs.x=3", "train.epochs"),
        ("train.epochs=" + "9" * 5000, "train.epochs"),  # past Python's int-parsing digit limit
    ],
)
def test_bad_type(text, needle):
    with pytest.raises(UsageError, match=needle):
        load_config(None, [text])


@pytest.mark.parametrize(
    "text", ["data.val_fraction=1.5", "data.image_size=4", "train.epochs=0", "train.lr=0", "model.dropout=1",
             "model.cnn_widths=[]", "model.cnn_widths=[8,0]"]
)
def test_out_of_range(text):
    key = text.split("=")[0]
    with pytest.raises(UsageError, match=key.replace(".", r"\.")):
        load_config(None, [text])


def test_a_soup_without_the_refit_is_refused():
    with pytest.raises(UsageError, match=r"train\.soup.*train\.refit=true"):
        load_config(None, ["train.soup=true", "train.refit=false"])
    assert load_config(None, ["train.soup=true"]).train.soup  # the refit is on by default


@pytest.mark.parametrize("text", ["train.lr", "=3", ".lr=3", "train..lr=3"])
def test_malformed_override(text):
    with pytest.raises(UsageError):
        parse_override(text)


def test_missing_or_bad_yaml_file(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n", encoding="utf-8")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_config(bad)
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"data:\n  label: caf\xe9\n")
    with pytest.raises(UsageError, match="not valid YAML"):
        load_config(latin)


def test_dump_round_trip():
    cfg = load_config(None, ["train.lr=3e-4", "data.image_columns=[a]"])
    import yaml

    again = load_config(base=yaml.safe_load(dump_config(cfg)))
    assert again == cfg


def test_describe_keys_lists_every_key():
    keys = {k for k, _, _ in describe_keys()}
    assert {"data.label", "train.lr", "model.fusion", "data.max_image_pixels"} <= keys
    helps = {k: h for k, _, h in describe_keys()}
    assert "val_loss" in helps["train.monitor"]


SHIPPED = sorted((__import__("pathlib").Path(__file__).parents[1] / "configs").glob("*.yaml"))


@pytest.mark.skipif(not SHIPPED, reason="no shipped configs under configs/")
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_parse(path):
    cfg = load_config(path)
    assert load_config(base=cfg.to_dict()) == cfg  # it survives the run folder's save/load round trip
