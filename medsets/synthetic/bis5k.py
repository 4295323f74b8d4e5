"""Replicas of the BIS5k download: formal_train/ and formal_test/, each with images/ and masks/ (0/255 PNG),
H&E-like tiles with a cancer region (docs/bis5k.md). The counts are literals, not the builder's.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from .drawing import upsample
from .files import Writer, reimaged, scaled

PUBLISHED_COUNTS = {"formal_train": 5000, "formal_test": 929}
# The file-name prefix of each split folder.
BIS5K_PREFIXES = {"formal_train": "bis_he_id", "formal_test": "bis_val_id"}

def draw_he_tile(rng: np.random.Generator, size: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """An H&E-like RGB tile (pink stroma, purple nuclei) and its cancer mask (0/255): the cancer regions
    are smooth blobs where nuclei are denser, larger and darker."""
    field = upsample(rng.standard_normal((8, 8), dtype=np.float32), size)  # smooth, blob-shaped
    cancer = field > np.quantile(field, rng.uniform(0.45, 0.85))

    def nuclei(density, radius, where):
        seeds = (rng.random((size, size)) < density) & where
        # 40% of one isolated nucleus's peak, so lone nuclei show and neighbours merge into clumps.
        return ndimage.gaussian_filter(seeds.astype(np.float32), radius) > 0.4 / (2 * np.pi * radius * radius)

    normal_nuclei = nuclei(0.0008, 2.0, ~cancer)
    tumour_nuclei = nuclei(0.003, 3.0, cancer)
    texture = upsample(1 + 0.05 * rng.standard_normal((size // 16,) * 2, dtype=np.float32), size)[..., None]
    image = np.empty((size, size, 3), np.float32)
    image[:] = (236, 178, 206)  # eosin-stained stroma
    image[cancer] = (222, 160, 200)
    image[normal_nuclei] = (120, 70, 150)  # haematoxylin
    image[tumour_nuclei] = (82, 42, 122)
    image = image * texture + 4 * rng.standard_normal(image.shape, dtype=np.float32)
    return np.clip(image, 0, 255).astype(np.uint8), (cancer * 255).astype(np.uint8)


def write_bis5k(dest, *, scale: float = 0.002, seed: int = 0, as_zip: bool = False, wrapper: str | None = None,
                size: int = 512) -> Path:
    """BIS5k/formal_train/{images,masks}/bis_he_idNNNNNN.png and formal_test/{images,masks}/bis_val_idNNNNNN.png
    (RGB images, single-channel 0/255 masks). The real image size is unpublished; `size` sets ours. The first
    test image is the first training image taken again, mirrored and re-exposed (a near-duplicate across
    splits, for the builds to find)."""
    rng = np.random.default_rng(seed)
    out = Writer(dest, as_zip)
    top = (f"{wrapper}/" if wrapper else "") + "BIS5k/"
    first = None
    for folder, prefix in BIS5K_PREFIXES.items():
        count = PUBLISHED_COUNTS[folder]
        for number in range(scaled(count, scale)):
            image, mask = draw_he_tile(rng, size)
            if first is None:
                first = image, mask
            elif folder == "formal_test" and number == 0:
                image, mask = reimaged(first[0], rng, gain=0.9, mirror=True), first[1][:, ::-1].copy()
            out.png(f"{top}{folder}/images/{prefix}{number:06d}.png", image)
            out.png(f"{top}{folder}/masks/{prefix}{number:06d}.png", mask)
    out.close()
    return out.dest


