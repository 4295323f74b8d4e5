"""GZMH: breast-cancer mitosis, 1,534 H&E images of 2084x2084 px with masks (and maybe box files).

What is known about the raw download is in docs/gzmh.md: the counts, V2's split of the
test set by mitotic score, and that masks, boxes and centroids exist; the folder layout, label format
and mask encoding are not published. So the layout is inferred from what the download holds:
- split folders with any names (train, test, test_1or2_score, ...), normalised to `\\w+`;
- images and masks side by side (`0001.png` + `0001_mask.png`, also `_label`, `_gt`, ...) or in
  sibling folders (`images/` + `masks/`, `img/` + `label/`, ...), on either side of the split folder;
- optional box files (VOC XML, COCO JSON, CSV, YOLO txt) anywhere in a split folder.

Objects always come from the masks' connected components (`objects.components`), so `full` and
`tiles` agree pixel for pixel; box files are cross-checked against them and every disagreement is
reported. Config `tiles` cuts each image into tiles for training (SegFormer, detectors).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass

import datasets
import numpy as np
from PIL import Image

from ..boxes import BoxFileError, box_format, coco_image_keys, read_boxes
from ..builder import MedsetsBuilder, MedsetsConfig, Record, Scan
from ..checks import BuildError, Problem, RowProblems, converted_modes
from ..layout import IMAGE_FOLDERS, IMAGE_SUFFIXES, MASK_FOLDERS, images_and_masks, rank_image_ids, split_order
from ..objects import components, cross_check, objects_in_tile, tiles, tiling_problem
from ..duplicates import array_hash, pixel_hash, target_of
from ..near_duplicates import signature as near_signature
from ..published import PublishedResult
from ..schema import as_rgb, decode, detection_features, exif_orientation, jpeg_block_grid, jpeg_bytes_like, png_bytes, turned
from ..source import Source, UnreadableFile, parent, stem, suffix

# Folders that only say what they hold; removed from a box file's path to find its split folder.
BOX_FOLDERS = {"annotations", "annotation", "xml", "xmls", "boxes", "bbox", "bboxes", "yolo", "voc", "coco",
               "json", "csv", "labels", "label"}
# YOLO's side files list class names, not boxes.
NOT_BOX_FILES = {"classes.txt", "obj.names", "readme.txt", "license.txt"}
# Object ids: source image id * this + component number, the same in `full` and `tiles`.
OBJECTS_PER_IMAGE = 100_000
TILES_PER_IMAGE = 10_000  # tile ids: source image id * this + tile number
MAX_TILES_PER_IMAGE = 2_500  # refused above: a sane tiling makes tens (the ids would allow TILES_PER_IMAGE)
FIELD_SIDE = 2084  # px, every GZMH field as published: tiling parameters are judged on it
JPEG_GRID = 16  # px, the largest JPEG block (4:2:0 chroma): JPEG tiles start on the source's grid


@dataclass
class GZMHConfig(MedsetsConfig):
    tile_size: int = 512
    tile_overlap: int = 64  # px, at least: a mitosis's size, so each one lies whole inside some tile
    # "jpeg": a JPEG source's tiles as JPEG with its own tables, cut on its block grid (about the source's
    # size; decoded pixels differ slightly, measured in the report); "png": every tile lossless (~8x larger).
    tile_format: str = "jpeg"


@dataclass
class FieldRecord(Record):
    # The boxes that box files in the download give for this field (cross-checked against its mask); None
    # when its split has no box files.
    boxes: list | None = None


class GZMH(MedsetsBuilder):
    """GZMH: breast-cancer mitosis detection and segmentation (2084x2084 H&E, masks, boxes, centroids)."""

    BUILDER_CONFIG_CLASS = GZMHConfig
    BUILDER_CONFIGS = [
        GZMHConfig(name="tiles", description="the images cut into 512x512 tiles (overlap at least 64 px), "
                                             "masks and objects remapped; what training uses"),
        GZMHConfig(name="full", description="whole 2084x2084 images with mask and objects, splits as found"),
    ]
    # Tiles by default: the transformers examples load a dataset without a config name and resize each image
    # to about 600 px, where a 2084 px field's mitosis would shrink to some 10 px.
    DEFAULT_CONFIG_NAME = "tiles"
    # `medsets build gzmh` writes full beside tiles from one pass: each large image is decoded once for both.
    COMPANION_CONFIGS = ("full",)

    CATEGORIES = ["mitosis"]
    ID2LABEL = {0: "background", 1: "mitosis"}
    PUBLISHED_IMAGES, PUBLISHED_MITOSES = 1534, 2355
    LAYOUTS = ("split folders (any names) holding images and masks either side by side (0001.png + "
               "0001_mask.png; suffixes _mask, _label, _gt, _seg) or in sibling folders "
               f"({'/, '.join(sorted(IMAGE_FOLDERS))}/ + {'/, '.join(sorted(MASK_FOLDERS))}/), "
               f"as {', '.join(sorted(IMAGE_SUFFIXES))}",)

    COUNTED_COLUMNS = ()
    MASK_COLUMN = "label"
    DEFAULT_NUM_PROC = os.cpu_count() or 1  # decoding 2084x2084 images dominates (~5/s per core)
    # Small chunks, so that datasets shares a split's images evenly between the worker processes.
    RECORDS_PER_JOB = 1
    # Rows of 2084x2084 images are MBs each: small row groups keep the writer's buffer to a few images.
    WRITER_BATCH_SIZE = {"full": 4, "tiles": 64}
    # Tiles are re-encoded; level 1 as measured for C-NMC (`python -m benchmarks png-levels`).
    PNG_COMPRESS_LEVEL = 1
    PUBLISHED_RESULTS = tuple(
        PublishedResult("full", "mitosis F1 (the authors' matching rule)", f1, method,
                        "the GZMH test set, whole 2084x2084 fields, a hit within 20 px", citation, "test",
                        "gzmh_authors f1")
        for method, f1, citation in (("SSD", 0.511, "the GZMH dataset paper, J. Image and Graphics 2024"),
                                     ("FoCasNet", 0.563, "Wang et al., Biomed. Signal Process. Control 2024")))
    CARD_NOTES = (
        "`objects` come from the masks' connected components (8-connectivity): `bbox` COCO [x, y, w, h] and "
        "`centroid` [x, y] in pixels (pixel (i, j) covers [i, i+1) x [j, j+1)), `area` in pixels. A mitosis "
        "drawn as two separate blobs counts twice; box files in the download are cross-checked only.",
        "`label` is the mask with class ids (0 background, 1 mitosis); `id2label.json` names them.",
        "`tiles`: tiles keep `source_image_id` and `offset` [x, y]; an object is listed in every tile holding "
        "its centroid and `counted` in exactly one; tiles without mitoses are kept (the negatives).",
        "`tiles` is the default config: the transformers object-detection and semantic-segmentation examples "
        "load a dataset without a config name and resize each image to about 600 px, where a mitosis of a "
        "2084 px field would shrink to some 10 px. The whole fields: `load_dataset(..., \"full\")`; a plain "
        "`medsets build gzmh` writes both configs from one pass over the download.",
        "`tiles` of a JPEG source are JPEG, encoded again with the source's own quantisation tables and chroma "
        "subsampling and cut on its 8/16 px block grid (but the last row and column, which end at the border), "
        "so the config is about the source's size; decoded, they differ slightly from crops of the decoded "
        "source (the build report measures how much). Build with `--tile-format png` (from Python: "
        "`tile_format=\"png\"`) for exact pixels (~8x larger).",
        "When the download splits the test set (V2: test_1or2_score, test_3_score), `test` is declared as "
        "their union (no copy), as the transformers object-detection example expects a `test` split.",
    )
    SUMMED_FACTS = ("mitoses",)

    def summed_facts(self) -> tuple[str, ...]:
        return self.SUMMED_FACTS + (("source_images",) if self.config.name == "tiles" else ())

    def _info(self):
        return datasets.DatasetInfo(description=self.config.description, features=detection_features(
            self.CATEGORIES, with_mask=True, tile=self.config.name == "tiles"))

    @classmethod
    def split_unions(cls, splits: list[str]) -> dict[str, list[str]]:
        parts = [s for s in splits if s.startswith("test")]
        return {"test": parts} if parts and "test" not in splits else {}

    # -- layout ---------------------------------------------------------------------------------------
    def _scan(self, source: Source) -> Scan:
        size, overlap = self.config.tile_size, self.config.tile_overlap
        if self.config.tile_format not in ("jpeg", "png"):
            raise BuildError(f"gzmh: tile format {self.config.tile_format!r} is not one of jpeg, png.")
        wrong = tiling_problem(size, overlap, JPEG_GRID if self.config.tile_format == "jpeg" else 1, FIELD_SIDE,
                               MAX_TILES_PER_IMAGE)
        if wrong:
            raise BuildError(f"gzmh: {wrong[0]}.", hint=f"{wrong[1]} (default 512, 64: 25 tiles per field).")
        found = images_and_masks(source)
        pairs = found.pairs()
        if not pairs:
            raise self.layout_not_found(
                source, f"gzmh: no image/mask pairs found in {source.path} ({len(found.images)} images, "
                        f"{len(found.masks)} masks recognised).",
                hint="Point data_dir= at the extracted GZMH folder, a folder above it, or the .zip.")
        problems = found.unpaired()
        split_of = self.split_names(found.split_folders())
        box_files = [f for f in found.others if box_format(f) and f.rsplit("/", 1)[-1].lower() not in NOT_BOX_FILES]
        boxes, box_formats, box_warnings = self._read_box_files(source, box_files, split_of, problems)
        records: dict[str, list[FieldRecord]] = defaultdict(list)
        for (folder, key), (image_file, mask_file) in pairs.items():
            split = split_of[folder]
            records[split].append(FieldRecord(image_file, mask_file=mask_file,
                                              boxes=boxes[split].get(key, []) if split in boxes else None))
        rank_image_ids(records)
        for split, per_image in boxes.items():
            keys = {key for (folder, key) in pairs if split_of[folder] == split}
            if unknown := sorted(k for k, listed in per_image.items() if listed is not None and k not in keys):
                box_warnings.append(f"box files of {split} name {len(unknown)} images not in the download "
                                    f"(their boxes are ignored): {', '.join(unknown[:10])}")
        version = ("V2 (test split by mitotic score)" if {"test_1or2_score", "test_3_score"} <= set(records)
                   else "V1 (one test set)" if "test" in records else "version not recognised")
        truth = (f"objects from mask components, cross-checked against {' and '.join(sorted(box_formats))} box files"
                 if box_formats else "objects from mask components (no box files found)")
        layout = f"{version}; split folders {', '.join(sorted(records, key=split_order))}; {found.pairing}; {truth}"
        if self.config.name == "tiles":
            layout += (f"; tiles {self.config.tile_size}x{self.config.tile_size}, overlap {self.config.tile_overlap} "
                       "(at least; tiles spread evenly from border to border"
                       + (", on a JPEG source's block grid but the last" if self.config.tile_format == "jpeg" else "")
                       + f"), {self.config.tile_format.upper()} tiles"
                       + (" from JPEG sources, PNG from others" if self.config.tile_format == "jpeg" else ""))
        images = "total" if self.config.name == "full" else "source_images"  # in tiles a row is a tile
        published = {"*": {images: self.PUBLISHED_IMAGES, "mitoses": self.PUBLISHED_MITOSES}}
        return Scan(layout, records, problems, published, box_warnings)

    def _read_box_files(self, source: Source, box_files: list[str], split_of: dict, problems: list):
        """Per split: image key -> FileBoxes. A split with box files checks every image (an image that no
        file mentions has no boxes); a file that does not parse is a problem."""
        boxes: dict[str, dict[str, list]] = {}
        formats, warnings, unplaced = set(), [], []
        for file in box_files:
            split = box_split(file, split_of)
            if split is None:
                unplaced.append(file)
                continue
            try:
                data = source.read_bytes(file)
                found = read_boxes(file, data)
                keys = coco_image_keys(file, data) if suffix(file) == ".json" else [b.image for b in found] or [stem(file)]
            except (BoxFileError, UnreadableFile) as err:  # the message names the file; the problem does too
                problems.append(Problem("unreadable box file", file, str(err).removeprefix(f"{file}: ")))
                if suffix(file) in (".xml", ".txt"):  # one image's file: with skip_bad=True that image goes unchecked
                    boxes.setdefault(split, {})[stem(file).lower()] = None
                continue
            formats.add(box_format(file))
            per_image = boxes.setdefault(split, {})
            for key in keys:
                per_image.setdefault(key.lower(), [])
            for box in found:
                per_image.setdefault(box.image.lower(), []).append(box)
        if unplaced:
            warnings.append(f"{len(unplaced)} box files outside every split folder ignored: {', '.join(unplaced[:10])}")
        return boxes, formats, warnings

    # -- rows -----------------------------------------------------------------------------------------
    def _rows(self, record: FieldRecord):
        """The rows of this config and of its companions, from one decode."""
        stored_image, image, stored_mask, mask, found, labels, facts = self._decode(record)
        for config in (self.config.name, *self.config.companions):
            if config == "full":
                yield config, *self._full_row(record, stored_image, image, stored_mask, mask, found, facts)
            else:
                for row in self._tile_rows(record, image, mask, found, labels, facts):
                    yield config, *row

    def _decode(self, record: FieldRecord):
        """Image and mask decoded and checked (RowProblems if they cannot be), the mask's objects, and the
        facts about the whole image for the report."""
        problems = []
        stored_image, image = self.read(record.image_file, problems) or (None, None)
        turn = exif_orientation(image)  # a mask is drawn on its image's stored pixels: turned upright with them
        stored_mask, mask, stray, coding = self.read(record.mask_file, problems, as_mask=True,
                                                     decode=lambda raw: gzmh_mask(raw, turn)) or (None, None, 0, None)
        if mask is not None:
            self.check_mask_size(record.mask_file, mask, image, problems)
        if problems:
            raise RowProblems(problems)
        stored_image, mode = as_rgb(stored_image, image, self.PNG_COMPRESS_LEVEL)  # H&E: RGB, as the tiles are
        labels, found = components(mask)
        facts = {"stray_mask_pixels": stray, "mask_coding": coding, "pixel_hash": pixel_hash(image), "converted_from": mode,
                 "mask_hash": array_hash(mask), **({"exif_orientation": turn} if turn != 1 else {}),
                 "near_signature": near_signature(image) if self.config.near_duplicates else None}
        if record.boxes is not None:
            file_boxes = [b.scaled(image.width, image.height) if b.normalized else b for b in record.boxes]
            facts["box_disagreements"] = cross_check(found, file_boxes, record.image_file)
        return stored_image, image, stored_mask, mask, found, labels, facts

    def _full_row(self, record, stored_image, image, stored_mask, mask, found, facts):
        image_id = record.image_id
        objects = [{"component": c.index, "bbox": [float(v) for v in c.bbox], "area": c.area,
                    "centroid": list(c.centroid)} for c in found]
        example = {"image": stored_image, "label": stored_mask, "objects": object_columns(objects, image_id, False),
                   "image_id": image_id, "file_name": record.image_file}
        return example, image, {**facts, "mitoses": len(found), "mask_coverage": float(mask.mean())}

    def _tile_rows(self, record, image, mask, found, labels, facts):
        """The tiles of one image. A JPEG source's tiles are JPEG with its own tables, cut on its block grid
        (all but the last row and column of tiles, which end at the border); how their decoded pixels differ
        from the source's is measured on the first tile (on the grid) and the last (off it) of each image."""
        grid = jpeg_block_grid(image) if self.config.tile_format == "jpeg" else None
        pixels = np.asarray(image.convert("RGB"))
        image_id = record.image_id
        size, overlap = self.config.tile_size, self.config.tile_overlap
        cut = tiles(image.width, image.height, size, overlap, grid or 1)
        if len(cut) > MAX_TILES_PER_IMAGE:  # a field far larger than published: its tile ids would collide
            raise RowProblems([Problem("too many tiles", record.image_file,
                                       f"{image.width}x{image.height} px would make {len(cut):,} tiles of {size} px "
                                       f"(at most {MAX_TILES_PER_IMAGE:,})")])
        for tile in cut:
            window = np.s_[tile.y:tile.y + tile.height, tile.x:tile.x + tile.width]
            # A contiguous copy first: PIL takes a strided array by a slow path (~10x, measured: 2.4 vs 0.25 ms).
            tile_image = Image.fromarray(np.ascontiguousarray(pixels[window]))
            objects = objects_in_tile(labels, found, tile)
            encoded = jpeg_bytes_like(tile_image, image) if grid else png_bytes(tile_image, self.PNG_COMPRESS_LEVEL)
            example = {
                "image": {"bytes": encoded, "path": None},
                "label": {"bytes": png_bytes(Image.fromarray(np.ascontiguousarray(mask[window]))), "path": None},
                "objects": object_columns(objects, image_id, True),
                "source_image_id": image_id,
                "offset": [tile.x, tile.y],
                "image_id": image_id * TILES_PER_IMAGE + tile.index,
                "file_name": record.image_file,
            }
            first = tile.index == 0  # facts about the whole image are reported once, with its first tile
            tile_facts = {"source_images": int(first), "source_image_id": image_id, "pixel_hash": None,
                          "near_signature": None,  # tiles of one field are never copies of each other
                          "mitoses": sum(o["counted"] for o in objects), "mask_coverage": float(mask[window].mean()),
                          "tile_format": "jpeg" if grid else "png"}
            if first:
                tile_facts.update({key: value for key, value in facts.items() if key not in ("pixel_hash", "near_signature")},
                                  source_pixel_hash=facts["pixel_hash"], source_near_signature=facts["near_signature"])
            if grid and tile.index in (0, len(cut) - 1):
                on_grid = tile.x % grid == 0 and tile.y % grid == 0
                difference = np.abs(np.asarray(decode(encoded).convert("RGB"), np.int16) - pixels[window])
                tile_facts["jpeg_difference"] = {"on_grid": on_grid, "max": int(difference.max()),
                                                 "sum": int(difference.sum()), "values": int(difference.size)}
            yield example, tile_image, tile_facts

    # -- duplicates: whole source images, also in tiles -------------------------------------------------
    def _duplicate_units(self, examples):
        if self.config.name == "full":
            return super()._duplicate_units(examples)
        return [{"split": ex["split"], "image_id": ex["source_image_id"], "file_name": ex["file_name"],
                 "pixel_hash": ex["source_pixel_hash"], "near_signature": ex.get("source_near_signature"),
                 "target": target_of(ex)} for ex in examples if ex.get("source_images")]

    def _rows_of(self, examples, units):
        if self.config.name == "full":
            return super()._rows_of(examples, units)
        sources = {(unit["split"], unit["image_id"]) for unit in units}
        return {(ex["split"], ex["image_id"]) for ex in examples if (ex["split"], ex["source_image_id"]) in sources}

    def _make_report(self, problems, examples):
        report = super()._make_report(problems, examples)
        report.warnings += converted_modes(examples, "RGB")
        codings = defaultdict(list)
        for ex in examples:
            if ex.get("mask_coding"):
                codings[ex["mask_coding"]].append(ex["file_name"])
        if any(c != "0/255" for c in codings):  # unpublished encoding: say what was found and how it was read
            report.findings.append("mask encodings found: " + "; ".join(
                f"{coding} in {len(files)} masks (e.g. {files[0]})" for coding, files in sorted(codings.items())))
        measured = [ex["jpeg_difference"] for ex in examples if ex.get("jpeg_difference")]
        if measured:
            report.findings.append(tile_difference_finding(examples, measured))
        disagreements = [line for ex in examples for line in ex.get("box_disagreements", [])]
        if disagreements:
            report.warnings.append(f"box files vs masks: {len(disagreements)} disagreements (listed below; "
                                   "objects are taken from the masks)")
            report.warnings += disagreements
        return report


