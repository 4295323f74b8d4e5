"""Layout search: what every dataset module needs when it looks for its files in a raw download.

Image suffixes, split-folder names and their order, images and masks paired (side by side or in sibling
folders), image ids as the rank of a file's path, and the message when no known layout fits: what was
looked for and what was found. A dataset module keeps only its own facts (its extra split-folder names,
its mask naming) and hands them to these.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from .checks import BuildError, Problem
from .source import Source, stem, suffix

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
# Folders that say their files are images, or masks, of the split folder above them.
IMAGE_FOLDERS = frozenset({"images", "image", "imgs", "img", "jpegimages", "pictures", "original"})
MASK_FOLDERS = frozenset({"masks", "mask", "labels", "label", "gt", "groundtruth", "ground_truth", "annotation",
                          "annotations", "segmentation", "segmentationclass", "seg"})
# A mask beside its image: `0001_mask.png`, `0001-label.png`, `0001.gt.png`, ...
MASK_SUFFIX = re.compile(r"^(.+?)[_\-. ](masks?|labels?|gt|seg|anno(?:tation)?)$", re.IGNORECASE)

SPLIT_ORDER = ("train", "validation", "test")
# Split-folder (and split-file) names as datasets names splits; a dataset adds its own (BIS5k: formal_train).
SPLIT_SYNONYMS = {"train": "train", "training": "train", "val": "validation", "valid": "validation",
                  "validation": "validation", "test": "test", "testing": "test"}


class LayoutNotFound(BuildError):
    """No known layout of the dataset fits the download; the message says what was looked for and found."""

    @classmethod
    def in_source(cls, source: Source, headline: str, looked_for: list[str], hint: str = "") -> LayoutNotFound:
        lines = [headline, "Looked for:", *(f"  {x}" for x in looked_for), "Found:",
                 *(f"  {x}" for x in source.summary())]
        return cls("\n".join(lines), hint=hint or "Point data_dir= at the extracted download, a folder above it, "
                                                  "or the .zip.")


def is_image(path: str) -> bool:
    return suffix(path) in IMAGE_SUFFIXES


def known_split(name: str, synonyms: Mapping[str, str] = SPLIT_SYNONYMS) -> str | None:
    """The split a folder or file name stands for ('training' -> 'train'), or None when it names none."""
    return synonyms.get(name.rsplit("/", 1)[-1].strip().lower())


def split_name(folder: str, extra: Mapping[str, str] | None = None) -> str:
    """A split folder's name as a datasets split name (`\\w+`): the dataset's own names (`extra`), then the
    usual synonyms, else the name itself with every run of other characters as '_'. The download's root
    (no split folders) is 'train', as datasets would name it."""
    raw = folder.rsplit("/", 1)[-1].strip().lower()
    key = re.sub(r"\W+", "_", raw).strip("_")
    extra = extra or {}
    return extra.get(raw) or extra.get(key) or SPLIT_SYNONYMS.get(key) or key or "train"


def split_order(split: str) -> tuple:
    """Sort key of a split: train, validation, test, then any other (test_1or2_score, ...) by name."""
    return (SPLIT_ORDER.index(split) if split in SPLIT_ORDER else len(SPLIT_ORDER), split)


def ordered_splits(splits: Mapping[str, list]) -> dict[str, list]:
    return dict(sorted(splits.items(), key=lambda kv: split_order(kv[0])))


def rank_image_ids(splits: Mapping[str, list]):
    """`image_id` = the rank of the record's image path among all images of the download: unique, and
    stable across rebuilds of the same download (for datasets whose files carry no numeric id)."""
    ranks = {f: i for i, f in enumerate(sorted(r.image_file for rows in splits.values() for r in rows), 1)}
    for rows in splits.values():
        for record in rows:
            record.image_id = ranks[record.image_file]


@dataclass
class ImagesAndMasks:
    """Every image and mask of a download, keyed by (split folder, lower-cased stem) so that pairs share a
    key: the role folder (images/, masks/, ...) and the mask suffix (_mask, ...) are left out of it."""
    images: dict[tuple[str, str], str]
    masks: dict[tuple[str, str], str]
    others: list[str]  # files that are not images: label or box files, read me's
    pairing: str  # how the pairs were recognised, for the report

    def pairs(self) -> dict[tuple[str, str], tuple[str, str]]:
        return {key: (self.images[key], self.masks[key]) for key in sorted(self.images) if key in self.masks}

    def split_folders(self) -> set[str]:
        return {folder for folder, _ in self.images}

    def unpaired(self) -> list[Problem]:
        """Every image without its mask and every mask without its image."""
        problems = [Problem("missing mask", self.images[key], "no mask with this name beside it or in a masks "
                            "folder") for key in sorted(self.images) if key not in self.masks]
        return problems + [Problem("missing image", self.masks[key], "mask without an image")
                           for key in sorted(self.masks) if key not in self.images]


def images_and_masks(source: Source) -> ImagesAndMasks:
    images, masks, others = {}, {}, []
    seen = {"image folders": set(), "mask folders": set(), "mask suffixes": set()}
    for file in source.files:
        if not is_image(file):
            others.append(file)
            continue
        folders = file.split("/")[:-1]
        roles = [i for i, f in enumerate(folders) if f.lower() in IMAGE_FOLDERS | MASK_FOLDERS]
        role = roles[-1] if roles else None
        name = stem(file)
        named_mask = MASK_SUFFIX.match(name)
        in_mask_folder = role is not None and folders[role].lower() in MASK_FOLDERS
        if named_mask:
            name = named_mask.group(1)
            seen["mask suffixes"].add(stem(file)[len(name):])
        if role is not None:
            seen["mask folders" if in_mask_folder or named_mask else "image folders"].add(folders[role] + "/")
        split_folder = "/".join(f for i, f in enumerate(folders) if i != role)
        key = (split_folder, name.lower())
        target = masks if in_mask_folder or named_mask else images
        if key in target:  # same stem twice (0001.png and 0001.jpg): keep both visible as a problem later
            key = (split_folder, f"{name.lower()} ({suffix(file)})")
        target[key] = file
    where = " and ".join(f"{kind} in {' '.join(sorted(folders))}" for kind, folders in
                         (("images", seen["image folders"]), ("masks", seen["mask folders"])) if folders)
    named = f"masks named *{'/*'.join(sorted(seen['mask suffixes']))}" if seen["mask suffixes"] else ""
    pairing = ", ".join(p for p in (where or "images and masks side by side", named) if p)
    return ImagesAndMasks(images, masks, others, pairing)


def ignored_files(files: list[str], what: str = "files that are not images") -> list[str]:
    """The report's line about files a layout has no use for (none when there are none)."""
    return [f"{len(files)} {what} ignored: {', '.join(files[:5])}"] if files else []
