"""Near-duplicates: the same object imaged twice, found in every build beside the pixel-identical copies.

A re-imaged cell is shifted by a few pixels and carries another exposure, focus and noise; a redistribution
may also have flipped or turned it. The trap is the look-alikes: smooth cells of one pattern look the same
at low resolution by the thousand, so a coarse comparison alone joins different cells. Only fine texture
(speckles, chromatin, the edge's irregularities) tells them apart, and that needs full resolution and a
small shift search. So:

1. While rows are written, each image (or, for tiled datasets, each source image) leaves a `signature`:
   its grey levels, reduced to fit 80x80 when larger (cheap, for every row). In a background thread, a
   chunk at a time (`Preparation`, on a core the row writing leaves idle), each thumbnail is cut to a
   57x57 crop centred on its object (`centred_crops`) and reduced to what the search compares (`prepared`).
2. After all rows are written (`pairs_among`): candidates are each crop's nearest neighbours in a coarse space
   (12x12 block means, normalised for exposure, on 8 principal axes; a k-d tree, so the search grows as
   n log n), queried in all eight orientations. Each candidate pair is compared on fine texture: the
   band-pass (difference of Gaussians, sigma 0.6 and 1.5 px) inside the objects, the outline left out,
   normalised per image, correlated at the best of the 3x3 one-pixel shifts.
3. `decided`: how well two different objects' textures correlate depends on the pattern, so a pair counts
   by how far its correlation rises above the median of its images' candidates (their look-alikes)
   towards 1; it is a near-duplicate when it rises `THRESHOLD` of the way.

Exposure, contrast and gamma changes, noise, slight blur and JPEG re-encoding leave the band-passed texture
correlated; two different cells, however alike in shape and brightness, have independent textures. The
threshold was set on the synthetic replicas (medsets/synthetic/): over seeds 0-9 of the ICPR 2014 replica,
149 of the 150 re-imaged cells rose at least 0.69 of the way, other cells at most 0.48 (the 150th, a cell
with one bright inclusion taken again with another gamma and blur, rose 0.29 and is missed);
docs/building.md says what that does and does not prove about real files.
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
THREADS = min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)  # cores it may use
COMPARED = 45  # px: the central part of the crop the texture is compared on (most objects' interior)
MARGIN = 4  # px kept off the outline (its 15% contour after smoothing lies ~3 px outside the edge)
THRESHOLD = 0.58
SHIFT = 1  # px searched each way around the centroids' alignment


def signature(image: PILImage.Image, pixels: bytes | None = None) -> bytes:
    """The image's signature for the search, made while its row is written: its grey levels reduced to fit
    MAX_SIDE x MAX_SIDE (box filter) and placed in that square, as uint8. Cheap on
    purpose (a conversion and, for large images, one resize); everything else runs on all signatures at
    once in `near_pairs`. `pixels`: the image's `tobytes()` where the caller has them already (for a grey
    image they are its grey levels)."""
    grey = image if image.mode == "L" else image.convert("L")
    if max(grey.size) > MAX_SIDE:
        scale = MAX_SIDE / max(grey.size)
        grey = grey.resize((max(1, round(grey.width * scale)), max(1, round(grey.height * scale))),
                           PILImage.Resampling.BOX)
    if grey.size == (MAX_SIDE, MAX_SIDE):
        return grey.tobytes()
    # In the middle of a square of its mean level: a turned or mirrored image lands turned or mirrored.
    # (Through bytes, not np.asarray: this runs for every row, and the array interface costs more than the rest.)
    levels = pixels if grey is image and pixels is not None else grey.tobytes()
    levels = np.frombuffer(levels, np.uint8).reshape(grey.height, grey.width)
    # The mean as an exact integer sum: equal to levels.mean() (whose float sums of 8-bit integers are exact), faster
    square = np.full((MAX_SIDE, MAX_SIDE), round(int(levels.sum(dtype=np.uint64)) / levels.size), np.uint8)
    top, left = (MAX_SIDE - grey.height) // 2, (MAX_SIDE - grey.width) // 2
    square[top:top + grey.height, left:left + grey.width] = levels
    return square.tobytes()


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
    tops, lefts = np.round(cy).astype(np.int64) - radius, np.round(cx).astype(np.int64) - radius
    crops = np.empty((len(pixels), SIDE, SIDE), np.float32)
    inside_the_image = (np.minimum(tops, lefts) >= 0) & (np.maximum(tops, lefts) <= side - SIDE)
    for i in np.flatnonzero(inside_the_image):  # nearly all: a slice of the image itself
        crops[i] = pixels[i, tops[i]:tops[i] + SIDE, lefts[i]:lefts[i] + SIDE]
    for i in np.flatnonzero(~inside_the_image):  # an object off centre: the image's edge pixels extended
        padded = np.pad(pixels[i], radius, mode="edge")
        crops[i] = padded[tops[i] + radius:tops[i] + radius + SIDE, lefts[i] + radius:lefts[i] + radius + SIDE]
    return crops


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


def prepared(thumbnails: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(coarse descriptors, fine texture) of signatures (`thumbnails_of` them): what the search compares.
    In chunks, in threads: the centred crops and their filters' float intermediates for all images at once
    would be ~20x the signatures; only the descriptors and the compared texture are kept."""
    if not len(thumbnails):
        return np.zeros((0, 12, 12), np.float32), np.zeros((0, COMPARED, COMPARED), np.float32)
    with ThreadPoolExecutor(THREADS) as pool:  # numpy and scipy.ndimage let go of the GIL in their loops
        parts = list(pool.map(_prepared_chunk, [thumbnails[i:i + CHUNK] for i in range(0, len(thumbnails), CHUNK)]))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


