"""Detection box files that may ship beside the GZMH images, read into one shape.

The GZMH raw download may carry box files next to its images and masks, as Pascal VOC XML, COCO
JSON, CSV or YOLO txt. The builder cross-checks them against boxes computed from the masks, so this
module only reads them: every format becomes a list of `FileBox`. The real format is unpublished, so
the readers accept the common variants, and when a file cannot be read they raise `BoxFileError`
naming the file and the element, line or column at fault, so a user can fix the file.

Coordinates are continuous pixel coordinates as in COCO: pixel i spans [i, i+1). A bbox is
[x, y, w, h] and a centroid [x, y]. VOC corners are 1-based inclusive pixel indices and are
converted; YOLO values stay fractions of the image size (`normalized=True`) because a YOLO file does
not say how large the image is; `FileBox.scaled(width, height)` makes them absolute.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass, replace
from pathlib import PurePosixPath

from .source import decode_text, sniff_delimiter

BOX_FORMATS = {".xml": "VOC XML", ".json": "COCO JSON", ".csv": "CSV", ".txt": "YOLO txt"}
# Exporters round normalized values, so 1.0000001 is still YOLO; 1.5 is not.
YOLO_TOLERANCE = 1e-6

CSV_IMAGE_COLUMNS = ("image", "filename", "file_name", "image_name", "image_file", "img", "name")
CSV_CORNER_COLUMNS = (("xmin", "ymin", "xmax", "ymax"), ("x1", "y1", "x2", "y2"))
CSV_SIZE_COLUMNS = (("x", "y", "w", "h"), ("x", "y", "width", "height"),
                    ("bbox_x", "bbox_y", "bbox_w", "bbox_h"))
CSV_CENTROID_COLUMNS = (("cx", "cy"), ("centroid_x", "centroid_y"), ("center_x", "center_y"),
                        ("x_center", "y_center"))


class BoxFileError(ValueError):
    """A box file that cannot be read; the message is "<file>: <what is wrong, and where>"."""


@dataclass(frozen=True)
class FileBox:
    image: str  # stem of the image file the box belongs to, as written in the box file
    bbox: tuple[float, float, float, float] | None  # [x, y, w, h]; None: the file gives a centroid only
    centroid: tuple[float, float] | None  # [x, y]; None: the file gives none
    normalized: bool = False  # True: fractions of the image width/height (YOLO)
    source: str = ""  # the box file, for messages

    def scaled(self, width: float, height: float) -> FileBox:
        """The absolute-pixel copy of a normalized box; an absolute box is returned as it is."""
        if not self.normalized:
            return self
        if not (width > 0 and height > 0):
            raise ValueError(f"image size must be positive, got {width}x{height}")
        bbox = self.bbox and (self.bbox[0] * width, self.bbox[1] * height,
                              self.bbox[2] * width, self.bbox[3] * height)
        centroid = self.centroid and (self.centroid[0] * width, self.centroid[1] * height)
        return replace(self, bbox=bbox, centroid=centroid, normalized=False)


def box_format(path: str) -> str | None:
    """The box-file format a path's suffix names, or None for any other file."""
    return BOX_FORMATS.get(os.path.splitext(path)[1].lower())


def read_boxes(path: str, data: bytes) -> list[FileBox]:
    """The boxes in one box file, read by the format its suffix names."""
    readers = {".xml": read_voc, ".json": read_coco, ".csv": read_csv, ".txt": read_yolo}
    reader = readers.get(os.path.splitext(path)[1].lower())
    if reader is None:
        raise BoxFileError(f"{path}: not a box file; box files end in {', '.join(BOX_FORMATS)}")
    return reader(path, decode_text(data))


def _stem(name: str) -> str:
    # Box files written on Windows separate folders with backslashes.
    name = PurePosixPath(name.strip().replace("\\", "/")).name
    stem, dot, suffix = name.rpartition(".")
    # A numeric tail ("A01.02" written without its ".png") is part of the name, not an extension.
    return stem if dot and stem and not suffix.isdigit() else name


