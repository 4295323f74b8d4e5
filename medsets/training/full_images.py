"""Scoring on full images from tile predictions, shared by the detection and segmentation scripts.

GZMH is scored per full image (the papers' F1 with a 20 px centroid radius), while the models see the
512x512 tiles of `medsets build gzmh --config tiles`. Here: where each tile lies (`tile_table`), a tile's
detections mapped back to full-image pixels and kept only by the tile whose core holds their centre
(`to_full_image`, the builder's own rule for `counted`), duplicates from overlapping tiles dropped
(`dedupe`), the F1 at the threshold chosen on validation (`CentreScorer`), COCO mean average precision
(`coco_map`, torchmetrics' MeanAveragePrecision, as the transformers detection example scores) and the
table beside the published numbers; the picture is detection_picture's. A dataset without tiles (HEp-2
`icpr2012_slides`: whole slides) is read as one tile per image, its cells counted as GZMH's mitoses are.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field

import datasets
import evaluate
import numpy as np
from PIL import Image
from scipy.spatial import cKDTree

from ..metrics import metric_path
from ..objects import core_bounds

PUBLISHED = {"FoCasNet (Wang et al., BSPC 2024)": 0.563, "SSD (J. Image Graphics 2024)": 0.511}  # GZMH test F1
THRESHOLDS = [round(t, 2) for t in np.arange(0.05, 0.951, 0.05)]


@dataclass
class ScoringArguments:
    match_radius: float = field(default=20.0, metadata={
        "help": "A detection within this many px of an object's centre (a mitosis, a cell) is a hit; 20 is the GZMH "
                "papers' radius."})
    dedupe_radius: float | None = field(default=None, metadata={
        "help": "Per full image, a detection this close (px) to a higher-scored one is dropped. Default: the match "
                "radius, as a second detection that near one object can only be a false positive."})
    score_threshold: float | None = field(default=None, metadata={
        "help": "Fixed score threshold. Default: the one of 0.05, 0.10, ..., 0.95 with the best validation F1."})

    def __post_init__(self):
        if self.dedupe_radius is None:
            self.dedupe_radius = self.match_radius


# -- tiles and full images -------------------------------------------------------------------------------
@dataclass
class TileTable:
    """Where each tile of a split lies in its full image, its boxes, and the objects each full image counts."""
    source: np.ndarray  # (N,) source_image_id
    offset: np.ndarray  # (N, 2) x, y of the tile in its full image
    size: np.ndarray  # (N, 2) tile width, height in pixels
    core: np.ndarray  # (N, 4) x0, x1, y0, y1: the part of the full image this tile scores
    boxes: list  # per tile, (n, 4) float32 cx, cy, w, h as fractions of the tile
    references: dict  # source_image_id -> [[x, y], ...] counted objects' centres in full-image pixels
    labels: list = field(default_factory=list)  # per tile, (n,) int64 category of each box
    reference_boxes: dict = field(default_factory=dict)  # source_image_id -> [[x0, y0, x1, y1, category], ...]

    def references_of(self, rows) -> dict:
        """The counted objects of the full images that these tile rows come from."""
        return {int(s): self.references[int(s)] for s in np.unique(self.source[np.asarray(rows, np.int64)])}

    def reference_boxes_of(self, rows) -> dict:
        """The counted objects' boxes [x0, y0, x1, y1, category] of the full images of these tile rows."""
        return {int(s): self.reference_boxes[int(s)] for s in np.unique(self.source[np.asarray(rows, np.int64)])}


def leak_free_sources(splits: dict, scored: str, table: TileTable) -> dict[str, set[int]]:
    """{scored: the source images of that split without a twin in the splits the model learnt from}, for
    CentreScorer.report; empty when the dataset has no duplicate_group column."""
    from .splits import leak_free_rows

    free = leak_free_rows(splits, scored)
    return {} if free is None else {scored: {int(source) for source in table.source[free]}}