def tile_difference_finding(examples: list[dict], measured: list[dict]) -> str:
    """How JPEG tiles decode against the decoded source, per kind of tile, in 8-bit levels."""
    formats = defaultdict(int)
    for ex in examples:
        formats[ex["tile_format"]] += 1
    parts = []
    for on_grid, name in ((True, "on the block grid"), (False, "off it (last row and column)")):
        found = [m for m in measured if m["on_grid"] == on_grid]
        if found:
            mean = sum(m["sum"] for m in found) / sum(m["values"] for m in found)
            parts.append(f"{name}: mean |difference| {mean:.2f}, max {max(m['max'] for m in found)} "
                         f"({len(found)} tiles measured)")
    return (f"tiles: {formats['jpeg']} JPEG (re-encoded with each source's quantisation tables and chroma "
            f"subsampling), {formats['png']} PNG (lossless); decoded JPEG tiles against the crop of the decoded "
            "source, measured on each image's first and last tile, " + "; ".join(parts)
            + " (8-bit levels; for exact pixels build with tile_format=\"png\")")


def gzmh_mask(raw: bytes, orientation: int = 1):
    """The mask cell (0/1), the binary array, stray pixels and the encoding seen (None when empty). The
    encoding is not published: 0/255 (other values thresholded at 128, as for every dataset here) and 0/1
    are binary already; a mask whose values all lie below 128 (label or instance ids 1, 2, ...) would
    vanish under that threshold, so there every nonzero pixel is mitosis, and the report says so."""
    grey = np.asarray(turned(decode(raw).convert("L"), orientation))
    top = int(grey.max(initial=0))
    stray = 0
    if top == 0:
        binary, coding = grey.astype(np.uint8), None
    elif top == 1:
        binary, coding = grey.astype(np.uint8), "0/1"
    elif top < 128:
        values = np.unique(grey).tolist()
        binary = (grey > 0).astype(np.uint8)
        coding = f"values {{{', '.join(map(str, values[:8]))}{', ...' if len(values) > 8 else ''}}} (nonzero read as mitosis)"
    else:
        binary = (grey >= 128).astype(np.uint8)
        stray = int(grey.size - np.count_nonzero(grey == 0) - np.count_nonzero(grey == 255))
        coding = "0/255" if not stray else "0/255 with other values (thresholded at 128)"
    return {"bytes": png_bytes(Image.fromarray(binary)), "path": None}, binary, stray, coding


