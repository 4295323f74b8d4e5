"""HEp-2 cell patterns: ICPR 2014 cell level (a.k.a. ICIP 2013 task 1) and the ICPR 2012 MIVIA contest.

Layouts and counts: shared/SOURCES.md sections 1 and 2. The `icpr2014` config accepts the
organisers' release (cells + masks, one `train` split), the processed 78x78 distribution
(train/validation/test folders, one gt_training.csv) and the train/test + train.csv/test.csv
layout of the openmedlab card; the variant is detected.

The MIVIA download of ICPR 2012 holds the contest folder and `Main_Dataset/`, the later release of the
same 28 slide images with every cell located on them (Images/NN/NN.bmp + NN.csv, Cells/Cell_Masks/NN/,
Cells/Cell_Images/NN/). `icpr2012` builds the cells from either (from both: the contest's cells,
cross-checked slide by slide against Main_Dataset); `icpr2012_slides` builds the slides themselves,
with every cell's box, an instance mask and a semantic mask, for detection and segmentation.
"""

from __future__ import annotations

import io
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import datasets
import numpy as np
from PIL import Image

from ..builder import MedsetsBuilder, MedsetsConfig, RowProblems, Scan, canonical
from ..checks import Problem
from ..layout import ignored_files, is_image, known_split, split_order
from ..schema import UnreadableImage, classification_features, decode, detection_features, png_bytes
from ..source import Source, UnreadableFile, parent, stem


