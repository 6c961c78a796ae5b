"""Every input shape (TSV, JSONL, a JSON list, Parquet with images stored inside, a class-per-folder tree) gives the
cache, the metrics and the predictions that the same rows give as a CSV; only what a row number means differs."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import TINY, make_dataset, make_image_tree, read_csv, write_csv, write_jsonl, write_parquet, write_png
from typer.testing import CliRunner

from mmcli.cli import app
from mmcli.config import load_config
from mmcli.data.cache import Cache
from mmcli.preprocess import preprocess

SETS = [arg for s in TINY for arg in ("--set", s)]
ARRAYS = ("images_image", "tokens_text", "labels", "split", "valid", "present")


def mm(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def cache_of(path, out, *sets) -> Cache:
    preprocess(path, load_config(None, ["data.image_size=16", *sets]), out)
    return Cache.load(out)


def assert_same_cache(a: Cache, b: Cache) -> None:
    for name in ARRAYS:
        left = np.load(a.dir / f"{name}.npy") if (a.dir / f"{name}.npy").exists() else None
        right = np.load(b.dir / f"{name}.npy") if (b.dir / f"{name}.npy").exists() else None
        assert (left is None) == (right is None), name
        if left is not None:
            np.testing.assert_array_equal(left, right, err_msg=name)
    assert a.meta["label_names"] == b.meta["label_names"] and a.inputs == b.inputs
    assert (a.dir / "tokenizer.json").read_text() == (b.dir / "tokenizer.json").read_text()


def _as_tsv(csv, rows):
    return write_csv(csv.with_suffix(".tsv"), list(rows[0]), [list(r.values()) for r in rows], delimiter="\t")


def _as_jsonl(csv, rows):
    return write_jsonl(csv.with_suffix(".jsonl"), rows)


def _as_json(csv, rows):
    path = csv.with_suffix(".json")
    path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    return path


def _as_parquet_struct(csv, rows):
    # in another folder, with no image files beside it: the pictures can only come from the stored bytes
    images = [{"bytes": (csv.parent / r["image"]).read_bytes(), "path": r["image"]} for r in rows]
    return write_parquet(csv.parent.parent / "pq" / "data.parquet",
                         {"image": images, "text": [r["text"] for r in rows], "label": [r["label"] for r in rows]},
                         row_group_size=7)


def _as_parquet_binary(csv, rows):
    images = [(csv.parent / r["image"]).read_bytes() for r in rows]
    return write_parquet(csv.parent.parent / "pq" / "binary.parquet",
                         {"image": images, "text": [r["text"] for r in rows], "label": [r["label"] for r in rows]})


WRITERS = {"tsv": (_as_tsv, 2), "jsonl": (_as_jsonl, 1), "json": (_as_json, 0), "parquet": (_as_parquet_struct, 0),
           "parquet-binary": (_as_parquet_binary, 0)}


@pytest.mark.parametrize("kind", list(WRITERS))
def test_each_format_caches_what_the_csv_caches(tmp_path, kind):
    csv = make_dataset(tmp_path / "d", n=30)
    rows = read_csv(csv)
    write, first_row = WRITERS[kind]
    other = write(csv, rows)
    expected, got = cache_of(csv, tmp_path / "c-csv"), cache_of(other, tmp_path / "c-other")
    assert_same_cache(expected, got)
    assert got.valid.all() and list(got.rows) == list(range(first_row, first_row + 30))
    assert got.meta["format"] == kind.split("-")[0] and "row_numbers" in got.meta


def test_parquet_row_groups_shared_among_decode_workers(tmp_path):
    csv = make_dataset(tmp_path / "d", n=30)
    rows = read_csv(csv)
    rows[9]["image"] = "images/missing.png"  # stored bytes of nothing: the path-only fallback reports the file
    write_csv(csv, list(rows[0]), [list(r.values()) for r in rows])
    images = [{"bytes": None if k == 9 else (csv.parent / r["image"]).read_bytes(), "path": r["image"]}
              for k, r in enumerate(rows)]
    pq_path = write_parquet(tmp_path / "d" / "w.parquet", {"image": images, "text": [r["text"] for r in rows],
                                                           "label": [r["label"] for r in rows]}, row_group_size=7)
    expected = cache_of(csv, tmp_path / "c-csv")
    got = cache_of(pq_path, tmp_path / "c-pq", "data.workers=2")
    assert_same_cache(expected, got)
    assert [b["row"] for b in got.meta["bad_rows"]] == [9] and "file not found" in got.meta["bad_rows"][0]["reason"]


def test_preprocess_summary_says_what_row_numbers_mean(tmp_path):
    csv = make_dataset(tmp_path / "d", n=12)
    jsonl = _as_jsonl(csv, read_csv(csv))
    result = mm("preprocess", jsonl, "-o", tmp_path / "c", "--json", "--set", "data.image_size=16")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["format"] == "jsonl" and summary["row_numbers"] == "line number in the JSONL file (from 1)"


def test_format_option_overrides_the_extension(tmp_path):
    csv = make_dataset(tmp_path / "d", n=12)
    odd = tmp_path / "d" / "records.txt"
    odd.write_text(_as_jsonl(csv, read_csv(csv)).read_text())
    result = mm("preprocess", odd, "--format", "jsonl", "-o", tmp_path / "c", "--json", "--set", "data.image_size=16")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["valid_rows"] == 12
    bad = mm("preprocess", odd, "--format", "xml")
    assert bad.exit_code == 2 and "xml" in bad.output and "Traceback" not in bad.output


def test_parquet_cache_reused_until_an_image_byte_changes(tmp_path):
    csv = make_dataset(tmp_path / "d", n=12)
    rows = read_csv(csv)
    pq_path = _as_parquet_struct(csv, rows)
    first = cache_of(pq_path, tmp_path / "c")
    old = np.array(first.images["image"])
    again = preprocess(pq_path, load_config(None, ["data.image_size=16"]), tmp_path / "c")
    assert again["reused"]
    # same paths, same texts, same row count: only the stored picture of record 4 differs
    png = write_png(tmp_path / "other.png", (0, 0, 0), noise=0)
    images = [{"bytes": (csv.parent / r["image"]).read_bytes(), "path": r["image"]} for r in rows]
    images[4]["bytes"] = png.read_bytes()
    write_parquet(pq_path, {"image": images, "text": [r["text"] for r in rows], "label": [r["label"] for r in rows]},
                  row_group_size=7)
    rebuilt = cache_of(pq_path, tmp_path / "c")
    assert rebuilt.meta["fingerprints"] != first.meta["fingerprints"]
    new = np.array(rebuilt.images["image"])
    assert (new[4] == 0).all() and not (old[4] == 0).all()
    np.testing.assert_array_equal(np.delete(new, 4, 0), np.delete(old, 4, 0))


def test_parquet_image_struct_with_only_a_path_reads_the_file(tmp_path):
    csv = make_dataset(tmp_path / "d", n=9)
    rows = read_csv(csv)
    images = [{"bytes": None, "path": r["image"]} for r in rows]  # datasets' layout for pictures left on disk
    pq_path = write_parquet(tmp_path / "d" / "paths.parquet",
                            {"image": images, "text": [r["text"] for r in rows], "label": [r["label"] for r in rows]})
    np.testing.assert_array_equal(cache_of(pq_path, tmp_path / "c").images["image"],
                                  cache_of(csv, tmp_path / "c2").images["image"])


def _hateful_memes(root, n=24):
    """The Hateful Memes / MMF layout: img/<id>.png and records {"id", "img", "text", "label"} with 0/1 labels."""
    rng = np.random.default_rng(1)
    records = []
    for k in range(n):
        label = k % 2
        i = 42953 + 17 * k
        write_png(root / "img" / f"{i}.png", (200, 40, 40) if label else (40, 40, 200), seed=k)
        words = ["love", "sun"] if label == 0 else ["hate", "rain"]
        records.append({"id": i, "img": f"img/{i}.png", "text": " ".join(rng.choice(words, 3)), "label": label})
    return records


@pytest.mark.slow
def test_hateful_memes_jsonl_trains_as_its_csv_does(tmp_path):
    records = _hateful_memes(tmp_path / "hm")
    jsonl = write_jsonl(tmp_path / "hm" / "train.jsonl", records)
    csv = write_csv(tmp_path / "hm" / "train.csv", list(records[0]), [list(r.values()) for r in records])
    a = mm("train", jsonl, "-o", tmp_path / "a", "--cache-dir", tmp_path / "ca", *SETS)
    b = mm("train", csv, "-o", tmp_path / "b", "--cache-dir", tmp_path / "cb", *SETS)
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert (tmp_path / "a" / "metrics.json").read_text() == (tmp_path / "b" / "metrics.json").read_text()
    meta = Cache.load(tmp_path / "ca").meta
    assert [i["name"] for i in meta["inputs"]] == ["img", "text"] and meta["label_names"] == ["0", "1"]
    ev = mm("eval", tmp_path / "a", jsonl, "-o", tmp_path / "ev", "--json")
    assert ev.exit_code == 0, ev.output
    assert json.loads(ev.stdout)["n"] == 24
    pred_j = mm("predict", tmp_path / "a", jsonl, "-o", tmp_path / "pj.csv")
    pred_c = mm("predict", tmp_path / "a", csv, "-o", tmp_path / "pc.csv")
    assert pred_j.exit_code == 0 and pred_c.exit_code == 0, pred_j.output + pred_c.output
    by_json, by_csv = read_csv(tmp_path / "pj.csv"), read_csv(tmp_path / "pc.csv")
    assert [r["line"] for r in by_json] == [str(i) for i in range(1, 25)]  # JSONL lines
    assert [{k: v for k, v in r.items() if k != "line"} for r in by_json] == \
        [{k: v for k, v in r.items() if k != "row"} for r in by_csv]


def test_folder_tree_with_captions_and_splits_is_its_manifest(tmp_path):
    rows = make_image_tree(tmp_path / "photos", {"train": 4, "val": 2, "test": 2})
    hand = write_csv(tmp_path / "hand.csv", list(rows[0]),
                     [[f"photos/{r['image']}", r["text"], r["label"], r["split"]] for r in rows])
    result = mm("preprocess", tmp_path / "photos", "--write-manifest", tmp_path / "m.csv", "-o", tmp_path / "c",
                "--json", "--set", "data.image_size=16")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "m.csv").read_text() == hand.read_text()
    summary = json.loads(result.stdout)
    assert summary["format"] == "folder" and summary["valid_rows"] == 24 and summary["labels"] == ["blue", "green",
                                                                                                     "red"]
    folder = Cache.load(tmp_path / "c")
    assert_same_cache(folder, cache_of(hand, tmp_path / "c-hand"))
    assert list(np.bincount(folder.split)) == [12, 6, 6]  # split codes 0 train, 1 val, 2 test
    assert list(folder.rows) == list(range(2, 26))


@pytest.mark.slow
def test_folder_tree_trains_as_its_written_manifest_does(tmp_path):
    make_image_tree(tmp_path / "photos", {"": 6}, captions=False)
    assert mm("preprocess", tmp_path / "photos", "--write-manifest", tmp_path / "m.csv", "-o",
              tmp_path / "c0").exit_code == 0
    assert read_csv(tmp_path / "m.csv")[0] == {"image": "photos/blue/000.png", "label": "blue"}
    a = mm("train", tmp_path / "photos", "-o", tmp_path / "a", "--cache-dir", tmp_path / "ca", *SETS)
    b = mm("train", tmp_path / "m.csv", "-o", tmp_path / "b", "--cache-dir", tmp_path / "cb", *SETS)
    assert a.exit_code == 0 and b.exit_code == 0, a.output + b.output
    assert (tmp_path / "a" / "metrics.json").read_text() == (tmp_path / "b" / "metrics.json").read_text()
    pred = mm("predict", tmp_path / "a", tmp_path / "photos", "-o", tmp_path / "p.csv")
    assert pred.exit_code == 0, pred.output
    assert len(read_csv(tmp_path / "p.csv")) == 18


def test_predict_reads_parquet_as_the_csv(tmp_path):
    csv = make_dataset(tmp_path / "d", n=30)
    run = tmp_path / "run"
    assert mm("train", csv, "-o", run, *SETS, "--set", "train.epochs=1").exit_code == 0
    pq_path = _as_parquet_struct(csv, read_csv(csv))
    assert mm("predict", run, pq_path, "-o", tmp_path / "pq.csv").exit_code == 0
    assert mm("predict", run, csv, "-o", tmp_path / "csv.csv").exit_code == 0
    by_pq, by_csv = read_csv(tmp_path / "pq.csv"), read_csv(tmp_path / "csv.csv")
    assert [r["record"] for r in by_pq] == [str(i) for i in range(30)]  # record indices
    assert [r["p_red"] for r in by_pq] == [r["p_red"] for r in by_csv] and all(r["prediction"] for r in by_pq)