def tile_cores(source: np.ndarray, offset: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Each tile's core in full-image pixels, from the offsets of its image's tiles (the full image spans
    the largest offset plus the tile size), cut as the builder cut them to decide `counted`."""
    core = np.zeros((len(source), 4))
    for image in np.unique(source):
        rows = np.flatnonzero(source == image)
        for axis in (0, 1):
            starts = sorted({int(v) for v in offset[rows, axis]})
            tile = int(size[rows[0], axis])
            bounds = dict(zip(starts, core_bounds(starts, tile, starts[-1] + tile)))
            for row in rows:
                core[row, 2 * axis:2 * axis + 2] = bounds[int(offset[row, axis])]
    return core


def has_tiles(ds: datasets.Dataset) -> bool:
    return {"source_image_id", "offset", "objects"} <= set(ds.column_names)


def tile_table(ds: datasets.Dataset) -> TileTable:
    """Where each row lies in its full image; a dataset of whole images (no `offset`) is one tile per image,
    every object counted."""
    tiled = has_tiles(ds)
    source = np.asarray(ds["source_image_id"] if tiled else ds["image_id"], np.int64)
    offset = np.asarray(ds["offset"], np.int64).reshape(-1, 2) if tiled else np.zeros((len(source), 2), np.int64)
    # The tiles of one image share a size: read one PNG header per image, not every tile.
    first = {int(s): i for i, s in reversed(list(enumerate(source)))}
    headers = ds.select(list(first.values())).cast_column("image", datasets.Image(decode=False))["image"]
    sizes = {s: Image.open(io.BytesIO(h["bytes"])).size for s, h in zip(first, headers)}
    size = np.array([sizes[int(s)] for s in source], np.int64).reshape(-1, 2)
    boxes, labels, references = [], [], {int(s): [] for s in source}
    reference_boxes = {int(s): [] for s in source}
    for objects, (w, h), (x, y), s in zip(ds["objects"], size, offset, source):
        coco = np.asarray(objects["bbox"], np.float32).reshape(-1, 4)
        boxes.append(np.stack([(coco[:, 0] + coco[:, 2] / 2) / w, (coco[:, 1] + coco[:, 3] / 2) / h,
                               coco[:, 2] / w, coco[:, 3] / h], axis=1))
        labels.append(np.asarray(objects["category"], np.int64))
        counted = objects.get("counted") or [True] * len(coco)
        references[int(s)] += [[cx + x, cy + y] for (cx, cy), c in zip(objects["centroid"], counted) if c]
        reference_boxes[int(s)] += [[bx + x, by + y, bx + x + bw, by + y + bh, category] for (bx, by, bw, bh), category, c
                                    in zip(coco.tolist(), objects["category"], counted) if c]
    return TileTable(source, offset, size, tile_cores(source, offset, size), boxes, references, labels,
                     reference_boxes)


def to_full_image(scores, boxes, offset, size, core, min_score: float, labels=None) -> np.ndarray:
    """One tile's detections (scores (Q,), boxes (Q, 4) cx, cy, w, h as fractions of the tile) as full-image
    rows [x, y, score, w, h] (and the category, when `labels` are given); only those scoring at least
    min_score whose centre lies in the tile's core."""
    scores, boxes = np.asarray(scores, np.float64), np.asarray(boxes, np.float64).reshape(-1, 4)
    rows = np.column_stack([boxes[:, 0] * size[0] + offset[0], boxes[:, 1] * size[1] + offset[1], scores,
                            boxes[:, 2] * size[0], boxes[:, 3] * size[1]]
                           + ([np.asarray(labels, np.float64).reshape(-1)] if labels is not None else []))
    x0, x1, y0, y1 = core
    keep = (scores >= min_score) & (rows[:, 0] >= x0) & (rows[:, 0] < x1) & (rows[:, 1] >= y0) & (rows[:, 1] < y1)
    return rows[keep]


def dedupe(rows: np.ndarray, radius: float) -> np.ndarray:
    """Greedy by score: a detection within `radius` of a higher-scored kept one is dropped (an object seen by
    two overlapping tiles, or twice by one). Dropping depends only on higher scores, so applying a score
    threshold before or after gives the same detections."""
    rows = rows[np.argsort(-rows[:, 2], kind="stable")]
    tree, dropped, kept = cKDTree(rows[:, :2]), np.zeros(len(rows), bool), []
    for i in range(len(rows)):
        if not dropped[i]:
            kept.append(i)
            dropped[tree.query_ball_point(rows[i, :2], radius)] = True
    return rows[kept]


# -- scores ------------------------------------------------------------------------------------------------
MAP_RESAMPLES = 200  # mAP is recomputed per resample (map_interval)


def coco_map(found: dict, reference_boxes: dict, categories: list[str], interval: bool = False,
             unit: str = "field") -> dict:
    """COCO mean average precision (IoU 0.50:0.95, also at 0.50 and 0.75, and per category) of full-image
    detections [x, y, score, w, h, category] against the reference boxes, with torchmetrics'
    MeanAveragePrecision as the transformers object-detection example computes it (xyxy boxes, per-class);
    with `interval`, its bootstrap over the full images, each a `unit` (a GZMH field, a HEp-2 slide image)."""
    import torch
    from torchmetrics.detection import MeanAveragePrecision

    metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", class_metrics=True)
    predictions, targets = [], []
    for image in sorted(reference_boxes):
        rows = found.get(image, np.zeros((0, 6))).reshape(-1, 6)
        xyxy = np.column_stack([rows[:, 0] - rows[:, 3] / 2, rows[:, 1] - rows[:, 4] / 2,
                                rows[:, 0] + rows[:, 3] / 2, rows[:, 1] + rows[:, 4] / 2])
        predictions.append({"boxes": torch.tensor(xyxy, dtype=torch.float32).reshape(-1, 4),
                            "scores": torch.tensor(rows[:, 2], dtype=torch.float32),
                            "labels": torch.tensor(rows[:, 5], dtype=torch.int64)})
        truth = np.asarray(reference_boxes[image], np.float64).reshape(-1, 5)
        targets.append({"boxes": torch.tensor(truth[:, :4], dtype=torch.float32),
                        "labels": torch.tensor(truth[:, 4], dtype=torch.int64)})
    metric.update(predictions, targets)
    scores = metric.compute()
    per_class = dict(zip(scores["classes"].reshape(-1).tolist(), scores["map_per_class"].reshape(-1).tolist()))
    return {"map": float(scores["map"]), "map_50": float(scores["map_50"]), "map_75": float(scores["map_75"]),
            "map_per_class": {categories[c]: value for c, value in sorted(per_class.items())},
            "images": len(targets), "objects": int(sum(len(t["labels"]) for t in targets)),
            **({"intervals": {"map": map_interval(predictions, targets, float(scores["map"]), unit=unit)}} if interval else {})}


def map_interval(predictions: list, targets: list, value: float, resamples: int = MAP_RESAMPLES, seed: int = 0,
                 confidence: float = 0.95, unit: str = "field") -> dict:
    """mAP's percentile interval over resampled full images (each its own unit). mAP is no sum over images,
    so every resample recomputes it: MAP_RESAMPLES (200) rather than the 2,000 of the other intervals, which
    gives the 2.5% and 97.5% points from 5 resamples each side: a rough interval, said as such."""
    from torchmetrics.detection import MeanAveragePrecision

    from ..intervals import Bootstrap

    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        drawn = rng.integers(0, len(targets), len(targets))
        # computed on one process: no gathering from the others (they are not computing it)
        metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", sync_on_compute=False)
        metric.update([predictions[i] for i in drawn], [targets[i] for i in drawn])
        values.append(float(metric.compute()["map"]))
    low, high = Bootstrap(resamples, confidence, seed).bounds(np.asarray(values))
    return {"value": value, "ci_low": low, "ci_high": high, "unit": unit, "n_units": len(targets),
            "resamples": resamples}


def map_table(coco: dict, dataset: str, split: str, what: str = "objects") -> str:
    """COCO mAP of a split as markdown (-1 where a category has no reference objects, as torchmetrics says)."""
    lines = [f"COCO mean average precision on the {split} split of {dataset} ({coco['images']} images, "
             f"{coco['objects']} {what}; torchmetrics MeanAveragePrecision, boxes on the full images):\n",
             "| mAP@[.50:.95] | mAP@.50 | mAP@.75 | " + " | ".join(coco["map_per_class"]) + " |",
             "|---|---|---|" + "---|" * len(coco["map_per_class"]),
             f"| {coco['map']:.3f} | {coco['map_50']:.3f} | {coco['map_75']:.3f} | "
             + " | ".join(f"{v:.3f}" for v in coco["map_per_class"].values()) + " |"]
    found = coco.get("intervals", {}).get("map")
    if found:
        lines += ["", f"mAP@[.50:.95] 95% interval over the {found['n_units']} images (percentile bootstrap, "
                  f"{found['resamples']} resamples, mAP recomputed for each: rough): [{found['ci_low']:.3f}, "
                  f"{found['ci_high']:.3f}]"]
    return "\n".join(lines) + "\n"


def best_of(grid: list[dict]) -> dict:
    """The best F1 of a threshold grid; among equal F1s the middle threshold, furthest from both ends of the tie."""
    ties = [s for s in grid if s["f1"] == max(t["f1"] for t in grid)]
    return ties[len(ties) // 2]


# What a table counts, named by the dataset's object classes; --objects_name names any other dataset's.
OBJECT_NAMES = {("mitosis",): "mitoses",
                # HEp-2 icpr2012_slides: each object is a cell, its class the cell's staining pattern
                ("centromere", "coarse_speckled", "cytoplasmatic", "fine_speckled", "homogeneous", "nucleolar"): "cells"}
SINGULAR = {"mitoses": "mitosis", "cells": "cell", "objects": "object", "nuclei": "nucleus"}


def objects_name(categories: list[str], given: str = "") -> str:
    """The plural noun for the dataset's objects: `given`, else the known name of its classes, else "objects"."""
    return given or OBJECT_NAMES.get(tuple(sorted(categories)), "objects")


def singular(objects: str) -> str:
    return SINGULAR.get(objects, objects[:-1] if objects.endswith("s") else objects)


class CentreScorer:
    """Detection F1 by centres (the mitosis F1 module, medsets.metrics.mitosis, which matches any point
    objects) on full-image detections [x, y, score, w, h]. `counted` names the objects in the results (the
    count's key, "mitoses" or "cells"); for mitoses the GZMH authors' rule is scored beside one-to-one."""

    def __init__(self, scoring: ScoringArguments, thresholds: list[float] = THRESHOLDS, counted: str = "mitoses"):
        self.scoring, self.thresholds, self.counted = scoring, thresholds, counted
        self.rules = ("one_to_one", "gzmh_authors") if counted == "mitoses" else ("one_to_one",)
        self.unit = "field" if counted == "mitoses" else "image"  # the independent unit of the intervals
        self.metric = evaluate.load(metric_path("mitosis"), keep_in_memory=True)  # no cache files for ranks to fight over

    def score(self, found: dict, references: dict, threshold: float) -> dict:
        """The scores at `threshold` under one-to-one matching, and for mitoses under the GZMH authors' rule
        (the one their published F1s come from) in "gzmh_authors"."""
        images = sorted(references)
        inputs = dict(predictions=[found[s][:, :3].tolist() for s in images], references=[references[s] for s in images],
                      radius=self.scoring.match_radius, score_threshold=threshold)
        scores = {**self.metric.compute(**inputs, matching="one_to_one"), "threshold": threshold, "matching": "one_to_one"}
        if "gzmh_authors" in self.rules:
            scores["gzmh_authors"] = self.metric.compute(**inputs, matching="gzmh_authors")
        return scores

    def sweep(self, found: dict, references: dict) -> tuple[dict, list[dict]]:
        """The scores at --score_threshold, else at the grid's best threshold, and the whole grid."""
        grid = [self.score(found, references, t) for t in self.thresholds]
        if self.scoring.score_threshold is not None:
            return self.score(found, references, self.scoring.score_threshold), grid
        return best_of(grid), grid

    def intervals(self, found: dict, references: dict, threshold: float) -> dict:
        """F1 under each matching rule with its interval, each full image its own unit (a field of GZMH, a
        slide of HEp-2)."""
        from ..metrics.mitosis import image_counts
        from .uncertainty import per_image_intervals

        images = sorted(references)
        counts = {rule: [image_counts(found[s][:, :3].tolist(), references[s], self.scoring.match_radius, threshold,
                                      rule) for s in images] for rule in self.rules}
        return per_image_intervals(counts, self.unit)

    def report(self, found: dict, references: dict, free_sources: dict | None = None) -> dict:
        """found, references: split name -> per source image. Validation chooses the threshold (unless one is
        given); test is scored at it, and also at its own best threshold and with no detections, for information.
        free_sources: split name -> the source images without a twin in the splits the model learnt from
        (training.splits.leak_free_rows), scored again at the same threshold as `<split>_without_twins`."""
        results = {}
        for name in [n for n in ("validation", "test") if n in found]:
            if name == "validation":
                chosen, grid = self.sweep(found[name], references[name])
                threshold = chosen["threshold"]
            else:
                chosen = self.score(found[name], references[name], threshold)
                grid = self.sweep(found[name], references[name])[1]
                results["test_best_threshold"] = best_of(grid)
                results["no_detection_baseline"] = self.score({s: np.zeros((0, 6)) for s in references[name]},
                                                              references[name], 1.0)
            results[name] = {**chosen, "images": len(references[name]),
                             self.counted: sum(map(len, references[name].values())),
                             "f1_by_threshold": {s["threshold"]: s["f1"] for s in grid},
                             "intervals": self.intervals(found[name], references[name], threshold)}
            if name in (free_sources or {}):
                free = {s: v for s, v in references[name].items() if s in free_sources[name]}
                results[f"{name}_without_twins"] = {
                    **self.score({s: found[name][s] for s in free}, free, threshold),
                    "images": len(free), "of": len(references[name]), self.counted: sum(map(len, free.values())),
                    "intervals": self.intervals({s: found[name][s] for s in free}, free, threshold)}
        return results


def f1_table(results: dict, model_name: str, dataset: str, scoring: ScoringArguments, what: str = "mitoses") -> str:
    """precision, recall, F1, TP, FP, FN of ours (CentreScorer.report's results, `what` the objects it counted),
    the test's own best threshold, no detections, and the published GZMH numbers (for mitoses)."""
    scored = "test" if "test" in results else "validation"
    how = "chosen on validation" if scoring.score_threshold is None else "given"
    rows = [(f"{model_name}, threshold {results['validation']['threshold']:g} {how}", results[scored])]
    if scored == "test":
        rows += [(f"same model, best threshold on test ({results['test_best_threshold']['threshold']:g}; "
                  "for information only)", results["test_best_threshold"]),
                 ("no detections (baseline)", results["no_detection_baseline"])]
    authors = "gzmh_authors" in results[scored]  # CentreScorer scores the GZMH authors' rule for mitoses only
    if authors:
        rows.insert(1, (f"{model_name}, same threshold, GZMH authors' rule", results[scored]["gzmh_authors"]))
    if f"{scored}_without_twins" in results:  # the images the model never met, not even re-imaged
        free = results[f"{scored}_without_twins"]
        rows.insert(1 + authors, (f"{model_name}, same threshold, on the {free['images']} of {free['of']} images without a "
                        f"twin in the splits it learnt from ({free[what]} {what}; duplicate_group)", free))
    one = singular(what)
    rule = (f"Rows match one-to-one (each detection confirms one {one} at most, as the mitosis challenges score) "
            f"unless they say \"GZMH authors' rule\": each {one} takes its nearest detection when strictly closer "
            "than the radius, one detection may serve several (their public code's count_index, which the published "
            "GZMH F1s come from; FP there = detections - TP)." if authors else
            f"Each detection confirms one {one} at most (one-to-one, nearest first).")
    lines = [f"{one.capitalize()} detection F1 on the {scored} split of {dataset} "
             f"({results[scored]['images']} full images, {results[scored][what]} {what}; hit within "
             f"{scoring.match_radius:g} px of the centre, whatever the class). {rule}\n",
             "| | precision | recall | F1 | TP | FP | FN |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['tp']} | {s['fp']} | "
              f"{s['fn']} |" for name, s in rows]
    lines += [f"| {name}: published, on the real GZMH test set, GZMH authors' rule | | | {f1:.3f} | | | |"
              for name, f1 in (PUBLISHED.items() if authors else ())]
    found = results[scored].get("intervals", {})
    if found:  # each full image its own unit: objects of one image are not independent
        first = next(iter(found.values()))
        lines += ["", "F1 with its 95% interval (percentile bootstrap over the "
                  f"{first['n_units']} {first['unit']}s, 2,000 resamples): "
                  + "; ".join(f"{k} {i['value']:.3f} [{i['ci_low']:.3f}, {i['ci_high']:.3f}]"
                              for k, i in found.items())]
    return "\n".join(lines) + "\n"
