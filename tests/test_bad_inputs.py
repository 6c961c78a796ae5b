"""The bad-input catalogue (docs/robustness.md), end to end through `mm preprocess`: every awkward row is either
normalised correctly or skipped and listed in bad_rows.csv; every unusable CSV fails with a clean message."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
from helpers import dataset_rows, read_csv, two_colour, write_bomb_png, write_csv, write_png, write_rgb16_png
from PIL import Image
from typer.testing import CliRunner

from mmcli.cli import app
from mmcli.config import load_config
from mmcli.data.cache import Cache
from mmcli.errors import DataError
from mmcli.preprocess import preprocess


def mm(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def run_preprocess(csv, out, *sets):
    cfg = load_config(None, ["data.image_size=16", *sets])
    summary = preprocess(csv, cfg, out)
    return summary, Cache.load(out), {int(r["row"]): r for r in read_csv(out / "bad_rows.csv")}


# --- rows: images ----------------------------------------------------------------------------------------------

@pytest.fixture
def awkward(tmp_path):
    """30 good rows, then one row per awkward-but-valid image and one per unusable image (-> rows 32..)."""
    root = tmp_path / "d"
    rows = dataset_rows(root, n=30)
    img = root / "awkward"
    img.mkdir()
    arr = two_colour(16, 16)  # left red, right blue
    Image.fromarray(arr).convert("L").save(img / "grey.png")
    Image.fromarray(arr).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(img / "palette.png")
    rgba = np.concatenate([arr, np.full((16, 16, 1), 255, np.uint8)], axis=2)
    rgba[:, :8, 3] = 0
    Image.fromarray(rgba, "RGBA").save(img / "rgba.png")
    Image.fromarray(arr).convert("CMYK").save(img / "cmyk.jpg", quality=100)
    write_rgb16_png(img / "rgb16.png", arr.astype(np.uint16) * 257)
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display: the red left half becomes the top
    Image.fromarray(arr).save(img / "exif.jpg", exif=exif, quality=100)
    good = ["grey.png", "palette.png", "rgba.png", "cmyk.jpg", "rgb16.png", "exif.jpg"]
    (img / "zero.png").write_bytes(b"")
    noisy = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for fmt in ("png", "jpg"):
        Image.fromarray(noisy).save(img / f"full.{fmt}")
        data = (img / f"full.{fmt}").read_bytes()
        (img / f"truncated.{fmt}").write_bytes(data[: len(data) // 2])
    (img / "text.jpg").write_text("this is a text file\n")
    write_bomb_png(img / "bomb.png", 10_000, 10_000)
    bad = ["missing.png", "zero.png", "truncated.png", "truncated.jpg", "text.jpg", "bomb.png"]
    for name in good + bad:
        rows.append([f"awkward/{name}", "some words", "red"])
    csv = write_csv(root / "data.csv", ["image", "text", "label"], rows)
    return csv, good, bad


def test_awkward_images_normalised_and_unusable_ones_listed(awkward, tmp_path):
    csv, good, bad = awkward
    summary, cache, listed = run_preprocess(csv, tmp_path / "c", "data.max_bad_fraction=0.5")
    first_bad = 2 + 30 + len(good)  # header row 1, 30 rows, then the good awkward rows
    assert sorted(listed) == list(range(first_bad, first_bad + len(bad)))
    reasons = [listed[r]["reason"] for r in sorted(listed)]
    assert reasons[0] == f"file not found: {csv.parent / 'awkward' / 'missing.png'}"
    assert "empty file (0 bytes)" in reasons[1]
    assert all("cannot decode image" in r for r in reasons[2:5])
    assert "exceeds the limit" in reasons[5] and "data.max_image_pixels" in reasons[5]
    assert all(listed[r]["column"] == "image" for r in listed)
    assert summary["bad_rows"] == len(bad) and summary["valid_rows"] == 30 + len(good)

    imgs = {name: cache.images["image"][30 + k].astype(int) for k, name in enumerate(good)}
    left, right = (slice(None), slice(None), 2), (slice(None), slice(None), 13)  # [3, H, W] columns 2 and 13
    top, bottom = (slice(None), 2, slice(None)), (slice(None), 13, slice(None))
    grey = np.asarray(Image.open(csv.parent / "awkward" / "grey.png"))
    assert (imgs["grey.png"][left] == grey[0, 0]).all() and (imgs["grey.png"][right] == grey[0, 15]).all()
    for name in ("palette.png", "rgb16.png", "cmyk.jpg"):
        assert np.abs(imgs[name][left].mean(axis=1) - [255, 0, 0]).max() < 8, name
        assert np.abs(imgs[name][right].mean(axis=1) - [0, 0, 255]).max() < 8, name
    assert (imgs["rgba.png"][left] == 255).all()  # transparent over white
    assert (imgs["rgba.png"][right].mean(axis=1) == [0, 0, 255]).all()
    assert np.abs(imgs["exif.jpg"][top].mean(axis=1) - [255, 0, 0]).max() < 8  # orientation applied
    assert np.abs(imgs["exif.jpg"][bottom].mean(axis=1) - [0, 0, 255]).max() < 8


def test_past_the_bad_share_exits_1_with_report(awkward, tmp_path):
    csv, _, bad = awkward
    result = mm("preprocess", csv, "-o", tmp_path / "c", "--set", "data.image_size=16")  # 6/42 > 5 %
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"{len(bad)} of 42 rows are bad" in result.output and "bad_rows.csv" in result.output
    assert len(read_csv(tmp_path / "c" / "bad_rows.csv")) == len(bad)


def test_image_outside_the_manifest_folder_is_read_never_written(tmp_path):
    root = tmp_path / "d"
    rows = dataset_rows(root, n=20)
    outside = tmp_path / "elsewhere"
    write_png(outside / "rel.png", (255, 0, 0), noise=0)
    write_png(outside / "abs.png", (0, 0, 255), noise=0)
    rows[0][0] = "../elsewhere/rel.png"
    rows[1][0] = str(outside / "abs.png")
    csv = write_csv(root / "data.csv", ["image", "text", "label"], rows)
    os.chmod(outside, 0o555)  # read-only (for a non-root user, a write attempt would fail the run)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in outside.iterdir()}
    try:
        _, cache, listed = run_preprocess(csv, tmp_path / "c")
    finally:
        os.chmod(outside, 0o755)
    assert listed == {}
    assert cache.images["image"][0].reshape(3, -1).mean(axis=1).tolist() == [255, 0, 0]
    assert cache.images["image"][1].reshape(3, -1).mean(axis=1).tolist() == [0, 0, 255]
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in outside.iterdir()} == before


# --- rows: text and labels -------------------------------------------------------------------------------------

def test_text_and_label_cases(tmp_path):
    root = tmp_path / "d"
    rows = dataset_rows(root, n=40)
    long_text = " ".join(f"word{i}" for i in range(5000))
    rows[0][1] = long_text  # row 2: kept, truncated to data.max_tokens
    rows[1][1] = ""  # row 3: empty text
    rows[2][1] = " \t  "  # row 4: whitespace-only text
    rows[3][2] = ""  # row 5: empty label
    rows[4][2] = "nan"  # row 6
    rows[5][2] = "NaN"  # row 7
    rows[6][0] = ""  # row 8: empty image cell
    csv = write_csv(root / "data.csv", ["image", "text", "label"], rows)
    _, cache, listed = run_preprocess(csv, tmp_path / "c", "data.max_tokens=7", "data.max_bad_fraction=0.2")
    assert {r: (v["column"], v["reason"].split(" (")[0]) for r, v in listed.items()} == {
        3: ("text", "text is empty"), 4: ("text", "text is empty"),
        5: ("label", "label is empty"), 6: ("label", "label is empty"), 7: ("label", "label is empty"),
        8: ("image", "image path is empty")}
    assert cache.tokens["text"].shape == (40, 7)
    assert (cache.tokens["text"][0] != 0).all()  # 7 real tokens, no padding: truncated, not dropped
    assert cache.valid[0]
    assert "nan" not in [n.lower() for n in cache.meta["label_names"]]


def test_empty_text_allowed_when_missing_inputs_are(tmp_path):
    root = tmp_path / "d"
    rows = dataset_rows(root, n=20)
    rows[1][1] = "   "
    csv = write_csv(root / "data.csv", ["image", "text", "label"], rows)
    _, cache, listed = run_preprocess(csv, tmp_path / "c", "data.allow_missing=true")
    assert listed == {} and cache.valid[1] and cache.present[1].tolist() == [True, False]
    assert (cache.tokens["text"][1] == 0).all()


# --- whole CSVs --------------------------------------------------------------------------------------------------

@pytest.fixture
def good_rows(tmp_path):
    return dataset_rows(tmp_path / "d", n=12)


def _lines(rows, sep=","):
    return "".join(sep.join(r) + "\n" for r in [["image", "text", "label"], *rows])


@pytest.mark.parametrize(("name", "make"), [
    ("bom", lambda rows: ("\ufeff" + _lines(rows)).encode("utf-8")),
    ("semicolon", lambda rows: _lines(rows, ";").encode("utf-8")),
    ("tab", lambda rows: _lines(rows, "\t").encode("utf-8")),
    ("crlf", lambda rows: _lines(rows).replace("\n", "\r\n").encode("utf-8")),
    ("utf16", lambda rows: _lines(rows).encode("utf-16")),
])
def test_csv_variants_that_work(tmp_path, good_rows, name, make):
    path = tmp_path / "d" / f"{name}.csv"
    path.write_bytes(make(good_rows))
    result = mm("preprocess", path, "-o", tmp_path / "c", "--json", "--set", "data.image_size=16")
    assert result.exit_code == 0, result.output
    assert '"valid_rows": 12' in result.stdout


@pytest.mark.parametrize(("name", "content", "needle"), [
    ("latin1", b"image,text,label\na.png,ok,x\nb.png,caf\xe9,y\n", "not UTF-8 text (bad byte at line 3)"),
    ("empty", b"", "the file is empty"),
    ("header-only", b"image,text,label\n", "header only, no data rows"),
    ("duplicate", b"image,text,text,label\na.png,x,y,z\n", "duplicate header column(s): text"),
    ("unnamed", b"image,,label\na.png,x,z\n", "header column(s) [2] have no name"),
    ("quote", b'image,text,label\na.png,"never closed,x\nb.png,y,z\n', "starting at line 2"),
    ("blank-first", b"\nimage,text,label\na.png,x,y\n", "line 1 is blank"),
])
def test_unusable_csv_exits_1_naming_the_problem(tmp_path, name, content, needle):
    path = tmp_path / f"{name}.csv"
    path.write_bytes(content)
    result = mm("preprocess", path, "-o", tmp_path / "c")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert needle in " ".join(result.output.split()), result.output  # rich may wrap long lines
    assert str(path.name) in result.output


def test_missing_label_column_is_a_usage_error_for_training(tmp_path, good_rows):
    path = write_csv(tmp_path / "d" / "m.csv", ["image", "text"], [r[:2] for r in good_rows])
    result = mm("train", path, "-o", tmp_path / "run")
    assert result.exit_code == 2 and "no label column 'label'" in result.output


def test_all_rows_bad_fails_cleanly(tmp_path):
    rows = [["nope.png", "text", "a"], ["nope2.png", "text", "b"]]
    csv = write_csv(tmp_path / "m.csv", ["image", "text", "label"], rows)
    with pytest.raises(DataError, match="2 of 2 rows are bad"):
        preprocess(csv, load_config(None, ["data.image_size=16"]), tmp_path / "c")
    result = mm("train", csv, "-o", tmp_path / "run", "--set", "data.max_bad_fraction=1")
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output


# --- scale -------------------------------------------------------------------------------------------------------

@pytest.mark.slow
def test_ten_thousand_rows_with_three_percent_bad(tmp_path):
    root = tmp_path / "d"
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]
    names = [write_png(root / "img" / f"{k}.png", c, size=8, noise=10, seed=k).name for k, c in enumerate(colours)]
    (root / "img" / "zero.png").write_bytes(b"")
    shutil.copy(root / "img" / "0.png", root / "img" / "cut.png")
    data = (root / "img" / "cut.png").read_bytes()
    (root / "img" / "cut.png").write_bytes(data[: len(data) // 2])
    rng = np.random.default_rng(0)
    n, bad_idx = 10_000, set(rng.choice(10_000, 300, replace=False).tolist())
    kinds = ["missing", "zero", "cut", "label", "text", "extra"]
    rows, expected = [], {}
    for i in range(n):
        k = i % 5
        row = [f"img/{names[k]}", f"word{k} thing{i % 7}", f"class{k}"]
        if i in bad_idx:
            kind = kinds[len(expected) % len(kinds)]
            expected[i + 2] = kind
            if kind in ("missing", "zero", "cut"):
                row[0] = {"missing": "img/none.png", "zero": "img/zero.png", "cut": "img/cut.png"}[kind]
            elif kind == "label":
                row[2] = ""
            elif kind == "text":
                row[1] = ""
            else:
                row.append("surplus")
        rows.append(row)
    csv = write_csv(root / "data.csv", ["image", "text", "label"], rows)
    summary = preprocess(csv, load_config(None, ["data.image_size=8"]), tmp_path / "c")  # 3 % < 5 %: succeeds
    assert summary["rows"] == n and summary["bad_rows"] == 300 and summary["valid_rows"] == n - 300
    listed = read_csv(tmp_path / "c" / "bad_rows.csv")
    assert [int(r["row"]) for r in listed] == sorted(expected)
    column = {"missing": "image", "zero": "image", "cut": "image", "label": "label", "text": "text", "extra": "*"}
    assert all(r["column"] == column[expected[int(r["row"])]] for r in listed)
