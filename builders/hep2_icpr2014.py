"""How the ICPR 2014 HEp-2 cells are read: three published layouts, detected from what the download holds.

(A) the organisers' release: gt_training.csv beside one folder of NNNNN.png + NNNNN_Mask.png;
(B) the processed 78x78 distribution: training/validation/test folders (also train/val/test) and one
    gt_training.csv for all 13,596 ids;
(C) the train/ + test/ repackaging with a train.csv and a test.csv.
The class facts (names, counts, published split counts) are on `hep2.HEp2`. The cell folders and label
files read here are shared with the ICPR 2012 contest (`hep2_mivia`), whose cells are laid out alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..builder import Record, Scan
from ..checks import Problem
from ..label_files import Column, canonical, find_columns
from ..layout import ignored_files, is_image, known_split, split_order
from ..source import Source, parent, stem


def find(hep2, source: Source):
    """A callable producing the Scan of the detected 2014 variant, or None."""
    folders = source.folders()
    for folder in sorted(folders, key=lambda d: d.count("/")):
        if any(hep2.MASK_NAME.match(stem(f)) for f in folders[folder]):
            gt = source.find(f"{parent(folder)}/gt_training.csv")
            if gt:
                return lambda: scan_with_label_file(
                    hep2, source, "organisers' release (cells + masks, gt_training.csv)", gt, {"train": folder},
                    with_masks=True, published={"train": {"label": hep2.ICPR2014_CLASS_COUNTS}})
    gts = sorted((f for f in source.files if f.lower().endswith("gt_training.csv")), key=lambda f: f.count("/"))
    for root, splits in split_folder_sets(source).items():
        csvs = {s: source.find(f"{f}.csv") for s, f in splits.items()}
        if "train" in splits and all(csvs.values()):
            return lambda: scan_per_split_csv(hep2, source, splits, csvs)
        if "train" in splits and gts:
            published = {s: {"label": hep2.ICPR2014_PROCESSED_SPLIT_COUNTS[s]} for s in splits}
            return lambda: scan_with_label_file(
                hep2, source, "processed 78x78 distribution (split folders, gt_training.csv)", gts[0], splits,
                with_masks=False, published=published)
    return None


def scan_with_label_file(hep2, source, layout, gt, split_folders, with_masks, published) -> Scan:
    table, problems, warnings = read_label_file(source, gt, hep2.config.labels, hep2.config.aliases, hep2.INTENSITIES)
    cells = {s: read_cell_folder(source, f, with_masks, hep2.MASK_NAME) for s, f in split_folders.items()}
    records, join_problems = join(table, gt, cells, hep2.config.labels)
    return finish(layout, records, problems + join_problems, warnings, cells, published)


def scan_per_split_csv(hep2, source, split_folders, csvs) -> Scan:
    records, problems, warnings, cells = {}, [], [], {}
    for split, folder in split_folders.items():
        table, p, w = read_label_file(source, csvs[split], hep2.config.labels, hep2.config.aliases, hep2.INTENSITIES)
        cells[split] = read_cell_folder(source, folder, False, hep2.MASK_NAME)
        split_records, join_problems = join(table, csvs[split], {split: cells[split]}, hep2.config.labels)
        records.update(split_records)
        problems += p + join_problems
        warnings += w
    # Per-split counts of this repackaging are unpublished; the class totals are the release's.
    return finish("train/test folders with train.csv/test.csv (openmedlab card)", records, problems, warnings,
                  cells, {"*": {"label": hep2.ICPR2014_CLASS_COUNTS}})


# -- cell folders and label files (ICPR 2014 and the ICPR 2012 contest) ----------------------------------------
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


def read_label_file(source: Source, path: str, names, aliases: dict,
                    intensities: list[str]) -> tuple[dict, list, list]:
    """Label rows keyed by cell, with problems and warnings. Columns are found by content and header."""
    rows = source.read_rows(path)
    if not rows:
        return {}, [Problem("bad label file", path, "no rows")], []
    names = list(names)
    table = find_columns(rows, {
        "label": Column(("class", "label", "pattern", "categ"), lambda v: canonical(v, names, aliases) is not None,
                        position=1),
        "key": Column(("id", "image", "file", "name"), lambda v: v.isdigit() or is_image(v), position=0),
        "intensity": Column(("intens",), lambda v: v.lower() in intensities, min_share=0.5),
        "specimen": Column(("specimen", "slide", "patient", "source")),
    })
    if table.columns["key"] is None:
        width = max((len(r) for r in table.body), default=0)
        return {}, [Problem("bad label file", path, f"found {width} column(s); need an id and a class column")], []
    width = max((len(r) for r in table.body), default=0)
    unused = [c for c in range(width) if c not in table.columns.values()]
    warnings = []
    if unused:
        names_of = [table.header[c].lower() if c < len(table.header) else f"column {c + 1}" for c in unused]
        warnings.append(f"{path}: columns not used: {', '.join(names_of)}")

    rows_by_key, problems = {}, []
    for line, row in enumerate(table.body, start=table.first_line):
        key = image_key(table.value(row, "key"))
        if not key:
            problems.append(Problem("bad label file", path, f"line {line}: no id in {row}"))
            continue
        if key in rows_by_key:
            problems.append(Problem("duplicate id", path, f"line {line}: id {key} already on line {rows_by_key[key].line}"))
            continue
        raw_intensity = table.value(row, "intensity")
        intensity = raw_intensity.lower() or None
        row_problems = []
        if intensity is not None and intensity not in intensities:
            row_problems.append(Problem("unknown value", path, f"line {line}: intensity {raw_intensity!r} for cell "
                                                               f"{key}; known: {', '.join(intensities)}"))
            intensity = None
        raw_label = table.value(row, "label")
        rows_by_key[key] = LabelRow(key, canonical(raw_label, names, aliases), raw_label, line, intensity,
                                    table.value(row, "specimen") or None, row_problems)
    return rows_by_key, problems, warnings


def join(table: dict, label_file: str, splits: dict[str, CellFolder], known) -> tuple[dict, list]:
    """Pair label rows with image files; every orphan on either side is a problem. The records' image_id is
    the cell's number (set in `finish`)."""
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
            records[split].append(CellRecord(file, row.label, mask_file=mask, problems=carried, key=key,
                                             metadata={"intensity": row.intensity, "specimen_id": row.specimen}))
        for key, mask in (cells.masks or {}).items():
            if key not in cells.images:
                problems.append(Problem("missing image", mask, "mask without its cell image"))
    folders = ", ".join(c.folder + "/" for c in splits.values())
    for key, row in table.items():
        if key not in seen:
            problems.append(Problem("missing image", label_file, f"line {row.line} lists cell {key}; not in {folders}"))
    return records, problems


