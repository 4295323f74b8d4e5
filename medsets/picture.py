"""The sample picture of a built config, shown in its dataset card.

Classification: one row per class, a few examples each, the cell mask (if any) as a coloured outline.
Segmentation: a few images above the same images with their target mask overlaid.
Detection: images with mask and boxes above a zoom on one object of each. The rows are chosen from
one small column of the written Parquet shards (labels, object lists) and only the chosen rows' row
groups are read: a 13,596-cell build spent 4 s choosing when whole rows were read.
"""

from __future__ import annotations

import bisect
import io
import itertools
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from datasets import ClassLabel
from PIL import Image, ImageDraw, ImageFont

THUMBNAIL = 128  # pixels per thumbnail
MARGIN = 4
OVERLAY = np.array([255, 60, 60], np.float32)  # mask colour, blended at 40%


def shown(image: Image.Image) -> Image.Image:
    """A dim image (fluorescence: most of it near black) stretched for the eye only, its median (the
    background) to black and its 99.9th percentile to white; bright images (H&E) as they are."""
    pixels = np.asarray(image, np.float32)
    low, top = (float(v) for v in np.percentile(pixels.max(axis=-1), (50, 99.9)))
    if top >= 128 or top <= low:
        return image
    return Image.fromarray(np.clip((pixels - low) * (255 / (top - low)), 0, 255).astype(np.uint8))


