"""What an image or mask cell holds: source bytes where possible, identical pixels always."""

import io

import numpy as np
import pytest
from PIL import Image

from medsets.duplicates import pixel_hash
from medsets.schema import UnreadableImage, image_value, mask_value


def encoded(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


@pytest.fixture
def photo():
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (45, 30, 3), dtype=np.uint8))


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_png_and_jpeg_bytes_pass_through(photo, fmt):
    raw = encoded(photo, fmt)
    cell, _ = image_value(raw)
    assert cell["bytes"] is raw


@pytest.mark.parametrize("fmt", ["BMP", "TIFF"])
def test_bmp_and_tiff_become_pixel_identical_png(photo, fmt):
    cell, _ = image_value(encoded(photo, fmt))
    stored = Image.open(io.BytesIO(cell["bytes"]))
    assert stored.format == "PNG"
    assert np.array_equal(np.asarray(stored), np.asarray(photo))


def test_exif_orientation_is_applied_and_dropped(photo):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    cell, image = image_value(encoded(photo, "PNG", exif=exif))
    stored = Image.open(io.BytesIO(cell["bytes"]))
    assert stored.size == (45, 30) and 0x0112 not in stored.getexif()
    assert np.array_equal(np.asarray(stored), np.asarray(photo.transpose(Image.Transpose.ROTATE_270)))


@pytest.mark.parametrize("values", [(0, 255), (0, 1)])
def test_masks_become_zero_one_mode_l(values):
    raw = np.zeros((6, 5), np.uint8)
    raw[2:4, 1:3] = values[1]
    cell, binary, stray = mask_value(encoded(Image.fromarray(raw), "PNG"))
    stored = Image.open(io.BytesIO(cell["bytes"]))
    assert stored.mode == "L" and stored.size == (5, 6) and stray == 0
    assert np.array_equal(np.asarray(stored), (raw > 0).astype(np.uint8))


def test_stray_mask_values_are_counted_and_thresholded_at_128():
    raw = np.array([[0, 255, 127, 128], [3, 200, 255, 0]], np.uint8)
    _, binary, stray = mask_value(encoded(Image.fromarray(raw), "PNG"))
    assert stray == 4
    assert binary.tolist() == [[0, 1, 0, 1], [0, 1, 1, 0]]


def test_truncated_file_is_unreadable(photo):
    with pytest.raises(UnreadableImage, match="truncated"):
        image_value(encoded(photo, "PNG")[:200])


def test_pixel_hash_ignores_encoding(photo):
    assert pixel_hash(image_value(encoded(photo, "PNG"))[1]) == pixel_hash(image_value(encoded(photo, "BMP"))[1])
