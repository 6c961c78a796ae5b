"""Per-row validation, bad_rows.csv, the bad-row budget, and the train/validation split."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import dataset_rows, make_dataset, read_csv, write_csv

from mmcli.config import load_config
from mmcli.data.cache import build_cache
from mmcli.data.manifest import read_manifest
from mmcli.errors import DataError
from mmcli.preprocess import preprocess


def build(csv, *sets, out=None):
    cfg = load_config(None, ["data.image_size=16", *sets])
    return build_cache(read_manifest(csv, cfg.data), cfg, out)


# --- split -------------------------------------------------------------------------------------------------------

def test_stratified_seeded_val_split(tmp_path):
    csv = make_dataset(tmp_path / "d", n=60)
    cache, _, _ = build(csv, "data.val_fraction=0.2")
    val = cache.split == 1
    assert val.sum() == 12 and not (cache.split == 2).any()
    for k in range(3):  # 4 of each class's 20 rows
        assert (val & (cache.labels == k)).sum() == 4
    again, _, _ = build(csv, "data.val_fraction=0.2", out=tmp_path / "other")
    assert np.array_equal(again.split, cache.split)  # same seed, same split
    other, _, _ = build(csv, "data.val_fraction=0.2", "train.seed=7", out=tmp_path / "seed7")
    assert not np.array_equal(other.split, cache.split)


def test_no_val_split_when_fraction_zero(dataset):
    cache, _, _ = build(dataset, "data.val_fraction=0")
    assert (cache.split == 0).all()


def test_singleton_class_stays_in_train(tmp_path):
    rows = dataset_rows(tmp_path, n=12)
    rows.append([rows[0][0], "lonely", "only-one"])
    csv = write_csv(tmp_path / "m.csv", ["image", "text", "label"], rows)
    cache, _, _ = build(csv, "data.val_fraction=0.5")
    k = cache.meta["label_names"].index("only-one")
    assert cache.split[cache.labels == k].tolist() == [0]


def test_split_column_honoured(tmp_path):
    rows = dataset_rows(tmp_path, n=12)
    splits = ["train", "val", "test", "TRAIN", "validation", "Test", "train", "dev", "train", "train", "train", "test"]
    csv = write_csv(tmp_path / "m.csv", ["image", "text", "label", "split"],
                    [r + [s] for r, s in zip(rows, splits)])
    cache, bad, _ = build(csv)
    assert bad == []
    assert cache.split.tolist() == [0, 1, 2, 0, 1, 2, 0, 1, 0, 0, 0, 2]


def test_split_column_without_val_rows_gets_a_carved_val(tmp_path):
    rows = dataset_rows(tmp_path, n=30)
    csv = write_csv(tmp_path / "m.csv", ["image", "text", "label", "split"],
                    [r + ["test" if i >= 24 else "train"] for i, r in enumerate(rows)])
    cache, _, _ = build(csv, "data.val_fraction=0.25")
    assert (cache.split[24:] == 2).all()  # test rows are never moved
    assert (cache.split[:24] == 1).sum() == 6


def test_unknown_split_value_is_a_bad_row(tmp_path):
    rows = dataset_rows(tmp_path, n=30)
    csv = write_csv(tmp_path / "m.csv", ["image", "text", "label", "split"],
                    [r + ["holdout" if i == 4 else "train"] for i, r in enumerate(rows)])
    _, bad, _ = build(csv, "data.max_bad_fraction=0.5")
    assert [(b.row, b.column) for b in bad] == [(6, "split")]
    assert "train, val or test" in bad[0].reason


# --- bad rows ----------------------------------------------------------------------------------------------------

@pytest.fixture
def broken(tmp_path):
    """A 40-row CSV with one problem each on spreadsheet rows 3, 6, 10, 11, 12, 20 and 41 (header = row 1)."""
    root = tmp_path / "d"
    rows = dataset_rows(root, n=40)
    rows[1][0] = "images/missing.png"  # row 3
    (root / "images" / "zero.png").write_bytes(b"")
    rows[4][0] = "images/zero.png"  # row 6
    rows[8][2] = ""  # row 10: empty label
    rows[9][2] = "NaN"  # row 11
    rows[10][1] = "   "  # row 12: whitespace-only text
    (root / "images" / "text.jpg").write_text("not an image")
    rows[18][0] = "images/text.jpg"  # row 20
    rows[39] = rows[39] + ["surplus"]  # row 41: one cell too many
    return write_csv(root / "data.csv", ["image", "text", "label"], rows)


def test_bad_rows_listed_with_spreadsheet_row_numbers(broken):
    cache, bad, _ = build(broken, "data.max_bad_fraction=0.5")
    expected = {3: "image", 6: "image", 10: "label", 11: "label", 12: "text", 20: "image", 41: "*"}
    assert {b.row: b.column for b in bad} == expected
    listed = read_csv(cache.dir / "bad_rows.csv")
    assert [int(r["row"]) for r in listed] == sorted(expected)
    reasons = {int(r["row"]): r["reason"] for r in listed}
    assert reasons[3] == f"file not found: {broken.parent / 'images' / 'missing.png'}"  # the resolved path
    assert "empty file" in reasons[6]
    assert reasons[10] == reasons[11] == "label is empty"
    assert "text is empty" in reasons[12]
    assert "cannot decode image" in reasons[20]
    assert "4 cells for 3 columns" in reasons[41]
    # the bad rows are excluded, the others kept
    assert cache.valid.sum() == 33 and not cache.valid[[1, 4, 8, 9, 10, 18, 39]].any()
    assert cache.meta["valid_rows"] == 33


def test_past_the_bad_share_fails_but_keeps_the_report(broken, tmp_path):
    out = tmp_path / "cache"
    cfg = load_config(None, ["data.image_size=16", "data.max_bad_fraction=0.1"])  # 7/40 = 17.5 % > 10 %
    with pytest.raises(DataError) as exc:
        preprocess(broken, cfg, out)
    assert exc.value.exit_code == 1
    msg = str(exc.value)
    assert "7 of 40 rows are bad" in msg and "bad_rows.csv" in msg and "row 3 [image]: file not found" in msg
    assert len(read_csv(out / "bad_rows.csv")) == 7


def test_within_the_bad_share_succeeds(broken, tmp_path):
    cfg = load_config(None, ["data.image_size=16", "data.max_bad_fraction=0.2"])
    summary = preprocess(broken, cfg, tmp_path / "cache")
    assert summary["bad_rows"] == 7 and summary["valid_rows"] == 33 and summary["rows"] == 40


def test_allow_missing_keeps_partial_rows(tmp_path):
    root = tmp_path / "d"
    rows = dataset_rows(root, n=20)
    rows[0][1] = ""  # no text: kept, text marked absent
    rows[1][0] = ""  # no image: kept, image marked absent
    rows[2][0], rows[2][1] = "", ""  # nothing at all: bad
    rows[3][0] = "images/missing.png"  # a named file that is not there is a problem, not an absent input
    csv = write_csv(root / "m.csv", ["image", "text", "label"], rows)
    cache, bad, _ = build(csv, "data.allow_missing=true", "data.max_bad_fraction=0.5")
    assert cache.present[0].tolist() == [True, False] and cache.valid[0]
    assert cache.present[1].tolist() == [False, True] and cache.valid[1]
    assert not cache.valid[2] and 4 in [b.row for b in bad]
    assert not cache.valid[3] and 5 in [b.row for b in bad]  # an unreadable image is a bad row, not absent
