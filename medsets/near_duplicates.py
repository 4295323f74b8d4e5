"""Near-duplicates: the same object imaged twice, found in every build beside the pixel-identical copies.

A re-imaged cell is shifted by a few pixels and carries another exposure, focus and noise; a redistribution
may also have flipped or turned it. The trap is the look-alikes: smooth cells of one pattern look the same
at low resolution by the thousand, so a coarse comparison alone joins different cells. Only fine texture
(speckles, chromatin, the edge's irregularities) tells them apart, and that needs full resolution and a
small shift search. So:

1. While rows are written, each image (or, for tiled datasets, each source image) leaves a `signature`:
   its grey levels, reduced to fit 80x80 when larger (cheap: the rest runs on all of them at once).
2. After all rows are written (`near_pairs`, in chunks and threads): each thumbnail is cut to a 57x57 crop
   centred on its object (`centred_crops`). Candidates are each crop's nearest neighbours in a coarse space
   (12x12 block means, normalised for exposure, on 8 principal axes; a k-d tree, so the search grows as
   n log n), queried in all eight orientations. Each candidate pair is compared on fine texture: the
   band-pass (difference of Gaussians, sigma 0.6 and 1.5 px) inside the objects, the outline left out,
   normalised per image, correlated at the best of the 3x3 one-pixel shifts.
3. `decided`: how well two different objects' textures correlate depends on the pattern, so a pair counts
   by how far its correlation rises above the median of its images' candidates (their look-alikes)
   towards 1; it is a near-duplicate when it rises `THRESHOLD` of the way.

Exposure, contrast and gamma changes, noise, slight blur and JPEG re-encoding leave the band-passed texture
correlated; two different cells, however alike in shape and brightness, have independent textures. The
threshold was set on the synthetic replicas (medsets/synthetic/): over ten seeds of the ICPR 2014 replica,
re-imaged cells rose at least 0.69 of the way, other cells at most 0.50; docs/building.md says what that
does and does not prove about real files.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image as PILImage
from scipy import ndimage

SIDE = 57  # the signature's crop: odd, so that turning it keeps the centre pixel in place
MAX_SIDE = 80  # larger images are reduced to fit this square before the crop
COARSE_BLOCK = 4  # 48x48 of the crop in 4x4 blocks: the coarse 12x12 descriptor
COMPONENTS = 8  # principal axes of the coarse descriptor: a k-d tree stays fast in few dimensions
NEIGHBOURS = {0: 6, "other": 1}  # candidates per image: in its own orientation, in each of the seven others
BAND = (0.6, 1.5)  # px: the sigmas of the difference of Gaussians, fine texture but not the pattern's shapes
CHUNK = 1024  # images filtered at once
THREADS = min(8, os.cpu_count() or 1)
COMPARED = 45  # px: the central part of the crop the texture is compared on (most objects' interior)
MARGIN = 4  # px kept off the outline (its 15% contour after smoothing lies ~3 px outside the edge)
THRESHOLD = 0.58
SHIFT = 1  # px searched each way around the centroids' alignment


def signature(image: PILImage.Image) -> bytes:
    """The image's signature for the search, made while its row is written: its grey levels reduced to fit
    MAX_SIDE x MAX_SIDE (box filter) and placed in that square, as uint8. Cheap on
    purpose (a conversion and, for large images, one resize); everything else runs on all signatures at
    once in `near_pairs`."""
    grey = image.convert("L")
    if max(grey.size) > MAX_SIDE:
        scale = MAX_SIDE / max(grey.size)
        grey = grey.resize((max(1, round(grey.width * scale)), max(1, round(grey.height * scale))),
                           PILImage.Resampling.BOX)
    if grey.size != (MAX_SIDE, MAX_SIDE):
        # in the middle of a square of its mean level: a turned or mirrored image lands turned or mirrored
        square = PILImage.new("L", (MAX_SIDE, MAX_SIDE), round(float(np.asarray(grey).mean())))
        square.paste(grey, ((MAX_SIDE - grey.width) // 2, (MAX_SIDE - grey.height) // 2))
        grey = square
    return grey.tobytes()


def thumbnails_of(signatures: list[bytes]) -> np.ndarray:
    return np.frombuffer(b"".join(signatures), np.uint8).reshape(len(signatures), MAX_SIDE, MAX_SIDE)


def centred_crops(thumbnails: np.ndarray) -> np.ndarray:
    """SIDE x SIDE float32 crops, each centred on its object to the nearest pixel; the rounding and the
    centre's own error under another exposure are left to the shift search. (Centring to a fraction of a
    pixel by interpolation blurs each crop by its own fraction, which weakens the finest texture unequally
    in two images of one object and strengthens it in none: measured, it joined look-alikes more.) The
    centre: the centroid of the part brighter than half-way between the smoothed image's darkest and
    brightest level (a binary region moves little under another gain, gamma or noise, where an
    intensity-weighted centroid follows the exposure)."""
    side = thumbnails.shape[-1]
    pixels = thumbnails.astype(np.float32)
    smooth = ndimage.gaussian_filter(pixels, (0, 2.0, 2.0), truncate=3)
    low, high = smooth.min(axis=(1, 2)), smooth.max(axis=(1, 2))
    inside = smooth > ((low + high) / 2)[:, None, None]
    count = inside.sum(axis=(1, 2))
    positions = np.arange(side, dtype=np.float64)
    flat = (high <= low) | (count == 0)  # no object: the middle
    safe = np.maximum(count, 1)
    cy = np.where(flat, (side - 1) / 2, inside.sum(axis=2) @ positions / safe)
    cx = np.where(flat, (side - 1) / 2, inside.sum(axis=1) @ positions / safe)
    radius = SIDE // 2
    padded = np.pad(pixels, ((0, 0), (radius, radius), (radius, radius)), mode="edge")
    tops, lefts = np.round(cy).astype(np.int64), np.round(cx).astype(np.int64)
    return np.stack([padded[i, top:top + SIDE, left:left + SIDE] for i, (top, left) in enumerate(zip(tops, lefts))])


def orient(stack: np.ndarray, orientation: int) -> np.ndarray:
    """One of the eight symmetries of the square on the last two axes: turns by 90 degrees (0-3), then the
    same after a mirror (4-7)."""
    if orientation >= 4:
        stack = stack[..., ::-1]
    return np.rot90(stack, orientation % 4, axes=(-2, -1))


def _normalised(stack: np.ndarray) -> np.ndarray:
    flat = stack.reshape(len(stack), -1)
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.linalg.norm(flat, axis=1, keepdims=True)
    return (flat / np.where(norm > 0, norm, 1)).reshape(stack.shape).astype(np.float32)


def fine_texture(crops: np.ndarray) -> np.ndarray:
    """Band-passed crops (difference of Gaussians) inside each object's interior, normalised to zero mean and
    unit norm, cut to the central COMPARED x COMPARED pixels (what the comparison reads). The outline is left
    out: smooth objects of one size have the same outline once centred, so it would join look-alikes; the
    texture inside is each object's own."""
    from scipy import ndimage

    pixels = crops.astype(np.float32)
    smooth = ndimage.gaussian_filter(pixels, (0, 3.0, 3.0), truncate=2.5)
    band = (ndimage.gaussian_filter(pixels, (0, BAND[0], BAND[0]), truncate=3)
            - ndimage.gaussian_filter(pixels, (0, BAND[1], BAND[1]), truncate=3))
    low, high = smooth.min(axis=(1, 2), keepdims=True), smooth.max(axis=(1, 2), keepdims=True)
    inside = (smooth > low + 0.15 * (high - low)).view(np.uint8)  # the whole object, its dim parts too
    for axis in (1, 2):  # eroded by MARGIN px: a minimum filter, separable
        inside = ndimage.minimum_filter1d(inside, 2 * MARGIN + 1, axis=axis)
    start = (crops.shape[-1] - COMPARED) // 2
    window = np.s_[:, start:start + COMPARED, start:start + COMPARED]
    interior, band = inside[window].astype(bool), band[window]
    flat, inner = band.reshape(len(band), -1), interior.reshape(len(band), -1)
    count = np.maximum(inner.sum(axis=1, keepdims=True), 1)
    flat = np.where(inner, flat - (flat * inner).sum(axis=1, keepdims=True) / count, 0)
    norm = np.linalg.norm(flat, axis=1, keepdims=True)
    return (flat / np.where(norm > 0, norm, 1)).reshape(band.shape).astype(np.float32)