def object_columns(objects: list[dict], image_id: int, tiled: bool) -> dict:
    """The `objects` cell: a dict of lists, one entry per object."""
    columns = {
        "id": [image_id * OBJECTS_PER_IMAGE + o["component"] for o in objects],
        "bbox": [o["bbox"] for o in objects],
        "area": [o["area"] for o in objects],
        "centroid": [o["centroid"] for o in objects],
        "category": [0] * len(objects),
    }
    if tiled:
        columns["counted"] = [o["counted"] for o in objects]
    return columns


# -- box files ----------------------------------------------------------------------------------------
def box_split(file: str, split_of: dict[str, str]) -> str | None:
    """The split of a box file: the deepest split folder above it, else a split named by its file name."""
    folder = "/".join(f for f in parent(file).lower().split("/") if f not in BOX_FOLDERS | IMAGE_FOLDERS | MASK_FOLDERS)
    above = [f for f in split_of if f and (folder == f.lower() or folder.startswith(f.lower() + "/"))]
    if above:
        return split_of[max(above, key=len)]
    if "" in split_of:
        return split_of[""]
    name = re.sub(r"\W+", "_", stem(file).lower())
    named = [s for s in set(split_of.values()) if name == s or name.endswith("_" + s) or name.startswith(s + "_")]
    return max(named, key=len) if named else None