class HEp2(MedsetsBuilder):
    """HEp-2 indirect immunofluorescence cell crops, staining pattern classification."""

    BUILDER_CONFIGS = [
        MedsetsConfig(name="icpr2014", description="ICPR 2014 cell level: 13,596 labelled cells, 6 patterns"),
        MedsetsConfig(name="icpr2012", description="ICPR 2012 MIVIA contest: 1,455 cells from 28 slide images"),
        MedsetsConfig(name="icpr2012_slides", description="ICPR 2012 MIVIA Main_Dataset: the 28 slide images, "
                                                          "every cell's box, pattern and intensity, instance and "
                                                          "semantic masks (detection, segmentation)"),
    ]
    DEFAULT_CONFIG_NAME = "icpr2014"

    # -- ICPR 2014 -----------------------------------------------------------------------------------------
    ICPR2014_LABELS = ["homogeneous", "speckled", "nucleolar", "centromere", "numem", "golgi"]
    ICPR2014_ALIASES = {"nuclear_membrane": "numem", "nucmem": "numem", "nuclearmembrane": "numem"}
    # The class counts follow contiguous id ranges in the release.
    ICPR2014_CLASS_COUNTS = {"homogeneous": 2494, "speckled": 2831, "nucleolar": 2598,
                             "centromere": 2741, "numem": 2208, "golgi": 724}
    ICPR2014_PROCESSED_SPLIT_COUNTS = {  # the 78x78 distribution, train/validation/test per class
        "train": {"centromere": 1791, "golgi": 449, "homogeneous": 1556, "numem": 1430, "nucleolar": 1675,
                  "speckled": 1800},
        "validation": {"centromere": 463, "golgi": 110, "homogeneous": 415, "numem": 337, "nucleolar": 394,
                       "speckled": 456},
        "test": {"centromere": 487, "golgi": 165, "homogeneous": 523, "numem": 441, "nucleolar": 529,
                 "speckled": 575},
    }
    # The processed distribution repeats a block of NuMem cells: 11005-11198 reappear as 11199-11392, each
    # copy 194 ids on, byte-different files of equal pixels. Pairs per split pair, counted on the real files.
    ICPR2014_DUPLICATED_CELLS = range(11005, 11199)
    ICPR2014_DUPLICATE_SHIFT = 194
    ICPR2014_DUPLICATE_PAIRS = {("train", "train"): 80, ("validation", "validation"): 3, ("test", "test"): 7,
                                ("train", "test"): 54, ("train", "validation"): 35, ("validation", "test"): 15}
    ICPR2014_LAYOUTS = ("(A) gt_training.csv beside a folder of NNNNN.png + NNNNN_Mask.png",
                        "(B) gt_training.csv with training/validation/test (or train/val/test) folders of PNGs",
                        "(C) train/ and test/ folders with train.csv and test.csv")

    # -- ICPR 2012 -----------------------------------------------------------------------------------------
    ICPR2012_LABELS = ["homogeneous", "coarse_speckled", "fine_speckled", "nucleolar", "centromere",
                       "cytoplasmatic"]
    # The later full MIVIA release spells centromere "centromeric".
    ICPR2012_ALIASES = {"centromeric": "centromere", "cytoplasmic": "cytoplasmatic"}
    ICPR2012_PUBLISHED = {
        "train": {"total": 721,
                  "label": {"centromere": 208, "coarse_speckled": 109, "cytoplasmatic": 58, "fine_speckled": 94,
                            "homogeneous": 150, "nucleolar": 102},
                  "intensity": {"positive": 396, "intermediate": 325}},
        "test": {"total": 734},
    }
    # split, folder, labels file (ID;pattern), information file (ID;intensity;width;height)
    ICPR2012_FOLDERS = (("train", "training", "gt_training.csv", "training.csv"),
                        ("test", "test", "gt_test.csv", "test.csv"))
    ICPR2012_TEST_ID_OFFSET = 1000  # ids restart at 001 in test/; image_id = 1000 + id keeps them unique
    ICPR2012_LAYOUTS = ("training/gt_training.csv and training/NNN.png + NNN_mask.png (test/ likewise), cells.csv",
                        "Main_Dataset/Images/NN/NN.bmp + NN.csv with Cells/Cell_Masks/NN/NNN.png "
                        "(Cells/Cell_Images/NN/NNN.png optional)")
    # Main_Dataset: the contest's split of the 28 slides.
    ICPR2012_SLIDES = {"train": (1, 2, 3, 5, 6, 7, 8, 9, 11, 14, 18, 20, 25, 26),
                       "test": (4, 10, 12, 13, 15, 16, 17, 19, 21, 22, 23, 24, 27, 28)}
    # NN.csv: ';', one header line; columns by position (the header's names are not published).
    MAIN_DATASET_COLUMNS = {"intensity": 0, "id": 1, "type": 4, "pattern": 5, "min_x": 6, "min_y": 7, "max_x": 8,
                            "max_y": 9}
    MAIN_DATASET_CELL_TYPE = "cell"  # rows of other types are not cells
    MASK_BOX_TOLERANCE = 2  # px a mask may reach beyond its row's box (the known code that reads the files checks 2)
    ICPR2012_SLIDES_PUBLISHED = {"train": {"total": 14, "cells": 721}, "test": {"total": 14, "cells": 734}}
    # The semantic mask of icpr2012_slides: 0 background, then the patterns.
    CONFIG_TASKS = {"icpr2012_slides": ("object-detection", "image-segmentation")}
    SLIDE_ID2LABEL = {0: "background", **{i + 1: name for i, name in enumerate(ICPR2012_LABELS)}}
    CELL_IDS_PER_SLIDE = 1000  # image_id of a Main_Dataset cell = slide * 1000 + its id in NN.csv

    INTENSITIES = ["positive", "intermediate"]
    MASK_NAME = re.compile(r"^(?P<key>.+?)[_\-]mask$", re.IGNORECASE)  # 00001_Mask.png, 001_mask.png

    COUNTED_COLUMNS = ("label", "intensity")
    GROUP_COLUMN = "specimen_id"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.config.name == "icpr2012_slides":  # a row is a slide: its cells are summed, not its label counted
            self.COUNTED_COLUMNS = ()

    def summed_facts(self) -> tuple[str, ...]:
        return ("cells",) if self.config.name == "icpr2012_slides" else self.SUMMED_FACTS

    @classmethod
    def id2label(cls, config: str) -> dict[int, str] | None:
        return cls.SLIDE_ID2LABEL if config == "icpr2012_slides" else None

    def _info(self):
        if self.config.name == "icpr2012_slides":
            return datasets.DatasetInfo(description=self.config.description, features=detection_features(
                self.ICPR2012_LABELS, with_mask=True, tile=False,
                object_columns={"intensity": datasets.ClassLabel(names=self.INTENSITIES)},
                mask_columns={"instance_mask": datasets.Image()},
                columns={"specimen_id": datasets.Value("string")}))
        names = self.ICPR2012_LABELS if self.config.name == "icpr2012" else self.ICPR2014_LABELS
        return datasets.DatasetInfo(
            description=self.config.description,
            features=classification_features(names, with_mask=True, metadata={
                "intensity": datasets.ClassLabel(names=self.INTENSITIES),
                "specimen_id": datasets.Value("string"),
            }),
        )

    def _scan(self, source: Source) -> Scan:
        contest_root = self._find_icpr2012(source)
        main_root = find_main_dataset(source)
        if self.config.name == "icpr2012":
            if contest_root is None and main_root is None:
                raise self._not_found(source, "ICPR 2012", self.ICPR2012_LAYOUTS,
                                      other=self._find_icpr2014(source) and "icpr2014")
            if contest_root is None:
                return self._scan_main_dataset_cells(source, main_root)
            scan = self._scan_icpr2012(source, contest_root)
            if main_root is not None:
                self._cross_check(source, main_root, scan)
            return scan
        if self.config.name == "icpr2012_slides":
            if main_root is None:
                hint = ("This is the contest folder alone, which holds cell crops but not the slides they were cut "
                        "from: build it with --config icpr2012.") if contest_root is not None else ""
                raise self._not_found(source, "ICPR 2012 Main_Dataset", self.ICPR2012_LAYOUTS[1:], None, hint)
            return self._scan_slides(source, main_root)
        found = None if contest_root is not None else self._find_icpr2014(source)
        if found is None:
            raise self._not_found(source, "ICPR 2014", self.ICPR2014_LAYOUTS,
                                  other=contest_root is not None and "icpr2012")
        return found()

    def _not_found(self, source: Source, what: str, looked_for: tuple, other: str | None, hint: str = ""):
        hint = hint or (f"This looks like the HEp-2 {other} layout: build it with --config {other}." if other else "")
        return self.layout_not_found(source, f"hep2: {source.path} does not hold a known HEp-2 {what} layout.",
                                     looked_for, hint)

    # -- ICPR 2014 --------------------------------------------------------------------------------------
    def _find_icpr2014(self, source: Source):
        """A callable producing the Scan of the detected 2014 variant, or None."""
        folders = source.folders()
        for folder in sorted(folders, key=lambda d: d.count("/")):
            if any(self.MASK_NAME.match(stem(f)) for f in folders[folder]):
                gt = source.find(f"{parent(folder)}/gt_training.csv")
                if gt:
                    return lambda: self._scan_icpr2014(
                        source, "organisers' release (cells + masks, gt_training.csv)", gt, {"train": folder},
                        with_masks=True, published={"train": {"label": self.ICPR2014_CLASS_COUNTS}})
        gts = sorted((f for f in source.files if f.lower().endswith("gt_training.csv")), key=lambda f: f.count("/"))
        for root, splits in split_folder_sets(source).items():
            csvs = {s: source.find(f"{f}.csv") for s, f in splits.items()}
            if "train" in splits and all(csvs.values()):
                return lambda: self._scan_icpr2014_per_split_csv(source, splits, csvs)
            if "train" in splits and gts:
                published = {s: {"label": self.ICPR2014_PROCESSED_SPLIT_COUNTS[s]} for s in splits}
                return lambda: self._scan_icpr2014(
                    source, "processed 78x78 distribution (split folders, gt_training.csv)", gts[0], splits,
                    with_masks=False, published=published)
        return None

    def _scan_icpr2014(self, source, layout, gt, split_folders, with_masks, published) -> Scan:
        table, problems, warnings = read_label_file(source, gt, self.ICPR2014_LABELS, self.ICPR2014_ALIASES,
                                                    self.INTENSITIES)
        cells = {s: read_cell_folder(source, f, with_masks, self.MASK_NAME) for s, f in split_folders.items()}
        records, join_problems = join(table, gt, cells, self.ICPR2014_LABELS)
        return finish(layout, records, problems + join_problems, warnings, cells, published)

    def _scan_icpr2014_per_split_csv(self, source, split_folders, csvs) -> Scan:
        records, problems, warnings, cells = {}, [], [], {}
        for split, folder in split_folders.items():
            table, p, w = read_label_file(source, csvs[split], self.ICPR2014_LABELS, self.ICPR2014_ALIASES,
                                          self.INTENSITIES)
            cells[split] = read_cell_folder(source, folder, False, self.MASK_NAME)
            split_records, join_problems = join(table, csvs[split], {split: cells[split]}, self.ICPR2014_LABELS)
            records.update(split_records)
            problems += p + join_problems
            warnings += w
        # Per-split counts of this repackaging are unpublished; the class totals are the release's.
        return finish("train/test folders with train.csv/test.csv (openmedlab card)", records, problems, warnings,
                      cells, {"*": {"label": self.ICPR2014_CLASS_COUNTS}})

    # -- ICPR 2012 --------------------------------------------------------------------------------------
    def _find_icpr2012(self, source: Source) -> str | None:
        """Root of the MIVIA contest layout: training/gt_training.csv beside cells.csv or test/gt_test.csv."""
        for f in sorted(source.files, key=lambda f: f.count("/")):
            if f.lower().endswith("training/gt_training.csv"):
                root = parent(parent(f))
                prefix = f"{root}/" if root else ""
                if source.find(f"{prefix}cells.csv") or source.find(f"{prefix}test/gt_test.csv"):
                    return root
        return None

    def _scan_icpr2012(self, source: Source, root: str) -> Scan:
        prefix = f"{root}/" if root else ""
        records, problems, warnings, cells, label_files = {}, [], [], {}, []
        specimens = read_cells_csv(source, f"{prefix}cells.csv", warnings)
        for split, folder, gt_name, info_name in self.ICPR2012_FOLDERS:
            gt = source.find(f"{prefix}{folder}/{gt_name}")
            if gt is None:
                warnings.append(f"{prefix}{folder}/{gt_name} not found: no {split} split")
                continue
            table, p, w = read_label_file(source, gt, self.ICPR2012_LABELS, self.ICPR2012_ALIASES, self.INTENSITIES)
            info = source.find(f"{prefix}{folder}/{info_name}")
            label_files += [gt, info or ""]
            intensities, info_problems = {}, []
            if info:  # ID;intensity;width;height: its problems are the build's too
                intensities, info_problems, _ = read_label_file(source, info, self.INTENSITIES, {}, self.INTENSITIES)
            else:
                warnings.append(f"{prefix}{folder}/{info_name} not found: intensity left empty for {split}")
            problems += info_problems
            for key, row in table.items():
                listed = intensities.get(key)
                row.intensity = listed.label if listed else None
                if listed is not None and listed.label is None:
                    row.problems.append(Problem("unknown value", info, f"line {listed.line}: intensity "
                                                f"{listed.raw_label!r} for cell {key}; known: "
                                                f"{', '.join(self.INTENSITIES)}"))
                row.specimen = specimens.get((split, key))
            cells[split] = read_cell_folder(source, gt.rsplit("/", 1)[0], True, self.MASK_NAME)
            split_records, join_problems = join(table, gt, {split: cells[split]}, self.ICPR2012_LABELS)
            records.update(split_records)
            problems += p + join_problems
            warnings += w
        return finish("ICPR 2012 contest (training/ + test/, ';' CSVs, cells.csv)", records, problems, warnings,
                      cells, self.published(records, self.ICPR2012_PUBLISHED),
                      offset={"test": self.ICPR2012_TEST_ID_OFFSET}, label_files=label_files)


    # -- ICPR 2012 Main_Dataset --------------------------------------------------------------------------
    def _main_dataset(self, source: Source, root: str) -> "MainDataset":
        return read_main_dataset(source, root, self.ICPR2012_LABELS, self.ICPR2012_ALIASES, self.INTENSITIES,
                                 self.ICPR2012_SLIDES, self.MAIN_DATASET_COLUMNS, self.MAIN_DATASET_CELL_TYPE)

    def _scan_main_dataset_cells(self, source: Source, root: str) -> Scan:
        """icpr2012 from Main_Dataset alone: each 'cell' row of each slide, as its crop file when there is one,
        else cut from the slide by its box; specimen = slide, split by the contest's slide lists."""
        main = self._main_dataset(source, root)
        records: dict[str, list] = {"train": [], "test": []}
        crops = cut = 0
        for slide in main.slides.values():
            if slide.split is None or slide.image_file is None:
                continue
            for cell in slide.cells:
                crop = slide.cell_images.get(cell.id)
                crops, cut = crops + bool(crop), cut + (not crop)
                records[slide.split].append({
                    "image_id": slide.number * self.CELL_IDS_PER_SLIDE + cell.id,
                    "image_file": crop or slide.image_file,
                    # A cell cut from its slide has no file of its own: the slide and the cell's id in NN.csv.
                    "file_name": crop or f"{slide.image_file}#{cell.id:03d}",
                    "cut": crop is None, "box": cell.box, "slide_size": slide.size,
                    "mask_file": slide.cell_masks.get(cell.id),
                    "label": cell.pattern, "metadata": {"intensity": cell.intensity, "specimen_id": str(slide.number)},
                    "problems": cell.problems(slide)})
        source_of_crops = ("crops from Cells/Cell_Images" if not cut else "cut from the slide images by their boxes"
                           if not crops else f"{crops} crops from Cells/Cell_Images, {cut} cut from the slides")
        layout = (f"Main_Dataset (slide images, NN.csv per slide, Cells/Cell_Masks); cells {source_of_crops}; "
                  "specimen = slide, split by the contest's slide lists")
        return Scan(layout, records, main.problems, self.published(records, self.ICPR2012_PUBLISHED), main.warnings)

    def _scan_slides(self, source: Source, root: str) -> Scan:
        main = self._main_dataset(source, root)
        records: dict[str, list] = {"train": [], "test": []}
        for slide in main.slides.values():
            if slide.split is None or slide.image_file is None:
                continue
            records[slide.split].append({"image_id": slide.number, "image_file": slide.image_file, "slide": slide,
                                         "problems": [p for cell in slide.cells for p in cell.problems(slide)]})
        layout = ("Main_Dataset (slide images, NN.csv per slide, Cells/Cell_Masks); one row per slide, objects from "
                  "the 'cell' rows, split by the contest's slide lists")
        return Scan(layout, records, main.problems, self.published(records, self.ICPR2012_SLIDES_PUBLISHED),
                    main.warnings)

    def _cross_check(self, source: Source, root: str, scan: Scan):
        """Both folders present: the contest's cells (built) against Main_Dataset's, slide by slide (cells,
        patterns, intensities) and by split; every disagreement is a warning of the build."""
        main = self._main_dataset(source, root)
        contest: dict[str, Counter] = defaultdict(Counter)
        contest_split: dict[str, set] = defaultdict(set)
        for split, rows in scan.splits.items():
            for record in rows:
                slide = record["metadata"]["specimen_id"]
                contest[slide][(record["label"], record["metadata"]["intensity"])] += 1
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

    def _examples(self, record: dict):
        if "slide" in record:
            yield self._slide_example(record)
        elif "box" in record:
            yield self._main_dataset_cell(record)
        else:
            yield from super()._examples(record)

    def _main_dataset_cell(self, record: dict):
        problems = list(record["problems"])
        x0, y0, x1, y1 = record["box"]
        image_cell = image = None
        try:
            if record["cut"]:
                slide = decode(self._source.read_bytes(record["image_file"])).convert("RGB")
                image = slide.crop((x0, y0, x1, y1))
                image_cell = {"bytes": png_bytes(image, self.PNG_COMPRESS_LEVEL), "path": None}
            else:
                image_cell, image = self._read_image(record["image_file"], problems)
        except (UnreadableImage, UnreadableFile) as err:
            problems.append(Problem("unreadable image", record["image_file"], str(err)))
        mask_cell, facts = None, {}
        if record["mask_file"]:
            canvas, where = self._cell_mask(record["mask_file"], record["box"], record["slide_size"], problems)
            if canvas is not None:
                cell_mask = canvas[y0:y1, x0:x1] if where == "slide" else canvas
                mask_cell = {"bytes": png_bytes(Image.fromarray(cell_mask.astype(np.uint8))), "path": None}
                facts.update(mask_at=where, mask_coverage=float(cell_mask.mean()))
        if problems:
            raise RowProblems(problems)
        example = {"image": image_cell, "mask": mask_cell, "label": record["label"], **record["metadata"],
                   "image_id": record["image_id"], "file_name": record["file_name"]}
        return example, image, facts

    def _cell_mask(self, file: str, box, slide_size, problems: list):
        """A cell's mask as stored (at slide size or at its box's size, which it is decides), checked to lie
        within MASK_BOX_TOLERANCE px of its box. Returns (bool array, 'slide' | 'crop') or (None, None)."""
        try:
            mask = np.asarray(decode(self._source.read_bytes(file)).convert("L")) > 0
        except (UnreadableImage, UnreadableFile) as err:
            problems.append(Problem("unreadable mask", file, str(err).removeprefix(f"{file}: ")))
            return None, None
        x0, y0, x1, y1 = box
        height, width = mask.shape
        if (width, height) == (x1 - x0, y1 - y0):
            return mask, "crop"
        if slide_size is not None and (width, height) != tuple(slide_size):
            problems.append(Problem("mask size", file, f"{width}x{height}: neither its slide's size "
                                                       f"{slide_size[0]}x{slide_size[1]} nor its box's {x1 - x0}x{y1 - y0}"))
            return None, None
        rows, cols = np.nonzero(mask)
        if len(rows) == 0:
            problems.append(Problem("mask outside box", file, "the mask is empty"))
            return None, None
        tolerance = self.MASK_BOX_TOLERANCE
        extent = (int(cols.min()), int(rows.min()), int(cols.max()) + 1, int(rows.max()) + 1)
        if (extent[0] < x0 - tolerance or extent[1] < y0 - tolerance or extent[2] > x1 + tolerance
                or extent[3] > y1 + tolerance):
            problems.append(Problem("mask outside box", file, f"mask spans x {extent[0] + 1}..{extent[2]}, y {extent[1] + 1}.."
                                                              f"{extent[3]}; its row's box is x {x0 + 1}..{x1}, y {y0 + 1}..{y1} "
                                                              f"(1-based, {tolerance} px allowed)"))
            return None, None
        return mask, "slide"

    def _slide_example(self, record: dict):
        """One slide: the image, every cell as an object (box from NN.csv, area and centroid from its mask), a
        semantic mask (pattern id + 1 per pixel, 0 background) and an instance mask (the cell's id in NN.csv
        per pixel, 16-bit)."""
        slide, problems = record["slide"], list(record["problems"])
        image_cell, image = self._read_image(record["image_file"], problems)
        if image is None:
            raise RowProblems(problems)
        semantic = np.zeros((image.height, image.width), np.uint8)
        instance = np.zeros((image.height, image.width), np.uint16)
        objects, at, overlap = [], Counter(), 0
        for cell in slide.cells:
            if cell.id not in slide.cell_masks or cell.pattern is None:
                continue  # the problem is already recorded
            canvas, where = self._cell_mask(slide.cell_masks[cell.id], cell.box, (image.width, image.height), problems)
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
            semantic[free] = self.ICPR2012_LABELS.index(cell.pattern) + 1
            rows, cols = np.nonzero(canvas)
            objects.append({"id": slide.number * self.CELL_IDS_PER_SLIDE + cell.id,
                            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                            "area": int(len(rows)),
                            "centroid": [float(cols.mean() + 0.5), float(rows.mean() + 0.5)],
                            "category": self.ICPR2012_LABELS.index(cell.pattern),
                            "intensity": self.INTENSITIES.index(cell.intensity) if cell.intensity else -1})
        if problems:
            raise RowProblems(problems)
        example = {"image": image_cell,
                   "label": {"bytes": png_bytes(Image.fromarray(semantic)), "path": None},
                   "instance_mask": {"bytes": png_bytes(Image.fromarray(instance)), "path": None},
                   "objects": {key: [o[key] for o in objects] for key in
                               ("id", "bbox", "area", "centroid", "category", "intensity")},
                   "specimen_id": str(slide.number), "image_id": slide.number, "file_name": record["image_file"]}
        facts = {"cells": len(objects), "masks_at_slide": at["slide"], "masks_at_crop": at["crop"],
                 "mask_overlap_pixels": overlap, "mask_coverage": float(np.count_nonzero(semantic) / semantic.size)}
        return example, image, facts

    def _make_report(self, problems, examples):
        report = super()._make_report(problems, examples)
        at = Counter()
        for ex in examples:
            at["slide"] += ex.get("masks_at_slide", 0) + (ex.get("mask_at") == "slide")
            at["crop"] += ex.get("masks_at_crop", 0) + (ex.get("mask_at") == "crop")
        if at["slide"] or at["crop"]:  # unpublished: say which was found
            report.warnings.append(f"cell masks: {at['slide']} at slide size, {at['crop']} at crop size "
                                   "(detected per file from its size)")
        overlaps = [f"{ex['file_name']} ({ex['mask_overlap_pixels']} px)" for ex in examples if ex.get("mask_overlap_pixels")]
        if overlaps:
            report.warnings.append(f"cell masks overlap on {len(overlaps)} slides (the first cell in NN.csv keeps "
                                   f"the pixel in the masks): {', '.join(overlaps)}")
        return report


