"""How the ICPR 2012 HEp-2 (MIVIA) download is read: the contest folder and Main_Dataset.

The MIVIA download holds `ICPR2012_Cells_Classification_Contest/` (cell crops with masks, ';' CSVs,
cells.csv naming each cell's slide) and `Main_Dataset/`, the later release of the same 28 slide
images with every object located on them:

    Main_Dataset/Images/NN/NN.bmp + NN.csv, Cells/Cell_Masks/NN/NNN.png, Cells/Cell_Images/NN/NNN.png
    (read by `hep2_main_dataset`)

`scan_cells` reads the cells (config icpr2012) from the contest folder, from Main_Dataset alone, or from
the contest folder cross-checked slide by slide against Main_Dataset; `scan_slides` reads the slides
(config icpr2012_slides). The facts (column positions, slide lists, tolerances) are on `hep2.HEp2`.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..builder import Record, Scan
from ..checks import Problem, RowProblems
from ..layout import known_split
from ..schema import decode, png_bytes
from ..source import Source, parent
from .hep2_icpr2014 import finish, image_key, join, read_cell_folder, read_label_file
from .hep2_main_dataset import MainDataset, MainSlide, describe_cells, find_main_dataset, read_main_dataset


@dataclass
class CutCellRecord(Record):
    """A cell of Main_Dataset: its crop file, or (cut=True) its box on the slide image."""

    cut: bool = False
    box: tuple[int, int, int, int] = (0, 0, 0, 0)  # 0-based x0, y0 and exclusive x1, y1
    slide_size: tuple[int, int] | None = None


@dataclass
class SlideRecord(Record):
    slide: "MainSlide | None" = None


def scan_cells(hep2, source: Source) -> Scan | None:
    """icpr2012: the contest's cells (cross-checked against Main_Dataset when both are there), or
    Main_Dataset's cells alone; None when neither folder is there."""
    contest_root, main_root = find_contest(source), find_main_dataset(source)
    if contest_root is None and main_root is None:
        return None
    if contest_root is None:
        return scan_main_dataset_cells(hep2, source, main_root)
    scan = scan_contest(hep2, source, contest_root)
    if main_root is not None:
        cross_check(hep2, source, main_root, scan)
    return scan


def find_contest(source: Source) -> str | None:
    """Root of the MIVIA contest layout: training/gt_training.csv beside cells.csv or test/gt_test.csv."""
    for f in sorted(source.files, key=lambda f: f.count("/")):
        if f.lower().endswith("training/gt_training.csv"):
            root = parent(parent(f))
            prefix = f"{root}/" if root else ""
            if source.find(f"{prefix}cells.csv") or source.find(f"{prefix}test/gt_test.csv"):
                return root
    return None


