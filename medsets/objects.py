"""Objects from masks, tiles of large images, and the cross-check of boxes against masks.

Shared by detection datasets (GZMH). Coordinates are continuous pixel coordinates, as in COCO: pixel
(i, j) covers [i, i+1) x [j, j+1). So a one-pixel object at column 5, row 7 has the box [5, 7, 1, 1] and
the centroid [5.5, 7.5], and the centre of a component's box and its centroid agree for symmetric
shapes, which is what the centroid-matching evaluation compares.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# scipy is imported where it is used: every `medsets build` imports this module through the builders, and
# only GZMH builds need it (a quarter of a second of the CLI's start-up otherwise).

# 8-connectivity: pixels touching at a corner belong to one nucleus (a drawn outline is rarely 4-connected).
CONNECTIVITY = np.ones((3, 3), bool)


@dataclass(frozen=True)
class Component:
    index: int  # 1-based, in raster order of the component's first pixel (stable across rebuilds)
    bbox: tuple[int, int, int, int]  # x, y, w, h
    area: int
    centroid: tuple[float, float]  # x, y


def components(mask: np.ndarray) -> tuple[np.ndarray, list[Component]]:
    """Connected components of a binary mask: the label image (0 background, k for component k) and
    each component's box, pixel count and centroid."""
    from scipy import ndimage

    labels, count = ndimage.label(mask > 0, structure=CONNECTIVITY)
    if count == 0:
        return labels, []
    # Foreground pixels only: mitoses cover ~0.02% of a field, so this stays small for 2084x2084 masks.
    rows, cols = np.nonzero(labels)
    owner = labels[rows, cols]
    areas = np.bincount(owner, minlength=count + 1)
    # Sums of coordinates per label; the + 0.5 below moves pixel indices to pixel centres.
    row_sums = np.bincount(owner, weights=rows, minlength=count + 1)
    col_sums = np.bincount(owner, weights=cols, minlength=count + 1)
    found = []
    for k, box in enumerate(ndimage.find_objects(labels), start=1):
        y, x = box
        found.append(Component(
            index=k,
            bbox=(x.start, y.start, x.stop - x.start, y.stop - y.start),
            area=int(areas[k]),
            centroid=(float(col_sums[k] / areas[k] + 0.5), float(row_sums[k] / areas[k] + 0.5)),
        ))
    return labels, found


