"""Replicas of the HEp-2 downloads: ICPR 2014 (three layouts) and the ICPR 2012 MIVIA download (contest
folder and Main_Dataset), with the quirks of the real files (docs/hep2.md).

The facts below are the releases' own, written here as literals and not taken from the builder, so that
a builder whose facts were wrong would fail the tests that build these replicas.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .drawing import acquire, cell_shape, draw_cell, render_cell
from .files import Writer, bmp, grey, mask_levels, scaled

# -- HEp-2 ICPR 2014 -----------------------------------------------------------------------------------
# Each class is a contiguous block of cell ids in the release: class -> (first id, last id).
ICPR2014_ID_RANGES = {"homogeneous": (1, 2494), "speckled": (2495, 5325), "nucleolar": (5326, 7923),
                      "centromere": (7924, 10664), "numem": (10665, 12872), "golgi": (12873, 13596)}
# The processed 78x78 distribution: cells per split and class.
ICPR2014_SPLIT_COUNTS = {
    "train": {"homogeneous": 1556, "speckled": 1800, "nucleolar": 1675, "centromere": 1791, "numem": 1430,
              "golgi": 449},
    "validation": {"homogeneous": 415, "speckled": 456, "nucleolar": 394, "centromere": 463, "numem": 337,
                   "golgi": 110},
    "test": {"homogeneous": 523, "speckled": 575, "nucleolar": 529, "centromere": 487, "numem": 441, "golgi": 165},
}
# It repeats a block of NuMem cells: 11005-11198 reappear as 11199-11392 (equal pixels, other bytes), with
# these pairs per split pair on the real files.
ICPR2014_REPEATED_BLOCK = range(11005, 11199)
ICPR2014_REPEAT_SHIFT = 194
# Besides those, about 300 pairs are one cell imaged twice (shifted by up to ~3 px, another exposure, focus
# and noise; never turned), ids a few apart within one class block.
ICPR2014_REIMAGED = 300
ICPR2014_LOOKALIKE_GROUPS = 60  # at full size: groups of 4 homogeneous cells alike in everything but texture
ICPR2014_REPEATED_PAIRS = {("train", "train"): 80, ("validation", "validation"): 3, ("test", "test"): 7,
                           ("train", "test"): 54, ("train", "validation"): 35, ("validation", "test"): 15}
ORIGINAL_SPELLING = {"homogeneous": "Homogeneous", "speckled": "Speckled", "nucleolar": "Nucleolar",
                     "centromere": "Centromere", "numem": "NuMem", "golgi": "Golgi"}


def write_hep2_icpr2014(dest, variant: str = "processed", *, scale: float = 0.02, seed: int = 0,
                        as_zip: bool = False, wrapper: str | None = None, split_folders="data",
                        extra_columns: bool = False, planted: dict | None = None) -> Path:
    """Write one ICPR 2014 layout under `dest` (a folder, or `dest` + '.zip'); returns its path.

    variant: "organisers" (ICIP2013_training_1.0/: train/NNNNN.png + NNNNN_Mask.png, gt_training.csv
    with BOM and CRLF), "processed" (78x78, training/validation/test + one gt_training.csv; folder
    naming from `split_folders`: "data", "short" (train/val/test) or "cellimage"), or "card"
    (HEp-2/train, HEp-2/test, train.csv, test.csv, as in the openmedlab card).

    The processed variant also carries what the real release holds besides its repeated block: cells imaged
    twice (`ICPR2014_REIMAGED` pairs at full size, ids close together, the second shifted, re-exposed, refocused
    and noisy, never turned) and look-alikes: groups of homogeneous cells of one size, shape and brightness
    that are different cells. `planted`, when given, is filled with both: {"reimaged": [(id, id)],
    "lookalikes": [[id, ...]]}.
    """
    rng = np.random.default_rng(seed)
    out = Writer(dest, as_zip)
    top = f"{wrapper}/" if wrapper else ""

    if variant == "organisers":
        top += "ICIP2013_training_1.0/"
        rows = [["Image ID", "Image class"] + (["Intensity", "Specimen"] if extra_columns else [])]
        for name, (first, _) in ICPR2014_ID_RANGES.items():
            for cell in range(first, first + scaled((ICPR2014_ID_RANGES[name][1] - ICPR2014_ID_RANGES[name][0] + 1), scale)):
                h, w = (int(s) for s in rng.integers(60, 111, 2))
                intensity = "positive" if rng.random() < 0.55 else "intermediate"
                image, mask = draw_cell(name, h, w, rng, 1.0 if intensity == "positive" else 0.55)
                out.png(f"{top}train/{cell:05d}.png", grey(image))
                out.png(f"{top}train/{cell:05d}_Mask.png", mask_levels(mask))
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
            wanted = {split: scaled(ICPR2014_SPLIT_COUNTS[split][name], scale) for split in folders}
            cells = {split: [] for split in folders}
            copies = {}  # copy id -> original id: the real release repeats a block of NuMem cells
            if name == "numem":
                for original, copy, split_a, split_b in _icpr2014_duplicates(wanted, scale, rng):
                    cells[split_a].append(original)
                    cells[split_b].append(copy)
                    copies[copy] = original
            # The whole block is left to the planted pairs, so an id in it is always one of a pair.
            block = {c + shift for c in ICPR2014_REPEATED_BLOCK for shift in (0, ICPR2014_REPEAT_SHIFT)}
            pool = rng.permutation([cell for cell in range(first, last + 1) if cell not in block])
            start = 0
            for split in folders:
                n = wanted[split] - len(cells[split])
                cells[split] += pool[start:start + n].tolist()
                start += n
            drawn = {original: draw_cell(name, 78, 78, rng)[0] for original in sorted(copies.values())}
            assigned = sorted(c for split in folders for c in cells[split] if c not in block)
            share = (last - first + 1) / 13596
            for one, again in _reimaged_pairs(assigned, scaled(ICPR2014_REIMAGED * share, scale), rng):
                cell, _ = render_cell(name, 78, 78, rng)
                drawn[one] = acquire(cell, rng)
                drawn[again] = acquire(cell, rng, shift=tuple(int(v) for v in rng.integers(-3, 4, 2)),
                                        gain=rng.uniform(0.8, 1.25), gamma=rng.uniform(0.85, 1.15),
                                        blur=rng.choice([0.0, 0.5]))
                if planted is not None:
                    planted.setdefault("reimaged", []).append((one, again))
            if name == "homogeneous":  # the hard case: smooth blobs of one size, shape and brightness
                free = [c for c in assigned if c not in drawn]
                for group in range(scaled(ICPR2014_LOOKALIKE_GROUPS, scale)):
                    members = sorted(int(c) for c in rng.choice(free, size=min(4, len(free)), replace=False))
                    free = [c for c in free if c not in members]
                    shape, exposure = cell_shape(78, 78, rng), rng.uniform(0.8, 0.95)
                    for member in members:
                        drawn[member] = acquire(render_cell(name, 78, 78, rng, shape=shape, exposure=exposure)[0], rng)
                    if planted is not None:
                        planted.setdefault("lookalikes", []).append(members)
            for split, folder in folders.items():
                for cell in sorted(cells[split]):
                    image = drawn.get(copies.get(cell, cell))
                    image = draw_cell(name, 78, 78, rng)[0] if image is None else image
                    # Each file saved at its own time: a copy differs from its original in bytes, not pixels.
                    out.png(f"{top}{folder}/{cell:05d}.png", grey(image),
                            saved=(2014, 1 + cell % 12, 1 + cell % 28, cell % 24, cell % 60, (cell // 60) % 60))
                    rows.append([f"{cell:05d}", ORIGINAL_SPELLING[name]])
        rows[1:] = sorted(rows[1:])
        out.text(f"{top}gt_training.csv", rows, final_newline=False)

    elif variant == "card":
        top += "HEp-2/"
        per_split = {"train": [["Image", "Label"]], "test": [["Image", "Label"]]}
        for name, (first, _) in ICPR2014_ID_RANGES.items():
            ids = np.arange(first, first + scaled((ICPR2014_ID_RANGES[name][1] - ICPR2014_ID_RANGES[name][0] + 1), scale))
            for i, cell in enumerate(rng.permutation(ids)):
                split = "test" if i % 5 == 4 else "train"
                image = draw_cell(name, int(rng.choice([78, 78, 79, 80])), 78, rng)[0]
                out.png(f"{top}{split}/{cell:05d}.png", grey(image))
                per_split[split].append([f"{cell:05d}.png", ORIGINAL_SPELLING[name]])
        for split, rows in per_split.items():
            out.text(f"{top}{split}.csv", [rows[0]] + sorted(rows[1:]))
    else:
        raise ValueError(f"unknown ICPR 2014 variant {variant!r}: organisers, processed or card")
    out.close()
    return out.dest


def _reimaged_pairs(ids: list[int], count: int, rng) -> list[tuple[int, int]]:
    """`count` pairs of cells of one class block, each cell and the next id the replica holds (on the real
    files a few apart), no cell in two pairs; their splits are whatever the cells' are, so about half cross."""
    pairs, taken = [], set()
    for start in rng.permutation(len(ids) - 1):
        if len(pairs) == count:
            break
        one, again = ids[start], ids[start + 1]
        if one not in taken and again not in taken:
            pairs.append((one, again))
            taken.update((one, again))
    return pairs


