"""CSV parsing and column-role inference (mmcli/data/manifest.py)."""

from __future__ import annotations

import pytest
from helpers import write_csv

from mmcli.config import load_config
from mmcli.data.manifest import read_manifest, read_table
from mmcli.errors import DataError, UsageError


def manifest(path, *sets, need_label=True):
    return read_manifest(path, load_config(None, list(sets)).data, need_label=need_label)


def write(tmp_path, content, name="m.csv"):
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return path


# --- column roles ---------------------------------------------------------------------------------------------

def test_infers_image_text_label_split_and_ignored_id(tmp_path):
    path = write_csv(tmp_path / "m.csv", ["id", "photo", "caption", "split", "label"],
                     [[1, "a.png", "a cat", "train", "cat"], [2, "sub/b.JPG", "a dog", "val", "dog"]])
    man = manifest(path)
    assert man.image_columns == ["photo"]
    assert man.text_columns == ["caption"]
    assert man.label_column == "label"
    assert man.split_column == "split"
    assert man.ignored_columns == ["id"]
    assert man.resolve("sub/b.JPG") == tmp_path / "sub" / "b.JPG"


def test_image_paths_left_out_of_image_columns_are_not_text(tmp_path):
    """A text-only model (`data.image_columns=[]`) must not read file names as text: they can carry the label."""
    path = write_csv(tmp_path / "m.csv", ["photo", "caption", "label"],
                     [["cats/a.png", "a cat", "cat"], ["dogs/b.png", "a dog", "dog"]])
    man = manifest(path, "data.image_columns=[]")
    assert (man.image_columns, man.text_columns, man.ignored_columns) == ([], ["caption"], ["photo"])
    man = manifest(path, "data.image_columns=[]", "data.text_columns=[photo, caption]")  # asked for: allowed
    assert man.text_columns == ["photo", "caption"]


def test_numeric_columns_form_one_numeric_input(tmp_path):
    path = write_csv(tmp_path / "m.csv", ["image", "price", "text", "age", "label"],
                     [["a.png", "1.5", "x", "3", "a"], ["b.png", "", "y", "nan", "b"], ["c.png", "3", "z", "1e2", "a"]])
    man = manifest(path)
    assert man.ignored_columns == []
    assert man.text_columns == ["text"]
    assert {"name": "numeric", "kind": "numeric", "columns": ["price", "age"]} in man.input_list
    assert man.kinds == {"image": "image", "price": "numeric", "age": "numeric", "text": "text"}


def test_id_like_numeric_columns_stay_ignored(tmp_path):
    rows = [[i, 100 + i, f"{i % 7}.5", f"w{i}", "ab"[i % 2]] for i in range(30)]
    path = write_csv(tmp_path / "m.csv", ["row_id", "counter", "x", "text", "label"], rows)
    man = manifest(path)
    assert man.ignored_columns == ["row_id", "counter"]  # named like an id; distinct increasing integers
    assert man.columns_of("numeric") == ["x"]


def test_repeated_strings_are_categorical_and_the_rest_text(tmp_path):
    rows = [[["fr", "de", "uk"][i % 3], f"caption {i}", "ab"[i % 2]] for i in range(30)]
    path = write_csv(tmp_path / "m.csv", ["country", "caption", "label"], rows)
    man = manifest(path)
    assert man.kinds == {"country": "categorical", "caption": "text"}
    assert manifest(path, "data.max_categories=2").kinds["country"] == "text"  # too many distinct values


def test_explicit_inputs_take_every_column_as_named(tmp_path):
    rows = [[["fr", "de", "uk"][i % 3], f"{i}", "ab"[i % 2]] for i in range(30)]
    path = write_csv(tmp_path / "m.csv", ["country", "n", "label"], rows)
    man = manifest(path, "data.inputs={country: text, n: categorical}")
    assert man.kinds == {"country": "text", "n": "categorical"}
    with pytest.raises(UsageError, match="unknown input kind 'video'; valid kinds: image, "):
        manifest(path, "data.inputs={country: video}")
    with pytest.raises(UsageError, match="input column 'nope' not in the manifest"):
        manifest(path, "data.inputs={nope: text}")


def test_all_empty_column_is_ignored(tmp_path):
    path = write_csv(tmp_path / "m.csv", ["image", "text", "notes", "label"],
                     [["a.png", "x", "", "a"], ["b.png", "y", "", "b"]])
    man = manifest(path)
    assert man.text_columns == ["text"]
    assert "notes" in man.ignored_columns


def test_several_text_and_image_columns(tmp_path):
    path = write_csv(tmp_path / "m.csv", ["front", "back", "title", "body", "label"],
                     [["f.png", "b.webp", "t", "body text", "x"]])
    man = manifest(path)
    assert man.image_columns == ["front", "back"]
    assert man.text_columns == ["title", "body"]
    assert man.inputs == ["front", "back", "title", "body"]


def test_label_override(tmp_path):
    path = write_csv(tmp_path / "m.csv", ["image", "text", "category"], [["a.png", "x", "c1"]])
    with pytest.raises(UsageError, match=r"no label column 'label'.*--label"):
        manifest(path)
    man = manifest(path, "data.label=category")
    assert man.label_column == "category"
    assert man.text_columns == ["text"]


def test_label_not_needed_for_prediction(tmp_path):
    path = write_csv(tmp_path / "m.csv", ["image", "text"], [["a.png", "x"]])
    man = manifest(path, need_label=False)
    assert man.label_column is None