def scan_contest(hep2, source: Source, root: str) -> Scan:
    prefix = f"{root}/" if root else ""
    records, problems, warnings, cells, label_files = {}, [], [], {}, []
    specimens = read_cells_csv(source, f"{prefix}cells.csv", warnings)
    for split, folder, gt_name, info_name in hep2.ICPR2012_FOLDERS:
        gt = source.find(f"{prefix}{folder}/{gt_name}")
        if gt is None:
            warnings.append(f"{prefix}{folder}/{gt_name} not found: no {split} split")
            continue
        table, p, w = read_label_file(source, gt, hep2.config.labels, hep2.config.aliases, hep2.INTENSITIES)
        info = source.find(f"{prefix}{folder}/{info_name}")
        label_files += [gt, info or ""]
        intensities, info_problems = {}, []
        if info:  # ID;intensity;width;height: its problems are the build's too
            intensities, info_problems, _ = read_label_file(source, info, hep2.INTENSITIES, {}, hep2.INTENSITIES)
        else:
            warnings.append(f"{prefix}{folder}/{info_name} not found: intensity left empty for {split}")
        problems += info_problems
        unlisted = {"intensity": [], "specimen": []}
        for key, row in table.items():
            listed = intensities.get(key)
            row.intensity = listed.label if listed else None
            if listed is not None and listed.label is None:
                row.problems.append(Problem("unknown value", info, f"line {listed.line}: intensity "
                                            f"{listed.raw_label!r} for cell {key}; known: "
                                            f"{', '.join(hep2.INTENSITIES)}"))
            row.specimen = specimens.get((split, key))
            unlisted["intensity"] += [key] if info and listed is None else []
            unlisted["specimen"] += [key] if specimens and row.specimen is None else []
        for column, keys in unlisted.items():
            if keys:
                where = info if column == "intensity" else f"{prefix}cells.csv"
                warnings.append(f"{where}: no row for {len(keys)} {split} cells, {column} left empty for them: "
                                + ", ".join(map(str, keys[:10])) + (" ..." if len(keys) > 10 else ""))
        cells[split] = read_cell_folder(source, gt.rsplit("/", 1)[0], True, hep2.MASK_NAME)
        split_records, join_problems = join(table, gt, {split: cells[split]}, hep2.config.labels)
        records.update(split_records)
        problems += p + join_problems
        warnings += w
    return finish("ICPR 2012 contest (training/ + test/, ';' CSVs, cells.csv)", records, problems, warnings,
                  cells, hep2.published(records, hep2.config.published),
                  offset={"test": hep2.ICPR2012_TEST_ID_OFFSET}, label_files=label_files)




def read_cells_csv(source: Source, path: str, warnings: list) -> dict:
    """(split, cell) -> source image number; the specimen, since each slide image is one specimen."""
    found = source.find(path)
    if found is None:
        warnings.append(f"{path} not found: specimen_id left empty")
        return {}
    specimens = {}
    for row in source.read_rows(found):
        if len(row) >= 3 and row[0].isdigit():
            split = known_split(row[1])
            if split:
                specimens[(split, image_key(row[0]))] = row[2].strip()
    if not specimens:
        warnings.append(f"{found}: no rows of the form id;training|test;image;...: specimen_id left empty")
    return specimens


# -- Main_Dataset ---------------------------------------------------------------------------------------------
def main_dataset(hep2, source: Source, root: str) -> "MainDataset":
    return read_main_dataset(source, root, list(hep2.config.labels), hep2.config.aliases, hep2.INTENSITIES,
                             hep2.ICPR2012_SLIDES, hep2.MAIN_DATASET_COLUMNS, hep2.MAIN_DATASET_CELL_TYPE)


def scan_main_dataset_cells(hep2, source: Source, root: str) -> Scan:
    """icpr2012 from Main_Dataset alone: each 'cell' row of each slide, as its crop file when there is one,
    else cut from the slide by its box; specimen = slide, split by the contest's slide lists."""
    main = main_dataset(hep2, source, root)
    records: dict[str, list] = {"train": [], "test": []}
    crops = cut = 0
    for slide in main.slides.values():
        if slide.split is None or slide.image_file is None:
            continue
        for cell in slide.cells:
            crop = slide.cell_images.get(cell.id)
            crops, cut = crops + bool(crop), cut + (not crop)
            records[slide.split].append(CutCellRecord(
                crop or slide.image_file, cell.pattern, image_id=slide.number * hep2.CELL_IDS_PER_SLIDE + cell.id,
                # A cell cut from its slide has no file of its own: the slide and the cell's id in NN.csv.
                file_name=crop or f"{slide.image_file}#{cell.id:03d}",
                cut=crop is None, box=cell.box, slide_size=slide.size, mask_file=slide.cell_masks.get(cell.id),
                metadata={"intensity": cell.intensity, "specimen_id": str(slide.number)},
                problems=cell.problems(slide)))
    source_of_crops = ("crops from Cells/Cell_Images" if not cut else "cut from the slide images by their boxes"
                       if not crops else f"{crops} crops from Cells/Cell_Images, {cut} cut from the slides")
    layout = (f"Main_Dataset (slide images, NN.csv per slide, Cells/Cell_Masks); cells {source_of_crops}; "
              "specimen = slide, split by the contest's slide lists")
    return Scan(layout, records, main.problems, hep2.published(records, hep2.config.published), main.warnings)


