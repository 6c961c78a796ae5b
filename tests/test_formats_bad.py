"""Bad input in the other shapes (docs/robustness.md): a row-level reason in bad_rows.csv, numbered as the format
counts rows, or a one-line error naming the file; exit codes as for a CSV."""

from __future__ import annotations

import json

import numpy as np
from helpers import (
    corrupt_row_group,
    dataset_rows,
    make_image_tree,
    png_bytes,
    read_csv,
    two_colour,
    write_csv,
    write_jsonl,
    write_parquet,
    write_png,
)
from PIL import Image
from typer.testing import CliRunner

from mmcli.cli import app
from mmcli.config import load_config
from mmcli.data.cache import Cache
from mmcli.preprocess import preprocess


def mm(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_clean_failure(result, code: int, *needles: str) -> None:
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output and (result.exception is None or isinstance(result.exception, SystemExit))
    for needle in needles:
        assert needle in result.output, result.output


def run_preprocess(path, out, *sets):
    """-> (summary, cache, {row number: bad_rows.csv row}); the first column is named by what it counts."""
    cfg = load_config(None, ["data.image_size=16", "data.max_bad_fraction=0.9", *sets])
    summary = preprocess(path, cfg, out)
    listed = read_csv(out / "bad_rows.csv")
    label = (out / "bad_rows.csv").read_text().split(",")[0]
    assert label == {"jsonl": "line", "json": "record", "parquet": "record"}.get(summary["format"], "row")
    return summary, Cache.load(out), {int(r[label]): r for r in listed}


def test_jsonl_bad_lines_are_bad_rows_numbered_by_line(tmp_path):
    rows = dataset_rows(tmp_path, n=20)
    records = [{"image": r[0], "text": r[1], "label": r[2], "id": k} for k, r in enumerate(rows)]
    records[15]["id"] = "x15"  # a mixed type in a column no role uses: not a reason to drop the row
    lines = [json.dumps(r) for r in records]
    lines[2] = '{"image": "images/002.png", "text": "a'  # cut off: not JSON
    lines[4] = json.dumps([records[4]["image"], records[4]["text"]])  # an array, not an object
    lines[6] = json.dumps({**records[6], "label": 7})  # a number among text labels
    lines[8] = json.dumps({**records[8], "text": {"en": "sky"}})  # a nested object
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines[:10]) + "\n\n" + "\n".join(lines[10:]) + "\n", encoding="utf-8")
    summary, cache, bad = run_preprocess(path, tmp_path / "c")
    assert sorted(bad) == [3, 5, 7, 9]  # JSONL line numbers (a blank line 11 pushes the rest down by one)
    assert bad[3]["column"] == "*" and "not valid JSON" in bad[3]["reason"]
    assert "JSON array, not an object" in bad[5]["reason"]
    assert bad[7]["column"] == "label" and "mixed types" in bad[7]["reason"] and "number" in bad[7]["reason"]
    assert bad[9]["column"] == "text" and "JSON object" in bad[9]["reason"]
    assert summary["valid_rows"] == 16 and int(cache.rows[-1]) == 21
    assert summary["row_numbers"].startswith("line number")


def test_unusable_json_and_parquet_files_exit_1_naming_the_file(tmp_path):
    broken = tmp_path / "broken.json"
    broken.write_text('[{"image": "a.png", "label": "x"},\n {"image": ', encoding="utf-8")
    assert_clean_failure(mm("preprocess", broken), 1, "broken.json", "not valid JSON", "line 2")
    obj = tmp_path / "obj.json"
    obj.write_text('{"image": "a.png", "label": "x"}', encoding="utf-8")
    assert_clean_failure(mm("preprocess", obj), 1, "obj.json", "list of records", ".jsonl")
    fake = tmp_path / "fake.parquet"
    fake.write_text("image,label\na.png,x\n", encoding="utf-8")
    assert_clean_failure(mm("preprocess", fake), 1, "fake.parquet", "not a readable Parquet file")
    empty = write_jsonl(tmp_path / "empty.jsonl", [])
    assert_clean_failure(mm("preprocess", empty), 1, "empty.jsonl", "no records")
    all_bad = tmp_path / "all_bad.jsonl"
    all_bad.write_text("image,text,label\na.png,hi,x\n", encoding="utf-8")  # a CSV named .jsonl
    assert_clean_failure(mm("preprocess", all_bad), 1, "all_bad.jsonl", "no record is a JSON object", "--format csv")


def test_json_record_that_is_not_an_object_is_a_bad_row_by_index(tmp_path):
    rows = dataset_rows(tmp_path, n=10)
    records = [{"image": r[0], "text": r[1], "label": r[2]} for r in rows]
    records[3] = "images/003.png"
    (tmp_path / "d.json").write_text(json.dumps(records), encoding="utf-8")
    summary, _, bad = run_preprocess(tmp_path / "d.json", tmp_path / "c")
    assert list(bad) == [3] and "JSON text, not an object" in bad[3]["reason"] and summary["valid_rows"] == 9


def _parquet(tmp_path, rows, images, groups=None):
    return write_parquet(tmp_path / "pq" / "data.parquet",
                         {"image": images, "text": [r[1] for r in rows], "label": [r[2] for r in rows]}, groups)


