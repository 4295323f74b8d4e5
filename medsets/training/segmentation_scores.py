"""Scores of a segmentation run, used by scripts/finetune_segmentation.py: what evaluation keeps per image
(`score_maps`), IoU and Dice per class from the pixel confusion matrix, the BIS5k toolkit's columns
(medsets.metrics.segmentation), scoring at each target's stored size, the mitoses found as regions of a
GZMH tile's map (for the full-image F1 of medsets.training.full_images), and the table of all that.
"""

from __future__ import annotations

import datasets
import numpy as np
import torch
from PIL import Image
from scipy import ndimage

from ..metrics.segmentation import pack
from .full_images import TileTable, dedupe, to_full_image
from .uncertainty import overlap_scored, split_intervals, toolkit_intervals

TOOLKIT_CONVENTION = "uacanet"  # the BIS5k toolkit's formulas (UACANet's Eval.py): what BIS5k papers report
TOOLKIT_COLUMNS = ("meanDic", "meanIoU", "wFm", "Sm", "meanEm", "mae", "maxEm", "maxDic", "maxIoU")  # BIS5k's table
IGNORE = 255  # target value left out of loss and scores


def score_maps(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """What evaluation keeps per image, as uint8 (small enough to gather over a whole split): for two
    classes the foreground probability in 1/255 steps (the toolkit's grey levels), else the class id."""
    if logits.shape[1] == 2:
        return (logits.float().softmax(1)[:, 1] * 255).round().to(torch.uint8)
    return logits.argmax(1).to(torch.uint8)


def at_source_size(maps: np.ndarray, split: datasets.Dataset, classes: int) -> tuple[list, list]:
    """The stored targets of a split, and each score map resized to its target's size: bilinear on two-class
    foreground probabilities (the toolkit's grey levels), nearest on class ids."""
    resample = Image.Resampling.BILINEAR if classes == 2 else Image.Resampling.NEAREST
    sized, targets = [], []
    for score_map, row in zip(maps, split.select_columns(["label"])):  # one target decoded at a time
        target = np.asarray(row["label"].convert("L"))
        if score_map.shape != target.shape:
            score_map = np.asarray(Image.fromarray(score_map).resize(target.shape[::-1], resample))
        sized.append(score_map)
        targets.append(target)
    return sized, targets


def split_scores(maps, targets, names: list[str], toolkit_workers: int | None, keep: list | None = None) -> dict:
    """Ours and the all-background prediction on one split (maps and targets: pairs of equal shape): IoU and
    Dice per class from the pixel confusion matrix and, for two classes, the toolkit's columns."""
    classes = len(names)
    scores = overlap_scores(sum(confusion(predicted_classes(m, classes), t, classes) for m, t in zip(maps, targets)),
                            names)
    scores["all_background"] = overlap_scores(sum(confusion(np.zeros_like(t), t, classes) for t in targets), names)
    if classes == 2 and toolkit_workers:
        scores |= toolkit_scores(maps, targets, toolkit_workers, keep)
        scores["all_background"] |= toolkit_scores([np.zeros_like(t) for t in targets], targets, toolkit_workers)
    return scores


def predicted_classes(maps: np.ndarray, classes: int) -> np.ndarray:
    return (maps >= 128).astype(np.uint8) if classes == 2 else maps


def confusion(predicted: np.ndarray, target: np.ndarray, classes: int) -> np.ndarray:
    keep = target != IGNORE
    return np.bincount(target[keep].astype(np.int64) * classes + predicted[keep], minlength=classes ** 2
                       ).reshape(classes, classes)


def overlap_scores(matrix: np.ndarray, names: list[str]) -> dict:
    """IoU and Dice per class from a pixel confusion matrix (rows true), their means, pixel accuracy."""
    tp = np.diag(matrix).astype(np.float64)
    predicted, true = matrix.sum(0), matrix.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(predicted + true - tp > 0, tp / (predicted + true - tp), np.nan)
        dice = np.where(predicted + true > 0, 2 * tp / (predicted + true), np.nan)
    return {"mean_iou": float(np.nanmean(iou)), "mean_dice": float(np.nanmean(dice)),
            "pixel_accuracy": float(tp.sum() / max(matrix.sum(), 1)),
            "iou_by_class": dict(zip(names, map(float, iou))), "dice_by_class": dict(zip(names, map(float, dice))),
            "confusion_matrix": matrix.tolist()}


def compute_metrics_for(names: list[str]):
    def compute(prediction):
        predicted = predicted_classes(prediction.predictions, len(names))
        scores = overlap_scores(confusion(predicted, prediction.label_ids, len(names)), names)
        return {k: scores[k] for k in ("mean_iou", "mean_dice", "pixel_accuracy")} | {
            f"iou_{name}": value for name, value in scores["iou_by_class"].items()}
    return compute


def mask_detections(maps: np.ndarray, table: TileTable, dedupe_radius: float) -> dict[int, np.ndarray]:
    """source_image_id -> full-image detections [x, y, score, w, h] from the foreground probability maps of
    its tiles (uint8, in the table's row order): each connected region of p >= 0.5, centred at its centroid
    (pixel centres, as the builder's objects), scored by its highest probability; then the tiles' core rule
    and the dedupe that the detection script applies to its boxes."""
    found = {int(s): [np.zeros((0, 5))] for s in np.unique(table.source)}
    side = maps.shape[-1]
    for row, grey in enumerate(maps):
        regions, count = ndimage.label(grey >= 128)
        if not count:
            continue
        index = np.arange(1, count + 1)
        peak = np.asarray(ndimage.maximum(grey, regions, index), np.float64) / 255
        cy, cx = np.asarray(ndimage.center_of_mass(np.ones(grey.shape), regions, index)).reshape(-1, 2).T
        spans = ndimage.find_objects(regions)
        width = np.array([x.stop - x.start for _, x in spans])
        height = np.array([y.stop - y.start for y, _ in spans])
        boxes = np.column_stack([cx + 0.5, cy + 0.5, width, height]) / side  # fractions of the tile
        found[int(table.source[row])].append(to_full_image(peak, boxes, table.offset[row], table.size[row],
                                                           table.core[row], 0.0))
    return {s: dedupe(np.concatenate(parts), dedupe_radius) for s, parts in found.items()}


def toolkit_scores(maps: np.ndarray, targets: np.ndarray, workers: int, keep: list | None = None) -> dict:
    """The BIS5k toolkit's columns on the foreground probability maps (two-class datasets), as the metric
    module computes them; `keep`, when given, receives the per-image scores (for their interval)."""
    from ..metrics.segmentation.segmentation import per_image, summarize

    # The toolkit reads a map holding only 0 and 1 as a binary mask (1 = foreground): a probability map
    # that never exceeds 1/255 would turn all foreground, so such faint values are taken as 0.
    grey = [np.where(m <= 1, 0, m).astype(np.uint8) for m in maps]
    scores = per_image([pack(g) for g in grey], [pack(t == 1) for t in targets], workers, TOOLKIT_CONVENTION)
    if keep is not None:
        keep.extend(scores)
    result = summarize(scores)
    return {**{k: result[k] for k in TOOLKIT_COLUMNS}, "toolkit_convention": TOOLKIT_CONVENTION}


def table(results: dict, names: list[str], model_name: str) -> str:
    """Ours next to the all-background prediction: the toolkit's columns (two classes), then IoU/Dice per class."""
    lines = []
    for split in [s for s in ("validation", "test") if s in results]:
        rows = [(model_name, results[split]), ("all background (trivial)", results[split]["all_background"])]
        columns = [c for c in TOOLKIT_COLUMNS if c in results[split]] + ["mean_iou", "mean_dice"]
        columns += [f"{kind} {name}" for name in names for kind in ("IoU", "Dice")]
        toolkit = (f"; toolkit columns under the {results[split]['toolkit_convention']} convention (UACANet's "
                   "Eval.py, the BIS5k toolkit)") if "toolkit_convention" in results[split] else ""
        lines += [f"**{split}** ({results['split_sizes'][split]} images, scored at {results['scored_at']}{toolkit})", "",
                  "| | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
        for label, scores in rows:
            cells = [scores[c] if c in scores else scores[f"{c.split()[0].lower()}_by_class"][c.split()[1]]
                     for c in columns]
            lines.append(f"| {label} | " + " | ".join("" if v is None or np.isnan(v) else f"{v:.3f}" for v in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def scored_with_intervals(split, maps, targets, names: list[str], toolkit_workers: int | None) -> dict:
    """A segmentation script's scores of one split (`split_scores`) with `intervals`: mean
    IoU and Dice from per-image pixel confusions, and the BIS5k toolkit's columns where they were computed."""
    toolkit_per_image = []
    scores = split_scores(maps, targets, names, toolkit_workers, toolkit_per_image)
    classes = [predicted_classes(m, len(names)) for m in maps]
    scores["intervals"] = split_intervals(split, overlap_scored(classes, list(targets), names, confusion))[0]
    if toolkit_per_image:
        scores["intervals"] |= toolkit_intervals(split, toolkit_per_image)
    return scores
