"""Mitosis detection F1 by centroid matching (GZMH) as a local `evaluate` metric.

A detection is correct when its centre lies within 20 px of a ground-truth mitosis centre, each
mitosis being found at most once; TP, FP and FN are summed over images before precision, recall and
F1 are taken (micro-averaging, as mitotic counts are).

Load it by path, offline:

    import evaluate
    metric = evaluate.load(medsets.metric_path("mitosis"))

Or call `match` / `image_counts` / `summarize` directly (no Arrow, no `evaluate` machinery).
"""

import datasets
import evaluate
import numpy as np
from scipy.optimize import linear_sum_assignment

_CITATION = """\
@article{wang2024gzmh,
  title   = {A novel dataset and a two-stage mitosis nuclei detection method based on hybrid anchor branch},
  author  = {Wang, Huadeng and Xu, Hao and Li, Bingbing and Pan, Xipeng and Zeng, Lingqi and Lan, Rushi and Luo, Xiaonan},
  journal = {Biomedical Signal Processing and Control},
  volume  = {87},
  pages   = {105374},
  year    = {2024}
}
"""

_DESCRIPTION = """\
Detection F1 for mitoses by centroid distance (20 px), under one of two matching rules (`matching`).
Published GZMH results: F1 0.563 (FoCasNet, BSPC 2024) and 0.511 (SSD, Journal of Image and Graphics
2024); the GZMH authors' public code (antifen/mitosis-nuclei-detection, `predict_rely.count_index`)
scores with the second rule below.

`matching="one_to_one"` (the default; the rule of the mitosis challenges such as MIDOG and TUPAC: each
detection may confirm one mitosis at most). A predicted centre is a true positive when it lies within
20 px (Euclidean distance <= radius) of a ground-truth mitosis centre. Matching is one-to-one, per image: each ground truth takes at most one prediction and vice versa. The
assignment is optimal (scipy's linear_sum_assignment): the most matches, then the smallest total
distance. Greedy nearest-first matching can find fewer. Ties between equally good assignments are
broken on a canonical order: both point sets are sorted by (x, y), then input position, before solving,
so the result depends on the points, not on the order they are listed in. Unmatched predictions are
FP, unmatched ground truths FN.

TP, FP and FN are summed over all images (micro-average), then precision = TP / (TP + FP), recall =
TP / (TP + FN), f1 = 2PR / (P + R). Conventions where a ratio is 0/0:
- no predictions (TP + FP = 0): precision 1.0 if nothing was missed (FN = 0), else 0.0;
- no ground truth (TP + FN = 0): recall 1.0 if nothing was falsely detected (FP = 0), else 0.0;
- f1 = 0.0 when P + R = 0.
So no predictions and no ground truth anywhere scores 1.0 on all three; either side empty alone, 0.0.

Predictions with a confidence below `score_threshold` are dropped before matching.

`matching="gzmh_authors"`: as `count_index` does, per image. Each ground truth takes its nearest
prediction and is a hit when that is strictly closer than `radius` (and at most 1000 px, the code's
starting distance); one prediction may serve several ground truths. TP = hits, and the authors' scripts
sum TP, the number of predictions and the number of ground truths over images; then precision = TP /
predictions, recall = TP / ground truths, f1 = 2PR / (P + R), and all three are 0 when TP is 0. `fp` is
reported as predictions - TP and `fn` as ground truths - TP (the code's `more_num` and `less_num`), so
`fp` is negative and precision above 1 where one prediction serves several mitoses, as in that code.
Predictions are kept when their score is strictly above `score_threshold`, as its `change_threshold`.

A bounding box [x, y, w, h] stands for its centre (x + w/2, y + h/2): see `box_centre` (the authors use
the centre of the VOC box (xmin + xmax) / 2, which is the same point).
"""