@dataclass
class CellRecord(Record):
    key: str = ""  # the cell's id as its file and label row name it ("12" for 00012.png)


def split_folder_sets(source: Source) -> dict[str, dict[str, str]]:
    """Folders named like splits (training/validation/test, train/val/test), grouped by parent."""
    sets: dict[str, dict[str, str]] = {}
    for folder, files in source.folders().items():
        split = known_split(folder)
        if split and any(is_image(f) for f in files):
            sets.setdefault(parent(folder), {})[split] = folder
    return {root: dict(sorted(found.items(), key=lambda kv: split_order(kv[0])))
            for root, found in sorted(sets.items(), key=lambda kv: kv[0].count("/"))}


def finish(layout, records, problems, warnings, cells, published, offset=None, label_files=()) -> Scan:
    """Number the rows (image_id from the cell id, stable across rebuilds) and note ignored files."""
    for split, rows in records.items():
        base = (offset or {}).get(split, 0)
        for index, record in enumerate(rows, start=1):
            record.image_id = base + (int(record.key) if record.key.isdigit() else index)
    read = {f.lower() for f in label_files}
    ignored = [f for c in cells.values() for f in c.ignored if f.lower() not in read]
    return Scan(layout, records, problems, published, warnings + ignored_files(ignored, "non-image files in cell "
                                                                                        "folders"))
