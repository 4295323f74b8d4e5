"""The fine-tuning scripts' intervals: the bootstrap of `medsets evaluate` (medsets.intervals) over the same
independent unit (medsets.confidence.units_of: specimen, patient, field, else the image), written into
metrics.json as each scored split's `intervals` and as a line of table.md."""

from __future__ import annotations

import numpy as np

from ..confidence import Scored, interval_lines, intervals_of, units_of
from ..intervals import Bootstrap, overlap_statistics


def split_intervals(split, scored: Scored) -> tuple[dict, str]:
    """({measure: {value, ci_low, ci_high, unit, n_units}}, the lines that say them) for one scored split."""
    name = "hep2" if "specimen_id" in split.column_names else ""  # cells: say when their unit is unknown
    units, unit, caveat = units_of(split, name)
    bootstrap = Bootstrap()
    found = intervals_of(scored, units, unit, bootstrap)
    return {k: i.as_dict() for k, i in found.items()}, "\n".join(interval_lines(found, bootstrap, caveat, 20))


def overlap_scored(predicted: list[np.ndarray], targets: list[np.ndarray], names: list[str], confusion) -> Scored:
    """Per image, its pixel confusion matrix (`confusion(predicted, target, classes)`), for the mean IoU and
    Dice intervals."""
    classes = len(names)
    stats = np.array([confusion(p, t, classes).ravel() for p, t in zip(predicted, targets)], np.float64)
    return Scored(np.arange(len(stats)), stats, overlap_statistics(classes, names))


def classification_intervals(split, predicted, truth, num_labels: int) -> tuple[dict, str]:
    from ..confidence import labels_scored

    return split_intervals(split, labels_scored(list(range(len(truth))), list(predicted), list(truth), num_labels))


def per_image_intervals(counts_by_rule: dict[str, list[tuple]], unit: str) -> dict:
    """Detection F1 under each matching rule given (per image (tp, fp, fn)), each full image its own unit."""
    from ..confidence import detections_scored

    scored = detections_scored(list(range(len(next(iter(counts_by_rule.values()))))), counts_by_rule)
    found = Bootstrap().intervals(scored.stats, scored.statistics, unit)
    return {k: i.as_dict() for k, i in found.items()}


def toolkit_intervals(split, per_image: list[dict]) -> dict:
    """The BIS5k toolkit's columns with their intervals, from the per-image scores the split's toolkit
    scoring kept (medsets.training.segmentation_scores.toolkit_scores)."""
    from ..confidence import masks_scored

    return split_intervals(split, masks_scored(list(range(len(per_image))), per_image))[0]
