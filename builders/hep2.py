"""HEp-2 cell patterns: ICPR 2014 cell level (a.k.a. ICIP 2013 task 1) and the ICPR 2012 MIVIA contest.

Each config is one release, and its facts (classes, published counts, the layouts it knows, what a row
is) are fields of its `HEp2Config` below. How each release's files are read is in its own module:
- `hep2_icpr2014`: the organisers' release (cells + masks, one `train` split), the processed 78x78
  distribution (train/validation/test folders, one gt_training.csv) and the train/test + train.csv /
  test.csv repackaging; the variant is detected.
- `hep2_mivia`: the MIVIA download of ICPR 2012, the contest folder and `Main_Dataset/`, the later
  release of the same 28 slide images with every cell located on them (Images/NN/NN.bmp + NN.csv,
  Cells/Cell_Masks/NN/, Cells/Cell_Images/NN/). `icpr2012` builds the cells from either (from both:
  the contest's cells, cross-checked slide by slide against Main_Dataset); `icpr2012_slides` builds the
  slides, with every cell's box, an instance mask and a semantic mask, for detection and segmentation.

What is known of the real files, and what is assumed, is in docs/hep2.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import datasets

from ..published import PublishedResult
from ..builder import MedsetsBuilder, MedsetsConfig, Scan
from ..schema import classification_features, detection_features
from ..source import Source
from . import hep2_icpr2014, hep2_mivia

ICPR2014_LABELS = ["homogeneous", "speckled", "nucleolar", "centromere", "numem", "golgi"]
ICPR2012_LABELS = ["homogeneous", "coarse_speckled", "fine_speckled", "nucleolar", "centromere", "cytoplasmatic"]
INTENSITIES = ["positive", "intermediate"]


@dataclass
class HEp2Config(MedsetsConfig):
    """One HEp-2 release: its classes, how its rows are read and what is published about it."""

    labels: tuple[str, ...] = ()  # canonical class names, in published order
    aliases: dict[str, str] = field(default_factory=dict)  # other spellings of them in the files
    reader: str = ""  # "icpr2014", "icpr2012" (cells) or "slides"
    layouts: tuple[str, ...] = ()  # what the layout-not-found message says was looked for
    published: dict = field(default_factory=dict)  # the counts of `MedsetsBuilder.PUBLISHED_COUNTS`' form
    counted_columns: tuple[str, ...] = ("label", "intensity")  # counted per value in the report
    summed_facts: tuple[str, ...] = ()  # summed per split in the report
    id2label: dict[int, str] | None = None  # of the segmentation target, written as id2label.json


class HEp2(MedsetsBuilder):
    """HEp-2 indirect immunofluorescence cell crops, staining pattern classification."""

    BUILDER_CONFIG_CLASS = HEp2Config

    # -- ICPR 2014 -----------------------------------------------------------------------------------------
    ICPR2014_LABELS = ICPR2014_LABELS
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
    ICPR2012_LABELS = ICPR2012_LABELS
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
    SLIDE_ID2LABEL = {0: "background", **{i + 1: name for i, name in enumerate(ICPR2012_LABELS)}}
    CELL_IDS_PER_SLIDE = 1000  # image_id of a Main_Dataset cell = slide * 1000 + its id in NN.csv

    INTENSITIES = INTENSITIES
    MASK_NAME = re.compile(r"^(?P<key>.+?)[_\-]mask$", re.IGNORECASE)  # 00001_Mask.png, 001_mask.png
    GROUP_COLUMN = "specimen_id"
    PUBLISHED_RESULTS = (
        PublishedResult("icpr2014", "mean class accuracy", 0.871, "Manivannan et al. (contest winner)",
                        "ICPR 2014 task 1, the organisers' private specimen-disjoint test set (never released)",
                        "Manivannan et al., Pattern Recognition 51, 2016"),
        PublishedResult("icpr2014", "mean class accuracy", 0.967, "deep CNN (Gao et al.)",
                        "a random split of the 13,596 released cells (cells of one specimen on both sides)",
                        "Gao et al., IEEE J. Biomed. Health Inform. 21(2), 2017"),
        PublishedResult("icpr2012", "accuracy", 0.739, "ConvNeXt-B ImageNet-22K 224²",
                        "contest test set (734 cells), official training set split 5:5", "the ICPR 2012 report "
                        "on ConvNeXt-B and CoAtNet, Table 3", "test", "accuracy"),
        PublishedResult("icpr2012", "accuracy", 0.756, "Custom CoAtNet JFT-3B 224²",
                        "contest test set (734 cells), official training set split 5:5", "the same report, Table 3",
                        "test", "accuracy"),
        PublishedResult("icpr2012", "average classification accuracy", 0.812, "DACN",
                        "contest test set, as the report above quotes it", "Liu et al., ISBI 2017", "test",
                        "accuracy"),
    )
    CONFIG_TASKS = {"icpr2012_slides": ("object-detection", "image-segmentation")}

    BUILDER_CONFIGS = [
        HEp2Config(name="icpr2014", description="ICPR 2014 cell level: 13,596 labelled cells, 6 patterns",
                   labels=tuple(ICPR2014_LABELS), aliases=ICPR2014_ALIASES, reader="icpr2014",
                   layouts=ICPR2014_LAYOUTS),
        HEp2Config(name="icpr2012", description="ICPR 2012 MIVIA contest: 1,455 cells from 28 slide images",
                   labels=tuple(ICPR2012_LABELS), aliases=ICPR2012_ALIASES, reader="icpr2012",
                   layouts=ICPR2012_LAYOUTS, published=ICPR2012_PUBLISHED),
        HEp2Config(name="icpr2012_slides", description="ICPR 2012 MIVIA Main_Dataset: the 28 slide images, "
                                                       "every cell's box, pattern and intensity, instance and "
                                                       "semantic masks (detection, segmentation)",
                   labels=tuple(ICPR2012_LABELS), aliases=ICPR2012_ALIASES, reader="slides",
                   layouts=ICPR2012_LAYOUTS[1:], published=ICPR2012_SLIDES_PUBLISHED,
                   # a row is a slide: its cells are summed, not its label counted
                   counted_columns=(), summed_facts=("cells",), id2label=SLIDE_ID2LABEL),
    ]
    DEFAULT_CONFIG_NAME = "icpr2014"

    def counted_columns(self) -> tuple[str, ...]:
        return self.config.counted_columns

    def summed_facts(self) -> tuple[str, ...]:
        return self.config.summed_facts

    @classmethod
    def id2label(cls, config: str) -> dict[int, str] | None:
        return next(c.id2label for c in cls.BUILDER_CONFIGS if c.name == config)

    def _info(self):
        labels = list(self.config.labels)
        if self.config.reader == "slides":
            features = detection_features(labels, with_mask=True, tile=False,
                                          object_columns={"intensity": datasets.ClassLabel(names=self.INTENSITIES),
                                                          "csv_bbox": datasets.List(datasets.Value("float32"), length=4)},
                                          mask_columns={"instance_mask": datasets.Image()},
                                          columns={"specimen_id": datasets.Value("string")})
        else:
            features = classification_features(labels, with_mask=True, metadata={
                "intensity": datasets.ClassLabel(names=self.INTENSITIES),
                "specimen_id": datasets.Value("string"),
            })
        return datasets.DatasetInfo(description=self.config.description, features=features)

    def _scan(self, source: Source) -> Scan:
        if self.config.reader == "slides":
            return hep2_mivia.scan_slides(self, source)
        if self.config.reader == "icpr2012":
            scan = hep2_mivia.scan_cells(self, source)
            if scan is None:  # say so when the download is the other release
                raise self.not_found(source, other=hep2_icpr2014.find(self, source) and "icpr2014")
            return scan
        # The 2012 contest's training/ folder would pass for a 2014 split folder: it is looked for first.
        if hep2_mivia.find_contest(source) is not None:
            raise self.not_found(source, other="icpr2012")
        found = hep2_icpr2014.find(self, source)
        if found is None:
            raise self.not_found(source)
        return found()

    def not_found(self, source: Source, other: str | None = None, hint: str = ""):
        """No layout of this config's release: what was looked for, and the config to use when the download
        holds another HEp-2 release."""
        hint = hint or (f"This looks like the HEp-2 {other} layout: build it with config_name=\"{other}\"." if other else "")
        what = {"icpr2014": "ICPR 2014", "icpr2012": "ICPR 2012", "slides": "ICPR 2012 Main_Dataset"}[self.config.reader]
        return self.layout_not_found(source, f"hep2: {source.path} does not hold a known HEp-2 {what} layout.",
                                     self.config.layouts, hint)

    def _examples(self, record):
        if isinstance(record, hep2_mivia.SlideRecord):
            yield hep2_mivia.slide_example(self, record)
        elif isinstance(record, hep2_mivia.CutCellRecord):
            yield hep2_mivia.main_dataset_cell(self, record)
        else:
            yield from super()._examples(record)

    def _make_report(self, problems, examples):
        report = super()._make_report(problems, examples)
        report.findings += hep2_mivia.mask_findings(examples)
        return report