MATCHING = ("one_to_one", "gzmh_authors")
GZMH_AUTHORS_MAX_DISTANCE = 1000.0  # count_index starts its nearest-prediction search at this distance

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `list`): per image, the detected centres as [x, y] or [x, y, score] rows
        (pixels; an [x, y] row has no score and is always kept). An image may have none: [].
    references (`list` of `list`): per image, the ground-truth mitosis centres as [x, y] rows.
    radius (`float`, *optional*, defaults to 20.0): the largest distance, in pixels, of a hit.
    score_threshold (`float`, *optional*, defaults to 0.0): predictions scoring below it are ignored
        (neither TP nor FP); with matching="gzmh_authors", those scoring at most it.
    matching (`str`, *optional*, defaults to "one_to_one"): "one_to_one" or "gzmh_authors" (see above).

Returns:
    `dict`: precision, recall, f1 (floats) and tp, fp, fn (ints, summed over images).

Examples:
    >>> import evaluate
    >>> metric = evaluate.load(medsets.metric_path("mitosis"))  # a path: works offline
    >>> metric.compute(predictions=[[[10, 10, 0.9], [300, 40, 0.2]], []],
    ...                references=[[[15, 22]], [[500, 500]]], score_threshold=0.5)
    {'precision': 1.0, 'recall': 0.5, 'f1': 0.6666666666666666, 'tp': 1, 'fp': 0, 'fn': 1}
"""


def box_centre(box) -> tuple:
    """The centre (x + w/2, y + h/2) of a box [x, y, w, h] (top-left corner, width, height)."""
    x, y, w, h = box
    return (x + w / 2, y + h / 2)


def _points(points, name: str) -> np.ndarray:
    points = np.asarray(points, dtype=np.float64)
    if points.size == 0:
        points = points.reshape(0, 2)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ValueError(f"{name} must be [x, y] rows, got an array of shape {points.shape}")
    return points


def match(pred_centres, true_centres, radius: float = 20.0, scores=None, score_threshold: float = 0.0):
    """One-to-one matching of predicted to true centres within `radius` (distance <= radius).

    Returns (tp_pairs, fp_indices, fn_indices): (prediction index, truth index) pairs sorted by
    prediction, then unmatched prediction and truth indices, all positions in the inputs. With
    `scores`, predictions scoring below `score_threshold` are left out of all three.
    """
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}")
    pred, true = _points(pred_centres, "predictions"), _points(true_centres, "references")
    kept = np.arange(len(pred))
    if scores is not None:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (len(pred),):
            raise ValueError(f"{len(pred)} predictions but scores of shape {scores.shape}")
        kept = kept[scores >= score_threshold]
    # Canonical order (x, then y, then position), so ties do not depend on the input order.
    p_order = kept[np.lexsort((kept, pred[kept, 1], pred[kept, 0]))]
    t_order = np.lexsort((np.arange(len(true)), true[:, 1], true[:, 0]))
    pairs = []
    if len(p_order) and len(t_order):
        dist = np.hypot(*(pred[p_order, None, :] - true[None, t_order, :]).transpose(2, 0, 1))
        allowed = dist <= radius
        # A forbidden pair costs more than any set of allowed ones: most matches first, then distance.
        cost = np.where(allowed, dist, min(dist.shape) * radius + 1.0)
        rows, cols = linear_sum_assignment(cost)
        hit = allowed[rows, cols]
        pairs = sorted(zip(p_order[rows[hit]].tolist(), t_order[cols[hit]].tolist()))
    matched_p = {p for p, _ in pairs}
    matched_t = {t for _, t in pairs}
    fp = sorted(int(p) for p in kept if p not in matched_p)
    fn = [t for t in range(len(true)) if t not in matched_t]
    return pairs, fp, fn


def authors_hits(pred_centres, true_centres, radius: float = 20.0) -> int:
    """The GZMH authors' TP of one image (`count_index`): ground truths whose nearest prediction lies
    strictly closer than `radius`, a prediction free to serve several."""
    pred, true = _points(pred_centres, "predictions"), _points(true_centres, "references")
    if not len(pred) or not len(true):
        return 0
    nearest = np.hypot(*(true[:, None, :] - pred[None, :, :]).transpose(2, 0, 1)).min(axis=1)
    return int(np.count_nonzero((nearest < radius) & (nearest <= GZMH_AUTHORS_MAX_DISTANCE)))


def split_scores(rows) -> tuple:
    """[x, y] / [x, y, score] rows -> (centres (N, 2), scores (N,)); an [x, y] row scores +inf."""
    centres, scores = np.zeros((len(rows), 2)), np.full(len(rows), np.inf)
    for i, row in enumerate(rows):
        if len(row) not in (2, 3):
            raise ValueError(f"prediction rows must be [x, y] or [x, y, score], got {list(row)}")
        centres[i] = row[:2]
        if len(row) == 3:
            scores[i] = row[2]
    return centres, scores


def image_counts(predictions, references, radius: float = 20.0, score_threshold: float = 0.0,
                 matching: str = "one_to_one") -> tuple:
    """(tp, fp, fn) of one image; predictions are [x, y] or [x, y, score] rows, references [x, y]. Under
    "gzmh_authors", fp = predictions - tp and fn = ground truths - tp (see _DESCRIPTION)."""
    check_matching(matching)
    centres, scores = split_scores(predictions)
    if matching == "gzmh_authors":
        kept = centres[scores > score_threshold]
        truths = len(_points(references, "references"))
        tp = authors_hits(kept, references, radius)
        return tp, len(kept) - tp, truths - tp
    pairs, fp, fn = match(centres, references, radius, scores, score_threshold)
    return len(pairs), len(fp), len(fn)


def summarize(counts, matching: str = "one_to_one") -> dict:
    """Precision, recall, f1 from per-image (tp, fp, fn) summed over images; 0/0 conventions in _DESCRIPTION."""
    check_matching(matching)
    tp, fp, fn = np.asarray(list(counts), dtype=np.int64).reshape(-1, 3).sum(axis=0).tolist()
    predicted, true = tp + fp, tp + fn
    if matching == "gzmh_authors":
        precision, recall = (tp / predicted, tp / true) if tp else (0.0, 0.0)
    else:
        precision = tp / predicted if predicted else float(fn == 0)
        recall = tp / true if true else float(fp == 0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "tp": tp, "fp": fp, "fn": fn}


def check_matching(matching: str):
    if matching not in MATCHING:
        raise ValueError(f"matching={matching!r}: choose one of {', '.join(MATCHING)}")


def _rows(points) -> list:
    """An image's points as a list of rows, from a list or an (N, 2) / (N, 3) array."""
    return np.asarray(points, dtype=np.float64).reshape(len(points), -1).tolist() if len(points) else []


