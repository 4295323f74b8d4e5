"""Column definitions shared by every builder, and the encoding of image and mask values.

One place decides what an `image` or a `mask` value holds:
- image: the source file's bytes when it is PNG or JPEG (no decode/re-encode, so no generation loss
  and no time spent); anything else (BMP, TIFF) becomes a lossless PNG with identical pixels, and so
  does an image carrying an EXIF orientation, stored upright without the tag.
- mask: mode L, values 0/1, always re-encoded as PNG because the sources store 0/255.
"""

from __future__ import annotations

import io
import re

import numpy as np
from datasets import ClassLabel, Features, Image, List, Sequence, Value
from PIL import Image as PILImage
from PIL import ImageOps, JpegImagePlugin

PASS_THROUGH_FORMATS = {"PNG", "JPEG"}


# The columns every config ends with. `image_id`: unique within a config, stable across rebuilds; `file_name`:
# the path inside the source; `duplicate_group`: rows showing one object (pixel-identical or re-imaged) share
# it, -1 for a row with no copy, so that a user can GroupKFold or filter with plain `datasets`.
TRAILING = {"image_id": Value("int64"), "file_name": Value("string"), "duplicate_group": Value("int64")}
NO_GROUP = -1


def classification_features(label_names: list[str], *, with_mask: bool, metadata: dict | None = None) -> Features:
    """image [+ mask], label, then dataset-specific metadata, then image_id, file_name, duplicate_group."""
    columns = {"image": Image()}
    if with_mask:
        columns["mask"] = Image()
    columns["label"] = ClassLabel(names=label_names)
    columns.update(metadata or {})
    return Features({**columns, **TRAILING})


class UnreadableImage(ValueError):
    pass


def decode(raw: bytes) -> PILImage.Image:
    """Fully decode (a truncated file only fails on load, not on open)."""
    try:
        image = PILImage.open(io.BytesIO(raw))
        image.load()
    except PILImage.UnidentifiedImageError:
        raise UnreadableImage(f"not an image (no format PIL reads; {len(raw)} bytes)") from None
    except Exception as err:  # PIL raises a zoo of types for damaged files
        # Its messages may name the in-memory buffer ("<_io.BytesIO object at 0x...>"): the file is meant.
        reason = re.sub(r"<_io\.BytesIO object at 0x[0-9a-f]+>", "the file", str(err))
        raise UnreadableImage(f"{type(err).__name__}: {reason}") from None
    return image


def png_bytes(image: PILImage.Image, compress_level: int = 6) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def jpeg_block_grid(image: PILImage.Image) -> int | None:
    """A decoded JPEG's block grid (its MCU): 8 px, or 16 px where chroma is subsampled; None for other
    images (and JPEGs whose sampling PIL cannot name)."""
    if image.format != "JPEG" or not getattr(image, "quantization", None):
        return None
    return {0: 8, 1: 16, 2: 16}.get(JpegImagePlugin.get_sampling(image))


def jpeg_bytes_like(part: PILImage.Image, source: PILImage.Image) -> bytes:
    """Part of a decoded JPEG encoded again with the source's own quantisation tables and chroma
    subsampling: on the source's block grid the blocks come out nearly as they went in (the loss is the
    colour conversion's rounding and chroma upsampling at the part's borders), at the source's size per pixel."""
    buffer = io.BytesIO()
    part.save(buffer, format="JPEG", qtables=source.quantization, subsampling=JpegImagePlugin.get_sampling(source))
    return buffer.getvalue()


EXIF_ORIENTATION = 0x0112


# EXIF orientation -> the transpose that turns the stored pixels upright (as PIL's ImageOps.exif_transpose)
UPRIGHT = {2: PILImage.Transpose.FLIP_LEFT_RIGHT, 3: PILImage.Transpose.ROTATE_180, 4: PILImage.Transpose.FLIP_TOP_BOTTOM,
           5: PILImage.Transpose.TRANSPOSE, 6: PILImage.Transpose.ROTATE_270, 7: PILImage.Transpose.TRANSVERSE,
           8: PILImage.Transpose.ROTATE_90}
TURNED_BY = "medsets_exif_orientation"  # the decoded image's info key: the orientation it was turned upright from


