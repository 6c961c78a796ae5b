"""Large JPEGs decode at a reduced scale when only a small square is needed, on the cache path and the prediction
path alike, so the two still see the same pixels."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import two_colour
from PIL import Image

from mmcli.data.images import decode_column
from mmcli.modalities.image_signal import decode_rgb, prepare
from mmcli.vision import load_image

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _close(pixel, colour, tol: int = 12) -> bool:
    return all(abs(int(a) - b) <= tol for a, b in zip(pixel, colour))


def _noisy_jpeg(path, width: int, height: int, seed: int = 0):
    rng = np.random.default_rng(seed)  # texture, so that a scaled decode really differs from a full one
    Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path, quality=90)
    return path


def test_a_large_jpeg_decodes_at_the_largest_scale_that_keeps_both_sides(tmp_path):
    Image.fromarray(two_colour(800, 600)).save(tmp_path / "a.jpg", quality=95)
    full = load_image(tmp_path / "a.jpg")
    small = load_image(tmp_path / "a.jpg", min_side=100)  # 600 // 100 = 6: libjpeg's 1/4 is the largest that fits
    assert tuple(full.shape) == (3, 600, 800) and tuple(small.shape) == (3, 150, 200)
    assert _close(small[:, 75, 10].tolist(), RED) and _close(small[:, 75, 190].tolist(), BLUE)
    assert tuple(load_image(tmp_path / "a.jpg", min_side=300).shape) == (3, 300, 400)  # 1/2
    assert tuple(load_image(tmp_path / "a.jpg", min_side=301).shape) == (3, 600, 800)  # under 2x: every pixel


@pytest.mark.parametrize(("name", "size"), [("small.jpg", (150, 150)), ("large.png", (800, 600))])
def test_small_jpegs_and_other_formats_decode_every_pixel(tmp_path, name, size):
    Image.fromarray(two_colour(*size)).save(tmp_path / name)
    assert tuple(load_image(tmp_path / name, min_side=80).shape) == (3, size[1], size[0])  # 150 < 2 x 80


def test_exif_orientation_is_applied_to_the_reduced_picture(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 clockwise to display: the left (red) half becomes the top
    Image.fromarray(two_colour(800, 600)).save(tmp_path / "r.jpg", exif=exif, quality=95)
    img = load_image(tmp_path / "r.jpg", min_side=100)
    assert tuple(img.shape) == (3, 200, 150)
    assert _close(img[:, 5, 75].tolist(), RED) and _close(img[:, 195, 75].tolist(), BLUE)


def test_a_large_cmyk_jpeg_keeps_its_colours(tmp_path):
    Image.fromarray(two_colour(800, 600)).convert("CMYK").save(tmp_path / "c.jpg", quality=95)
    img = load_image(tmp_path / "c.jpg", min_side=100)
    assert tuple(img.shape) == (3, 150, 200)
    assert _close(img[:, 75, 10].tolist(), RED, 20) and _close(img[:, 75, 190].tolist(), BLUE, 20)


@pytest.mark.parametrize("resize", ["crop", "pad"])
def test_the_cache_and_prediction_see_the_same_pixels(tmp_path, resize):
    paths = [_noisy_jpeg(tmp_path / "wide.jpg", 400, 300), _noisy_jpeg(tmp_path / "tall.jpg", 300, 500, 1)]
    cached, problems = decode_column(paths, 32, tmp_path / "images.npy", workers=0, max_pixels=10**7,
                                     label="images", resize=resize)
    assert problems == {}
    for i, path in enumerate(paths):
        # mean 0, std 1/255: prepare's float input is the raw 0..255 square, so the two can be compared exactly
        predicted = prepare(path, 32, 32, (0.0,) * 3, (1 / 255,) * 3, resize=resize)[0]
        assert np.array_equal(np.round(predicted).astype(np.uint8), np.asarray(cached[i]))
    # the reduced decode is what both used: 300 // 32 = 9, so libjpeg's 1/8
    assert decode_rgb(paths[0]).shape == (300, 400, 3) and decode_rgb(paths[0], min_side=32).shape == (38, 50, 3)
