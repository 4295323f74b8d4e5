"""The picture of a detection run: one full image reassembled from its tiles, the objects and the detections
drawn on it, and a zoom; dim fluorescence is stretched for the eye and drawn in colours that show on it."""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ..picture import shown as shown_for_the_eye
from .full_images import TileTable


def draw_detections(ds: datasets.Dataset, table: TileTable, rows, found: dict, threshold: float, radius: float,
                    path: Path, view: int = 900, crop: int = 96, zoom: int = 4, categories: list[str] | None = None,
                    what: str = "mitoses"):
    """The image with the most objects (`what`: mitoses, cells) among these tile rows, reassembled from its
    tiles: the objects as circles of the match radius, detections at or above the threshold as boxes with their
    scores; beside it, a zoomed crop around an object (or the best detection)."""
    references = table.references_of(rows)
    image = min(references, key=lambda s: (-len(references[s]), s))
    rows = [int(r) for r in np.unique(rows) if table.source[r] == image]
    width, height = (table.offset[rows] + table.size[rows]).max(axis=0)
    canvas = Image.new("RGB", (int(width), int(height)))
    for row in rows:
        canvas.paste(ds[row]["image"].convert("RGB"), tuple(int(v) for v in table.offset[row]))
    dim = shown_for_the_eye(canvas) is not canvas  # fluorescence: stretched, and drawn in colours that show on it
    canvas = shown_for_the_eye(canvas)
    truth_colour, found_colour = ((255, 215, 0), (255, 0, 255)) if dim else ((0, 170, 0), (0, 90, 255))
    truth, shown = references[image], found[image][found[image][:, 2] >= threshold]
    focus = truth[0] if truth else (shown[0, :2] if len(shown) else (width / 2, height / 2))
    left, top = (min(max(int(v) - crop // 2, 0), max(int(limit) - crop, 0)) for v, limit in zip(focus, (width, height)))
    zoomed = canvas.crop((left, top, left + crop, top + crop)).resize((crop * zoom,) * 2, Image.Resampling.NEAREST)
    scale = view / max(width, height)
    overview = canvas.resize((round(width * scale), round(height * scale)), Image.Resampling.BILINEAR)
    font = ImageFont.load_default(size=13)
    for picture, shift, factor in ((overview, (0, 0), scale), (zoomed, (left, top), zoom)):
        draw = ImageDraw.Draw(picture)
        at = lambda x, y: ((x - shift[0]) * factor, (y - shift[1]) * factor)  # noqa: E731
        for x, y in truth:
            cx, cy = at(x, y)
            draw.ellipse([cx - radius * factor, cy - radius * factor, cx + radius * factor, cy + radius * factor],
                         outline=truth_colour, width=2)
        taken = []  # label boxes already drawn: a label that would overlap one is left out
        for x, y, score, w, h, *label in shown:
            x0, y0 = at(x - w / 2, y - h / 2)
            x1, y1 = at(x + w / 2, y + h / 2)
            if x1 < 0 or y1 < 0 or x0 > picture.width or y0 > picture.height:
                continue  # outside the zoom: its label would sit at the edge with no box
            draw.rectangle([x0, y0, x1, y1], outline=found_colour, width=2)
            if picture is overview and len(shown) > 12:
                continue  # many small boxes: their scores are read in the zoom
            name = f"{categories[int(label[0])]} " if categories and len(categories) > 1 and label else ""
            text = f"{name}{score:.2f}"
            length = font.getlength(text)
            tx = min(max(x0, 0), picture.width - length - 2)  # inside the picture, above the box or else below
            ty = y0 - 15 if y0 >= 15 else min(y1 + 2, picture.height - 15)
            box = (tx, ty, tx + length, ty + 14)
            if any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in taken):
                continue
            taken.append(box)
            draw.rectangle(box, fill=(255, 255, 255))
            draw.text((tx, ty), text, fill=found_colour, font=font)
    names = ("yellow", "magenta") if dim else ("green", "blue")
    header = (f"{ds[rows[0]]['file_name']} (source image {image}): {names[0]} = {what} (circle: {radius:g} px match "
              f"radius), {names[1]} = detections scoring >= {threshold:g}; right: {crop} px around "
              f"({left + crop // 2}, {top + crop // 2}) x{zoom}" + ("; contrast stretched for display" if dim else ""))
    sheet = Image.new("RGB", (max(overview.width + zoomed.width + 30, int(font.getlength(header)) + 20),
                              max(overview.height, zoomed.height) + 40), "white")
    ImageDraw.Draw(sheet).text((10, 10), header, fill="black", font=font)
    sheet.paste(overview, (10, 30))
    sheet.paste(zoomed, (overview.width + 20, 30))
    sheet.save(path)
