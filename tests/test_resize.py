"""`data.resize`: crop (shorter side, centre crop) or pad (longer side, centred on white), the same in the cache and
in every prediction path."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import TINY, write_csv
from PIL import Image

from mmcli.config import load_config
from mmcli.data.cache import build_cache
from mmcli.data.manifest import read_manifest
from mmcli.errors import UsageError
from mmcli.modalities.image_signal import decode_rgb, resize_pad, to_square
from mmcli.train import train

RED, BLUE, GREY = (220, 30, 30), (30, 30, 220), (128, 128, 128)


def _banner(path, colour, width=48, height=16):
    """A wide picture: grey in the middle, `colour` only in its outer sixths (what a centre crop cuts away)."""
    arr = np.full((height, width, 3), GREY, np.uint8)
    arr[:, : width // 6] = colour
    arr[:, -(width // 6) :] = colour
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def test_pad_keeps_the_whole_picture_on_white():
    arr = np.zeros((4, 8, 3), np.uint8)  # -> 2 x 4, on rows 1 and 2
    arr[:, :4], arr[:, 4:] = RED, BLUE
    out = resize_pad(arr, 4)
    assert out.shape == (4, 4, 3) and out.dtype == np.uint8
    assert out[0].tolist() == [[255, 255, 255]] * 4 and out[3].tolist() == [[255, 255, 255]] * 4  # the bands
    assert tuple(out[1, 0]) == RED and tuple(out[2, 3]) == BLUE  # both ends are kept
    tall = resize_pad(np.full((10, 2, 3), 7, np.uint8), 5)
    assert tall[:, 0].tolist() == [[255, 255, 255]] * 5 and (tall[:, 2] == 7).all()
    same = np.zeros((4, 4, 3), np.uint8)
    assert resize_pad(same, 4) is same


def test_an_unknown_mode_names_the_valid_ones():
    with pytest.raises(ValueError, match="crop, pad"):
        to_square(np.zeros((2, 2, 3), np.uint8), 2, "squash")
    with pytest.raises(UsageError, match="data.resize"):
        load_config(None, ["data.resize=squash"])


def _cache(tmp_path, mode):
    rows = [[_banner(tmp_path / f"{i}.png", (RED, BLUE)[i % 2]).name, ("red", "blue")[i % 2]] for i in range(6)]
    csv = write_csv(tmp_path / "data.csv", ["image", "label"], rows)
    cfg = load_config(None, [*TINY, f"data.resize={mode}"])
    cache, _, _ = build_cache(read_manifest(csv, cfg.data), cfg)
    return cache, cfg


def test_the_cache_crops_or_pads_as_told_and_prediction_prepares_the_same_pixels(tmp_path):
    crop, _ = _cache(tmp_path, "crop")
    pad, cfg = _cache(tmp_path, "pad")
    cropped, padded = np.asarray(crop.arrays["image"][0]), np.asarray(pad.arrays["image"][0])
    assert not (cropped[0] > 200).any()  # red cut away: only the grey middle is left
    # red kept, a white band on top: built after the crop cache, so the mode is part of the cache's fingerprint
    assert (padded[0] > 200).any() and (padded[:, 0, :] == 255).all()
    # the prediction paths (mm predict, mm serve, the ONNX bundle) decode with the same function and mode
    square = to_square(decode_rgb(tmp_path / "0.png"), cfg.data.image_size, "pad")
    assert np.array_equal(square.transpose(2, 0, 1), padded)


def test_training_with_pad_saves_the_mode_with_the_run(tmp_path):
    rows = [[_banner(tmp_path / f"{i}.png", (RED, BLUE)[i % 2]).name, ("red", "blue")[i % 2]] for i in range(24)]
    csv = write_csv(tmp_path / "data.csv", ["image", "label"], rows)
    run = train(csv, load_config(None, [*TINY, "data.resize=pad"]), output=tmp_path / "run")
    assert "resize: pad" in (run / "config.yaml").read_text()
    assert json.loads((run / "metrics.json").read_text())["val"]["n"] > 0
    from mmcli.deploy.run_predictor import RunPredictor

    predictor = RunPredictor(run)
    arrays, _present = predictor.preparer.prepare({"image": str(tmp_path / "0.png")})
    x = arrays["image"][0]  # normalised [3, S, S]: the top rows are the white band, the left edge is red
    assert np.allclose(x[:, 0, :], x[:, 0, :1]) and x[0, 8, 0] > x[2, 8, 0]