def exif_orientation(image: PILImage.Image | None) -> int:
    """The EXIF orientation an image returned by `image_value` was turned upright from (1: none)."""
    return image.info.get(TURNED_BY, 1) if image is not None else 1


def turned(picture: PILImage.Image, orientation: int) -> PILImage.Image:
    """A mask turned as its image was (`exif_orientation`): masks are drawn on the image's stored pixels, so
    an image stored upright needs its mask turned the same way, whatever tag the mask file carries."""
    return picture.transpose(UPRIGHT[orientation]) if orientation in UPRIGHT else picture


def image_value(raw: bytes, compress_level: int = 6) -> tuple[dict, PILImage.Image]:
    """The stored `image` value for a source file, and the decoded image for checks."""
    image = decode(raw)
    orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    if orientation != 1:
        # Viewers and PIL-based loaders disagree on honouring the tag; store the pixels upright instead.
        upright = ImageOps.exif_transpose(image)
        upright.info[TURNED_BY] = orientation
        return {"bytes": png_bytes(upright, compress_level), "path": None}, upright
    if image.format in PASS_THROUGH_FORMATS:
        return {"bytes": raw, "path": None}, image
    return {"bytes": png_bytes(image, compress_level), "path": None}, image


def as_rgb(stored: dict, image: PILImage.Image, compress_level: int = 6) -> tuple[dict, str | None]:
    """The stored value of an image that must be RGB (one mode per config): as it is where it is RGB, else
    converted and stored as PNG; with the mode it had (None where it was RGB)."""
    if image.mode == "RGB":
        return stored, None
    return {"bytes": png_bytes(image.convert("RGB"), compress_level), "path": None}, image.mode


def mask_value(raw: bytes, orientation: int = 1) -> tuple[dict, np.ndarray, int]:
    """The stored mask value (mode L, 0/1) for a source mask stored as 0/255 (or already 0/1), the binary
    array, and how many pixels were neither value (anti-aliased edges, JPEG noise) before thresholding.
    `orientation`: its image's (`exif_orientation`), to turn the mask with it."""
    mask = np.asarray(turned(decode(raw).convert("L"), orientation))
    if mask.max(initial=0) <= 1:  # already 0/1: must not be thresholded to nothing
        binary, stray = mask.astype(np.uint8), 0
    else:
        binary = (mask >= 128).astype(np.uint8)
        stray = int(mask.size - np.count_nonzero(mask == 0) - np.count_nonzero(mask == 255))
    return {"bytes": png_bytes(PILImage.fromarray(binary)), "path": None}, binary, stray


def segmentation_features(metadata: dict | None = None) -> Features:
    """image, label (the target mask: mode L, class ids, 0 = background), metadata, then the trailing columns.

    Named as the transformers semantic-segmentation example expects, so it runs unchanged."""
    return Features({"image": Image(), "label": Image(), **(metadata or {}), **TRAILING})


def detection_features(category_names: list[str], *, with_mask: bool, tile: bool, object_columns: dict | None = None,
                       mask_columns: dict | None = None, columns: dict | None = None) -> Features:
    """image, label (mask, mode L: 0 background, class ids), further masks, objects (a dict of lists, as the
    transformers object-detection example reads them: bbox COCO [x, y, w, h] float32 absolute pixels, area in
    pixels, centroid [x, y], category ClassLabel, then `object_columns`), the tile's origin for tiled configs,
    `columns`, then the trailing columns."""
    objects = {
        "id": Value("int64"),
        "bbox": List(Value("float32"), length=4),
        "area": Value("int64"),
        "centroid": List(Value("float32"), length=2),
        "category": ClassLabel(names=category_names),
    }
    if tile:
        # Objects near a tile border are listed in every tile holding their centroid; `counted` is true in
        # exactly one of them, so that counts over tiles equal counts over images.
        objects["counted"] = Value("bool")
    objects.update(object_columns or {})
    out = {"image": Image()}
    if with_mask:
        out["label"] = Image()
    out.update(mask_columns or {})
    out["objects"] = Sequence(objects)  # Sequence of a dict is a dict of lists, unlike List
    if tile:
        out["source_image_id"] = Value("int64")
        out["offset"] = List(Value("int32"), length=2)  # x, y of the tile's top-left corner in the image
    out.update(columns or {})
    return Features({**out, **TRAILING})