def _icpr2014_duplicates(wanted: dict[str, int], scale: float, rng) -> list[tuple[int, int, str, str]]:
    """The repeated block of the real release, scaled: (original, copy = original + 194, split of the
    original, split of the copy), with the real pairs per split pair (at least one of each while the
    scaled split counts leave room). Which of a pair lies in the earlier split is drawn at random, so the
    lower id is not always the one in train."""
    planted, used = [], Counter()
    originals = iter(ICPR2014_REPEATED_BLOCK)
    for (split_a, split_b), n in ICPR2014_REPEATED_PAIRS.items():
        for _ in range(scaled(n, scale)):
            need = Counter([split_a, split_b])
            original = next(originals, None)
            if original is None or any(used[s] + k > wanted[s] for s, k in need.items()):
                break
            used += need
            first, second = (split_a, split_b) if rng.random() < 0.5 else (split_b, split_a)
            planted.append((original, original + ICPR2014_REPEAT_SHIFT, first, second))
    return planted



# -- HEp-2 ICPR 2012 (MIVIA contest and Main_Dataset) ---------------------------------------------------
# Each slide image holds one pattern at one intensity; 14 slides for training, 14 others for test, numbered
# as the real release splits them. Cells per slide are chosen so that the training totals match the
# published pattern and intensity counts exactly; test totals follow the same proportions up to 734.
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
            for _ in range(scaled(count, scale)):
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
                    out.png(f"{contest}{folder}/{cell:03d}_mask.png", mask_levels(drawn.mask))
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
            out.bytes(f"{main}Images/{nn}/{nn}.bmp", bmp(slide.pixels))
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
                    out.png(f"{main}Cells/Cell_Masks/{nn}/{cell_id:03d}.png", mask_levels(canvas))
                else:
                    out.png(f"{main}Cells/Cell_Masks/{nn}/{cell_id:03d}.png", mask_levels(drawn.mask))
            out.text(f"{main}Images/{nn}/{nn}.csv", rows, delimiter=";")
    out.close()
    return out.dest


def write_mivia(dest, layout: str = "mivia", **options) -> Path:
    """The ICPR 2012 replica by layout: "mivia", the MIVIA download (the contest folder and Main_Dataset/ with
    the slides), or "contest", the contest folder alone."""
    return write_hep2_icpr2012(dest, parts=("contest", "main") if layout == "mivia" else ("contest",), **options)
