"""Faithful synthetic replicas of the raw downloads in shared/SOURCES.md, for the demo and the tests.

Each writer reproduces one published layout, quirks included (file and folder names, case of
suffixes, delimiters, BOM and CRLF, wrapper folders, zip), at any size from a few cells up to the full
published counts (`scale=1.0`). The images are drawn so that the classes really differ, so a model
trained on a replica has something real to learn:

    homogeneous     evenly filled nucleus          speckled / fine_speckled   many fine dots
    coarse_speckled fewer, larger dots             nucleolar                  a few large bright blobs
    centromere      40-60 sharp points             numem                      a bright rim
    golgi           a crescent beside the nucleus  cytoplasmatic              fibres around a dark nucleus
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin
from scipy import ndimage

from .builders import BIS5k, GZMH, HEp2, Leukemia


class Writer:
    """Writes files either into a folder or straight into a .zip (no temporary extraction)."""

    def __init__(self, dest, as_zip: bool):
        """`dest` names the replica: the folder itself, or `dest` + '.zip'; `self.dest` is that path."""
        self.dest = Path(f"{dest}.zip") if as_zip else Path(dest)
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        if not as_zip:
            self.dest.mkdir(exist_ok=True)
        # Deflated like the real downloads; level 1 keeps writing large replicas fast.
        self.zip = zipfile.ZipFile(self.dest, "w", zipfile.ZIP_DEFLATED, compresslevel=1) if as_zip else None

    def bytes(self, rel: str, data: bytes):
        if self.zip is not None:
            self.zip.writestr(rel, data)
        else:
            path = self.dest / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def text(self, rel: str, rows: list[list], delimiter=",", bom=False, crlf=False, trailing_blank=False,
             final_newline=True):
        newline = "\r\n" if crlf else "\n"
        text = newline.join(delimiter.join(str(c) for c in row) for row in rows) + (newline if final_newline else "")
        if trailing_blank:
            text += newline * 2
        self.bytes(rel, (b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))

    def png(self, rel: str, array: np.ndarray, saved: tuple[int, ...] | None = None):
        """`saved` (year, month, day, hour, minute, second) goes into a tIME chunk, as the real files carry one."""
        buffer = io.BytesIO()
        info = None
        if saved:
            info = PngImagePlugin.PngInfo()
            info.add(b"tIME", struct.pack(">HBBBBB", *saved))
        Image.fromarray(array).save(buffer, format="PNG", compress_level=1, pnginfo=info)
        self.bytes(rel, buffer.getvalue())

    def close(self):
        if self.zip is not None:
            self.zip.close()


def _scaled(n: int, scale: float) -> int:
    return max(1, round(n * scale))


# -- drawing -------------------------------------------------------------------------------------------
def draw_cell(pattern: str, height: int, width: int, rng: np.random.Generator, brightness: float = 1.0):
    """A fluorescence cell crop (float32 in [0, 1]) and its cell mask (bool), pattern-specific."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    size = min(height, width)
    cy, cx = height / 2 + rng.uniform(-0.06, 0.06) * size, width / 2 + rng.uniform(-0.06, 0.06) * size
    ry, rx = rng.uniform(0.22, 0.3) * size, rng.uniform(0.22, 0.3) * size
    theta = rng.uniform(0, np.pi)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / rx
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / ry
    r = np.sqrt(u * u + v * v)  # 1.0 on the nuclear boundary
    nucleus = r <= 1.0

    def spots(count, radius, inside, strength):
        canvas = np.zeros((height, width), np.float32)
        ys, xs = np.nonzero(inside)
        if len(ys):
            pick = rng.integers(0, len(ys), count)
            np.add.at(canvas, (ys[pick], xs[pick]), 1.0)
        if radius > 0:
            canvas = ndimage.gaussian_filter(canvas, radius)
            # Scale so that one isolated spot peaks at 1 whatever its radius; overlapping spots saturate.
            delta = np.zeros((int(8 * radius) + 3,) * 2, np.float32)
            delta[len(delta) // 2, len(delta) // 2] = 1.0
            canvas /= ndimage.gaussian_filter(delta, radius).max()
        return strength * np.minimum(canvas, 1.0)

    image = np.zeros((height, width), np.float32)
    if pattern == "homogeneous":
        image += nucleus * (0.75 - 0.15 * r * r)
    elif pattern in ("speckled", "fine_speckled"):
        image += 0.2 * nucleus + spots(int(rng.integers(120, 200)), 0.7, nucleus, 0.8)
    elif pattern == "coarse_speckled":
        image += 0.15 * nucleus + spots(int(rng.integers(25, 40)), 1.8, nucleus, 0.9)
    elif pattern == "nucleolar":
        image += 0.1 * nucleus + spots(int(rng.integers(2, 7)), 0.045 * size, r <= 0.7, 1.0)
    elif pattern == "centromere":
        image += 0.06 * nucleus + spots(int(rng.integers(40, 61)), 0.5, nucleus, 1.0)
    elif pattern == "numem":
        image += 0.15 * nucleus + 0.75 * ((r > 0.72) & (r <= 1.0))
    elif pattern == "golgi":
        direction = rng.uniform(0, 2 * np.pi)
        angle = np.angle(np.exp(1j * (np.arctan2(v, u) - direction)))
        crescent = (r > 1.0) & (r < 1.35) & (np.abs(angle) < 1.0)
        image += 0.12 * nucleus + 0.85 * crescent
    elif pattern == "cytoplasmatic":
        fibres = ndimage.gaussian_filter(rng.random((height, width)).astype(np.float32), (0.6, 2.5))
        fibres = (fibres - fibres.min()) / max(np.ptp(fibres), 1e-6)
        image += 0.03 * nucleus + 0.9 * fibres * ((r > 1.0) & (r < 1.4))
    else:
        raise ValueError(f"unknown pattern {pattern!r}")
    image = ndimage.gaussian_filter(image, 0.6) * brightness * rng.uniform(0.75, 1.0)
    image += rng.normal(0.02, 0.02, image.shape).astype(np.float32)
    return np.clip(image, 0, 1), r <= 1.45


def _grey(image: np.ndarray) -> np.ndarray:
    return (image * 255).astype(np.uint8)


def _mask(mask: np.ndarray) -> np.ndarray:
    return (mask * 255).astype(np.uint8)


# -- HEp-2 ICPR 2014 -----------------------------------------------------------------------------------
ICPR2014_ID_RANGES = {}  # class -> (first id, last id), contiguous in the release
_first = 1
for _name, _n in HEp2.ICPR2014_CLASS_COUNTS.items():
    ICPR2014_ID_RANGES[_name] = (_first, _first + _n - 1)
    _first += _n
ORIGINAL_SPELLING = {"homogeneous": "Homogeneous", "speckled": "Speckled", "nucleolar": "Nucleolar",
                     "centromere": "Centromere", "numem": "NuMem", "golgi": "Golgi"}


def write_hep2_icpr2014(dest, variant: str = "processed", *, scale: float = 0.02, seed: int = 0,
                        as_zip: bool = False, wrapper: str | None = None, split_folders="data",
                        extra_columns: bool = False) -> Path:
    """Write one ICPR 2014 layout under `dest` (a folder, or `dest` + '.zip'); returns its path.

    variant: "organisers" (ICIP2013_training_1.0/: train/NNNNN.png + NNNNN_Mask.png, gt_training.csv
    with BOM and CRLF), "processed" (78x78, training/validation/test + one gt_training.csv; folder
    naming from `split_folders`: "data", "short" (train/val/test) or "cellimage"), or "card"
    (HEp-2/train, HEp-2/test, train.csv, test.csv, as in the openmedlab card).
    """
    rng = np.random.default_rng(seed)
    out = Writer(dest, as_zip)
    top = f"{wrapper}/" if wrapper else ""

    if variant == "organisers":
        top += "ICIP2013_training_1.0/"
        rows = [["Image ID", "Image class"] + (["Intensity", "Specimen"] if extra_columns else [])]
        for name, (first, _) in ICPR2014_ID_RANGES.items():
            for cell in range(first, first + _scaled(HEp2.ICPR2014_CLASS_COUNTS[name], scale)):
                h, w = (int(s) for s in rng.integers(60, 111, 2))
                intensity = "positive" if rng.random() < 0.55 else "intermediate"
                image, mask = draw_cell(name, h, w, rng, 1.0 if intensity == "positive" else 0.55)
                out.png(f"{top}train/{cell:05d}.png", _grey(image))
                out.png(f"{top}train/{cell:05d}_Mask.png", _mask(mask))
                rows.append([cell, ORIGINAL_SPELLING[name]]
                            + ([intensity, f"S{(cell * 7919) % 419:03d}"] if extra_columns else []))
        out.text(f"{top}gt_training.csv", rows, bom=True, crlf=True, trailing_blank=True)

    elif variant == "processed":
        names = {"data": ("data/training", "data/validation", "data/test"),
                 "short": ("train", "val", "test"),
                 "cellimage": ("CellImage_data/training", "CellImage_data/validation", "CellImage_data/test")}
        folders = dict(zip(("train", "validation", "test"), names[split_folders]))
        rows = [["Image ID", "Image class"]]
        for name, (first, last) in ICPR2014_ID_RANGES.items():
            wanted = {split: _scaled(HEp2.ICPR2014_PROCESSED_SPLIT_COUNTS[split][name], scale) for split in folders}
            cells = {split: [] for split in folders}
            copies = {}  # copy id -> original id: the real release repeats a block of NuMem cells
            if name == "numem":
                for original, copy, split_a, split_b in _icpr2014_duplicates(wanted, scale, rng):
                    cells[split_a].append(original)
                    cells[split_b].append(copy)
                    copies[copy] = original
            # The whole block is left to the planted pairs, so an id in it is always one of a pair.
            block = {c + shift for c in HEp2.ICPR2014_DUPLICATED_CELLS for shift in (0, HEp2.ICPR2014_DUPLICATE_SHIFT)}
            pool = rng.permutation([cell for cell in range(first, last + 1) if cell not in block])
            start = 0
            for split in folders:
                n = wanted[split] - len(cells[split])
                cells[split] += pool[start:start + n].tolist()
                start += n
            drawn = {original: draw_cell(name, 78, 78, rng)[0] for original in sorted(copies.values())}
            for split, folder in folders.items():
                for cell in sorted(cells[split]):
                    image = drawn.get(copies.get(cell, cell))
                    image = draw_cell(name, 78, 78, rng)[0] if image is None else image
                    # Each file saved at its own time: a copy differs from its original in bytes, not pixels.
                    out.png(f"{top}{folder}/{cell:05d}.png", _grey(image),
                            saved=(2014, 1 + cell % 12, 1 + cell % 28, cell % 24, cell % 60, (cell // 60) % 60))
                    rows.append([f"{cell:05d}", ORIGINAL_SPELLING[name]])
        rows[1:] = sorted(rows[1:])
        out.text(f"{top}gt_training.csv", rows, final_newline=False)

    elif variant == "card":
        top += "HEp-2/"
        per_split = {"train": [["Image", "Label"]], "test": [["Image", "Label"]]}
        for name, (first, _) in ICPR2014_ID_RANGES.items():
            ids = np.arange(first, first + _scaled(HEp2.ICPR2014_CLASS_COUNTS[name], scale))
            for i, cell in enumerate(rng.permutation(ids)):
                split = "test" if i % 5 == 4 else "train"
                image = draw_cell(name, int(rng.choice([78, 78, 79, 80])), 78, rng)[0]
                out.png(f"{top}{split}/{cell:05d}.png", _grey(image))
                per_split[split].append([f"{cell:05d}.png", ORIGINAL_SPELLING[name]])
        for split, rows in per_split.items():
            out.text(f"{top}{split}.csv", [rows[0]] + sorted(rows[1:]))
    else:
        raise ValueError(f"unknown ICPR 2014 variant {variant!r}: organisers, processed or card")
    out.close()
    return out.dest


def _icpr2014_duplicates(wanted: dict[str, int], scale: float, rng) -> list[tuple[int, int, str, str]]:
    """The repeated block of the real release, scaled: (original, copy = original + 194, split of the
    original, split of the copy), with the real pairs per split pair (at least one of each while the
    scaled split counts leave room). Which of a pair lies in the earlier split is drawn at random, so the
    lower id is not always the one in train."""
    planted, used = [], Counter()
    originals = iter(HEp2.ICPR2014_DUPLICATED_CELLS)
    for (split_a, split_b), n in HEp2.ICPR2014_DUPLICATE_PAIRS.items():
        for _ in range(_scaled(n, scale)):
            need = Counter([split_a, split_b])
            original = next(originals, None)
            if original is None or any(used[s] + k > wanted[s] for s, k in need.items()):
                break
            used += need
            first, second = (split_a, split_b) if rng.random() < 0.5 else (split_b, split_a)
            planted.append((original, original + HEp2.ICPR2014_DUPLICATE_SHIFT, first, second))
    return planted


# -- HEp-2 ICPR 2012 (MIVIA contest and Main_Dataset) ---------------------------------------------------
# Each slide image holds one pattern at one intensity; 14 slides for training, 14 others for test, numbered
# as the real release splits them (HEp2.ICPR2012_SLIDES). Cells per slide are chosen so that the training
# totals match the published pattern and intensity counts exactly (SOURCES.md); test totals follow the same
# proportions up to 734.
ICPR2012_TRAIN_IMAGES = [  # (slide number, pattern, intensity, cells)
    (1, "centromere", "positive", 60), (2, "centromere", "positive", 55), (3, "centromere", "intermediate", 93),
    (5, "coarse_speckled", "positive", 60), (6, "coarse_speckled", "intermediate", 49),
    (7, "cytoplasmatic", "positive", 33), (8, "cytoplasmatic", "intermediate", 25),
    (9, "fine_speckled", "positive", 52), (11, "fine_speckled", "intermediate", 42),
    (14, "homogeneous", "positive", 42), (18, "homogeneous", "positive", 40), (20, "homogeneous", "intermediate", 68),
    (25, "nucleolar", "positive", 54), (26, "nucleolar", "intermediate", 48),
]
ICPR2012_TEST_IMAGES = [
    (4, "centromere", "positive", 58), (10, "centromere", "positive", 57), (12, "centromere", "intermediate", 97),
    (13, "coarse_speckled", "positive", 62), (15, "coarse_speckled", "intermediate", 49),
    (16, "cytoplasmatic", "positive", 33), (17, "cytoplasmatic", "intermediate", 26),
    (19, "fine_speckled", "positive", 53), (21, "fine_speckled", "intermediate", 43),
    (22, "homogeneous", "positive", 44), (23, "homogeneous", "positive", 40), (24, "homogeneous", "intermediate", 68),
    (27, "nucleolar", "positive", 55), (28, "nucleolar", "intermediate", 49),
]
SLIDE_SIZE = (1388, 1038)  # width, height of the slide images in the literature
MAIN_DATASET_HEADER = ["Intensity", "ID", "CenterX", "CenterY", "Type", "Pattern", "MinX", "MinY", "MaxX", "MaxY"]


@dataclass
class DrawnCell:
    x: int  # 0-based left and top of the cell's box on its slide
    y: int
    rgb: np.ndarray  # the crop, h x w x 3
    mask: np.ndarray  # bool, h x w


@dataclass
class DrawnSlide:
    number: int
    split: str  # train | test
    pattern: str
    intensity: str
    pixels: np.ndarray  # H x W x 3
    cells: list[DrawnCell]


def _place(taken: np.ndarray, w: int, h: int, rng) -> tuple[int, int] | None:
    """A free spot for a w x h box (4 px from others and from the border): random tries, then a scan."""
    height, width = taken.shape
    for _ in range(200):
        x, y = int(rng.integers(4, width - w - 3)), int(rng.integers(4, height - h - 3))
        if not taken[y - 4:y + h + 4, x - 4:x + w + 4].any():
            return x, y
    for y in range(4, height - h - 3, 8):
        for x in range(4, width - w - 3, 8):
            if not taken[y - 4:y + h + 4, x - 4:x + w + 4].any():
                return x, y
    return None


def _draw_slides(scale: float, rng, slide_size: tuple[int, int]) -> list[DrawnSlide]:
    """Every slide with its cells scattered over it, apart: green-dominant crops on a dark field."""
    width, height = slide_size
    slides = []
    for split, images in (("train", ICPR2012_TRAIN_IMAGES), ("test", ICPR2012_TEST_IMAGES)):
        for number, pattern, intensity, count in images:
            pixels = np.zeros((height, width, 3), np.uint8)
            pixels[..., 1] = rng.integers(0, 12, (height, width))
            taken = np.zeros((height, width), bool)
            cells = []
            for _ in range(_scaled(count, scale)):
                w, h = int(rng.integers(38, 122)), int(rng.integers(48, 122))
                spot = _place(taken, w, h, rng)
                if spot is None:
                    raise ValueError(f"slide {number}: {count} cells do not fit {width}x{height}; use a larger slide_size")
                x, y = spot
                taken[y:y + h, x:x + w] = True
                image, mask = draw_cell(pattern, h, w, rng, 1.0 if intensity == "positive" else 0.5)
                green = image * 210
                rgb = np.stack([green * 0.085, green, green * 0.01], axis=-1).astype(np.uint8)
                pixels[y:y + h, x:x + w] = np.maximum(pixels[y:y + h, x:x + w], rgb)
                cells.append(DrawnCell(x, y, pixels[y:y + h, x:x + w].copy(), mask))
            cells.sort(key=lambda c: (c.y, c.x))  # NN.csv lists them top to bottom
            slides.append(DrawnSlide(number, split, pattern, intensity, pixels, cells))
    return slides


def write_hep2_icpr2012(dest, *, scale: float = 0.05, seed: int = 0, as_zip: bool = False,
                        wrapper: str | None = None, parts: tuple[str, ...] = ("contest",),
                        slide_size: tuple[int, int] = SLIDE_SIZE, masks_at: str = "slide",
                        cell_images: bool = True) -> Path:
    """The MIVIA download of the ICPR 2012 data, drawn once so that its two folders agree:

    "contest": ICPR2012_Cells_Classification_Contest/ with training/ and test/ of NNN.png + NNN_mask.png
    (RGB, green-dominant), ';'-separated gt/intensity CSVs with CRLF, cells.csv naming each cell's slide.
    "main": Main_Dataset/ with Images/NN/NN.bmp (the slide, RGB BMP) and NN.csv (';', one header line, BOM-free:
    intensity; id; two unknown ints; type; pattern, 'centromeric' for centromere; minX; minY; maxX; maxY,
    1-based and inclusive), one row that is not a cell per slide; Cells/Cell_Images/NN/NNN.png (the crops,
    unless `cell_images` is False) and Cells/Cell_Masks/NN/NNN.png, at slide size or at crop size (`masks_at`).
    """
    rng = np.random.default_rng(seed)
    out = Writer(dest, as_zip)
    top = f"{wrapper}/" if wrapper else ""
    slides = _draw_slides(scale, rng, slide_size)
    if "contest" in parts:
        contest = top + "ICPR2012_Cells_Classification_Contest/"
        cells_rows = [["ID", "Set", "Image", "Intensity", "Mask", "Pattern"]]
        for split, folder in (("train", "training"), ("test", "test")):
            info, gt, cell = [["ID", "intensity", "width", "height"]], [["ID", "pattern"]], 0
            for slide in (s for s in slides if s.split == split):
                for drawn in slide.cells:
                    cell += 1
                    out.png(f"{contest}{folder}/{cell:03d}.png", drawn.rgb)
                    out.png(f"{contest}{folder}/{cell:03d}_mask.png", _mask(drawn.mask))
                    info.append([cell, slide.intensity, drawn.rgb.shape[1], drawn.rgb.shape[0]])
                    gt.append([cell, slide.pattern])
                    cells_rows.append([cell, folder, slide.number, slide.intensity, f"{cell:03d}_mask.png",
                                       slide.pattern])
            out.text(f"{contest}{folder}/{folder}.csv", info, delimiter=";", crlf=True)
            out.text(f"{contest}{folder}/gt_{folder}.csv", gt, delimiter=";", crlf=True)
        out.text(f"{contest}cells.csv", cells_rows, delimiter=";", crlf=True)
    if "main" in parts:
        main = top + "Main_Dataset/"
        for slide in slides:
            nn = f"{slide.number:02d}"
            out.bytes(f"{main}Images/{nn}/{nn}.bmp", _bmp(slide.pixels))
            rows, cell_id = [MAIN_DATASET_HEADER], 0
            pattern = "centromeric" if slide.pattern == "centromere" else slide.pattern
            not_a_cell = len(slide.cells) // 2  # one row per slide that is not a cell, among the cells
            for index, drawn in enumerate(slide.cells):
                if index == not_a_cell:
                    cell_id += 1
                    rows.append([slide.intensity, cell_id, 0, 0, "mitotic", pattern, 1, 1, 3, 3])
                cell_id += 1
                h, w = drawn.mask.shape
                rows.append([slide.intensity, cell_id, drawn.x + w // 2, drawn.y + h // 2, "cell", pattern,
                             drawn.x + 1, drawn.y + 1, drawn.x + w, drawn.y + h])
                if cell_images:
                    out.png(f"{main}Cells/Cell_Images/{nn}/{cell_id:03d}.png", drawn.rgb)
                if masks_at == "slide":
                    canvas = np.zeros(slide.pixels.shape[:2], bool)
                    canvas[drawn.y:drawn.y + h, drawn.x:drawn.x + w] = drawn.mask
                    out.png(f"{main}Cells/Cell_Masks/{nn}/{cell_id:03d}.png", _mask(canvas))
                else:
                    out.png(f"{main}Cells/Cell_Masks/{nn}/{cell_id:03d}.png", _mask(drawn.mask))
            out.text(f"{main}Images/{nn}/{nn}.csv", rows, delimiter=";")
    out.close()
    return out.dest


# -- Leukemia, ISBI 2019 C-NMC -------------------------------------------------------------------------
CELL_SIZE = 450
# 118 subjects: leukemic ones numbered, normal ones with an H. Each group of subjects belongs to one part
# of the challenge, because its splits are subject-disjoint.
CNMC_SUBJECTS = {
    "fold_0": (range(1, 16), range(1, 10)), "fold_1": (range(16, 31), range(10, 19)),
    "fold_2": (range(31, 46), range(19, 28)), "prelim": (range(46, 61), range(28, 37)),
    "final": (range(61, 74), range(37, 46)),
}
CNMC_FINAL_COUNT = 2586


def draw_blood_cell(leukemic: bool, rng: np.random.Generator, size: int = CELL_SIZE) -> np.ndarray:
    """A segmented B-lymphoid cell on black: normal cells are smaller with a round, paler nucleus;
    leukemic blasts are larger, with an irregular, darker nucleus filling most of the cell."""
    yy, xx = np.ogrid[0:size, 0:size]
    cy, cx = (size / 2 + rng.uniform(-20, 20) for _ in range(2))
    bins = 720  # the outline is a radius per direction, tabulated once instead of evaluated per pixel
    direction = ((np.arctan2(yy - cy, xx - cx) + np.pi) / (2 * np.pi) * (bins - 1)).astype(np.int32)
    distance = np.hypot(yy - cy, xx - cx)
    theta = np.linspace(-np.pi, np.pi, bins)

    def outline(radius, roughness):
        wobble = sum(rng.uniform(0, roughness) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) for k in range(2, 6))
        return distance <= (radius * (1 + wobble))[direction]

    cell_radius = rng.uniform(150, 190) if leukemic else rng.uniform(105, 140)
    cell = outline(cell_radius, 0.02 if leukemic else 0.015)
    nucleus = outline(cell_radius * (rng.uniform(0.78, 0.9) if leukemic else rng.uniform(0.55, 0.68)),
                      0.09 if leukemic else 0.025) & cell
    texture = _upsample(1 + 0.08 * rng.standard_normal((size // 10,) * 2, dtype=np.float32), size)
    image = np.zeros((size, size, 3), np.float32)
    image[cell] = (178, 152, 205)
    image[nucleus] = (72, 38, 122) if leukemic else (112, 70, 158)
    image *= texture[..., None]
    if leukemic:  # a few pale nucleoli
        ys, xs = np.nonzero(nucleus)
        for i in rng.integers(len(ys), size=int(rng.integers(1, 4))):
            r = int(rng.uniform(8, 16))
            y0, x0 = max(ys[i] - r, 0), max(xs[i] - r, 0)
            window = (slice(y0, ys[i] + r + 1), slice(x0, xs[i] + r + 1))
            wy, wx = np.ogrid[window]
            spot = (np.hypot(wy - ys[i], wx - xs[i]) < r) & nucleus[window]
            image[window][spot] *= 1.35
    return np.clip(image, 0, 255).astype(np.uint8)


def _cnmc_names(part: str, counts: tuple[int, int], rng) -> list[tuple[str, str]]:
    """(original file name, class) for `counts` = (all, hem) cells of the subjects of `part`."""
    leukemic, normal = CNMC_SUBJECTS[part]
    names, taken = [], set()
    for cls, n, subjects in (("all", counts[0], [str(p) for p in leukemic]),
                             ("hem", counts[1], [f"H{p}" for p in normal])):
        for _ in range(n):
            while True:
                name = (f"UID_{rng.choice(subjects)}_{int(rng.integers(1, 60))}_"
                        f"{int(rng.integers(1, 12))}_{cls}.bmp")
                if name not in taken:
                    break
            taken.add(name)
            names.append((name, cls))
    return names


def _bmp(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="BMP")
    return buffer.getvalue()


def write_leukemia(dest, variant: str = "kaggle", *, scale: float = 0.01, seed: int = 0, as_zip: bool = False,
                   wrapper: str | None = None) -> Path:
    """Write one C-NMC layout under `dest` (a folder, or `dest` + '.zip'); returns its path.

    variant: "kaggle" (C-NMC_Leukemia/training_data, validation_data, testing_data), "tcia"
    (C-NMC_training_data, C-NMC_test_prelim_phase_data/C-NMC_test_prelim_phase_data, ...) or "flat"
    (Leukemia/image/*.bmp with train.txt, val.txt, test.txt holding the labelled preliminary set).
    """

    rng = np.random.default_rng(seed)
    out = Writer(dest, as_zip)
    top = f"{wrapper}/" if wrapper else ""
    prelim = _cnmc_names("prelim", tuple(_scaled(n, scale) for n in Leukemia.PRELIM_COUNTS), rng)

    def cell(cls):
        return _bmp(draw_blood_cell(cls == "all", rng))

    if variant in ("kaggle", "tcia"):
        if variant == "kaggle":
            top += "C-NMC_Leukemia/"
            train_dir = f"{top}training_data"
            prelim_dir = f"{top}validation_data/C-NMC_test_prelim_phase_data"
            labels_csv = f"{top}validation_data/C-NMC_test_prelim_phase_data_labels.csv"
            final_dir = f"{top}testing_data/C-NMC_test_final_phase_data"
        else:
            train_dir = f"{top}C-NMC_training_data"
            prelim_dir = f"{top}C-NMC_test_prelim_phase_data/C-NMC_test_prelim_phase_data"
            labels_csv = f"{top}C-NMC_test_prelim_phase_data/C-NMC_test_prelim_phase_data_labels.csv"
            final_dir = f"{top}C-NMC_test_final_phase_data/C-NMC_test_final_phase_data"
        for fold, counts in Leukemia.FOLD_COUNTS.items():
            for name, cls in _cnmc_names(f"fold_{fold}", tuple(_scaled(n, scale) for n in counts), rng):
                out.bytes(f"{train_dir}/fold_{fold}/{cls}/{name}", cell(cls))
        order = rng.permutation(len(prelim))
        rows = [["Patient_ID", "new_names", "labels"]]
        for number, index in enumerate(order, start=1):
            name, cls = prelim[index]
            out.bytes(f"{prelim_dir}/{number}.bmp", cell(cls))
            rows.append([name, f"{number}.bmp", 1 if cls == "all" else 0])
        out.text(labels_csv, rows)
        for number in range(1, _scaled(CNMC_FINAL_COUNT, scale) + 1):
            out.bytes(f"{final_dir}/{number}.bmp", cell("all" if rng.random() < 0.65 else "hem"))
    elif variant == "flat":
        top += "Leukemia/"
        splits = {"train.txt": [], "val.txt": [], "test.txt": []}
        n_test, n_val = max(1, round(0.2 * len(prelim))), max(1, round(0.1 * len(prelim)))  # 70/10/20
        for i, index in enumerate(rng.permutation(len(prelim))):
            name, cls = prelim[index]
            out.bytes(f"{top}image/{name}", cell(cls))
            txt = "test.txt" if i < n_test else "val.txt" if i < n_test + n_val else "train.txt"
            splits[txt].append([name, 1 if cls == "all" else 0])
        for txt, rows in splits.items():
            out.text(f"{top}{txt}", rows, delimiter=" ")
    else:
        raise ValueError(f"unknown C-NMC variant {variant!r}: kaggle, tcia or flat")
    out.close()
    return out.dest


# -- BIS5k, H&E breast-cancer segmentation ------------------------------------------------------------
# The file-name prefix of each split folder; the counts are the builder's published ones.
BIS5K_PREFIXES = {"formal_train": "bis_he_id", "formal_test": "bis_val_id"}


def draw_he_tile(rng: np.random.Generator, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """An H&E-like RGB tile (pink stroma, purple nuclei) and its cancer mask (0/255): the cancer regions
    are smooth blobs where nuclei are denser, larger and darker."""
    field = _upsample(rng.standard_normal((8, 8), dtype=np.float32), size)  # smooth, blob-shaped
    cancer = field > np.quantile(field, rng.uniform(0.45, 0.85))

    def nuclei(density, radius, where):
        seeds = (rng.random((size, size)) < density) & where
        # 40% of one isolated nucleus's peak, so lone nuclei show and neighbours merge into clumps.
        return ndimage.gaussian_filter(seeds.astype(np.float32), radius) > 0.4 / (2 * np.pi * radius * radius)

    normal_nuclei = nuclei(0.0008, 2.0, ~cancer)
    tumour_nuclei = nuclei(0.003, 3.0, cancer)
    texture = _upsample(1 + 0.05 * rng.standard_normal((size // 16,) * 2, dtype=np.float32), size)[..., None]
    image = np.empty((size, size, 3), np.float32)
    image[:] = (236, 178, 206)  # eosin-stained stroma
    image[cancer] = (222, 160, 200)
    image[normal_nuclei] = (120, 70, 150)  # haematoxylin
    image[tumour_nuclei] = (82, 42, 122)
    image = image * texture + 4 * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), (cancer * 255).astype(np.uint8)


def _upsample(small: np.ndarray, size: int) -> np.ndarray:
    """Smooth bicubic enlargement of a float32 field (PIL's C resize: ~10x faster than ndimage.zoom)."""
    return np.asarray(Image.fromarray(small, mode="F").resize((size, size), Image.Resampling.BICUBIC))


def write_bis5k(dest, *, scale: float = 0.002, seed: int = 0, as_zip: bool = False, wrapper: str | None = None,
                size: int = 512) -> Path:
    """BIS5k/formal_train/{images,masks}/bis_he_idNNNNNN.png and formal_test/{images,masks}/bis_val_idNNNNNN.png
    (RGB images, single-channel 0/255 masks). The real image size is unpublished; `size` sets ours."""
    rng = np.random.default_rng(seed)
    out = Writer(dest, as_zip)
    top = (f"{wrapper}/" if wrapper else "") + "BIS5k/"
    for folder, prefix in BIS5K_PREFIXES.items():
        count = BIS5k.PUBLISHED_COUNTS[BIS5k.SPLIT_FOLDERS[folder]]["total"]
        for number in range(_scaled(count, scale)):
            image, mask = draw_he_tile(rng, size)
            out.png(f"{top}{folder}/images/{prefix}{number:06d}.png", image)
            out.png(f"{top}{folder}/masks/{prefix}{number:06d}.png", mask)
    out.close()
    return out.dest


# -- GZMH, breast-cancer mitosis -----------------------------------------------------------------------
GZMH_SIZE = 2084
# The real split sizes are unpublished; these fractions only give every split some images.
GZMH_SPLITS = {"v1": {"train": 0.7, "test": 0.3},
               "v2": {"train": 0.7, "test_1or2_score": 0.15, "test_3_score": 0.15}}


def draw_mitosis_field(rng: np.random.Generator, size: int = GZMH_SIZE, mitoses: int = 2):
    """An H&E high-power field (pink stroma, purple nuclei) with dark, ragged mitotic figures, its mask
    (0/255) and each figure's pixel box (x0, y0, x1, y1 exclusive) and centroid, measured on the drawn
    pixels. Figures never touch one another, so each is one connected component."""
    stroma = _upsample(rng.standard_normal((8, 8), dtype=np.float32), size)
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
    image = image * _upsample(1 + 0.04 * rng.standard_normal((max(1, size // 16),) * 2, dtype=np.float32), size)[..., None]
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
    """Two plausible GZMH layouts (the real one is unpublished, SOURCES.md section 4):

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
    total = _scaled(GZMH.PUBLISHED_IMAGES, scale)
    number = 1
    for split, fraction in GZMH_SPLITS[layout].items():
        coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "mitosis"}]}
        csv_rows = [["image", "xmin", "ymin", "xmax", "ymax", "cx", "cy"]]
        for _ in range(max(1, round(total * fraction))):
            name = f"{number:04d}"
            mitoses_per_image = GZMH.PUBLISHED_MITOSES / GZMH.PUBLISHED_IMAGES
            image, mask, figures = draw_mitosis_field(rng, size, int(rng.poisson(mitoses_per_image)))
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