def _number(path: str, text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        found = repr(text.strip()) if text.strip() else "empty"
        raise BoxFileError(f"{path}: {where} is {found}, expected a number")
    return value


def read_voc(path: str, text: str) -> list[FileBox]:
    try:
        root = ET.fromstring(text.removeprefix("\ufeff"))
    except ET.ParseError as err:
        raise BoxFileError(f"{path}: not well-formed XML ({err})") from None
    if root.tag != "annotation":
        raise BoxFileError(f"{path}: root element is <{root.tag}>, expected <annotation> (Pascal VOC)")
    image = _stem((root.findtext("filename") or "").strip() or path)
    boxes = []
    for number, element in enumerate(root.findall("object"), start=1):
        where = f"<object> number {number}"
        bbox = centroid = None
        if (bndbox := element.find("bndbox")) is not None:
            corners = ("xmin", "ymin", "xmax", "ymax")
            xmin, ymin, xmax, ymax = _voc_numbers(path, bndbox, f"{where} <bndbox>", corners)
            for low, high, axis in ((xmin, xmax, "x"), (ymin, ymax, "y")):
                if high < low:
                    raise BoxFileError(f"{path}: {where} <bndbox> has <{axis}max> {high:g} "
                                       f"< <{axis}min> {low:g}")
            # 1-based inclusive indices: pixel xmin spans [xmin-1, xmin) and xmax spans [xmax-1, xmax).
            bbox = (xmin - 1, ymin - 1, xmax - xmin + 1, ymax - ymin + 1)
        if (centroid_element := element.find("centroid")) is not None:
            centroid = _voc_numbers(path, centroid_element, f"{where} <centroid>", ("x", "y"))
        if bbox is None and centroid is None:
            raise BoxFileError(f"{path}: {where} has neither <bndbox> nor <centroid>")
        boxes.append(FileBox(image, bbox, centroid, source=path))
    return boxes


def _voc_numbers(path: str, parent: ET.Element, where: str, tags: tuple[str, ...]) -> tuple[float, ...]:
    if missing := [tag for tag in tags if parent.find(tag) is None]:
        raise BoxFileError(f"{path}: {where} has no <{missing[0]}>")
    return tuple(_number(path, parent.findtext(tag), f"{where} <{tag}>") for tag in tags)


def _coco_document(path: str, text: str) -> tuple[dict, dict]:
    """The parsed document and the image key of each image id, in the order listed."""
    try:
        document = json.loads(text.removeprefix("\ufeff"))
    except json.JSONDecodeError as err:
        raise BoxFileError(f"{path}: invalid JSON at line {err.lineno}, column {err.colno}: "
                           f"{err.msg}") from None
    for part in ("images", "annotations"):
        if not isinstance(document, dict) or not isinstance(document.get(part), list):
            problem = "not a list" if isinstance(document, dict) and part in document else "missing"
            raise BoxFileError(f'{path}: "{part}" is {problem}; COCO JSON is an object with '
                               '"images" and "annotations" lists')
    key_by_id: dict = {}
    for index, image in enumerate(document["images"]):
        where = f"images[{index}]"
        image_id = image.get("id") if isinstance(image, dict) else None
        if not isinstance(image_id, (int, str)) or not isinstance(image.get("file_name"), str):
            raise BoxFileError(f'{path}: {where} needs an "id" (number or string) and a "file_name" string')
        key = _stem(image["file_name"])
        # Boxes are matched to images by key, so two images with one stem would share boxes.
        if key in key_by_id.values():
            raise BoxFileError(f'{path}: {where} "file_name" {image["file_name"]!r} has the same '
                               f"stem {key!r} as an earlier image")
        key_by_id[image_id] = key
    return document, key_by_id


def coco_image_keys(path: str, data: bytes) -> list[str]:
    """Keys of every image a COCO file lists, with or without annotations."""
    return list(_coco_document(path, decode_text(data))[1].values())


def read_coco(path: str, text: str) -> list[FileBox]:
    document, key_by_id = _coco_document(path, text)
    boxes = []
    for index, annotation in enumerate(document["annotations"]):
        where = f"annotations[{index}]"
        if not isinstance(annotation, dict):
            raise BoxFileError(f"{path}: {where} is not a JSON object")
        image_id = annotation.get("image_id")
        if not isinstance(image_id, (int, str)) or image_id not in key_by_id:
            raise BoxFileError(f'{path}: {where} "image_id" {json.dumps(image_id)} is not the id '
                               'of any entry in "images"')
        bbox = centroid = None
        if annotation.get("bbox") is not None or annotation.get("centroid") is None:
            bbox = _json_numbers(path, annotation.get("bbox"), 4, f'{where} "bbox"')
            if bbox[2] < 0 or bbox[3] < 0:
                raise BoxFileError(f'{path}: {where} "bbox" {list(bbox)} has a negative width or height')
        if annotation.get("centroid") is not None:
            centroid = _json_numbers(path, annotation["centroid"], 2, f'{where} "centroid"')
        boxes.append(FileBox(key_by_id[image_id], bbox, centroid, source=path))
    return boxes


def _json_numbers(path: str, value, count: int, where: str) -> tuple[float, ...]:
    def is_number(item) -> bool:
        return isinstance(item, (int, float)) and not isinstance(item, bool) and math.isfinite(item)

    if not (isinstance(value, list) and len(value) == count and all(map(is_number, value))):
        found = "missing" if value is None else json.dumps(value)
        raise BoxFileError(f"{path}: {where} is {found}, expected a list of {count} numbers")
    return tuple(float(item) for item in value)


def _csv_columns(path: str, header: list[str], line: int) -> tuple[dict, str, tuple, tuple, tuple]:
    """Column index by normalized name, and the image, corner, x/y/w/h and centroid columns used."""
    index: dict[str, int] = {}
    for position, cell in enumerate(header):
        index.setdefault(cell.strip().lower().replace(" ", "_").replace("-", "_"), position)

    def first(groups):
        return next((group for group in groups if all(name in index for name in group)), ())
    image = next((name for name in CSV_IMAGE_COLUMNS if name in index), "")
    corners = first(CSV_CORNER_COLUMNS)
    sized = () if corners else first(CSV_SIZE_COLUMNS)
    centroid = first(CSV_CENTROID_COLUMNS)
    if not (corners or sized or centroid) and "x" in index and "y" in index:
        centroid = ("x", "y")
    if not (corners or sized):
        # A half-given box would otherwise be dropped without a word when a centroid is present.
        for group in CSV_CORNER_COLUMNS + CSV_SIZE_COLUMNS:
            if present := [name for name in group if name in index and name not in ("x", "y")]:
                missing = [name for name in group if name not in index]
                raise BoxFileError(f"{path}: line {line}: header has box column(s) "
                                   f"{', '.join(present)} but not {', '.join(missing)}")
    if not image or not (corners or sized or centroid):
        def groups(choices):
            return " or ".join("(" + ", ".join(group) + ")" for group in choices)

        raise BoxFileError(
            f"{path}: line {line}: header not recognised: {header}; looked for an image column "
            f"({', '.join(CSV_IMAGE_COLUMNS)}) and a box {groups(CSV_CORNER_COLUMNS + CSV_SIZE_COLUMNS)} "
            f"and/or a centroid {groups(CSV_CENTROID_COLUMNS)} or (x, y)")
    return index, image, corners, sized, centroid


def read_csv(path: str, text: str) -> list[FileBox]:
    text = text.removeprefix("\ufeff")
    header_line = next((line for line in text.split("\n") if line.strip()), None)
    if header_line is None:
        raise BoxFileError(f"{path}: the file is empty; a header row is required")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(header_line) or ",")
    try:
        header = next(row for row in reader if any(cell.strip() for cell in row))
        columns = _csv_columns(path, header, reader.line_num)
        return [_csv_row(path, reader.line_num, row, header, *columns)
                for row in reader if any(cell.strip() for cell in row)]
    except csv.Error as err:
        raise BoxFileError(f"{path}: line {reader.line_num}: {err}") from None


