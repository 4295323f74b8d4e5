"""BIS5k: breast-cancer H&E images with pixel masks of the cancer region (5,000 train, 929 test).

What is known of the download: docs/bis5k.md. Masks are stored 0/255; the built `label` holds class ids 0/1 so
the transformers semantic-segmentation example runs unchanged. The reference loader pairs images and
masks by sorted order, which silently shifts every pair after a missing file; this builder pairs by
file stem and reports whatever is left unpaired.
"""

from __future__ import annotations

import datasets

from ..builder import MedsetsBuilder, MedsetsConfig, Record, Scan
from ..layout import ignored_files, images_and_masks, rank_image_ids
from ..schema import segmentation_features
from ..source import Source


class BIS5k(MedsetsBuilder):
    """BIS5k: H&E-stained breast-cancer images with pixel-level cancer masks, for semantic segmentation."""

    BUILDER_CONFIGS = [MedsetsConfig(name="default", description="formal_train (5,000) and formal_test (929)")]
    DEFAULT_CONFIG_NAME = "default"
    LAYOUTS = ("formal_train/images/*.png with formal_train/masks/*.png (and formal_test/ likewise)",)
    SPLIT_FOLDERS = {"formal_train": "train", "formal_test": "test"}
    PUBLISHED_COUNTS = {"train": {"total": 5000}, "test": {"total": 929}}
    ID2LABEL = {0: "background", 1: "cancer"}
    MASK_COLUMN = "label"
    COUNTED_COLUMNS = ()  # the label is a mask: only example counts are published
    CARD_NOTES = (
        "`label` is the target mask with class ids (0 background, 1 cancer); `id2label.json` names them.",
        "Research use only, per the BIS5k authors.",
    )

    def _info(self):
        return datasets.DatasetInfo(description=self.config.description, features=segmentation_features())

    def _scan(self, source: Source) -> Scan:
        found = images_and_masks(source)
        pairs = found.pairs()
        if not pairs:
            raise self.layout_not_found(source, f"bis5k: {source.path} does not hold the BIS5k layout.",
                                        hint="Point data_dir= at the extracted BIS5k folder, a folder above it, "
                                             "or the .zip.")
        split_of = self.split_names(found.split_folders())
        records: dict[str, list[Record]] = {}
        for (folder, _), (image_file, mask_file) in pairs.items():
            records.setdefault(split_of[folder], []).append(Record(image_file, mask_file=mask_file))
        rank_image_ids(records)
        folders = ", ".join(f"{folder.rsplit('/', 1)[-1]}/ ({split})" for folder, split in sorted(split_of.items()))
        return Scan(f"{folders}; {found.pairing}, paired by file stem", records, found.unpaired(),
                    self.published(records), ignored_files(found.others))
