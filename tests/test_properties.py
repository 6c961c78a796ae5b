"""Property-based tests: whatever the input, manifest parsing and config overrides end in a valid result or a clean
MMError (a message and an exit code), never another exception."""

from __future__ import annotations

import dataclasses
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmcli.config import Config, load_config
from mmcli.data.manifest import Manifest, read_manifest
from mmcli.errors import MMError, UsageError

# no example database: nothing is written into the repository
SETTINGS = settings(max_examples=100, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
DATA_CFG = load_config().data

# --- manifests ---------------------------------------------------------------------------------------------------

CELL = st.one_of(
    st.sampled_from(["a.png", "img/b.jpg", "x.gif", "", " ", "nan", "NaN", "1", "2.5", "train", "val", "test", "cat",
                     "a dog", '"', '""', "a,b", "a;b", "a\tb", "line\nbreak", "\ufeff", "é", "\x00", "|"]),
    st.text(max_size=12),
)
NAMES = ["image", "text", "label", "split", "id", "caption", "photo"]
GOOD_HEADER = st.lists(st.sampled_from(NAMES), min_size=1, max_size=6, unique=True)
ANY_HEADER = st.lists(st.sampled_from([*NAMES, "", " "]), min_size=1, max_size=6)  # duplicates, unnamed columns
HEADER = st.one_of(GOOD_HEADER, GOOD_HEADER, GOOD_HEADER, ANY_HEADER)


def _join(cell: str, sep: str, quote: bool) -> str:
    if quote:
        return '"' + cell.replace('"', '""') + '"'
    return cell


@st.composite
def csv_text(draw) -> str:
    """Mostly well-formed CSV text with random separators, quoting, ragged rows and line endings."""
    header = draw(HEADER)
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    end = draw(st.sampled_from(["\n", "\r\n", "\r"]))
    n = draw(st.integers(0, 6))
    lines = [sep.join(header)]
    for _ in range(n):
        width = draw(st.integers(0, len(header) + 1))
        cells = [_join(draw(CELL), sep, draw(st.booleans())) for _ in range(width)]
        lines.append(sep.join(cells))
    text = end.join(lines) + draw(st.sampled_from(["", end, end + end]))
    return draw(st.sampled_from(["", "\ufeff"])) + text


def _check_manifest(tmp_path, raw: bytes, need_label: bool) -> None:
    path = tmp_path / "m.csv"
    path.write_bytes(raw)
    try:
        man = read_manifest(path, DATA_CFG, need_label=need_label)
    except MMError as exc:
        assert str(exc) and exc.exit_code in (1, 2)
        return
    assert isinstance(man, Manifest)
    assert man.rows and len(man.rows) == len(man.row_numbers)
    assert man.row_numbers == sorted(set(man.row_numbers)) and man.row_numbers[0] >= 2
    assert man.inputs and set(man.inputs) <= set(man.header)
    assert len(set(man.header)) == len(man.header) and all(man.header)
    assert not need_label or man.label_column in man.header
    assert all(set(r) - {"__extra__"} == set(man.header) for r in man.rows)


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_random_bytes(tmp_path, raw):
    _check_manifest(tmp_path, raw, need_label=False)


@SETTINGS
@given(text=csv_text(), encoding=st.sampled_from(["utf-8", "utf-16", "latin-1"]), need_label=st.booleans())
def test_random_csv_text(tmp_path, text, encoding, need_label):
    try:
        raw = text.encode(encoding)
    except UnicodeEncodeError:
        raw = text.encode("utf-8")
    _check_manifest(tmp_path, raw, need_label)


@SETTINGS
@given(text=st.text(alphabet=string.printable + "é\ufeff\x00", max_size=200))
def test_random_printable_text(tmp_path, text):
    _check_manifest(tmp_path, text.encode("utf-8"), need_label=True)


# --- --set overrides ---------------------------------------------------------------------------------------------

def _all_keys() -> list[str]:
    return [f"{s.name}.{f.name}" for s in dataclasses.fields(Config) for f in dataclasses.fields(s.default_factory())]


KEYS = st.one_of(st.sampled_from(_all_keys()), st.sampled_from(["data", "train", "model", "x.y", "train.lr.z", ""]),
                 st.text(max_size=15))
VALUES = st.one_of(
    st.sampled_from(["3e-4", "1e-3", "0", "-1", "1", "2", "0.5", "1.5", "true", "false", "yes", "null", "~", "[]",
                     "[a, b]", "a,b", "{a: b}", "{a: [1]}", "cnn", "bow", "concat", "wordpiece", "val_loss", ".inf",
                     "-.inf", ".nan", "1e400", "2020-01-01", "!!python/object:os.system", "[unclosed", "'quoted'",
                     "", " ", "9" * 5000]),
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(max_size=20),
)


@SETTINGS
@given(pairs=st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=4))
def test_random_overrides(pairs):
    overrides = [f"{k}={v}" for k, v in pairs]
    try:
        cfg = load_config(None, overrides)
    except UsageError as exc:
        assert str(exc) and exc.exit_code == 2
        return
    assert isinstance(cfg, Config)
    assert load_config(base=cfg.to_dict()) == cfg  # a valid config survives its own round trip


@SETTINGS
@given(text=st.text(max_size=40))
def test_random_override_strings(text):
    try:
        cfg = load_config(None, [text])
    except UsageError as exc:
        assert str(exc)  # a message for the user, never an empty error
    else:
        assert load_config(base=cfg.to_dict()) == cfg


@pytest.mark.parametrize("value", ["3e-4", "0.0003", "3E-4", "  3e-4 "])
def test_float_spellings(value):
    assert load_config(None, [f"train.lr={value}"]).train.lr == pytest.approx(3e-4)