def test_explicit_columns(tmp_path):
    path = write_csv(tmp_path / "m.csv", ["pic", "a", "b", "label"], [["p.dat", "x", "y", "l"]])
    man = manifest(path, "data.image_columns=[pic]", "data.text_columns=[b]")
    assert man.image_columns == ["pic"]  # no image extension: explicit columns are taken as given
    assert man.text_columns == ["b"]


@pytest.mark.parametrize("key", ["data.image_columns=[nope]", "data.text_columns=[nope]"])
def test_unknown_column_errors(tmp_path, key):
    path = write_csv(tmp_path / "m.csv", ["image", "text", "label"], [["a.png", "x", "l"]])
    with pytest.raises(UsageError) as exc:
        manifest(path, key)
    assert "'nope'" in str(exc.value) and "image, text, label" in str(exc.value)


def test_no_input_columns(tmp_path):
    path = write_csv(tmp_path / "m.csv", ["id", "label"], [["1", "a"]])
    with pytest.raises(UsageError, match="found no input columns among id, label"):
        manifest(path)


# --- parsing ----------------------------------------------------------------------------------------------------

def test_row_numbers_are_spreadsheet_rows(tmp_path):
    # header = row 1; a blank line still occupies a row; a quoted cell spanning two lines is one row
    path = write(tmp_path, 'image,text,label\na.png,x,l\n\nb.png,"two\nlines",l\nc.png,y,l\n')
    header, rows, numbers = read_table(path)
    assert header == ["image", "text", "label"]
    assert numbers == [2, 4, 5]
    assert rows[1]["text"] == "two\nlines"


@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
def test_delimiter_is_sniffed(tmp_path, delimiter):
    path = write_csv(tmp_path / "m.csv", ["image", "text", "label"], [["a.png", "x, y; z", "l"]],
                     delimiter=delimiter)
    man = manifest(path)
    assert man.rows[0] == {"image": "a.png", "text": "x, y; z", "label": "l"}


def test_utf8_bom(tmp_path):
    path = write(tmp_path, "\ufeffimage,text,label\na.png,café,l\n")
    man = manifest(path)
    assert man.header == ["image", "text", "label"]  # not "\ufeffimage"
    assert man.rows[0]["text"] == "café"


def test_utf16_with_bom(tmp_path):
    path = write(tmp_path, "image,text,label\na.png,café,l\n".encode("utf-16"))
    assert manifest(path).rows[0]["text"] == "café"


def test_not_utf8_names_the_line(tmp_path):
    path = write(tmp_path, b"image,text,label\na.png,ok,l\nb.png,caf\xe9,l\n")
    with pytest.raises(DataError) as exc:
        manifest(path)
    assert "line 3" in str(exc.value) and "UTF-8" in str(exc.value)


def test_unbalanced_quote_names_the_line(tmp_path):
    path = write(tmp_path, 'image,text,label\na.png,x,l\nb.png,"open,l\nc.png,y,l\n')
    with pytest.raises(DataError, match="line 3"):
        manifest(path)


def test_duplicate_header(tmp_path):
    path = write(tmp_path, "image,text,text,label\na.png,x,y,l\n")
    with pytest.raises(DataError, match="duplicate header column.*text"):
        manifest(path)


def test_unnamed_header_column(tmp_path):
    path = write(tmp_path, "image,,label\na.png,x,l\n")
    with pytest.raises(DataError, match=r"column\(s\) \[2\] have no name"):
        manifest(path)


def test_blank_first_line(tmp_path):
    path = write(tmp_path, "\nimage,text,label\na.png,x,l\n")
    with pytest.raises(DataError, match="line 1 is blank"):
        manifest(path)


@pytest.mark.parametrize("content", ["", "   \n\n", "\ufeff"])
def test_empty_csv(tmp_path, content):
    with pytest.raises(DataError, match="empty"):
        manifest(write(tmp_path, content))


def test_header_only(tmp_path):
    with pytest.raises(DataError, match="header only"):
        manifest(write(tmp_path, "image,text,label\n\n"))


def test_missing_manifest(tmp_path):
    with pytest.raises(DataError, match="manifest not found"):
        manifest(tmp_path / "nope.csv")


def test_short_and_long_rows(tmp_path):
    path = write(tmp_path, "image,text,label\na.png,x\nb.png,y,l,extra\n")
    _, rows, _ = read_table(path)
    assert rows[0] == {"image": "a.png", "text": "x", "label": ""}  # missing cells are empty
    assert "__extra__" in rows[1]  # too many cells: flagged, becomes a bad row


def test_very_long_cell(tmp_path):
    long_text = "word " * 60_000  # 300 KB: past the csv module's default 128 KiB field limit
    path = write_csv(tmp_path / "m.csv", ["image", "text", "label"], [["a.png", long_text, "l"]])
    assert manifest(path).rows[0]["text"] == long_text.strip()


def test_windows_separators_resolve_when_the_file_exists(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.png").write_bytes(b"x")
    path = write_csv(tmp_path / "m.csv", ["image", "text", "label"], [["images\\a.png", "x", "l"]])
    man = manifest(path)
    assert man.resolve("images\\a.png") == tmp_path / "images" / "a.png"
    assert man.resolve("images\\none.png") == tmp_path / "images\\none.png"  # not found either way: as written
    assert str(man.resolve("/abs/x.png")) == "/abs/x.png"  # absolute paths are taken as they are
