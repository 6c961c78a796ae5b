"""The preprocessing cache: what it stores, and when it is reused or rebuilt."""

from __future__ import annotations

import os

import numpy as np
import pytest
from helpers import make_dataset, write_csv, write_png

from mmcli.config import load_config
from mmcli.data import cache as cache_mod  # noqa: F401
from mmcli.data import images as images_mod
from mmcli.data.cache import build_cache, default_cache_dir
from mmcli.data.manifest import read_manifest


def build(csv, cfg, out):
    return build_cache(read_manifest(csv, cfg.data), cfg, out)


def cfg_with(tiny_sets, *more):
    return load_config(None, [*tiny_sets, *more])


def forbid_decoding(monkeypatch) -> None:
    """From here on, fail the test if any image gets decoded."""
    def boom(*a, **k):
        raise AssertionError("images were decoded again")

    monkeypatch.setattr(images_mod, "decode_column", boom)


def test_cache_contents(dataset, tiny_cfg, tmp_path):
    cache, bad, reused = build(dataset, tiny_cfg, tmp_path / "c")
    assert not reused and bad == []
    n = 45
    assert cache.images["image"].shape == (n, 3, 16, 16) and cache.images["image"].dtype == np.uint8
    assert isinstance(cache.images["image"], np.memmap)
    text = next(i for i in cache.inputs if i["kind"] == "text")
    assert text["tokens"] == 8 and cache.tokens["text"].shape == (n, 8)  # short texts: the fitted length, not the cap
    assert cache.meta["label_names"] == ["blue", "green", "red"]
    assert cache.rows.tolist() == list(range(2, n + 2))
    assert cache.valid.all() and cache.present.all()
    assert (tmp_path / "c" / "bad_rows.csv").read_text() == "row,column,reason\n"
    # class colour survives decoding: row 0 is red, row 1 green, row 2 blue
    means = cache.images["image"][:3].reshape(3, 3, -1).mean(axis=2)
    assert means[0].argmax() == 0 and means[1].argmax() == 1 and means[2].argmax() == 2


def test_default_cache_dir_honours_env(dataset, monkeypatch, tmp_path):
    monkeypatch.setenv("MM_CACHE_DIR", str(tmp_path / "cc"))
    d = default_cache_dir(dataset)
    assert d.parent == tmp_path / "cc" and d.name.startswith("data-")


def test_second_build_reuses(dataset, tiny_cfg, tmp_path, monkeypatch):
    build(dataset, tiny_cfg, tmp_path / "c")
    forbid_decoding(monkeypatch)
    cache, _bad, reused = build(dataset, tiny_cfg, tmp_path / "c")
    assert reused and cache.valid.all()


def test_touching_an_image_rebuilds_it(dataset, tiny_cfg, tmp_path):
    build(dataset, tiny_cfg, tmp_path / "c")
    img = dataset.parent / "images" / "000.png"
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    _, _, reused = build(dataset, tiny_cfg, tmp_path / "c")
    assert not reused


