"""Image decoding: every file becomes uint8 RGB [3, H, W] with the right pixels, or an ImageProblem that says why."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import two_colour, write_bomb_png, write_rgb16_png
from PIL import Image

from mmcli.vision import ImageProblem, load_image, normalize, square_image

RED, BLUE, WHITE = [255, 0, 0], [0, 0, 255], [255, 255, 255]


def px(img: torch.Tensor, y: int, x: int) -> list[int]:
    return img[:, y, x].tolist()


def close(a: list[int], b: list[int], tol: int = 6) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


@pytest.fixture
def arr():
    return two_colour(16, 8)  # 8 rows x 16 columns: left red, right blue


def test_rgb_png(tmp_path, arr):
    Image.fromarray(arr).save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.dtype == torch.uint8 and img.shape == (3, 8, 16)
    assert torch.equal(img, torch.from_numpy(arr).permute(2, 0, 1))


def test_grayscale(tmp_path, arr):
    Image.fromarray(arr).convert("L").save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.shape == (3, 8, 16)
    grey = np.asarray(Image.open(tmp_path / "g.png"))
    assert px(img, 0, 0) == [int(grey[0, 0])] * 3 and px(img, 7, 15) == [int(grey[7, 15])] * 3


def test_palette(tmp_path, arr):
    Image.fromarray(arr).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(tmp_path / "p.png")
    img = load_image(tmp_path / "p.png")
    assert img.shape == (3, 8, 16)
    assert close(px(img, 0, 0), RED, 0) and close(px(img, 7, 15), BLUE, 0)  # colours, not palette indices


def test_palette_gif(tmp_path, arr):
    Image.fromarray(arr).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(tmp_path / "p.gif")
    img = load_image(tmp_path / "p.gif")
    assert close(px(img, 0, 0), RED, 0) and close(px(img, 7, 15), BLUE, 0)


def test_rgba_composited_over_white(tmp_path, arr):
    rgba = np.concatenate([arr, np.full((8, 16, 1), 255, np.uint8)], axis=2)
    rgba[:, :4, 3] = 0  # left quarter fully transparent
    rgba[:, 4:8, 3] = 128  # half-transparent red
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    img = load_image(tmp_path / "a.png")
    assert img.shape == (3, 8, 16)
    assert px(img, 0, 0) == WHITE
    assert close(px(img, 0, 5), [255, 127, 127], 2)
    assert px(img, 0, 15) == BLUE


def test_grey_alpha(tmp_path):
    la = np.zeros((4, 4, 2), np.uint8)
    la[..., 0], la[..., 1] = 0, 255
    la[:, :2, 1] = 0
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    img = load_image(tmp_path / "la.png")
    assert px(img, 0, 0) == WHITE and px(img, 0, 3) == [0, 0, 0]


def test_cmyk_jpeg(tmp_path, arr):
    Image.fromarray(arr).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    img = load_image(tmp_path / "c.jpg")
    assert img.shape == (3, 8, 16)
    assert close(px(img, 0, 0), RED, 10) and close(px(img, 7, 15), BLUE, 10)


def test_cmyk_jpeg_with_wrong_extension(tmp_path):
    grey = np.full((8, 8, 3), 60, np.uint8)  # dark grey: K carries most of it, so CMYK read as RGBA would be wrong
    Image.fromarray(grey).convert("CMYK").save(tmp_path / "c.jpg", quality=100)
    (tmp_path / "c.png").write_bytes((tmp_path / "c.jpg").read_bytes())
    expected = np.asarray(Image.open(tmp_path / "c.jpg").convert("RGB"))[0, 0].tolist()
    assert close(px(load_image(tmp_path / "c.png"), 0, 0), expected, 3)


def test_16bit_rgb_png(tmp_path, arr):
    arr16 = arr.astype(np.uint16) * 257  # 255 -> 65535
    arr16[0, 0] = (32896, 0, 0)  # 128.5 in 8 bits
    img = load_image(write_rgb16_png(tmp_path / "a.png", arr16))
    assert img.dtype == torch.uint8 and img.shape == (3, 8, 16)
    assert px(img, 7, 15) == BLUE and px(img, 1, 0) == RED
    assert close(px(img, 0, 0), [128, 0, 0], 1)


def test_16bit_grey_png(tmp_path):
    grey16 = np.array([[0, 65535], [32896, 65535]], dtype=np.uint16)
    Image.fromarray(grey16).save(tmp_path / "g.png")
    img = load_image(tmp_path / "g.png")
    assert img.dtype == torch.uint8
    assert px(img, 0, 0) == [0, 0, 0] and px(img, 0, 1) == WHITE and close(px(img, 1, 0), [128] * 3, 1)


@pytest.mark.parametrize(("orientation", "shape", "top_left", "bottom_right"), [
    (1, (3, 8, 16), RED, BLUE),   # as stored
    (3, (3, 8, 16), BLUE, RED),   # rotated 180
    (6, (3, 16, 8), RED, BLUE),   # rotate 90 clockwise to display: the left (red) half becomes the top
    (8, (3, 16, 8), BLUE, RED),   # rotate 90 counter-clockwise: the right (blue) half becomes the top
])
def test_exif_orientation_applied(tmp_path, arr, orientation, shape, top_left, bottom_right):
    exif = Image.Exif()
    exif[0x0112] = orientation
    Image.fromarray(arr).save(tmp_path / "r.jpg", exif=exif, quality=100)
    img = load_image(tmp_path / "r.jpg")
    assert img.shape == shape
    assert close(px(img, 0, 0), top_left) and close(px(img, shape[1] - 1, shape[2] - 1), bottom_right)
    with Image.open(tmp_path / "r.jpg") as im:  # the same as Pillow's own transpose
        from PIL import ImageOps

        ref = torch.from_numpy(np.asarray(ImageOps.exif_transpose(im).convert("RGB")).copy()).permute(2, 0, 1)
    assert (img.int() - ref.int()).abs().max() <= 2


@pytest.mark.parametrize("fmt", ["bmp", "tiff", "webp"])
def test_other_formats(tmp_path, arr, fmt):
    Image.fromarray(arr).save(tmp_path / f"a.{fmt}", **({"lossless": True} if fmt == "webp" else {}))
    img = load_image(tmp_path / f"a.{fmt}")
    assert img.shape == (3, 8, 16) and px(img, 0, 0) == RED and px(img, 7, 15) == BLUE


# --- files that are not usable images: an ImageProblem with a reason, never another exception -----------------

def test_missing_file(tmp_path):
    with pytest.raises(ImageProblem, match="file not found"):
        load_image(tmp_path / "nope.png")


def test_directory(tmp_path):
    with pytest.raises(ImageProblem, match="not a regular file"):
        load_image(tmp_path)


def test_zero_bytes(tmp_path):
    (tmp_path / "z.png").write_bytes(b"")
    with pytest.raises(ImageProblem, match="empty file"):
        load_image(tmp_path / "z.png")


@pytest.mark.parametrize("fmt", ["png", "jpg"])
@pytest.mark.parametrize("keep", [0.5, 0.9])
def test_truncated(tmp_path, fmt, keep):
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)  # noise: data all through the file
    Image.fromarray(noisy).save(tmp_path / f"full.{fmt}")
    data = (tmp_path / f"full.{fmt}").read_bytes()
    (tmp_path / f"t.{fmt}").write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ImageProblem, match="cannot decode image.*truncated") as exc:
        load_image(tmp_path / f"t.{fmt}")
    assert ".cpp" not in str(exc.value)  # no decoder source locations in a user-facing message


def test_text_file_named_jpg(tmp_path):
    (tmp_path / "t.jpg").write_text("id,name\n1,not an image\n", encoding="utf-8")
    with pytest.raises(ImageProblem, match="cannot decode image"):
        load_image(tmp_path / "t.jpg")


def test_pixel_limit(tmp_path, arr):
    Image.fromarray(arr).save(tmp_path / "a.png")
    with pytest.raises(ImageProblem, match=r"16x8 pixels exceeds the limit of 100 \(data.max_image_pixels\)"):
        load_image(tmp_path / "a.png", max_pixels=100)
    assert load_image(tmp_path / "a.png", max_pixels=128).shape == (3, 8, 16)


def test_decompression_bomb_header_refused_before_decoding(tmp_path):
    path = write_bomb_png(tmp_path / "bomb.png", 10_000, 10_000)  # 100 M pixels claimed, 64 bytes of data
    with pytest.raises(ImageProblem, match="10000x10000 pixels exceeds the limit"):
        load_image(path)


def test_bomb_past_pillows_own_limit(tmp_path):
    # Pillow refuses to even open a header this large; that must be a refusal, not a hand-off to torchvision
    path = write_bomb_png(tmp_path / "bomb.png", 30_000, 30_000)
    with pytest.raises(ImageProblem, match="decompression-bomb"):
        load_image(path, max_pixels=10**12)


# --- resize and normalise --------------------------------------------------------------------------------------

def test_resize_crop_shorter_side_then_centre(arr):
    img = torch.from_numpy(arr).permute(2, 0, 1).contiguous()
    out = square_image(img, 4)
    assert out.shape == (3, 4, 4) and out.dtype == torch.uint8
    assert px(out, 0, 0) == RED and px(out, 3, 3) == BLUE  # the centre crop keeps both halves
    same = torch.zeros(3, 4, 4, dtype=torch.uint8)
    assert square_image(same, 4) is same


def test_normalize():
    batch = torch.full((2, 3, 2, 2), 255, dtype=torch.uint8)
    out = normalize(batch, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert out.dtype == torch.float32 and torch.allclose(out, torch.full_like(out, 2.0))
