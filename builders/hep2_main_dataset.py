"""The files of the MIVIA Main_Dataset release, read: slides, their NN.csv rows, cell crops and masks.

    Main_Dataset/Images/NN/NN.bmp    the slide image
    Main_Dataset/Images/NN/NN.csv    ';', one header line; intensity, id, two unknown, type, pattern,
                                     minX, minY, maxX, maxY (1-based, inclusive); rows of other types than
                                     'cell' are not cells
    Main_Dataset/Cells/Cell_Masks/NN/NNN.png    each cell's mask, at slide size or at its box's size
    Main_Dataset/Cells/Cell_Images/NN/NNN.png   each cell's crop (optional)

The header's names and the other types' values are not published: the columns are read by position
(`hep2.HEp2.MAIN_DATASET_COLUMNS`). `hep2_mivia` turns what is read here into rows.
"""

from __future__ import annotations

import difflib
import io
import math
import re
from collections import Counter
from dataclasses import dataclass, field

from PIL import Image

from ..label_files import canonical
from ..checks import Problem
from ..layout import is_image
from ..source import Source, UnreadableFile, stem

SLIDE_FILE = re.compile(r"^(?P<root>(?:.*/)?)images/(?P<folder>\d+)/(?P<name>\d+)\.(?P<ext>bmp|csv)$", re.IGNORECASE)


def find_main_dataset(source: Source) -> str | None:
    """The folder holding Images/NN/NN.bmp|csv (normally Main_Dataset), or None."""
    roots = sorted({m["root"].rstrip("/") for f in source.files if (m := SLIDE_FILE.match(f))
                    and int(m["folder"]) == int(m["name"])}, key=lambda r: r.count("/"))
    return roots[0] if roots else None


@dataclass
class MainCell:
    id: int
    pattern: str | None  # canonical, None when the spelling is unknown
    intensity: str | None
    box: tuple[int, int, int, int]  # 0-based x0, y0 and exclusive x1, y1 (the row's 1-based minX..maxY)
    csv: str
    line: int
    row_problems: list = field(default_factory=list)

    def problems(self, slide: "MainSlide") -> list[Problem]:
        found = list(self.row_problems)
        if self.id not in slide.cell_masks:
            found.append(Problem("missing mask", self.csv, f"line {self.line}: cell {self.id} has no mask "
                                                           f"Cells/Cell_Masks/{slide.number:02d}/{self.id:03d}.png"))
        return found


@dataclass
class MainSlide:
    number: int
    split: str | None
    image_file: str | None
    csv_file: str | None
    size: tuple[int, int] | None = None  # width, height of the slide image
    cells: list[MainCell] = field(default_factory=list)
    other_rows: int = 0  # rows whose type is not 'cell'
    other_types: list[str] = field(default_factory=list)  # their types, as written
    cell_images: dict[int, str] = field(default_factory=dict)
    cell_masks: dict[int, str] = field(default_factory=dict)


@dataclass
class MainDataset:
    slides: dict[int, MainSlide]
    problems: list[Problem]
    warnings: list[str]


def read_main_dataset(source: Source, root: str, labels: list[str], aliases: dict, intensities: list[str],
                      slide_splits: dict[str, tuple], columns: dict[str, int], cell_type: str) -> MainDataset:
    prefix = f"{root}/" if root else ""
    split_of = {n: split for split, numbers in slide_splits.items() for n in numbers}
    slides: dict[int, MainSlide] = {}
    problems, warnings = [], []

    def slide(number: int) -> MainSlide:
        return slides.setdefault(number, MainSlide(number, split_of.get(number), None, None))

    for f in source.files:
        if not f.startswith(prefix):
            continue
        m = SLIDE_FILE.match(f)
        if m and m["root"] == prefix and int(m["folder"]) == int(m["name"]):
            if m["ext"].lower() == "bmp":
                slide(int(m["name"])).image_file = f
            else:
                slide(int(m["name"])).csv_file = f
            continue
        parts = f[len(prefix):].split("/")
        if len(parts) == 4 and parts[0].lower() == "cells" and parts[2].isdigit() and is_image(f) and stem(f).isdigit():
            kind = parts[1].lower()
            if kind in ("cell_masks", "cell_images"):
                target = slide(int(parts[2])).cell_masks if kind == "cell_masks" else slide(int(parts[2])).cell_images
                target[int(stem(f))] = f
    for number in sorted(slides):
        found = slides[number]
        if found.image_file is None and found.csv_file is None:
            warnings.append(f"{prefix}Cells/*/{number:02d}/: cell files of slide {number}, which has no slide image "
                            "or NN.csv (ignored)")
            del slides[number]
            continue
        if found.split is None:
            warnings.append(f"slide {number} is in neither of the contest's slide lists: left out")
        if found.csv_file is None:
            problems.append(Problem("missing label file", found.image_file, f"no {number:02d}.csv beside slide "
                                                                            f"{number}: its cells are unknown"))
            continue
        if found.image_file is None:
            problems.append(Problem("missing image", found.csv_file, f"no {number:02d}.bmp beside it"))
        else:
            try:
                with Image.open(io.BytesIO(source.read_bytes(found.image_file))) as header:
                    found.size = header.size
            except Image.DecompressionBombError as err:  # a header claiming 40000x30000 px: never decoded
                problems.append(Problem("unreadable image", found.image_file, str(err)))
                continue
            except (OSError, UnreadableFile, SyntaxError):
                pass  # the row build decodes it and reports an unreadable image
        read_slide_csv(source, found, labels, aliases, intensities, columns, cell_type, problems)
        if not found.cells and not any(p.file == found.csv_file for p in problems):
            problems.append(Problem("bad label file", found.csv_file, f"no cell rows ({found.other_rows} rows of other "
                                                                      f"types): slide {number} would have no cells"))
        unlisted = sorted((set(found.cell_masks) | set(found.cell_images)) - {cell.id for cell in found.cells})
        if found.cells and unlisted:
            warnings.append(f"slide {number}: {len(unlisted)} cell masks or crops name ids its {number:02d}.csv lacks "
                            f"(ignored): {', '.join(map(str, unlisted[:10]))}{' ...' if len(unlisted) > 10 else ''}")
    other_types = Counter(kind for one in slides.values() for kind in one.other_types)
    if other_types:
        warnings.append("NN.csv rows whose type is not 'cell', left out as not cells: "
                        + ", ".join(f"{kind!r}: {n}" for kind, n in sorted(other_types.items())))
    return MainDataset(dict(sorted(slides.items())), problems, warnings)