# -- Main_Dataset -------------------------------------------------------------------------------------------
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
            except (OSError, UnreadableFile):
                pass  # the row build decodes it and reports an unreadable image
        read_slide_csv(source, found, labels, aliases, intensities, columns, cell_type, problems)
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
            slide.other_rows += 1
            continue
        try:
            cell_id = int(value["id"])
            min_x, min_y, max_x, max_y = (int(float(value[k])) for k in ("min_x", "min_y", "max_x", "max_y"))
        except ValueError:
            problems.append(Problem("bad label file", slide.csv_file, f"line {line}: id and bounds must be integers: "
                                                                       f"{';'.join(row)}"))
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


# -- reading cell folders and label files -----------------------------------------------------------------
def image_key(name: str) -> str:
    """'train/00012.png', '00012', '12' and '12.PNG' all name cell 12."""
    key = stem(name.replace("\\", "/").rsplit("/", 1)[-1]) if is_image(name) else name.strip()
    return str(int(key)) if key.isdigit() else key.lower()


@dataclass
class CellFolder:
    folder: str
    images: dict[str, str]  # key -> file
    masks: dict[str, str] | None  # key -> mask file; None when the layout has no masks
    ignored: list[str]


def read_cell_folder(source: Source, folder: str, with_masks: bool, mask_name: re.Pattern) -> CellFolder:
    images, masks, ignored = {}, {}, []
    for f in source.files_in(folder):
        if not is_image(f):
            ignored.append(f)
            continue
        m = mask_name.match(stem(f))
        if m:
            masks[image_key(m["key"])] = f
        else:
            images[image_key(stem(f))] = f
    return CellFolder(folder, images, masks if with_masks else None, ignored)