def thumbnail(image_bytes: bytes, mask_bytes: bytes | None = None, outline: bool = False) -> Image.Image:
    """Fit an image into a THUMBNAIL square; a mask is blended over it, or only its outline drawn (cell masks,
    where a fill would hide the staining pattern the picture is meant to show)."""
    image = shown(Image.open(io.BytesIO(image_bytes)).convert("RGB"))
    if mask_bytes is not None:
        mask = np.asarray(Image.open(io.BytesIO(mask_bytes))) > 0
        if outline:  # thick enough to survive the shrink to THUMBNAIL pixels
            from scipy import ndimage  # here, not at the top: the CLI starts faster without it

            width = max(1, max(mask.shape) // THUMBNAIL)
            mask = mask & ~ndimage.binary_erosion(mask, iterations=width)
        pixels = np.asarray(image, np.float32)
        alpha = 1.0 if outline else 0.4
        pixels[mask] = (1 - alpha) * pixels[mask] + alpha * OVERLAY
        image = Image.fromarray(pixels.astype(np.uint8))
    image.thumbnail((THUMBNAIL, THUMBNAIL))
    tile = Image.new("RGB", (THUMBNAIL, THUMBNAIL))
    tile.paste(image, ((THUMBNAIL - image.width) // 2, (THUMBNAIL - image.height) // 2))
    return tile


def choose_rows(shards: list[Path], column: str, wanted) -> list[tuple[int, int]]:
    """Rows chosen from one small column only (labels, object lists), never from the images: `wanted(value,
    chosen)` says whether a row with this value joins the chosen (shard, row) list, which is done once it
    returns None. Stops reading at the first shard that completes the choice."""
    chosen: list[tuple[int, int, object]] = []
    for index, shard in enumerate(shards):
        for row, value in enumerate(pq.read_table(shard, columns=[column]).column(column).to_pylist()):
            verdict = wanted(value, chosen)
            if verdict is None:
                return [(s, r) for s, r, _ in chosen]
            if verdict:
                chosen.append((index, row, value))
    return [(s, r) for s, r, _ in chosen]


def rows_at(shards: list[Path], picks: list[tuple[int, int]], columns: list[str]) -> list[dict]:
    """The rows at (shard, row) positions, reading only the row groups that hold them (GZMH rows are MBs)."""
    found: dict[tuple[int, int], dict] = {}
    for index in sorted({s for s, _ in picks}):
        parquet = pq.ParquetFile(shards[index])
        starts = list(itertools.accumulate((parquet.metadata.row_group(g).num_rows
                                            for g in range(parquet.metadata.num_row_groups)), initial=0))
        by_group = defaultdict(list)
        for s, row in picks:
            if s == index:
                by_group[bisect.bisect_right(starts, row) - 1].append(row)
        for group, rows in by_group.items():
            table = parquet.read_row_group(group, columns=columns)
            for row in rows:
                found[(index, row)] = table.slice(row - starts[group], 1).to_pylist()[0]
    return [found[pick] for pick in picks]


def grid(rows_of_tiles: list[tuple[str, list[Image.Image]]], columns: int,
         headers: tuple[str, list[tuple[str, tuple]]] | None = None) -> Image.Image:
    """Rows of tiles, each row named on the left; `headers`: (name of the header row, [(text, colour)] one
    per column) written above the columns (what each column is, e.g. a slide and its pattern)."""
    font = ImageFont.load_default(size=14)
    label_width = 8 + max(int(font.getlength(name)) for name, _ in rows_of_tiles + ([headers] if headers else []))
    head = 22 if headers else 0
    width = label_width + columns * (THUMBNAIL + MARGIN) + MARGIN
    height = head + len(rows_of_tiles) * (THUMBNAIL + MARGIN) + MARGIN
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    if headers:
        draw.text((4, MARGIN + 2), headers[0], fill="black", font=font)
        for c, (text, colour) in enumerate(headers[1]):
            small = ImageFont.load_default(size=12)
            while small.size > 8 and small.getlength(text) > THUMBNAIL:
                small = ImageFont.load_default(size=small.size - 1)
            draw.text((label_width + MARGIN + c * (THUMBNAIL + MARGIN), MARGIN + 4), text, fill=colour, font=small)
    for r, (name, tiles) in enumerate(rows_of_tiles):
        top = head + MARGIN + r * (THUMBNAIL + MARGIN)
        draw.text((4, top + THUMBNAIL // 2 - 8), name, fill="black", font=font)
        for c, tile in enumerate(tiles):
            canvas.paste(tile, (label_width + MARGIN + c * (THUMBNAIL + MARGIN), top))
    return canvas


BOX_COLOUR = (40, 230, 80)
# One colour per category where there are several (HEp-2 slides: six patterns).
CATEGORY_COLOURS = [(255, 80, 80), (80, 160, 255), (255, 210, 40), (230, 90, 230), (60, 230, 230), (255, 140, 40)]


def box_colours(row: dict, categories: int) -> list[tuple[int, int, int]]:
    if categories <= 1:
        return [BOX_COLOUR] * len(row["objects"]["bbox"])
    return [CATEGORY_COLOURS[c % len(CATEGORY_COLOURS)] for c in row["objects"]["category"]]


def detection_tiles(row: dict, categories: int = 1) -> tuple[Image.Image, Image.Image]:
    """The whole image with mask and boxes, and a zoom on its first object (boxes of 40 px vanish when a
    2084 px field shrinks to a thumbnail)."""
    image = shown(Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB"))
    boxes = row["objects"]["bbox"]
    colours = box_colours(row, categories)
    overview = thumbnail(row["image"]["bytes"], row["label"]["bytes"])
    scale = min(THUMBNAIL / image.width, THUMBNAIL / image.height, 1.0)
    left, top = (THUMBNAIL - round(image.width * scale)) // 2, (THUMBNAIL - round(image.height * scale)) // 2
    draw = ImageDraw.Draw(overview)
    for (x, y, w, h), colour in zip(boxes, colours):
        draw.rectangle([left + x * scale - 3, top + y * scale - 3, left + (x + w) * scale + 3, top + (y + h) * scale + 3],
                       outline=colour, width=2)
    if boxes:
        x, y, w, h = boxes[0]
        side = max(64, 3 * max(w, h))
        cx, cy = x + w / 2, y + h / 2
    else:
        side, cx, cy = 64, image.width / 2, image.height / 2
    x0 = int(min(max(0, cx - side / 2), max(0, image.width - side)))
    y0 = int(min(max(0, cy - side / 2), max(0, image.height - side)))
    zoom = image.crop((x0, y0, x0 + int(side), y0 + int(side))).resize((THUMBNAIL, THUMBNAIL), Image.Resampling.LANCZOS)
    if boxes:
        f = THUMBNAIL / int(side)
        ImageDraw.Draw(zoom).rectangle([(x - x0) * f - 1, (y - y0) * f - 1, (x + w - x0) * f + 1, (y + h - y0) * f + 1],
                                       outline=colours[0], width=2)
    return overview, zoom


def sample_picture(shards: list[Path], features, path: Path, per_row: int = 6) -> Path:
    """Choose the rows from a small column (labels, object lists) and read only those rows' images."""
    label = features["label"]
    headers = None
    if "objects" in features:  # detection: prefer examples that hold objects (most tiles hold none)
        names = features["objects"]["category"].feature.names

        def wanted(objects, chosen):
            if len(names) > 1:  # several categories (HEp-2 slides: one pattern a slide): one image of each
                covered = {c for *_, value in chosen for c in value["category"]}
                if len(covered) == len(names) or len(chosen) == per_row:
                    return None
                return bool(set(objects["category"]) - covered)
            holding = sum(1 for *_, value in chosen if value["bbox"])
            if holding >= per_row:
                return None
            return bool(objects["bbox"]) or len(chosen) - holding < per_row  # a few without, in case

        picks = choose_rows(shards, "objects", wanted)
        rows = rows_at(shards, picks, ["image", "label", "objects", "file_name"])
        rows = ([r for r in rows if r["objects"]["bbox"]] + [r for r in rows if not r["objects"]["bbox"]])[:per_row]
        pairs = [detection_tiles(r, len(names)) for r in rows]
        rows_of_tiles = [("image, mask, boxes", [p[0] for p in pairs]), ("first object", [p[1] for p in pairs])]
        if len(names) > 1:  # each column is one image: say which, and its objects' categories in their colours
            headers = ("file: object classes", [(f"{Path(r['file_name']).stem}: " + "+".join(
                dict.fromkeys(names[c] for c in r["objects"]["category"])), CATEGORY_COLOURS[
                r["objects"]["category"][0] % len(CATEGORY_COLOURS)] if r["objects"]["category"] else "black")
                for r in rows])
    elif isinstance(label, ClassLabel):
        mask_column = "mask" if "mask" in features else None
        per_class = Counter()

        def wanted(value, chosen):
            if all(per_class[i] >= per_row for i in range(label.num_classes)):
                return None
            if value is None or value < 0 or per_class[value] >= per_row:  # -1: an unlabelled row
                return False
            per_class[value] += 1
            return True

        picks = choose_rows(shards, "label", wanted)
        rows = rows_at(shards, picks, ["image", "label"] + ([mask_column] if mask_column else []))
        rows_of_tiles = []
        for i, name in enumerate(label.names):
            tiles = [thumbnail(r["image"]["bytes"], (r[mask_column] or {}).get("bytes") if mask_column else None,
                               outline=True) for r in rows if r["label"] == i]
            if tiles:
                rows_of_tiles.append((name, tiles))
    else:  # segmentation: the label is the target mask
        picks = [(0, row) for row in range(min(per_row, pq.ParquetFile(shards[0]).metadata.num_rows))]
        rows = rows_at(shards, picks, ["image", "label"])
        rows_of_tiles = [("image", [thumbnail(r["image"]["bytes"]) for r in rows]),
                         ("label", [thumbnail(r["image"]["bytes"], r["label"]["bytes"]) for r in rows])]
    grid(rows_of_tiles, per_row, headers).save(path, optimize=True)
    return path