# -- tiles ---------------------------------------------------------------------------------------------
def tile_starts(length: int, tile: int, overlap: int, grid: int = 1) -> list[int]:
    """Start offsets along one axis: the fewest tiles that cover it with neighbours sharing at least
    `overlap` pixels, spread evenly from border to border (tiles never leave the image or pad it, so
    the actual overlap is usually larger than asked: 2084 px, tile 512, overlap 64 -> 5 tiles, 119 px).

    `grid` > 1 moves every start but the last (which ends at the border) to the nearest multiple of
    `grid`: a JPEG's 8 or 16 px blocks (its MCU), so that a tile re-encoded with the source's tables
    starts on the source's block grid; one tile more where the move would break the overlap
    (2084 px, 512, 64, grid 16 -> 0, 400, 784, 1184, 1572)."""
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f"tile size {tile} and overlap {overlap}: need 0 <= overlap < tile size")
    if grid > 1 and tile - overlap < grid:  # grid-aligned starts lie at least `grid` apart: no count would do
        raise ValueError(f"tile size {tile} and overlap {overlap}: tiles {tile - overlap} px apart cannot start on a "
                         f"{grid} px block grid")
    if length <= tile:
        return [0]
    count = -(-(length - tile) // (tile - overlap)) + 1
    while count <= length:  # always ends: at one start per pixel every gap is 1 px (grid: at most `grid`)
        starts = [round(i * (length - tile) / (count - 1)) for i in range(count)]
        if grid > 1:
            starts[:-1] = [min(grid * round(s / grid), length - tile) for s in starts[:-1]]
            starts = sorted(set(starts))  # two starts moved onto one grid point are one tile
        if all(b - a <= tile - overlap for a, b in zip(starts, starts[1:])):
            return starts
        count += 1  # the move to the grid widened a gap beyond the overlap: one tile more
    raise ValueError(f"tile size {tile}, overlap {overlap} and a {grid} px grid cannot cover {length} px")


def tiling_problem(tile: int, overlap: int, grid: int, side: int, most: int) -> tuple[str, str] | None:
    """What is wrong with tiling parameters, judged on a `side` x `side` image cut on a `grid` px block grid
    (1: none), as (problem, advice); None when they are fine. Refused: tiles under 64 px, an overlap outside
    0 <= overlap < tile, starts closer than the grid (no tiling could exist), more than `most` tiles."""
    if tile < 64 or not 0 <= overlap < tile:
        return (f"tile size {tile} with overlap {overlap} cannot tile an image",
                "Use a tile size of at least 64 and 0 <= overlap < tile size")
    if tile - overlap < grid:
        return (f"JPEG tiles {tile} px wide overlapping by {overlap} px would start {tile - overlap} px apart, closer "
                f"than the JPEG block grid ({grid} px) they are cut on",
                f"Use an overlap of at most {tile - grid} px, or --tile-format png")
    count = len(tiles(side, side, tile, overlap, grid))
    if count > most:
        return (f"tiles of {tile} px overlapping by {overlap} px would cut each {side}x{side} image into {count:,} "
                f"tiles (at most {most:,})", "Use larger tiles or a smaller overlap")
    return None


def core_bounds(starts: list[int], tile: int, length: int) -> list[tuple[float, float]]:
    """Each tile's share of the axis: overlaps are split at their middle, so every point belongs to
    exactly one tile's core. An object is *counted* in the tile whose core holds its centroid."""
    cuts = [(starts[i + 1] + starts[i] + min(tile, length)) / 2 for i in range(len(starts) - 1)]
    edges = [0.0] + cuts + [float(length)]
    return list(zip(edges[:-1], edges[1:]))


@dataclass(frozen=True)
class Tile:
    index: int
    x: int
    y: int
    width: int
    height: int
    core: tuple[float, float, float, float]  # x0, x1, y0, y1


def tiles(width: int, height: int, tile: int, overlap: int, grid: int = 1) -> list[Tile]:
    xs, ys = tile_starts(width, tile, overlap, grid), tile_starts(height, tile, overlap, grid)
    x_cores, y_cores = core_bounds(xs, tile, width), core_bounds(ys, tile, height)
    out = []
    for j, (y, (cy0, cy1)) in enumerate(zip(ys, y_cores)):
        for i, (x, (cx0, cx1)) in enumerate(zip(xs, x_cores)):
            out.append(Tile(len(out), x, y, min(tile, width), min(tile, height), (cx0, cx1, cy0, cy1)))
    return out


def objects_in_tile(labels: np.ndarray, found: list[Component], tile: Tile) -> list[dict]:
    """Objects whose centroid lies in the tile, in tile coordinates: the box clipped to the tile, the area
    of the component's pixels inside it, the (whole object's) centroid, and whether this tile is the one
    that counts it. Objects centred elsewhere are not listed, though their pixels stay in the tile's mask."""
    window = labels[tile.y:tile.y + tile.height, tile.x:tile.x + tile.width]
    inside_area = None
    out = []
    for c in found:
        cx, cy = c.centroid
        if not (tile.x <= cx < tile.x + tile.width and tile.y <= cy < tile.y + tile.height):
            continue
        if inside_area is None:
            inside_area = np.bincount(window.ravel(), minlength=len(found) + 1)
        x0, y0 = max(c.bbox[0], tile.x), max(c.bbox[1], tile.y)
        x1 = min(c.bbox[0] + c.bbox[2], tile.x + tile.width)
        y1 = min(c.bbox[1] + c.bbox[3], tile.y + tile.height)
        core_x0, core_x1, core_y0, core_y1 = tile.core
        out.append({
            "component": c.index,
            "bbox": [float(x0 - tile.x), float(y0 - tile.y), float(x1 - x0), float(y1 - y0)],
            "area": int(inside_area[c.index]),
            "centroid": [cx - tile.x, cy - tile.y],
            "counted": bool(core_x0 <= cx < core_x1 and core_y0 <= cy < core_y1),
        })
    return out


# -- boxes from a file against components from the mask --------------------------------------------------
MATCH_RADIUS = 20.0  # px: a box further than this from every component has no component (as in the F1)
CENTRE_TOLERANCE = 3.0  # px: matched centres further apart are reported (VOC's 1-based corners move 0.5-1 px)


def cross_check(found: list[Component], boxes: list, where: str) -> list[str]:
    """Disagreements between mask components and file boxes (FileBox-like: .bbox and/or .centroid in
    absolute pixels), matched one-to-one by centre distance; one readable line per disagreement."""
    from scipy.optimize import linear_sum_assignment

    def centre(box):
        if box.centroid is not None:
            return box.centroid
        x, y, w, h = box.bbox
        return (x + w / 2, y + h / 2)

    mask_centres = np.array([c.centroid for c in found], float).reshape(-1, 2)
    box_centres = np.array([centre(b) for b in boxes], float).reshape(-1, 2)
    pairs = []
    if len(found) and len(boxes):
        distance = np.linalg.norm(mask_centres[:, None, :] - box_centres[None, :, :], axis=2)
        rows, cols = linear_sum_assignment(np.where(distance <= MATCH_RADIUS, distance, 1e9))
        pairs = [(r, c) for r, c in zip(rows, cols) if distance[r, c] <= MATCH_RADIUS]
    lines = []
    matched_components, matched_boxes = {r for r, _ in pairs}, {c for _, c in pairs}
    for r, c in pairs:
        component, box = found[r], boxes[c]
        apart = float(np.hypot(*(mask_centres[r] - box_centres[c])))
        box_differs = box.bbox is not None and max(abs(a - b) for a, b in zip(component.bbox, box.bbox)) > CENTRE_TOLERANCE
        if apart > CENTRE_TOLERANCE or box_differs:
            what = f"box {_box(box.bbox)}" if box.bbox else "centroid"
            lines.append(f"{where}: mask object at {_xy(component.centroid)} with box {list(component.bbox)} "
                         f"disagrees with {box.source} {what} at {_xy(box_centres[c])} (centres {apart:.1f} px apart)")
    for r, component in enumerate(found):
        if r not in matched_components:
            lines.append(f"{where}: mask object at {_xy(component.centroid)} (box {list(component.bbox)}) "
                         f"has no box in the box file")
    for c, box in enumerate(boxes):
        if c not in matched_boxes:
            lines.append(f"{where}: {box.source} {'box ' + _box(box.bbox) if box.bbox else 'centroid'} at "
                         f"{_xy(box_centres[c])} has no mask object within {MATCH_RADIUS:g} px")
    return lines


def _xy(point) -> str:
    return f"({point[0]:.1f}, {point[1]:.1f})"


def _box(bbox) -> str:
    return "[" + ", ".join(f"{v:g}" for v in bbox) + "]"