def _csv_row(path, line, row, header, index, image_column, corners, sized, centroid_columns) -> FileBox:
    def cell(name: str) -> str:
        return row[index[name]] if index[name] < len(row) else ""

    def where(name: str) -> str:
        return f"line {line}, column {header[index[name]].strip()!r}"

    def numbers(names: tuple) -> tuple | None:
        # All cells empty: this row leaves that part out, e.g. a box without a centroid.
        if not any(cell(name).strip() for name in names):
            return None
        return tuple(_number(path, cell(name), where(name)) for name in names)

    if not (image := _stem(cell(image_column))):
        raise BoxFileError(f"{path}: {where(image_column)}: the image name is empty")
    bbox = None
    if corners and (values := numbers(corners)):
        for low, high, low_name, high_name in zip(values[:2], values[2:], corners[:2], corners[2:]):
            if high < low:
                raise BoxFileError(f"{path}: {where(high_name)}: {high:g} is less than {low_name} {low:g}")
        bbox = (values[0], values[1], values[2] - values[0], values[3] - values[1])
    elif sized and (bbox := numbers(sized)):
        for value, name in zip(bbox[2:], sized[2:]):
            if value < 0:
                raise BoxFileError(f"{path}: {where(name)}: negative size {value:g}")
    centroid = numbers(centroid_columns) if centroid_columns else None
    if bbox is None and centroid is None:
        raise BoxFileError(f"{path}: line {line}: the row gives neither a box nor a centroid")
    return FileBox(image, bbox, centroid, source=path)


def read_yolo(path: str, text: str) -> list[FileBox]:
    image = _stem(path)
    boxes = []
    # split("\n") rather than splitlines(): line numbers must match what an editor shows.
    for number, line in enumerate(text.removeprefix("\ufeff").split("\n"), start=1):
        fields = line.split()
        if not fields:
            continue
        names = ("class", "cx", "cy", "w", "h")
        if len(fields) != len(names):
            raise BoxFileError(f"{path}: line {number}: {len(fields)} fields, "
                               "YOLO expects 5 (class cx cy w h)")
        values = [_number(path, field, f"line {number}, field {position} ({name})")
                  for position, (field, name) in enumerate(zip(fields, names), start=1)]
        for position, (value, name) in enumerate(zip(values[1:], names[1:]), start=2):
            if not -YOLO_TOLERANCE <= value <= 1 + YOLO_TOLERANCE:
                raise BoxFileError(f"{path}: line {number}, field {position} ({name}) is {value:g}, "
                                   "outside [0, 1]; the file looks like absolute pixels or is not YOLO")
        _, cx, cy, w, h = values
        boxes.append(FileBox(image, (cx - w / 2, cy - h / 2, w, h), (cx, cy), True, path))
    return boxes