def scan_slides(hep2, source: Source) -> Scan:
    """icpr2012_slides: one row per slide of Main_Dataset."""
    main_root = find_main_dataset(source)
    if main_root is None:
        hint = ("This is the contest folder alone, which holds cell crops but not the slides they were cut "
                "from: build it with config_name=\"icpr2012\".") if find_contest(source) is not None else ""
        raise hep2.not_found(source, hint=hint)
    return slides_of(hep2, source, main_root)


def slides_of(hep2, source: Source, root: str) -> Scan:
    main = main_dataset(hep2, source, root)
    records: dict[str, list] = {"train": [], "test": []}
    for slide in main.slides.values():
        if slide.split is None or slide.image_file is None:
            continue
        records[slide.split].append(SlideRecord(slide.image_file, image_id=slide.number, slide=slide,
                                                problems=[p for cell in slide.cells for p in cell.problems(slide)]))
    layout = ("Main_Dataset (slide images, NN.csv per slide, Cells/Cell_Masks); one row per slide, objects from "
              "the 'cell' rows, split by the contest's slide lists")
    return Scan(layout, records, main.problems, hep2.published(records, hep2.config.published),
                main.warnings)


def cross_check(hep2, source: Source, root: str, scan: Scan):
    """Both folders present: the contest's cells (built) against Main_Dataset's, slide by slide (cells,
    patterns, intensities) and by split; every disagreement is a warning of the build."""
    main = main_dataset(hep2, source, root)
    contest: dict[str, Counter] = defaultdict(Counter)
    contest_split: dict[str, set] = defaultdict(set)
    for split, rows in scan.splits.items():
        for record in rows:
            slide = record.metadata["specimen_id"]
            contest[slide][(record.label, record.metadata["intensity"])] += 1
            contest_split[slide].add(split)
    lines = [f"Main_Dataset: {p.kind}: {p}" for p in main.problems]
    for number, slide in main.slides.items():
        theirs = Counter((c.pattern, c.intensity) for c in slide.cells)
        ours = contest.pop(str(number), Counter())
        if ours != theirs:
            lines.append(f"slide {number}: contest {describe_cells(ours)}; Main_Dataset {describe_cells(theirs)}")
        if slide.split and contest_split.get(str(number), {slide.split}) != {slide.split}:
            lines.append(f"slide {number}: in {'+'.join(sorted(contest_split[str(number)]))} in the contest, "
                         f"{slide.split} in Main_Dataset's slide lists")
    lines += [f"slide {slide}: contest {describe_cells(cells)}; not in Main_Dataset" for slide, cells in contest.items()]
    cells = sum(len(s.cells) for s in main.slides.values())
    if lines:
        scan.warnings.append(f"cross-check with {root}/: {len(lines)} disagreements with the contest folder "
                             "(the contest's cells are built):")
        scan.warnings += [f"  {line}" for line in lines]
    scan.layout += (f"; cross-checked against {root}/ ({len(main.slides)} slides, {cells} cells: "
                    + ("every slide agrees in cells, patterns and intensities)" if not lines
                       else f"{len(lines)} disagreements, listed below)"))


