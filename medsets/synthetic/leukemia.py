"""Replicas of the ISBI 2019 C-NMC leukemia downloads: the Kaggle and TCIA layouts and the image/ + .txt
repackaging, 450x450 BMP cells on black (docs/leukemia.md).

The published counts are written here as literals, not taken from the builder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .drawing import upsample
from .files import Writer, bmp, reimaged, scaled

# (leukemic "all", normal "hem") cells per training fold, and in the labelled preliminary test set.
FOLD_COUNTS = {"0": (2397, 1130), "1": (2418, 1163), "2": (2457, 1096)}
PRELIM_COUNTS = (1219, 648)
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
    texture = upsample(1 + 0.08 * rng.standard_normal((size // 10,) * 2, dtype=np.float32), size)
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


def write_leukemia(dest, variant: str = "kaggle", *, scale: float = 0.01, seed: int = 0, as_zip: bool = False,
                   wrapper: str | None = None) -> Path:
    """Write one C-NMC layout under `dest` (a folder, or `dest` + '.zip'); returns its path.

    variant: "kaggle" (C-NMC_Leukemia/training_data, validation_data, testing_data), "tcia"
    (C-NMC_training_data, C-NMC_test_prelim_phase_data/C-NMC_test_prelim_phase_data, ...) or "flat"
    (Leukemia/image/*.bmp with train.txt, val.txt, test.txt holding the labelled preliminary set).
    In the challenge layouts the first preliminary cell is the first training cell of its class taken again,
    turned by 90 degrees and re-exposed (a near-duplicate across splits, for the builds to find).
    """

    rng = np.random.default_rng(seed)
    out = Writer(dest, as_zip)
    top = f"{wrapper}/" if wrapper else ""
    prelim = _cnmc_names("prelim", tuple(scaled(n, scale) for n in PRELIM_COUNTS), rng)

    first_drawn = {}  # the first training cell of each class, drawn again for the preliminary set

    def cell(cls, again: bool = False):
        if again and cls in first_drawn:  # the same cell taken again, turned by 90 degrees: a near-duplicate
            return bmp(reimaged(first_drawn[cls], rng, gain=1.1, turns=1))
        pixels = draw_blood_cell(cls == "all", rng)
        first_drawn.setdefault(cls, pixels)
        return bmp(pixels)

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
        for fold, counts in FOLD_COUNTS.items():
            for name, cls in _cnmc_names(f"fold_{fold}", tuple(scaled(n, scale) for n in counts), rng):
                out.bytes(f"{train_dir}/fold_{fold}/{cls}/{name}", cell(cls))
        order = rng.permutation(len(prelim))
        rows = [["Patient_ID", "new_names", "labels"]]
        for number, index in enumerate(order, start=1):
            name, cls = prelim[index]
            out.bytes(f"{prelim_dir}/{number}.bmp", cell(cls, again=number == 1))
            rows.append([name, f"{number}.bmp", 1 if cls == "all" else 0])
        out.text(labels_csv, rows)
        for number in range(1, scaled(CNMC_FINAL_COUNT, scale) + 1):
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