def test_unreadable_row_group_marks_its_records_and_keeps_the_rest(tmp_path):
    rows = dataset_rows(tmp_path, n=30)
    path = _parquet(tmp_path, rows, [{"bytes": (tmp_path / r[0]).read_bytes(), "path": r[0]} for r in rows], 10)
    corrupt_row_group(path, 1)
    summary, cache, bad = run_preprocess(path, tmp_path / "c")
    assert sorted(bad) == list(range(10, 20)) and summary["valid_rows"] == 20  # record indices
    assert all("row group 1 of the Parquet file cannot be read" in b["reason"] and b["column"] == "*"
               for b in bad.values())
    assert cache.images["image"][:10].any(axis=(1, 2, 3)).all() and cache.images["image"][20:].any(axis=(1, 2, 3)).all()
    result = mm("preprocess", path, "-o", tmp_path / "c2", "--set", "data.image_size=16")
    assert_clean_failure(result, 1, "10 of 30 rows are bad", "record 10 [*]: row group 1")


def test_stored_bytes_get_the_checks_files_get(tmp_path):
    """The same awkward pictures as files (CSV) and as stored bytes (Parquet): same pixels, same reasons."""
    rows = dataset_rows(tmp_path, n=20)
    odd = tmp_path / "odd"
    odd.mkdir()
    Image.fromarray(two_colour()).convert("P", palette=Image.ADAPTIVE).save(odd / "palette.png")
    Image.fromarray(two_colour()).convert("LA").save(odd / "grey_alpha.png")
    (odd / "truncated.png").write_bytes(write_png(odd / "full.png", (9, 9, 9)).read_bytes()[:60])
    (odd / "bomb.png").write_bytes(png_bytes(2000, 2000, 8, 2, b"\x00" * 64))
    (odd / "text.png").write_text("not an image", encoding="utf-8")
    (odd / "empty.png").write_bytes(b"")
    names = ["palette", "grey_alpha", "truncated", "bomb", "text", "empty"]
    rows += [[f"odd/{n}.png", "sky sea photo", "blue"] for n in names]
    csv = write_csv(tmp_path / "data.csv", ["image", "text", "label"], rows)
    path = _parquet(tmp_path, rows, [{"bytes": (tmp_path / r[0]).read_bytes(), "path": r[0]} for r in rows], 8)
    s_csv, c_csv, bad_csv = run_preprocess(csv, tmp_path / "c1", "data.max_image_pixels=1000000")
    s_pq, c_pq, bad_pq = run_preprocess(path, tmp_path / "c2", "data.max_image_pixels=1000000")
    np.testing.assert_array_equal(c_csv.images["image"], c_pq.images["image"])
    assert s_pq["valid_rows"] == s_csv["valid_rows"] == 22
    assert [(k - 2, b["reason"]) for k, b in bad_csv.items() if k != 27] == \
        [(k, b["reason"]) for k, b in bad_pq.items() if k != 25]
    assert bad_pq[25]["reason"] == "image bytes are empty (0 bytes)" and "exceeds the limit" in bad_pq[23]["reason"]


def test_empty_folder_and_folder_without_class_folders_exit_1(tmp_path):
    (tmp_path / "empty").mkdir()
    assert_clean_failure(mm("preprocess", tmp_path / "empty"), 1, "empty", "no images in class folders")
    flat = tmp_path / "flat"
    write_png(flat / "a.png", (1, 2, 3))
    (flat / "cat").mkdir()
    assert_clean_failure(mm("train", flat), 1, "flat", "no images in class folders")
    assert_clean_failure(mm("preprocess", tmp_path / "missing", "--format", "folder"), 1, "data folder not found")


def test_folder_edge_cases_are_bad_rows_or_warnings(tmp_path):
    root = tmp_path / "photos"
    make_image_tree(root, {"": 3}, captions=False)
    write_png(root / "cat" / "only.png", (5, 5, 5))  # a class folder with one image
    write_png(root / "stray.png", (5, 5, 5))  # beside the class folders
    (root / "red" / "notes.md").write_text("x", encoding="utf-8")
    (root / "red" / ".DS_Store").write_bytes(b"\0")
    (root / "dog").mkdir()
    (root / "red" / "000.txt").write_bytes(b"caf\xe9")  # a caption in Latin-1
    (root / "red" / "001.txt").write_text("a red apple", encoding="utf-8")  # the others have none: allow_missing
    result = mm("preprocess", root, "--write-manifest", tmp_path / "m.csv", "-o", tmp_path / "c", "--json",
                "--set", "data.image_size=16", "--set", "data.max_bad_fraction=0.9", "--set", "data.allow_missing=true")
    assert result.exit_code == 0, result.output
    assert "notes.md" in result.output and "dog" in result.output  # warned, not silently skipped
    listed = {r["row"]: r for r in read_csv(tmp_path / "c" / "bad_rows.csv")}
    manifest = read_csv(tmp_path / "m.csv")
    row_of = {r["image"]: str(k + 2) for k, r in enumerate(manifest)}
    assert "only this image" in listed[row_of["photos/cat/only.png"]]["reason"]
    assert "not inside a class folder" in listed[row_of["photos/stray.png"]]["reason"]
    assert "not UTF-8" in listed[row_of["photos/red/000.png"]]["reason"]
    assert len(listed) == 3 and len(manifest) == 11 and not any(".DS_Store" in r["image"] for r in manifest)


def test_write_manifest_refuses_stored_images(tmp_path):
    rows = dataset_rows(tmp_path, n=6)
    path = _parquet(tmp_path, rows, [(tmp_path / r[0]).read_bytes() for r in rows])
    assert_clean_failure(mm("preprocess", path, "--write-manifest", tmp_path / "m.csv"), 2, "stored inside the file")
