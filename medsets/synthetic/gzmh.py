"""Replicas of the GZMH download, whose layout is unpublished: two plausible ones (V1 side by side with VOC
XML, V2 in images/ + masks/ with its two test splits), 2084x2084 H&E fields with mitoses (docs/gzmh.md).
The counts are literals, not the builder's.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from .drawing import upsample
from .files import Writer, reimaged, scaled

PUBLISHED_IMAGES, PUBLISHED_MITOSES = 1534, 2355
GZMH_SIZE = 2084
# The real split sizes are unpublished; these fractions only give every split some images.
GZMH_SPLITS = {"v1": {"train": 0.7, "test": 0.3},
               "v2": {"train": 0.7, "test_1or2_score": 0.15, "test_3_score": 0.15}}


def draw_mitosis_field(rng: np.random.Generator, size: int = GZMH_SIZE, mitoses: int = 2):
    """An H&E high-power field (pink stroma, purple nuclei) with dark, ragged mitotic figures, its mask
    (0/255) and each figure's pixel box (x0, y0, x1, y1 exclusive) and centroid, measured on the drawn
    pixels. Figures never touch one another, so each is one connected component."""
    stroma = upsample(rng.standard_normal((8, 8), dtype=np.float32), size)
    seeds = rng.random((size, size)) < 0.0012
    radius = max(1.0, 3.0 * size / GZMH_SIZE)  # nuclei ~ 6 px across at full size
    nuclei = ndimage.gaussian_filter(seeds.astype(np.float32), radius) > 0.4 / (2 * np.pi * radius * radius)
    image = np.empty((size, size, 3), np.float32)
    image[:] = (236, 176, 204)
    image += (8 * stroma)[..., None]
    image[nuclei] = (118, 72, 152)
    mask = np.zeros((size, size), bool)
    figures = []
    scale = size / GZMH_SIZE
    for _ in range(mitoses):
        r = max(2.0, rng.uniform(9, 18) * scale)
        for _attempt in range(50):  # keep figures apart: one figure, one component
            cx, cy = rng.uniform(2, size - 2, 2)
            if all(np.hypot(cx - fx, cy - fy) > 3 * (r + fr) for fx, fy, fr in ((f[2], f[3], f[4]) for f in figures)):
                break
        else:
            continue
        # Star-shaped outline (radius varies with the angle), so the figure is ragged but connected.
        phases, amplitudes = rng.uniform(0, 2 * np.pi, 3), rng.uniform(0, 0.12, 3)
        y0, y1 = max(0, int(cy - 2 * r)), min(size, int(cy + 2 * r) + 1)
        x0, x1 = max(0, int(cx - 2 * r)), min(size, int(cx + 2 * r) + 1)
        yy, xx = np.mgrid[y0:y1, x0:x1] + 0.5
        angle = np.arctan2(yy - cy, xx - cx)
        edge = r * (1 + sum(a * np.sin((k + 2) * angle + p) for k, (a, p) in enumerate(zip(amplitudes, phases))))
        figure = np.hypot(yy - cy, xx - cx) <= edge
        figure[int(cy) - y0, int(cx) - x0] = True  # never empty, even for a tiny r at the border
        mask[y0:y1, x0:x1] |= figure
        figures.append((figure, (y0, x0), cx, cy, r))
    image[mask] = (48, 22, 70)  # condensed chromatin: much darker than any nucleus
    image = image * upsample(1 + 0.04 * rng.standard_normal((max(1, size // 16),) * 2, dtype=np.float32), size)[..., None]
    image += 4 * rng.standard_normal(image.shape, dtype=np.float32)
    boxes = []
    for figure, (y0, x0), *_ in figures:
        ys, xs = np.nonzero(figure)
        boxes.append({"box": (x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1),
                      "centroid": (x0 + xs.mean() + 0.5, y0 + ys.mean() + 0.5)})
    return np.clip(image, 0, 255).astype(np.uint8), (mask * 255).astype(np.uint8), boxes


def _voc(file_name: str, size: int, boxes: list[dict]) -> bytes:
    """Pascal VOC XML: corners are 1-based inclusive pixel indices."""
    objects = "".join(
        f"<object><name>mitosis</name><pose>Unspecified</pose><truncated>0</truncated><difficult>0</difficult>"
        f"<bndbox><xmin>{x0 + 1}</xmin><ymin>{y0 + 1}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox></object>\n"
        for x0, y0, x1, y1 in (b["box"] for b in boxes))
    return (f"<annotation>\n<folder>GZMH</folder><filename>{file_name}</filename>\n<size><width>{size}</width>"
            f"<height>{size}</height><depth>3</depth></size>\n{objects}</annotation>\n").encode()


def write_gzmh(dest, layout: str = "v2", *, boxes: str | None = "layout", scale: float = 0.01, size: int = GZMH_SIZE,
               seed: int = 0, as_zip: bool = False, wrapper: str | None = None) -> Path:
    """Two plausible GZMH layouts (the real one is unpublished):

    v2: GZMH Dataset V2/{train,test_1or2_score,test_3_score}/images/NNNN.jpg + masks/NNNN.png
    v1: GZMH/{train,test}/NNNN.png beside NNNN_mask.png (and NNNN.xml, VOC, when boxes="voc")

    `boxes` adds box files computed from the drawn pixels: "voc" (one XML per image), "coco" (one
    annotations.json per split), "csv" (boxes.csv per split: corners and centroid), "yolo" (labels/NNNN.txt),
    None, or "layout" for the layout's own choice (v1: voc, v2: none). Masks are 0/255 PNG; v2 images are
    JPEG (quality 90), v1 images PNG. `size` shrinks the 2084x2084 fields for quick tests."""
    rng = np.random.default_rng(seed)
    out = Writer(dest, as_zip)
    boxes = {"v1": "voc", "v2": None}[layout] if boxes == "layout" else boxes
    top = (f"{wrapper}/" if wrapper else "") + ("GZMH Dataset V2/" if layout == "v2" else "GZMH/")
    total = scaled(PUBLISHED_IMAGES, scale)
    number, first = 1, None
    for split, fraction in GZMH_SPLITS[layout].items():
        coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "mitosis"}]}
        csv_rows = [["image", "xmin", "ymin", "xmax", "ymax", "cx", "cy"]]
        for _ in range(max(1, round(total * fraction))):
            name = f"{number:04d}"
            mitoses_per_image = PUBLISHED_MITOSES / PUBLISHED_IMAGES
            image, mask, figures = draw_mitosis_field(rng, size, int(rng.poisson(mitoses_per_image)))
            if first is None:
                first = image, mask, figures
            elif split == list(GZMH_SPLITS[layout])[-1] and first[0] is not None:
                # The last split's first field is the first training field scanned again (re-exposed,
                # noisy, compressed anew): a near-duplicate across splits, for the builds to find.
                image, mask, figures = reimaged(first[0], rng, gain=1.08, noise=3.0), first[1], first[2]
                first = (None, None, None)
            if layout == "v2":
                image_name, mask_name = f"{split}/images/{name}.jpg", f"{split}/masks/{name}.png"
                buffer = io.BytesIO()
                Image.fromarray(image).save(buffer, format="JPEG", quality=90)
                out.bytes(top + image_name, buffer.getvalue())
            else:
                image_name, mask_name = f"{split}/{name}.png", f"{split}/{name}_mask.png"
                out.png(top + image_name, image)
            out.png(top + mask_name, mask)
            file_name = image_name.rsplit("/", 1)[-1]
            if boxes == "voc":
                folder = f"{split}/annotations" if layout == "v2" else split
                out.bytes(f"{top}{folder}/{name}.xml", _voc(file_name, size, figures))
            elif boxes == "yolo":
                out.text(f"{top}{split}/labels/{name}.txt", [
                    [0] + [f"{v / size:.6f}" for v in ((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0)]
                    for x0, y0, x1, y1 in (f["box"] for f in figures)], delimiter=" ")
            coco["images"].append({"id": number, "file_name": f"{split}/{file_name}", "width": size, "height": size})
            for f in figures:
                x0, y0, x1, y1 = f["box"]
                coco["annotations"].append({"id": len(coco["annotations"]) + 1, "image_id": number, "category_id": 1,
                                            "bbox": [int(x0), int(y0), int(x1 - x0), int(y1 - y0)],
                                            "area": int((x1 - x0) * (y1 - y0)), "iscrowd": 0})
                csv_rows.append([file_name, x0, y0, x1, y1, f"{f['centroid'][0]:.2f}", f"{f['centroid'][1]:.2f}"])
            number += 1
        if boxes == "coco":
            out.bytes(f"{top}{split}/annotations.json", json.dumps(coco).encode())
        elif boxes == "csv":
            out.text(f"{top}{split}/boxes.csv", csv_rows)
    out.close()
    return out.dest