class Preparation:
    """`prepared` run in a background thread while the rows are still being written, a chunk at a time as
    signatures arrive (`add`), so that the search after the pass (`take`) finds most of its work done. A
    build writes rows in one process and one thread, so the machine's other cores are otherwise idle then.

    The preparation keeps the signatures it is given (`add` returns the number to fetch one back with
    `signature`, in place of storing it in the build's ledger) and knows them again in `take` by identity:
    rows read back in another order, or a tiled image's signature given once per tile, need no bookkeeping.
    Only the process that made it prepares: a worker process forked from it has no such thread (`add`
    returns None there), and a worker's signatures are prepared by `take` like any it does not know."""

    def __init__(self):
        self._owner = os.getpid()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="near-duplicate-preparation")
        self._signatures: list[bytes] = []  # every signature given, in order; chunk c holds c*CHUNK onwards
        self._chunks: list = []  # futures of (descriptors, texture), one per full chunk of signatures

    def add(self, signature_bytes: bytes) -> int | None:
        """Keep a signature and prepare it in the background; its number, or None where this preparation
        does not run (another process, or closed). Called for every row written, so kept cheap. A tiled
        dataset gives its source image's signature with each of its tiles, as one object: kept once."""
        if os.getpid() != self._owner or self._pool is None:
            return None
        if self._signatures and signature_bytes is self._signatures[-1]:
            return len(self._signatures) - 1
        self._signatures.append(signature_bytes)
        if len(self._signatures) % CHUNK == 0:
            self._chunks.append(self._pool.submit(_prepared_signatures, self._signatures[-CHUNK:]))
        return len(self._signatures) - 1

    def signature(self, number: int) -> bytes:
        return self._signatures[number]

    def take(self, signatures: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
        """`prepared(thumbnails_of(signatures))`: rows from the chunks prepared in the background, the rest
        (the last partial chunk, a worker process's rows) prepared now. Once taken, the chunks are let go
        (each as soon as its rows are copied, so that the texture is held about once, not twice)."""
        chunks, self._chunks = [future.result() for future in self._chunks], []
        number = {id(kept): index for index, kept in enumerate(self._signatures[:len(chunks) * CHUNK])}
        found = np.array([number.get(id(s), -1) for s in signatures], np.int64)
        descriptors = np.empty((len(signatures), 12, 12), np.float32)
        texture = np.empty((len(signatures), COMPARED, COMPARED), np.float32)
        for chunk in range(len(chunks)):
            wanted = np.flatnonzero(found // CHUNK == chunk)  # (-1 // CHUNK is -1: in no chunk)
            rows = found[wanted] % CHUNK
            descriptors[wanted], texture[wanted] = chunks[chunk][0][rows], chunks[chunk][1][rows]
            chunks[chunk] = None
        missing = np.flatnonzero(found < 0)
        if len(missing):
            descriptors[missing], texture[missing] = prepared(thumbnails_of([signatures[i] for i in missing]))
        return descriptors, texture

    def close(self, finish: bool = False):
        """No more signatures: the thread ends, after the chunks handed to it when `finish` (their results
        stay for `take`), else dropping those it has not begun and the signatures kept."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=not finish)
            self._pool = None
        if not finish:
            self._chunks, self._signatures = [], []

    def __getstate__(self):
        # Sent to a worker process with its builder: there it only ignores what it is given (see `add`).
        return {"_owner": self._owner}

    def __setstate__(self, state):
        self._owner, self._pool, self._signatures, self._chunks = state["_owner"], None, [], []


def _prepared_chunk(thumbnails: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    crops = centred_crops(thumbnails)
    return coarse(crops), fine_texture(crops)


def _prepared_signatures(signatures: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    return _prepared_chunk(thumbnails_of(signatures))


def near_pairs(thumbnails: np.ndarray, threshold: float = THRESHOLD) -> list[tuple[int, int, float]]:
    """(i, j, similarity) with i < j for every pair of signatures (`thumbnails_of` them) that shows one object
    twice. (A build prepares while it writes rows: `Preparation`, then `pairs_among`.)"""
    if len(thumbnails) < 2:
        return []
    return pairs_among(*prepared(thumbnails), threshold)


def pairs_among(descriptors: np.ndarray, texture: np.ndarray, threshold: float = THRESHOLD):
    """The search itself, on `prepared` descriptors and texture: candidates from the coarse space, each
    compared on texture, `decided`."""
    from scipy.spatial import cKDTree

    n = len(descriptors)
    if n < 2:
        return []
    flat = descriptors.reshape(n, -1).astype(np.float64)
    mean = flat.mean(axis=0)
    sample = flat[np.linspace(0, n - 1, min(n, 4000)).astype(int)] - mean
    # The principal axes: eigenvectors of the sample's scatter (the SVD's right vectors up to sign, which
    # moves no distance; a 144x144 eigenproblem instead of the SVD of a 4000x144 matrix).
    variances, vectors = np.linalg.eigh(sample.T @ sample)
    axes = vectors[:, ::-1][:, :min(COMPONENTS, flat.shape[1], len(sample))].T
    tree = cKDTree((flat - mean) @ axes.T)
    # A turned descriptor is a permutation of the descriptor's cells, so its projection is the descriptor's
    # own on axes permuted the other way: no turned copies of the descriptors are made.
    cells = np.arange(flat.shape[1]).reshape(descriptors.shape[1:])
    found_pairs = []
    # The image's own orientation, then the seven others in one query (fewer, larger calls use the threads).
    for orientations, k in (([0], NEIGHBOURS[0] + 1), (list(range(1, 8)), NEIGHBOURS["other"])):
        turned = np.concatenate([flat @ _turned_axes(axes, orient(cells, o).ravel()).T for o in orientations])
        _, found = tree.query(turned - mean @ axes.T, k=min(n, k), eps=0.5, workers=THREADS)  # candidates only
        found = np.asarray(found).reshape(len(turned), -1)
        first = np.repeat(np.arange(len(turned)) % n, found.shape[1])
        orientation = np.repeat(np.repeat(orientations, n), found.shape[1])
        second = found.ravel()
        keep = (second != first) & (second < n)
        first, second, orientation = first[keep], second[keep], orientation[keep]
        if orientations == [0]:  # (i, j) and (j, i) are one comparison in the image's own orientation
            first, second = np.minimum(first, second), np.maximum(first, second)
        found_pairs.append((first, second, orientation))
    first, second, orientation = (np.concatenate(parts).astype(np.int64) for parts in zip(*found_pairs))
    unique = np.unique((first * n + second) * 8 + orientation)  # one key per (i, j, orientation), sorted as before
    candidates = np.stack([unique // 8 // n, unique // 8 % n, unique % 8], axis=1)
    scores = texture_scores(texture, candidates)
    return decided(n, candidates, scores, threshold)


def _turned_axes(axes: np.ndarray, taken_from: np.ndarray) -> np.ndarray:
    """Axes for projecting undone descriptors as if turned: the turned descriptor's cell c is the
    descriptor's cell `taken_from[c]`, so an axis weighs that descriptor cell with its own weight for c."""
    permuted = np.empty_like(axes)
    permuted[:, taken_from] = axes
    return permuted


def texture_scores(texture: np.ndarray, candidates: np.ndarray, chunk: int = 512) -> np.ndarray:
    """Each candidate (i, j, orientation of i)'s fine-texture correlation at the best of the shifts up to
    SHIFT px each way (every candidate: a misaligned re-imaged pair scores low unshifted, so no unshifted
    score may decide which pairs are worth the search). In chunks of `chunk` pairs: small enough that a
    chunk's two stacks stay in the processor's cache through the nine shifts (on the 13,596-cell replica
    512 took 0.62 s where 2,048 took 0.81)."""
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