def main_dataset_cell(hep2, record: CutCellRecord):
    """One cell of Main_Dataset: its crop (or cut from its slide by its box) and its mask at crop size."""
    problems = list(record.problems)
    x0, y0, x1, y1 = record.box
    stored_image = image = None
    if record.cut:
        slide = hep2.read(record.image_file, problems, decode=lambda raw: decode(raw).convert("RGB"))
        if slide is not None:
            image = slide.crop((x0, y0, x1, y1))
            stored_image = {"bytes": png_bytes(image, hep2.PNG_COMPRESS_LEVEL), "path": None}
    else:
        stored_image, image = hep2.read(record.image_file, problems) or (None, None)
    stored_mask, facts = None, {}
    if record.mask_file:
        crop_size = image.size if image is not None and not record.cut else None
        canvas, where = read_cell_mask(hep2, record.mask_file, record.box, record.slide_size, problems, crop_size)
        cell_mask = canvas[y0:y1, x0:x1] if where == "slide" else canvas
        if cell_mask is not None and image is not None and cell_mask.shape[::-1] != image.size:
            problems.append(Problem("mask size", record.mask_file, f"{cell_mask.shape[1]}x{cell_mask.shape[0]} (cut to "
                                    f"its box), its image {record.name} is {image.width}x{image.height}"))
        elif cell_mask is not None:
            stored_mask = {"bytes": png_bytes(Image.fromarray(cell_mask.astype(np.uint8))), "path": None}
            facts.update(mask_at=where, mask_coverage=float(cell_mask.mean()))
    if problems:
        raise RowProblems(problems)
    example = {"image": stored_image, "mask": stored_mask, "label": record.label, **record.metadata,
               "image_id": record.image_id, "file_name": record.name}
    return example, image, facts


def read_cell_mask(hep2, file: str, box, slide_size, problems: list, crop_size=None):
    """A cell's mask as stored (at slide size, or at its box's or its crop file's size, which it is decides),
    checked to hold the cell and to lie within MASK_BOX_TOLERANCE px of its box. Returns (bool array,
    'slide' | 'crop') or (None, None)."""
    mask = hep2.read(file, problems, as_mask=True, decode=lambda raw: np.asarray(decode(raw).convert("L")) > 0)
    if mask is None:
        return None, None
    x0, y0, x1, y1 = box
    height, width = mask.shape
    if (width, height) in ((x1 - x0, y1 - y0), crop_size):
        if not mask.any():  # no cell: an area of 0 and no centroid
            problems.append(Problem("mask outside box", file, "the mask is empty"))
            return None, None
        return mask, "crop"
    if slide_size is not None and (width, height) != tuple(slide_size):
        problems.append(Problem("mask size", file, f"{width}x{height}: neither its slide's size "
                                                   f"{slide_size[0]}x{slide_size[1]} nor its box's {x1 - x0}x{y1 - y0}"))
        return None, None
    rows, cols = np.nonzero(mask)
    if len(rows) == 0:
        problems.append(Problem("mask outside box", file, "the mask is empty"))
        return None, None
    tolerance = hep2.MASK_BOX_TOLERANCE
    extent = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
    if (extent[0] < x0 - tolerance or extent[1] < y0 - tolerance or extent[2] > x1 + tolerance
            or extent[3] > y1 + tolerance):
        problems.append(Problem("mask outside box", file, f"mask spans x {extent[0] + 1}..{extent[2]}, y {extent[1] + 1}.."
                                                          f"{extent[3]}; its row's box is x {x0 + 1}..{x1}, y {y0 + 1}..{y1} "
                                                          f"(1-based, {tolerance} px allowed)"))
        return None, None
    return mask, "slide"