def test_changing_an_image_rebuilds_with_new_pixels(dataset, tiny_cfg, tmp_path):
    cache, _, _ = build(dataset, tiny_cfg, tmp_path / "c")
    assert cache.images["image"][0].reshape(3, -1).mean(axis=1).argmax() == 0  # red
    img = dataset.parent / "images" / "000.png"
    write_png(img, (0, 0, 255), noise=0)
    st = img.stat()
    os.utime(img, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # coarse file systems: make the change visible
    cache, _, reused = build(dataset, tiny_cfg, tmp_path / "c")
    assert not reused
    assert cache.images["image"][0].reshape(3, -1).mean(axis=1).tolist() == [0, 0, 255]




def test_text_only_change_reuses_images(dataset, tiny_cfg, tmp_path, monkeypatch):
    build(dataset, tiny_cfg, tmp_path / "c")
    lines = dataset.read_text().splitlines()
    cells = lines[1].split(",")
    cells[1] = "a completely new caption"
    lines[1] = ",".join(cells)
    dataset.write_text("\n".join(lines) + "\n")
    forbid_decoding(monkeypatch)  # the image cells did not change
    cache, _, reused = build(dataset, tiny_cfg, tmp_path / "c")
    assert not reused  # the CSV changed, so texts were tokenised again
    texts = cache.tokens["text"]
    assert not np.array_equal(texts[0], texts[3])


def test_text_setting_change_reuses_images(dataset, tiny_sets, tmp_path, monkeypatch):
    build(dataset, cfg_with(tiny_sets), tmp_path / "c")
    forbid_decoding(monkeypatch)
    cache, _, reused = build(dataset, cfg_with(tiny_sets, "data.max_tokens=5"), tmp_path / "c")
    assert not reused and cache.tokens["text"].shape == (45, 5)
    other = "wordpiece" if load_config().data.tokenizer == "bpe" else "bpe"  # whichever is not the default
    cache, _, reused = build(dataset, cfg_with(tiny_sets, "data.max_tokens=5", f"data.tokenizer={other}"),
                             tmp_path / "c")
    assert not reused


@pytest.mark.parametrize("setting", ["data.image_size=8", "data.max_image_pixels=100"])
def test_image_setting_change_rebuilds_images(dataset, tiny_sets, tmp_path, setting, monkeypatch):
    build(dataset, cfg_with(tiny_sets), tmp_path / "c")
    calls = []
    real = images_mod.decode_column

    def spy(*a, **k):
        calls.append(a)
        return real(*a, **k)

    monkeypatch.setattr(images_mod, "decode_column", spy)
    cache, bad, reused = build(dataset, cfg_with(tiny_sets, setting, "data.max_bad_fraction=1"), tmp_path / "c")
    assert not reused and len(calls) == 1
    if setting == "data.image_size=8":
        assert cache.images["image"].shape == (45, 3, 8, 8)
    else:
        assert len(bad) == 45 and "exceeds the limit" in bad[0].reason


@pytest.mark.parametrize("setting", ["data.val_fraction=0.3", "train.seed=1", "data.allow_missing=true"])
def test_split_settings_change_rebuilds(dataset, tiny_sets, tmp_path, setting, monkeypatch):
    build(dataset, cfg_with(tiny_sets), tmp_path / "c")
    forbid_decoding(monkeypatch)
    _, _, reused = build(dataset, cfg_with(tiny_sets, setting), tmp_path / "c")
    assert not reused


def test_missing_image_that_appears_rebuilds(tmp_path, tiny_cfg):
    csv = make_dataset(tmp_path / "d", n=9)
    img = tmp_path / "d" / "images" / "004.png"
    img.rename(tmp_path / "d" / "moved.png")
    cfg = load_config(None, ["data.max_bad_fraction=0.5", "data.image_size=16"])
    _, bad, _ = build(csv, cfg, tmp_path / "c")
    assert [b.row for b in bad] == [6]
    (tmp_path / "d" / "moved.png").rename(img)
    _, bad, reused = build(csv, cfg, tmp_path / "c")
    assert not reused and bad == []


def test_half_written_cache_is_rebuilt(dataset, tiny_cfg, tmp_path):
    build(dataset, tiny_cfg, tmp_path / "c")
    (tmp_path / "c" / "meta.json").write_text("{trunc")  # e.g. killed mid-write on a file system without rename
    _, _, reused = build(dataset, tiny_cfg, tmp_path / "c")
    assert not reused


def test_interrupted_decoding_leaves_no_temporary_file(dataset, tiny_cfg, tmp_path, monkeypatch):
    from mmcli.data import images

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(images, "_decode_into", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build(dataset, tiny_cfg, tmp_path / "c")
    assert [p.name for p in (tmp_path / "c").iterdir() if "tmp" in p.name] == []
    assert not (tmp_path / "c" / "meta.json").exists()


def test_same_csv_text_in_another_folder_decodes_its_own_images(tmp_path, tiny_cfg):
    from PIL import Image

    for folder, colour in (("a", (255, 0, 0)), ("b", (0, 0, 255))):
        Image.new("RGB", (16, 16), colour).save(tmp_path / f"{folder}.bmp")  # BMP: same size whatever the colour
        (tmp_path / folder).mkdir()
        (tmp_path / f"{folder}.bmp").rename(tmp_path / folder / "img.bmp")
        os.utime(tmp_path / folder / "img.bmp", ns=(10**18, 10**18))  # same time stamp too
        write_csv(tmp_path / folder / "data.csv", ["image", "text", "label"], [["img.bmp", "words", "x"]])
    build(tmp_path / "a" / "data.csv", tiny_cfg, tmp_path / "c")
    cache, _, reused = build(tmp_path / "b" / "data.csv", tiny_cfg, tmp_path / "c")  # same cache folder
    assert not reused
    assert cache.images["image"][0].reshape(3, -1).mean(axis=1).tolist() == [0, 0, 255]