def _images(values):
    return None if values is None else [_rows(points) for points in values]


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Mitosis(evaluate.Metric):
    # Points may come as lists or numpy arrays per image; they become lists before evaluate's Arrow encoding.
    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one image's prediction and reference (points (lists or arrays)).
        """
        return super().add(prediction=None if prediction is None else _rows(prediction),
                           reference=None if reference is None else _rows(reference), **kwargs)

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add a batch of predictions and references (points (lists or arrays)).
        """
        return super().add_batch(predictions=_images(predictions), references=_images(references), **kwargs)

    def compute(self, *, predictions=None, references=None, **kwargs):
        """The scores of what was added and of `predictions` / `references` (points (lists or arrays)).
        """
        return super().compute(predictions=_images(predictions), references=_images(references), **kwargs)

    def _info(self):
        points = datasets.Sequence(datasets.Sequence(datasets.Value("float64")))
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": points, "references": points}),
        )

    def _compute(self, predictions, references, radius=20.0, score_threshold=0.0, matching="one_to_one"):
        check_matching(matching)
        counts = []
        for index, (pred, true) in enumerate(zip(predictions, references)):
            try:
                counts.append(image_counts(pred, true, radius, score_threshold, matching))
            except ValueError as err:
                raise ValueError(f"image {index}: {err}") from None
        return summarize(counts, matching)
