"""Leukemia: ISBI 2019 C-NMC, normal (hem) versus leukemic (all) B-lymphoid cells, 450x450 RGB BMP.

Layouts and counts: docs/leukemia.md. The Kaggle download and the TCIA layout differ only in
wrapper folder names, so one detection serves both: `fold_N/{all,hem}/` training folders, the
preliminary-phase images with their labels CSV (which maps each anonymised `N.bmp` back to its
original name, so patient ids are known there too) and the final-phase images, whose labels were
never published (`label` is -1). The openmedlab repackaging (`image/` + train/val/test .txt) holds the
labelled preliminary set only.
"""

from __future__ import annotations

import os
import re

import datasets

from ..published import PublishedResult
from ..builder import MedsetsBuilder, MedsetsConfig, Record, Scan
from ..checks import Problem
from ..label_files import Column, find_columns
from ..layout import ignored_files, known_split, rank_image_ids
from ..schema import classification_features
from ..source import Source, parent, stem, suffix


class Leukemia(MedsetsBuilder):
    """C-NMC 2019 (ISBI): normal versus leukemic B-lymphoid cell images, with patient ids and folds."""

    BUILDER_CONFIGS = [MedsetsConfig(name="cnmc", description=(
        "ISBI 2019 C-NMC: 3 training folds (10,661 cells), the labelled preliminary test set (1,867) "
        "and the unlabelled final test set"))]
    DEFAULT_CONFIG_NAME = "cnmc"

    LABELS = ["normal", "leukemia"]  # 0 = hem, 1 = all, as in the challenge CSV
    LABEL_SPELLINGS = {"0": "normal", "hem": "normal", "normal": "normal",
                       "1": "leukemia", "all": "leukemia", "leukemia": "leukemia"}
    UNLABELLED = -1  # the final-phase test set: labels never published
    # UID_<patient>_<image>_<cell>_<all|hem>.bmp; normal subjects' patient ids start with H.
    ORIGINAL_NAME = re.compile(r"^UID_(?P<patient>H?\d+)_(?P<image>\d+)_(?P<cell>\d+)_(?P<cls>all|hem)$",
                               re.IGNORECASE)
    FOLD_CLASS_FOLDER = re.compile(r"(^|/)fold_(?P<fold>\d+)/(?P<cls>all|hem)$", re.IGNORECASE)
    PRELIM_FOLDER, FINAL_FOLDER = "c-nmc_test_prelim_phase_data", "c-nmc_test_final_phase_data"
    PRELIM_LABELS = re.compile(r"prelim.*labels?\.csv$", re.IGNORECASE)
    FLAT_IMAGE_FOLDER = "image"  # the repackaging: image/ beside train.txt, val.txt, test.txt
    IMAGE_SUFFIXES = (".bmp", ".png")  # the cells are BMP; PNG copies of them are accepted too
    LAYOUTS = ("training_data/ or C-NMC_training_data/ with fold_0..2/{all,hem}/*.bmp "
               "(plus the prelim/final test folders)",
               "Leukemia/image/*.bmp with train.txt, val.txt, test.txt")

    FOLD_COUNTS = {"0": (2397, 1130), "1": (2418, 1163), "2": (2457, 1096)}  # (all, hem) per training fold
    PRELIM_COUNTS = (1219, 648)  # (all, hem) in the labelled preliminary test set
    PUBLISHED_COUNTS = {
        "train": {"total": sum(a + h for a, h in FOLD_COUNTS.values()),
                  "fold": {f: a + h for f, (a, h) in FOLD_COUNTS.items()},
                  "fold+label": {f"{f}/{name}": n for f, (a, h) in FOLD_COUNTS.items()
                                 for name, n in (("leukemia", a), ("normal", h))}},
        "validation": {"total": sum(PRELIM_COUNTS), "label": dict(zip(("leukemia", "normal"), PRELIM_COUNTS))},
    }
    # The repackaging splits the labelled preliminary set; only its totals are published.
    PUBLISHED_FLAT = {"*": PUBLISHED_COUNTS["validation"]}

    COUNTED_COLUMNS = ("label", "fold", "fold+label")
    GROUP_COLUMN = "patient_id"
    PUBLISHED_RESULTS = (
        PublishedResult("cnmc", "weighted F1", 0.9104, "neighbourhood correction (Pan et al., first place)",
                        "the challenge's final test set (labels never published), a correction that uses the "
                        "test set itself", "Pan et al., ISBI 2019 C-NMC challenge, Springer LNBE 2019"),
    )
    # 450x450 cells on a black background; level chosen by `python -m benchmarks build-leukemia`.
    PNG_COMPRESS_LEVEL = 1
    DEFAULT_NUM_PROC = os.cpu_count()
    CARD_NOTES = (
        "The `test` split (the challenge's final phase) has no public labels: `label` is -1 there.",
        "Splits are subject-disjoint in the challenge; `patient_id` (normal subjects keep their H prefix) "
        "lets you keep them so. The build report audits it.",
    )

    def _info(self):
        return datasets.DatasetInfo(
            description=self.config.description,
            features=classification_features(self.LABELS, with_mask=False, metadata={
                "patient_id": datasets.Value("string"),
                "image_number": datasets.Value("int32"),
                "cell_number": datasets.Value("int32"),
                "fold": datasets.Value("int8"),
            }),
        )

    def _scan(self, source: Source) -> Scan:
        folds = {f: m for f in source.folders() if (m := self.FOLD_CLASS_FOLDER.search(f))}
        if folds:
            return self._scan_challenge(source, folds)
        image_folder = next((f for f in sorted(source.folders(), key=lambda d: d.count("/"))
                             if f.rsplit("/", 1)[-1].lower() == self.FLAT_IMAGE_FOLDER), None)
        if image_folder is not None:
            txts = {known_split(stem(f)): f for f in source.files_in(parent(image_folder))
                    if suffix(f) == ".txt" and known_split(stem(f))}
            if txts:
                return self._scan_flat(source, image_folder, txts)
        raise self.layout_not_found(source, f"leukemia: {source.path} does not hold a known C-NMC layout.")

    def _images_in(self, source: Source, folder: str, ignored: list) -> list[str]:
        files = []
        for f in source.files_in(folder):
            (files if suffix(f) in self.IMAGE_SUFFIXES else ignored).append(f)
        return files

    # -- the challenge's layout (Kaggle and TCIA) -----------------------------------------------------
    def _scan_challenge(self, source: Source, folds: dict) -> Scan:
        records = {"train": [], "validation": [], "test": []}
        problems, warnings, ignored = [], [], []
        train_root = parent(parent(next(iter(folds))))
        kaggle = train_root.rsplit("/", 1)[-1].lower() == "training_data"
        for folder, match in sorted(folds.items(), key=lambda kv: kv[0].lower()):
            folder_label = self.LABEL_SPELLINGS[match["cls"].lower()]
            for f in self._images_in(source, folder, ignored):
                parsed = parse_original_name(f)
                if parsed is None:
                    problems.append(Problem("unparseable name", f,
                                            "expected UID_<patient>_<image>_<cell>_<all|hem>.bmp"))
                elif parsed["label"] != folder_label:
                    problems.append(Problem("label contradicts name", f, f"in a {match['cls']}/ folder"))
                else:
                    records["train"].append(Record(f, folder_label,
                                                   metadata=name_metadata(parsed, int(match["fold"]))))

        by_folder = source.folders()
        prelim = self._named_image_folder(by_folder, self.PRELIM_FOLDER)
        final = self._named_image_folder(by_folder, self.FINAL_FOLDER)
        label_csv = next((f for f in source.files if self.PRELIM_LABELS.search(f)), None)
        if prelim and label_csv:
            records["validation"], found = self._read_prelim(source, prelim, label_csv, ignored)
            problems += found
        elif prelim or label_csv:
            problems.append(Problem("bad label file", label_csv or prelim,
                                    "the preliminary-phase images and their *_labels.csv come together; "
                                    "one is missing"))
        else:
            warnings.append("no preliminary-phase test data (C-NMC_test_prelim_phase_data): no validation split")
        if final:
            records["test"] = [Record(f, self.UNLABELLED, metadata=name_metadata(None))
                               for f in sorted(self._images_in(source, final, ignored), key=numeric_order)]
        else:
            warnings.append("no final-phase test data (C-NMC_test_final_phase_data): no test split")
        layout = ("Kaggle download (training_data/, validation_data/, testing_data/)" if kaggle
                  else "TCIA layout (C-NMC_training_data/, C-NMC_test_*_phase_data/)")
        return self._finish(layout, records, problems, warnings, ignored, self.PUBLISHED_COUNTS)

    def _named_image_folder(self, folders: dict, name: str) -> str | None:
        """The folder called `name` that holds the images (TCIA nests one inside another of the same name)."""
        hits = [f for f, files in folders.items()
                if f.rsplit("/", 1)[-1].lower() == name and any(suffix(x) == ".bmp" for x in files)]
        return max(hits, key=lambda f: f.count("/"), default=None)

    def _read_prelim(self, source: Source, folder: str, label_csv: str, ignored: list):
        """Rows 'Patient_ID,new_names,labels' = original name, anonymised N.bmp, 0/1."""
        rows = source.read_rows(label_csv)
        table = find_columns(rows, {
            "original": Column(("patient", "orig"), lambda v: parse_original_name(v) is not None),
            "new": Column(("new",), lambda v: re.fullmatch(r"\d+\.bmp", v, re.IGNORECASE) is not None),
            "label": Column(("label",), lambda v: v.lower() in self.LABEL_SPELLINGS),
        })
        if not table.body:
            return [], [Problem("bad label file", label_csv, "no rows")]
        if None in table.columns.values():
            return [], [Problem("bad label file", label_csv, "need the original name, new name and label columns; "
                                                             f"found {rows[0]}")]
        problems = []
        images = {stem(f).lower(): f for f in self._images_in(source, folder, ignored)}
        records, listed = [], set()
        for line, row in enumerate(table.body, start=table.first_line):
            original, new, label = (table.value(row, c) for c in ("original", "new", "label"))
            key = stem(new).lower()
            listed.add(key)
            parsed = parse_original_name(original)
            name = self.LABEL_SPELLINGS.get(label.lower())
            file = images.get(key)
            if file is None:
                problems.append(Problem("missing image", label_csv,
                                        f"line {line} lists {new}; not in {folder}/"))
            elif name is None:
                problems.append(Problem("unknown label", label_csv,
                                        f"line {line}: {label!r}; known: 0/1, hem/all"))
            elif parsed is None:
                problems.append(Problem("unparseable name", label_csv,
                                        f"line {line}: original name {original!r}"))
            elif parsed["label"] != name:
                problems.append(Problem("label contradicts name", label_csv,
                                        f"line {line}: label {label} for {original}"))
            else:
                records.append(Record(file, name, metadata=name_metadata(parsed)))
        for key, file in images.items():
            if key not in listed:
                problems.append(Problem("unlabelled image", file, f"not listed in {label_csv}"))
        records.sort(key=lambda r: numeric_order(r.image_file))
        return records, problems

    # -- the repackaging (image/ + .txt lists) ---------------------------------------------------------
    def _scan_flat(self, source: Source, image_folder: str, txts: dict) -> Scan:
        problems, warnings, ignored = [], [], []
        images = {f.rsplit("/", 1)[-1].lower(): f for f in self._images_in(source, image_folder, ignored)}
        records, listed, unnamed = {}, set(), 0
        for split, txt in txts.items():
            records[split] = []
            for line, row in enumerate(source.read_rows(txt), start=1):
                name, raw_label = row[0], row[-1] if len(row) > 1 else ""
                key = name.replace("\\", "/").rsplit("/", 1)[-1].lower()
                listed.add(key)
                label = self.LABEL_SPELLINGS.get(raw_label.strip().lower())
                parsed = parse_original_name(key)
                if key not in images:
                    problems.append(Problem("missing image", txt, f"line {line} lists {name}; not in {image_folder}/"))
                elif label is None:
                    problems.append(Problem("unknown label", txt, f"line {line}: {raw_label!r} for {name}; known: "
                                                                  "0/1, hem/all, normal/leukemia"))
                elif parsed is not None and parsed["label"] != label:
                    problems.append(Problem("label contradicts name", txt, f"line {line}: {raw_label} for {name}"))
                else:
                    unnamed += parsed is None
                    records[split].append(Record(images[key], label, metadata=name_metadata(parsed)))
        for key, file in images.items():
            if key not in listed:
                problems.append(Problem("unlabelled image", file, f"in none of {', '.join(txts.values())}"))
        if unnamed:
            warnings.append(f"{unnamed} image names are not original C-NMC names: patient_id left empty for them")
        return self._finish("image/ + train/val/test .txt (openmedlab repackaging)", records, problems, warnings,
                            ignored, self.PUBLISHED_FLAT)

    def _finish(self, layout, records, problems, warnings, ignored, published) -> Scan:
        present = {split: rows for split, rows in records.items() if rows}
        rank_image_ids(present)
        return Scan(layout, present, problems, self.published(present, published), warnings + ignored_files(ignored))


def parse_original_name(name: str) -> dict | None:
    """UID_H49_35_1_hem.bmp -> patient 'H49' (normal subjects keep their H), image 35, cell 1, 'normal'."""
    match = Leukemia.ORIGINAL_NAME.match(stem(name.strip().replace("\\", "/").rsplit("/", 1)[-1]))
    if not match:
        return None
    return {"patient_id": match["patient"].upper(), "image_number": int(match["image"]),
            "cell_number": int(match["cell"]), "label": Leukemia.LABEL_SPELLINGS[match["cls"].lower()]}


def name_metadata(parsed: dict | None, fold=None) -> dict:
    keys = ("patient_id", "image_number", "cell_number")
    return {**{k: parsed[k] if parsed else None for k in keys}, "fold": fold}


def numeric_order(path: str):
    name = stem(path)
    return (0, int(name), "") if name.isdigit() else (1, 0, name.lower())
