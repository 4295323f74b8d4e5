"""Drawing fluorescence cells whose patterns really differ, so that a model trained on a replica has
something real to learn:

    homogeneous     evenly filled nucleus          speckled / fine_speckled   many fine dots
    coarse_speckled fewer, larger dots             nucleolar                  a few large bright blobs
    centromere      40-60 sharp points             numem                      a bright rim
    golgi           a crescent beside the nucleus  cytoplasmatic              fibres around a dark nucleus
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage


# Each cell's own chromatin texture, relative to its staining: what tells a re-imaged cell from a look-alike.
TEXTURE = 0.25
OUTLINE = 0.04  # the outline's irregularity: relative radius, per harmonic


def cell_shape(height: int, width: int, rng: np.random.Generator) -> tuple[float, float, float, float, float]:
    """Centre (y, x), radii (y, x) and orientation of a nucleus drawn at random."""
    size = min(height, width)
    return (height / 2 + rng.uniform(-0.06, 0.06) * size, width / 2 + rng.uniform(-0.06, 0.06) * size,
            rng.uniform(0.22, 0.3) * size, rng.uniform(0.22, 0.3) * size, rng.uniform(0, np.pi))


def draw_cell(pattern: str, height: int, width: int, rng: np.random.Generator, brightness: float = 1.0):
    """A fluorescence cell crop (float32 in [0, 1]) and its cell mask (bool), pattern-specific."""
    cell, mask = render_cell(pattern, height, width, rng, brightness)
    return acquire(cell, rng), mask


def acquire(cell: np.ndarray, rng: np.random.Generator, *, shift: tuple[int, int] = (0, 0), gain: float = 1.0,
            gamma: float = 1.0, blur: float = 0.0, orientation: int = 0) -> np.ndarray:
    """One image of a rendered cell: the field moved by `shift` px, focus (`blur`), exposure (`gain`,
    `gamma`), the microscope's turn or mirror (`orientation`, 0-7), and the camera's noise, new each time."""
    image = np.roll(cell, shift, axis=(0, 1))
    if blur:
        image = ndimage.gaussian_filter(image, blur)
    image = gain * np.clip(image, 0, None) ** gamma
    if orientation >= 4:
        image = image[:, ::-1]
    image = np.rot90(image, orientation % 4)
    image = image + rng.normal(0.02, 0.02, image.shape).astype(np.float32)
    return np.clip(image, 0, 1).astype(np.float32)


def render_cell(pattern: str, height: int, width: int, rng: np.random.Generator, brightness: float = 1.0,
                shape: tuple | None = None, exposure: float | None = None):
    """The cell itself before it is imaged (float32, no camera noise) and its mask: the pattern, the cell's
    own texture, the optics' blur. `shape` and `exposure` fix what is otherwise drawn (look-alikes share them)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    size = min(height, width)
    cy, cx, ry, rx, theta = shape or cell_shape(height, width, rng)
    dy, dx = yy - cy, xx - cx
    u = (dx * np.cos(theta) + dy * np.sin(theta)) / rx
    v = (-dx * np.sin(theta) + dy * np.cos(theta)) / ry
    # No nucleus is an exact ellipse: each has its own irregular outline (a few low harmonics of the angle),
    # which imaging it again keeps and a look-alike of the same size does not share.
    angle = np.arctan2(v, u)
    outline = sum(rng.normal(0, OUTLINE) * np.cos(k * angle + rng.uniform(0, 2 * np.pi)) for k in range(2, 7))
    r = np.sqrt(u * u + v * v) * (1 + outline)  # 1.0 on the nuclear boundary
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
    texture = ndimage.gaussian_filter(rng.standard_normal((height, width)).astype(np.float32), 1.0)
    image *= 1 + TEXTURE * texture / max(float(texture.std()), 1e-6)
    exposure = rng.uniform(0.75, 1.0) if exposure is None else exposure
    return ndimage.gaussian_filter(image, 0.6) * brightness * exposure, r <= 1.45


def upsample(small: np.ndarray, size: int) -> np.ndarray:
    """Smooth bicubic enlargement of a float32 field (PIL's C resize: ~10x faster than ndimage.zoom)."""
    return np.asarray(Image.fromarray(small, mode="F").resize((size, size), Image.Resampling.BICUBIC))