def read_slide_csv(source: Source, slide: MainSlide, labels, aliases, intensities, columns, cell_type, problems):
    rows = source.read_rows(slide.csv_file)
    width = max(columns.values()) + 1
    seen = set()
    for line, row in enumerate(rows, start=1):
        if line == 1 and not (len(row) > columns["id"] and row[columns["id"]].strip().isdigit()):
            continue  # the header
        if len(row) < width:
            problems.append(Problem("bad label file", slide.csv_file, f"line {line}: {len(row)} columns, expected {width} "
                                                                       "(intensity;id;;;type;pattern;minX;minY;maxX;maxY)"))
            continue
        value = {name: row[i].strip() for name, i in columns.items()}
        if value["type"].lower() != cell_type:
            if difflib.get_close_matches(value["type"].lower(), [cell_type], cutoff=0.7):
                problems.append(Problem("unknown value", slide.csv_file, f"line {line}: type {value['type']!r} is "
                                                                         f"close to {cell_type!r} but not it (a typo?)"))
            slide.other_rows += 1
            slide.other_types.append(value["type"])
            continue
        try:
            cell_id = int(value["id"])
            bounds = [float(value[k]) for k in ("min_x", "min_y", "max_x", "max_y")]
            if not all(math.isfinite(b) and b == int(b) for b in bounds):
                raise ValueError
            min_x, min_y, max_x, max_y = map(int, bounds)
        except ValueError:
            problems.append(Problem("bad label file", slide.csv_file, f"line {line}: id and bounds must be whole "
                                                                       f"numbers: {';'.join(row)}"))
            continue
        if not (1 <= min_x <= max_x and 1 <= min_y <= max_y) or (slide.size and (max_x > slide.size[0]
                                                                                 or max_y > slide.size[1])):
            problems.append(Problem("bad label file", slide.csv_file, f"line {line}: box x {min_x}..{max_x}, y {min_y}.."
                                                                       f"{max_y} is empty or leaves the slide"))
            continue
        if cell_id in seen:
            problems.append(Problem("duplicate id", slide.csv_file, f"line {line}: cell {cell_id} listed twice"))
            continue
        seen.add(cell_id)
        cell = MainCell(cell_id, canonical(value["pattern"], labels, aliases), None,
                        (min_x - 1, min_y - 1, max_x, max_y), slide.csv_file, line)
        cell.intensity = canonical(value["intensity"], intensities)
        if cell.pattern is None:
            cell.row_problems.append(Problem("unknown label", slide.csv_file, f"line {line}: pattern {value['pattern']!r} "
                                                                              f"for cell {cell_id}; known: {', '.join(labels)}"))
        if cell.intensity is None:
            cell.row_problems.append(Problem("unknown value", slide.csv_file, f"line {line}: intensity "
                                                                              f"{value['intensity']!r} for cell {cell_id}"))
        slide.cells.append(cell)


def describe_cells(cells: Counter) -> str:
    if not cells:
        return "no cells"
    kinds = ", ".join(f"{n} {pattern or '?'}/{intensity or '?'}" for (pattern, intensity), n in sorted(
        cells.items(), key=lambda kv: (str(kv[0][0]), str(kv[0][1]))))
    return f"{sum(cells.values())} cells ({kinds})"