@dataclass
class LabelRow:
    key: str
    label: str | None  # canonical name, None when the spelling is unknown
    raw_label: str
    line: int
    intensity: str | None = None
    specimen: str | None = None
    problems: list = field(default_factory=list)  # of this row, reported with those found when it is read


def read_label_file(source: Source, path: str, names: list[str], aliases: dict,
                    intensities: list[str]) -> tuple[dict, list, list]:
    """Label rows keyed by cell, with problems and warnings. Columns are found by content and header."""
    rows = source.read_rows(path)
    if not rows:
        return {}, [Problem("bad label file", path, "no rows")], []

    def is_label(v):
        return canonical(v, names, aliases) is not None

    def is_key(v):
        return v.isdigit() or is_image(v)

    has_header = not any(is_label(c) or is_key(c) for c in rows[0])
    header = [h.lower() for h in rows[0]] if has_header else []
    body = rows[1:] if has_header else rows
    first_line = 2 if has_header else 1
    width = max((len(r) for r in body), default=0)

    def share(col, predicate):
        values = [r[col] for r in body if col < len(r) and r[col]]
        return sum(map(predicate, values)) / max(len(values), 1)

    def named(col, *words):
        return col < len(header) and any(w in header[col] for w in words)

    columns = list(range(width))
    label_col = max(columns, key=lambda c: (share(c, is_label), named(c, "class", "label", "pattern", "categ")))
    if share(label_col, is_label) == 0:  # every spelling unknown: trust the header, else column 1
        label_col = next((c for c in columns if named(c, "class", "label", "pattern", "categ")), min(1, width - 1))
    rest = [c for c in columns if c != label_col]
    key_col = max(rest, key=lambda c: (share(c, is_key), named(c, "id", "image", "file", "name")), default=None)
    if key_col is None:
        return {}, [Problem("bad label file", path, f"found {width} column(s); need an id and a class column")], []
    intensity_col = next((c for c in rest if c != key_col and (
        named(c, "intens") or share(c, lambda v: v.lower() in intensities) > 0.5)), None)
    specimen_col = next((c for c in rest if c not in (key_col, intensity_col) and
                         named(c, "specimen", "slide", "patient", "source")), None)
    warnings = []
    unused = [c for c in rest if c not in (key_col, intensity_col, specimen_col)]
    if unused:
        names_of = [header[c] if c < len(header) else f"column {c + 1}" for c in unused]
        warnings.append(f"{path}: columns not used: {', '.join(names_of)}")

    table, problems = {}, []
    for line, row in enumerate(body, start=first_line):
        cell = (lambda c: row[c] if c is not None and c < len(row) else "")
        key = image_key(cell(key_col))
        if not key:
            problems.append(Problem("bad label file", path, f"line {line}: no id in {row}"))
            continue
        if key in table:
            problems.append(Problem("duplicate id", path, f"line {line}: id {key} already on line {table[key].line}"))
            continue
        raw_intensity = cell(intensity_col)
        intensity = raw_intensity.lower() or None
        row_problems = []
        if intensity is not None and intensity not in intensities:
            row_problems.append(Problem("unknown value", path, f"line {line}: intensity {raw_intensity!r} for cell "
                                                               f"{key}; known: {', '.join(intensities)}"))
            intensity = None
        table[key] = LabelRow(key, canonical(cell(label_col), names, aliases), cell(label_col), line,
                              intensity, cell(specimen_col) or None, row_problems)
    return table, problems, warnings


