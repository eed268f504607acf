"""Every PIL mode becomes 8-bit RGB deterministically, and EXIF orientation is applied."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from forensics_app.core.loading import decode_image, load_evidence, to_rgb
from helpers import make_image

SIZE = (40, 24)  # (width, height)


def _gradient16() -> np.ndarray:
    return np.linspace(0, 65535, SIZE[0] * SIZE[1]).reshape(SIZE[1], SIZE[0]).astype(np.uint16)


def _image(mode: str) -> Image.Image:
    """A test image in ``mode`` with some transparent/extreme pixels where the mode allows."""
    rgb = make_image(SIZE, seed=3)
    if mode == "I;16":
        return Image.fromarray(_gradient16())  # mode I;16
    if mode == "I":
        return Image.fromarray(_gradient16().astype(np.int32))
    if mode == "F":
        return Image.fromarray(np.linspace(0, 1, SIZE[0] * SIZE[1], dtype=np.float32)
                               .reshape(SIZE[1], SIZE[0]))
    if mode == "P+transparency":
        img = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
        img.info["transparency"] = int(np.asarray(img)[0, 0])
        return img
    img = rgb.convert(mode)
    if mode in ("RGBA", "LA"):
        alpha = np.full((SIZE[1], SIZE[0]), 255, np.uint8)
        alpha[:, :10] = 0
        img.putalpha(Image.fromarray(alpha))
    return img


# Mode -> a file format that stores it (so the whole intake path is exercised too).
MODES = {
    "L": "PNG", "LA": "PNG", "P": "PNG", "P+transparency": "PNG", "RGBA": "PNG",
    "CMYK": "JPEG", "I;16": "PNG", "I": "TIFF", "F": "TIFF", "1": "PNG",
}


@pytest.mark.parametrize("mode", list(MODES))
def test_mode_converts_to_rgb_deterministically(mode):
    img = _image(mode)
    assert img.mode == mode.split("+")[0]
    first = to_rgb(img)
    second = to_rgb(img.copy())
    assert first.mode == "RGB" and first.size == SIZE
    assert np.array_equal(np.asarray(first), np.asarray(second))


@pytest.mark.parametrize("mode", list(MODES))
def test_mode_survives_file_intake(tmp_path, mode):
    path = tmp_path / f"{mode.replace(';', '_').replace('+', '_')}.img"
    kwargs = {"transparency": _image(mode).info["transparency"]} if "+" in mode else {}
    _image(mode).save(path, format=MODES[mode], **kwargs)
    ev1, img1, err1 = load_evidence(path)
    ev2, img2, err2 = load_evidence(path)
    assert err1 is None and err2 is None
    assert img1.mode == "RGB" and img1.size == SIZE
    assert np.array_equal(np.asarray(img1), np.asarray(img2))
    assert ev1 == ev2 and ev1.format == MODES[mode]
    assert (ev1.width, ev1.height) == SIZE


def test_grey_levels_are_replicated():
    grey = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16))
    out = np.asarray(to_rgb(grey))
    assert np.array_equal(out[..., 0], np.asarray(grey))
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


@pytest.mark.parametrize("mode", ["RGBA", "LA", "P+transparency"])
def test_transparency_is_composited_on_white(mode):
    img = _image(mode)
    out = np.asarray(to_rgb(img))
    if mode == "P+transparency":
        transparent = np.asarray(img) == img.info["transparency"]
    else:
        transparent = np.asarray(img.getchannel("A")) == 0
    assert transparent.any()
    assert (out[transparent] == 255).all()
    opaque = ~transparent
    if mode == "RGBA":
        assert np.array_equal(out[opaque], np.asarray(img.convert("RGB"))[opaque])


def test_sixteen_bit_is_scaled_not_clipped():
    out = np.asarray(to_rgb(_image("I;16")))[..., 0].astype(int)
    expected = np.round(_gradient16() / 257.0).astype(int)
    assert np.array_equal(out, expected)
    assert out.min() == 0 and out.max() == 255


def test_int32_and_float_are_scaled():
    i = np.asarray(to_rgb(_image("I")))[..., 0]
    assert i.min() == 0 and i.max() == 255  # 0..65535 -> 0..255, not all-white
    f = np.asarray(to_rgb(_image("F")))[..., 0]
    assert f.min() == 0 and f.max() == 255  # 0..1 floats -> 0..255


def test_cmyk_white_and_black():
    white = to_rgb(Image.new("CMYK", (2, 2), (0, 0, 0, 0)))
    black = to_rgb(Image.new("CMYK", (2, 2), (0, 0, 0, 255)))
    assert white.getpixel((0, 0)) == (255, 255, 255)
    assert black.getpixel((0, 0)) == (0, 0, 0)


def test_bilevel():
    img = Image.new("1", (2, 1))
    img.putpixel((1, 0), 1)
    out = to_rgb(img)
    assert (out.getpixel((0, 0)), out.getpixel((1, 0))) == ((0, 0, 0), (255, 255, 255))


def _jpeg_with_orientation(orientation: int) -> bytes:
    # Stored image: left half red, right half blue, 96 wide x 64 high.
    arr = np.zeros((64, 96, 3), np.uint8)
    arr[:, :48] = (255, 0, 0)
    arr[:, 48:] = (0, 0, 255)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95, exif=exif.tobytes())
    return buf.getvalue()


def test_exif_orientation_6_rotates_the_image():
    img, facts = decode_image(_jpeg_with_orientation(6), "rotated.jpg")
    assert img.size == (64, 96)  # width and height swapped
    arr = np.asarray(img).astype(int)
    # Orientation 6 = rotate 90 degrees clockwise: the stored left (red) half is now on top.
    assert arr[10, 32, 0] > 200 and arr[10, 32, 2] < 60
    assert arr[85, 32, 2] > 200 and arr[85, 32, 0] < 60
    assert (facts["width"], facts["height"]) == (96, 64)  # header facts are of the file


def test_exif_orientation_1_is_left_alone():
    img, _ = decode_image(_jpeg_with_orientation(1), "upright.jpg")
    assert img.size == (96, 64)
