"""BIS5k: breast-cancer H&E images with pixel masks of the cancer region (5,000 train, 929 test).

Layout: shared/SOURCES.md section 5. Masks are stored 0/255; the built `label` holds class ids 0/1 so
the transformers semantic-segmentation example runs unchanged. The reference loader pairs images and
masks by sorted order, which silently shifts every pair after a missing file; this builder pairs by
file stem and reports whatever is left unpaired.
"""

from __future__ import annotations

import re

import datasets

from ..builder import LayoutNotFound, MedsetsBuilder, MedsetsConfig, Scan
from ..checks import Problem
from ..schema import segmentation_features
from ..source import Source, parent, stem, suffix

ID2LABEL = {0: "background", 1: "cancer"}
PUBLISHED = {"train": {"total": 5000}, "test": {"total": 929}}
SPLIT_OF_FOLDER = {"formal_train": "train", "formal_test": "test", "train": "train", "test": "test",
                   "val": "validation", "valid": "validation", "validation": "validation"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def split_name(folder: str) -> str:
    name = folder.rsplit("/", 1)[-1].lower()
    return SPLIT_OF_FOLDER.get(name) or re.sub(r"\W+", "_", name).strip("_")


class BIS5k(MedsetsBuilder):
    """BIS5k: H&E-stained breast-cancer images with pixel-level cancer masks, for semantic segmentation."""

    BUILDER_CONFIGS = [MedsetsConfig(name="default", description="formal_train (5,000) and formal_test (929)")]
    DEFAULT_CONFIG_NAME = "default"
    MASK_COLUMN = "label"
    COUNTED_COLUMNS = ()  # the label is a mask: only example counts are published
    ID2LABEL = ID2LABEL
    CARD_NOTES = (
        "`label` is the target mask with class ids (0 background, 1 cancer); `id2label.json` names them.",
        "Research use only, per the BIS5k authors.",
    )

    def _info(self):
        return datasets.DatasetInfo(description=self.config.description, features=segmentation_features())

    def _scan(self, source: Source) -> Scan:
        pairs = image_mask_folders(source)
        if not pairs:
            lines = [f"bis5k: {source.path} does not hold the BIS5k layout.", "Looked for:",
                     "  formal_train/images/*.png with formal_train/masks/*.png (and formal_test/ likewise)",
                     "Found:"] + [f"  {x}" for x in source.summary()]
            raise LayoutNotFound("\n".join(lines), hint="Point --source at the extracted BIS5k folder, a folder "
                                                        "above it, or the .zip.")
        records, problems, ignored = {}, [], []
        for split_folder, (image_folder, mask_folder) in pairs.items():
            split = split_name(split_folder)
            images = by_stem(source.files_in(image_folder), ignored)
            masks = by_stem(source.files_in(mask_folder), ignored)
            records[split] = [{"image_file": images[key], "mask_file": masks[key], "metadata": {}}
                              for key in sorted(images) if key in masks]
            problems += [Problem("missing mask", images[key], f"no mask with this stem in {mask_folder}/")
                         for key in sorted(images) if key not in masks]
            problems += [Problem("missing image", masks[key], f"mask without an image in {image_folder}/")
                         for key in sorted(masks) if key not in images]
        order = ["train", "validation", "test"]
        records = dict(sorted(records.items(), key=lambda kv: (order.index(kv[0]) if kv[0] in order else 9, kv[0])))
        ranks = {f: i for i, f in enumerate(sorted(r["image_file"] for rows in records.values() for r in rows), 1)}
        for rows in records.values():
            for record in rows:
                record["image_id"] = ranks[record["image_file"]]
        warnings = [f"{len(ignored)} files that are not images ignored: {', '.join(ignored[:5])}"] if ignored else []
        return Scan("formal_train/ + formal_test/, images/ and masks/ paired by file stem", records, problems,
                    {s: c for s, c in PUBLISHED.items() if s in records}, warnings)


def image_mask_folders(source: Source) -> dict[str, tuple[str, str]]:
    """split folder -> (its images/ folder, its masks/ folder), for every split folder holding both."""
    folders = {f.lower(): f for f in source.folders()}
    found = {}
    for low, folder in folders.items():
        if low.rsplit("/", 1)[-1] in ("images", "image", "imgs", "img"):
            split_folder = parent(folder)
            prefix = f"{split_folder}/" if split_folder else ""
            for name in ("masks", "mask", "labels", "label", "gt"):
                if f"{prefix}{name}".lower() in folders:
                    found[split_folder] = (folder, folders[f"{prefix}{name}".lower()])
                    break
    return dict(sorted(found.items()))


def by_stem(files: list[str], ignored: list) -> dict[str, str]:
    out = {}
    for f in files:
        if suffix(f) in IMAGE_SUFFIXES:
            out[stem(f).lower()] = f
        else:
            ignored.append(f)
    return out
