"""HEp-2 cell patterns: ICPR 2014 cell level (a.k.a. ICIP 2013 task 1) and the ICPR 2012 MIVIA contest.

Layouts and counts: shared/SOURCES.md sections 1 and 2. The `icpr2014` config accepts the
organisers' release (cells + masks, one `train` split), the processed 78x78 distribution
(train/validation/test folders, one gt_training.csv) and the train/test + train.csv/test.csv
layout of the openmedlab card; the variant is detected.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import datasets

from ..builder import MedsetsBuilder, MedsetsConfig, Scan, canonical
from ..checks import Problem
from ..layout import ignored_files, is_image, known_split, split_order
from ..schema import classification_features
from ..source import Source, parent, stem


class HEp2(MedsetsBuilder):
    """HEp-2 indirect immunofluorescence cell crops, staining pattern classification."""

    BUILDER_CONFIGS = [
        MedsetsConfig(name="icpr2014", description="ICPR 2014 cell level: 13,596 labelled cells, 6 patterns"),
        MedsetsConfig(name="icpr2012", description="ICPR 2012 MIVIA contest: 1,455 cells from 28 slide images"),
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
    ICPR2012_LAYOUTS = ("training/gt_training.csv and training/NNN.png + NNN_mask.png (test/ likewise), cells.csv",)

    INTENSITIES = ["positive", "intermediate"]
    MASK_NAME = re.compile(r"^(?P<key>.+?)[_\-]mask$", re.IGNORECASE)  # 00001_Mask.png, 001_mask.png

    COUNTED_COLUMNS = ("label", "intensity")
    GROUP_COLUMN = "specimen_id"

    def _info(self):
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
        if self.config.name == "icpr2012":
            if contest_root is None:
                raise self._not_found(source, "ICPR 2012 contest", self.ICPR2012_LAYOUTS,
                                      other=self._find_icpr2014(source) and "icpr2014")
            return self._scan_icpr2012(source, contest_root)
        found = None if contest_root is not None else self._find_icpr2014(source)
        if found is None:
            raise self._not_found(source, "ICPR 2014", self.ICPR2014_LAYOUTS,
                                  other=contest_root is not None and "icpr2012")
        return found()

    def _not_found(self, source: Source, what: str, looked_for: tuple, other: str | None):
        hint = f"This looks like the HEp-2 {other} layout: build it with --config {other}." if other else ""
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