def coarse(crops: np.ndarray) -> np.ndarray:
    """12x12 block means of each crop (its central 48x48), normalised: a descriptor shifts barely move."""
    side, start = 48, (crops.shape[-1] - 48) // 2
    pixels = crops[:, start:start + side, start:start + side].astype(np.float32)
    blocks = pixels.reshape(len(crops), side // COARSE_BLOCK, COARSE_BLOCK, side // COARSE_BLOCK, COARSE_BLOCK)
    return _normalised(blocks.mean(axis=(2, 4)))


def near_pairs(thumbnails: np.ndarray, threshold: float = THRESHOLD) -> list[tuple[int, int, float]]:
    """(i, j, similarity) with i < j for every pair of signatures (`thumbnails_of` them) that shows one object
    twice."""
    from scipy.spatial import cKDTree

    n = len(thumbnails)
    if n < 2:
        return []
    # In chunks: the centred crops and their filters' float intermediates for all images at once would be
    # ~20x the signatures; only the coarse descriptors and the compared texture are kept.
    def prepared(start):
        crops = centred_crops(thumbnails[start:start + CHUNK])
        return coarse(crops), fine_texture(crops)

    with ThreadPoolExecutor(THREADS) as pool:  # numpy and scipy.ndimage let go of the GIL in their loops
        parts = list(pool.map(prepared, range(0, n, CHUNK)))
    descriptors, texture = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    flat = descriptors.reshape(n, -1)
    mean = flat.mean(axis=0)
    sample = flat[np.linspace(0, n - 1, min(n, 4000)).astype(int)] - mean
    axes = np.linalg.svd(sample, full_matrices=False)[2][:min(COMPONENTS, flat.shape[1], len(sample))]
    tree = cKDTree((flat - mean) @ axes.T)
    found_pairs = []
    for orientation in range(8):
        k = min(n, (NEIGHBOURS[0] + 1) if orientation == 0 else NEIGHBOURS["other"])
        turned = orient(descriptors, orientation).reshape(n, -1)
        _, found = tree.query((turned - mean) @ axes.T, k=k, eps=0.5)  # near enough: candidates only
        found = np.asarray(found).reshape(n, -1)
        first = np.repeat(np.arange(n), found.shape[1])
        second = found.ravel()
        keep = (second != first) & (second < n)
        first, second = first[keep], second[keep]
        if orientation == 0:  # (i, j) and (j, i) are one comparison in the image's own orientation
            first, second = np.minimum(first, second), np.maximum(first, second)
        found_pairs.append(np.stack([first, second, np.full_like(first, orientation)], axis=1))
    candidates = np.unique(np.concatenate(found_pairs), axis=0)
    scores = texture_scores(texture, candidates)
    return decided(n, candidates, scores, threshold)


def texture_scores(texture: np.ndarray, candidates: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Each candidate (i, j, orientation of i)'s fine-texture correlation at the best of the shifts up to
    SHIFT px each way (every candidate: a misaligned re-imaged pair scores low unshifted, so no unshifted
    score may decide which pairs are worth the search)."""
    side = texture.shape[-1]
    inner = np.s_[:, SHIFT:side - SHIFT, SHIFT:side - SHIFT]  # the crop less the border a shift moves out
    scores = np.empty(len(candidates), np.float32)

    def score(start):
        first, second, orientation = candidates[start:start + chunk].T
        turned = np.empty((len(first), side, side), np.float32)
        for o in np.unique(orientation):
            where = orientation == o
            turned[where] = orient(texture[first[where]], int(o))
        fixed = texture[second][inner]
        best = np.full(len(first), -1.0, np.float32)
        for dy in range(-SHIFT, SHIFT + 1):
            for dx in range(-SHIFT, SHIFT + 1):
                moved = turned[:, SHIFT + dy:side - SHIFT + dy, SHIFT + dx:side - SHIFT + dx]
                np.maximum(best, np.einsum("nij,nij->n", moved, fixed), out=best)
        scores[start:start + chunk] = best

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(score, range(0, len(candidates), chunk)))
    return np.minimum(scores, 1.0)


def decided(n: int, candidates: np.ndarray, scores: np.ndarray, threshold: float) -> list[tuple[int, int, float]]:
    """(i, j, similarity) for the pairs that stand out from their images' look-alikes.

    How well two different cells' textures correlate depends on the pattern: thin rings and large spots
    share structure at the texture's scale, smooth cells share almost none. So each image's own background
    is the median score of its candidates (its nearest look-alikes, nearly all of them other cells), and a
    pair counts by how far it rises from the higher of its two backgrounds towards a perfect match:
    (score - background) / (1 - background) >= `threshold`. The similarity reported is the score itself."""
    first, second = candidates[:, 0], candidates[:, 1]
    pair_first, pair_second = np.minimum(first, second), np.maximum(first, second)
    by_image = np.concatenate([pair_first, pair_second])
    doubled = np.concatenate([scores, scores])
    order = np.lexsort((doubled, by_image))  # by image, then by score: each image's median from its run
    images, starts, counts = np.unique(by_image[order], return_index=True, return_counts=True)
    ranked = doubled[order]
    background = np.zeros(n, np.float32)
    background[images] = (ranked[starts + (counts - 1) // 2] + ranked[starts + counts // 2]) / 2
    level = np.clip(np.maximum(background[pair_first], background[pair_second]), 0, 0.95)
    rise = (scores - level) / (1 - level)
    if threshold is None:
        return pair_first, pair_second, rise
    best: dict[tuple[int, int], float] = {}
    for i, j, score in zip(pair_first[rise >= threshold].tolist(), pair_second[rise >= threshold].tolist(),
                           scores[rise >= threshold].tolist()):
        best[(i, j)] = max(best.get((i, j), 0.0), round(score, 4))
    return [(i, j, value) for (i, j), value in sorted(best.items())]
