"""What a user gives `medsets evaluate`, read and matched to the split's images, every way it can be wrong
named: results CSVs (a column naming the image, found by header) and folders of predicted masks.

An image is named by its image_id, or by its path in the download or its stem; a path with a folder in it
must end the image's own path (`test/0012.png` answers for `data/test/0012.png`, `training/0012.png` for
no test image: a prediction for another split's image is an error, not a match by stem).
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from .checks import Problem
from .label_files import Column, find_columns
from .layout import is_image
from .source import decode_text, parse_rows, stem


def read_results(path: Path, wanted: dict[str, tuple]) -> tuple[list[dict], list[Problem], dict[str, str]]:
    """Rows of a results CSV as dicts of the wanted columns, found by header name (any case; the first name
    listed wins), and which header each wanted column was found under."""
    rows = parse_rows(decode_text(path.read_bytes()))
    if not rows:
        return [], [Problem("bad results file", str(path), "no rows")], {}
    table = find_columns(rows, {key: Column(names, exact=True) for key, names in wanted.items()}, has_header=True)
    absent = [f"{key} ({' or '.join(names)})" for key, names in wanted.items()
              if table.columns[key] is None and key != "score"]
    if absent:
        return [], [Problem("bad results file", str(path), f"header {rows[0]} lacks {', '.join(absent)}")], {}
    entries = [{"line": line, **{key: (row[i] if i is not None and i < len(row) else "")
                                 for key, i in table.columns.items()}}
               for line, row in enumerate(table.body, start=table.first_line)]
    return entries, [], {key: table.header_of(key) for key, i in table.columns.items() if i is not None}


def image_keys(rows, by_id: bool) -> dict[str, int]:
    """How a results file names an image -> its row: by image_id (a column `image_id` or `id`), else by its
    path in the download or its stem (`0012.png` and `0012` alike); never both, so a number cannot mean two
    images."""
    keys = {}
    for index, (file_name, image_id) in enumerate(zip(rows["file_name"], rows["image_id"])):
        name = stem(file_name).lower()
        parts = PurePosixPath(file_name.lower()).parts
        # A numeric stem also answers to its number unpadded: spreadsheets drop leading zeros (00012 -> 12);
        # a path answers when it ends the image's own (the folders above the split may differ).
        names = (name, *("/".join(parts[i:]) for i in range(len(parts)))) + ((str(int(name)),) if name.isdigit() else ())
        for key in ((str(image_id),) if by_id else names):
            keys.setdefault(key, index)
    return keys


def row_of(keys: dict, value: str) -> int | None:
    value = value.strip().lower().replace("\\", "/").removeprefix("./")
    if "/" in value:  # a path: it must end an image's own path, never stand for it by its stem alone
        return keys.get(value)
    found = keys.get(value, keys.get(stem(value)))
    return found if found is not None else keys.get(value.lstrip("0") or "0")


# -- predicted masks ------------------------------------------------------------------------------------------
def predicted_masks(folder: Path) -> tuple[dict[str, Path], list[Problem]]:
    """The folder's mask images by lower-case stem; two files with one stem (`0001.png` and `0001.tif`) are a
    problem naming both, and neither is scored."""
    by_stem: dict[str, list[Path]] = {}
    for path in sorted(folder.iterdir()):
        if path.is_file() and is_image(path.name):
            by_stem.setdefault(stem(path.name).lower(), []).append(path)
    problems = [Problem("unusable prediction", str(paths[0]), f"two predictions for one image: "
                        f"{', '.join(p.name for p in paths)}; keep one") for paths in by_stem.values() if len(paths) > 1]
    return {key: paths[0] for key, paths in by_stem.items() if len(paths) == 1}, problems


def mask_problem(path: Path, size: tuple[int, int]) -> str | None:
    """Why a predicted mask file cannot be scored against an image of `size` (width, height), read from its
    header before any decoding (a 20000x20000 file is refused, not decoded); None when it can be read."""
    try:
        with Image.open(path) as picture:
            if picture.size != size:
                return f"{picture.width}x{picture.height}, its image is {size[0]}x{size[1]}"
            picture.load()  # a truncated file fails here
    except Image.DecompressionBombError as err:
        return f"its header claims far more pixels than its image's {size[0]}x{size[1]} ({err}); not decoded"
    except (OSError, ValueError, SyntaxError) as err:  # PIL's errors for damaged files
        return f"cannot be decoded ({type(err).__name__}: {err})"
    return None


def label_map_values(mask: np.ndarray) -> list[int] | None:
    """The values of a mask that holds class ids (0, 1, 2, 3, ...: a label map, as a multi-class ground truth
    is stored), which a binary scorer would read as faint grey levels; None for a binary mask (two values) or
    grey levels / probabilities (0-255)."""
    values = np.unique(mask)
    if np.issubdtype(mask.dtype, np.integer) and len(values) > 2 and values.max() < 32:
        return values.tolist()
    return None