def slide_example(hep2, record: SlideRecord):
    """One slide: the image, every cell as an object (box, area and centroid from its mask; NN.csv's box kept), a
    semantic mask (pattern id + 1 per pixel, 0 background) and an instance mask (the cell's id in NN.csv
    per pixel, 16-bit)."""
    slide, problems = record.slide, list(record.problems)
    stored_image, image = hep2.read(record.image_file, problems) or (None, None)
    if image is None:
        raise RowProblems(problems)
    semantic = np.zeros((image.height, image.width), np.uint8)
    instance = np.zeros((image.height, image.width), np.uint16)
    objects, at, overlap, box_ratios = [], Counter(), 0, []
    for cell in slide.cells:
        if cell.id not in slide.cell_masks or cell.pattern is None:
            continue  # the problem is already recorded
        canvas, where = read_cell_mask(hep2, slide.cell_masks[cell.id], cell.box, (image.width, image.height), problems)
        if canvas is None:
            continue
        at[where] += 1
        x0, y0, x1, y1 = cell.box
        if where == "crop":
            placed = np.zeros_like(semantic, bool)
            placed[y0:y1, x0:x1] = canvas
            canvas = placed
        overlap += int(np.count_nonzero(canvas & (instance > 0)))
        free = canvas & (instance == 0)  # where two masks overlap, the first cell keeps the pixel
        instance[free] = cell.id
        semantic[free] = hep2.ICPR2012_LABELS.index(cell.pattern) + 1
        rows, cols = np.nonzero(canvas)
        # The box is the mask's own, tight (as COCO derives boxes from segmentations): a detector learns the
        # boxes it is given. NN.csv's bounds stay beside it; the report says how much larger they are.
        tight = [float(cols.min()), float(rows.min()), float(cols.max() + 1 - cols.min()), float(rows.max() + 1 - rows.min())]
        box_ratios.append(round((x1 - x0) * (y1 - y0) / (tight[2] * tight[3]), 4))
        objects.append({"id": slide.number * hep2.CELL_IDS_PER_SLIDE + cell.id, "bbox": tight,
                        "csv_bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                        "area": int(len(rows)),
                        "centroid": [float(cols.mean() + 0.5), float(rows.mean() + 0.5)],
                        "category": hep2.ICPR2012_LABELS.index(cell.pattern),
                        "intensity": hep2.INTENSITIES.index(cell.intensity) if cell.intensity else -1})
    if problems:
        raise RowProblems(problems)
    example = {"image": stored_image,
               "label": {"bytes": png_bytes(Image.fromarray(semantic)), "path": None},
               "instance_mask": {"bytes": png_bytes(Image.fromarray(instance)), "path": None},
               "objects": {key: [o[key] for o in objects] for key in
                           ("id", "bbox", "csv_bbox", "area", "centroid", "category", "intensity")},
               "specimen_id": str(slide.number), "image_id": slide.number, "file_name": record.image_file}
    facts = {"cells": len(objects), "masks_at_slide": at["slide"], "masks_at_crop": at["crop"],
             "mask_overlap_pixels": overlap, "mask_coverage": float(np.count_nonzero(semantic) / semantic.size),
             "csv_box_area_ratios": box_ratios}
    return example, image, facts


def mask_findings(examples: list[dict]) -> list[str]:
    """Report lines on the cell masks found: at which size they are stored, and where they overlap."""
    findings = []
    at = Counter()
    for ex in examples:
        at["slide"] += ex.get("masks_at_slide", 0) + (ex.get("mask_at") == "slide")
        at["crop"] += ex.get("masks_at_crop", 0) + (ex.get("mask_at") == "crop")
    if at["slide"] or at["crop"]:  # unpublished: say which was found
        findings.append(f"cell masks: {at['slide']} at slide size, {at['crop']} at crop size "
                               "(detected per file from its size)")
    ratios = sorted(r for ex in examples for r in ex.get("csv_box_area_ratios") or [])
    if ratios:
        findings.append(f"cell boxes: each cell's `bbox` is its mask's tight box; the NN.csv bounds, kept as "
                        f"`csv_bbox`, cover a median {ratios[len(ratios) // 2]:.2f}x and at most {ratios[-1]:.2f}x "
                        f"its area ({len(ratios)} cells)")
    overlaps = [f"{ex['file_name']} ({ex['mask_overlap_pixels']} px)" for ex in examples if ex.get("mask_overlap_pixels")]
    if overlaps:
        findings.append(f"cell masks overlap on {len(overlaps)} slides (the first cell in NN.csv keeps "
                               f"the pixel in the masks): {', '.join(overlaps)}")
    return findings