def join(table: dict, label_file: str, splits: dict[str, CellFolder], known: list[str]):
    """Pair label rows with image files; every orphan on either side is a problem."""
    records = {split: [] for split in splits}
    problems, seen = [], {}
    for split, cells in splits.items():
        for key in sorted(cells.images, key=lambda k: (not k.isdigit(), int(k) if k.isdigit() else 0, k)):
            file = cells.images[key]
            if key in seen:
                problems.append(Problem("duplicate id", file, f"cell {key} is also {seen[key]}"))
                continue
            seen[key] = file
            row = table.get(key)
            if row is None:
                problems.append(Problem("unlabelled image", file, f"no row for cell {key} in {label_file}"))
                continue
            if row.label is None:
                problems.append(Problem("unknown label", label_file,
                                        f"line {row.line}: {row.raw_label!r} for cell {key}; known: {', '.join(known)}"))
                continue
            mask, carried = None, list(row.problems)  # reported when the row is read, with what that finds
            if cells.masks is not None:
                mask = cells.masks.get(key)
                if mask is None:
                    carried.append(Problem("missing mask", file, f"no {key}_mask image beside it"))
            records[split].append({"key": key, "image_file": file, "mask_file": mask, "label": row.label,
                                   "metadata": {"intensity": row.intensity, "specimen_id": row.specimen},
                                   "problems": carried})
        for key, mask in (cells.masks or {}).items():
            if key not in cells.images:
                problems.append(Problem("missing image", mask, "mask without its cell image"))
    folders = ", ".join(c.folder + "/" for c in splits.values())
    for key, row in table.items():
        if key not in seen:
            problems.append(Problem("missing image", label_file, f"line {row.line} lists cell {key}; not in {folders}"))
    return records, problems


def split_folder_sets(source: Source) -> dict[str, dict[str, str]]:
    """Folders named like splits (training/validation/test, train/val/test), grouped by parent."""
    sets: dict[str, dict[str, str]] = {}
    for folder, files in source.folders().items():
        split = known_split(folder)
        if split and any(is_image(f) for f in files):
            sets.setdefault(parent(folder), {})[split] = folder
    return {root: dict(sorted(found.items(), key=lambda kv: split_order(kv[0])))
            for root, found in sorted(sets.items(), key=lambda kv: kv[0].count("/"))}


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


def finish(layout, records, problems, warnings, cells, published, offset=None, label_files=()) -> Scan:
    """Number the rows (image_id from the cell id, stable across rebuilds) and note ignored files."""
    for split, rows in records.items():
        base = (offset or {}).get(split, 0)
        for index, record in enumerate(rows, start=1):
            key = record.pop("key")
            record["image_id"] = base + (int(key) if key.isdigit() else index)
    read = {f.lower() for f in label_files}
    ignored = [f for c in cells.values() for f in c.ignored if f.lower() not in read]
    return Scan(layout, records, problems, published, warnings + ignored_files(ignored, "non-image files in cell "
                                                                                        "folders"))
