"""Confidence intervals by the unit that is independent, and paired comparisons of two prediction sets.

Cells of one slide or specimen, cells of one patient, the tiles and mitoses of one field are not
independent samples: a bootstrap over them gives intervals far too narrow. So every interval here
resamples *units* (specimen, patient, field, image) with replacement, and each unit carries the
sufficient statistics of its items (its confusion counts, its per-image scores and threshold curves
summed, its TP/FP/FN): one resample is one row of a weight matrix, all of them one matrix product, and
the metric is computed from the resampled sums, never from resampled predictions.

The interval is the percentile bootstrap (Efron and Tibshirani, An Introduction to the Bootstrap, 1993,
ch. 13): by default 2,000 resamples, 95%, seed 0, so a rerun prints the same interval. A paired
comparison resamples the same units for both prediction sets; its p-value is the two-sided bootstrap
p-value of the difference (twice the smaller share of resampled differences on either side of 0), and
for accuracy McNemar's exact test on the discordant pairs is given beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

RESAMPLES = 2000
CONFIDENCE = 0.95
SEED = 0

Statistic = Callable[[np.ndarray], np.ndarray]  # (R, k) summed statistics -> (R,) metric values


@dataclass
class Interval:
    value: float
    ci_low: float
    ci_high: float
    unit: str
    n_units: int

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self, confidence: float = CONFIDENCE) -> str:
        return (f"{self.value:.4f} [{confidence:.0%} CI {self.ci_low:.4f}, {self.ci_high:.4f}; "
                f"{self.n_units} {self.unit}s]")


@dataclass
class Bootstrap:
    """The settings every interval of one run shares."""
    resamples: int = RESAMPLES
    confidence: float = CONFIDENCE
    seed: int = SEED

    def weights(self, n_units: int) -> np.ndarray:
        """(resamples, n_units): how often each unit is drawn in each resample (n_units draws each)."""
        rng = np.random.default_rng(self.seed)
        return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=self.resamples).astype(np.float64)

    def bounds(self, values: np.ndarray) -> tuple[float, float]:
        tail = 100 * (1 - self.confidence) / 2
        finite = values[np.isfinite(values)]
        if not len(finite):
            return float("nan"), float("nan")
        low, high = np.percentile(finite, [tail, 100 - tail])
        return float(low), float(high)

    def intervals(self, unit_stats: np.ndarray, statistics: dict[str, Statistic], unit: str) -> dict[str, Interval]:
        """Each statistic's value on all units and its interval over resampled units. `unit_stats`: (n_units, k)."""
        unit_stats = np.asarray(unit_stats, np.float64)
        total = unit_stats.sum(axis=0, keepdims=True)
        resampled = self.weights(len(unit_stats)) @ unit_stats
        out = {}
        for name, statistic in statistics.items():
            out[name] = Interval(float(statistic(total)[0]), *self.bounds(statistic(resampled)), unit, len(unit_stats))
        return out

    def paired(self, stats_a: np.ndarray, stats_b: np.ndarray, statistics: dict[str, Statistic],
               unit: str) -> dict[str, dict]:
        """A minus B for each statistic, the same units resampled for both: the difference, its interval and
        a two-sided bootstrap p-value."""
        stats_a, stats_b = np.asarray(stats_a, np.float64), np.asarray(stats_b, np.float64)
        weights = self.weights(len(stats_a))
        out = {}
        for name, statistic in statistics.items():
            a, b = float(statistic(stats_a.sum(0, keepdims=True))[0]), float(statistic(stats_b.sum(0, keepdims=True))[0])
            differences = statistic(weights @ stats_a) - statistic(weights @ stats_b)
            differences = differences[np.isfinite(differences)]
            low, high = self.bounds(differences)
            p = min(1.0, 2 * min(np.mean(differences <= 0), np.mean(differences >= 0))) if len(differences) else float("nan")
            out[name] = {"a": a, "b": b, "difference": a - b, "ci_low": low, "ci_high": high, "p_value": float(p),
                         "unit": unit, "n_units": len(stats_a)}
        return out


def per_unit(item_stats: np.ndarray, units) -> tuple[np.ndarray, int]:
    """Items' statistics (n_items, k) summed per unit (any hashable labels, one per item): (n_units, k)."""
    _, index = np.unique(np.asarray(units), return_inverse=True)
    summed = np.zeros((index.max(initial=-1) + 1, item_stats.shape[1]), np.float64)
    np.add.at(summed, index, item_stats)
    return summed, len(summed)


def mcnemar_exact(correct_a, correct_b) -> dict:
    """McNemar's exact test on paired correct/wrong outcomes: the discordant pairs against a fair coin."""
    from scipy.stats import binomtest

    correct_a, correct_b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    only_a, only_b = int((correct_a & ~correct_b).sum()), int((correct_b & ~correct_a).sum())
    p = binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0
    return {"a_right_b_wrong": only_a, "b_right_a_wrong": only_b, "p_value": float(p)}


# -- the statistics of each kind of score, from summed sufficient statistics --------------------------------
def classification_statistics(num_labels: int) -> dict[str, Statistic]:
    """From summed confusion matrices (R, C*C), rows true, columns predicted: the headline numbers of
    medsets.metrics.classification (mean class accuracy and macro F1 over the classes present)."""
    def parts(sums):
        matrix = sums.reshape(len(sums), num_labels, num_labels)
        correct = np.einsum("rii->ri", matrix)
        support, predicted, total = matrix.sum(2), matrix.sum(1), matrix.sum((1, 2))
        return correct, support, predicted, total

    def accuracy(sums):
        correct, _, _, total = parts(sums)
        return correct.sum(1) / np.maximum(total, 1)

    def mean_class_accuracy(sums):
        correct, support, _, _ = parts(sums)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.nanmean(np.where(support > 0, correct / support, np.nan), axis=1)

    def f1(sums):
        correct, support, predicted, total = parts(sums)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(support + predicted > 0, 2 * correct / (support + predicted), 0.0), support, total

    def macro_f1(sums):
        scores, support, _ = f1(sums)
        with np.errstate(invalid="ignore"):
            return np.nanmean(np.where(support > 0, scores, np.nan), axis=1)

    def weighted_f1(sums):
        scores, support, total = f1(sums)
        return (scores * support).sum(1) / np.maximum(total, 1)

    return {"accuracy": accuracy, "mean_class_accuracy": mean_class_accuracy, "macro_f1": macro_f1,
            "weighted_f1": weighted_f1}


def confusion_rows(predictions, references, num_labels: int) -> np.ndarray:
    """One row per item: its confusion matrix flattened (a one-hot of true * C + predicted)."""
    rows = np.zeros((len(references), num_labels * num_labels), np.float64)
    rows[np.arange(len(references)), np.asarray(references) * num_labels + np.asarray(predictions)] = 1
    return rows


def f1_statistics() -> dict[str, Statistic]:
    """Detection F1, precision and recall from summed (TP, FP, FN)."""
    def ratio(top, bottom):
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), 0.0)

    return {"f1": lambda s: ratio(2 * s[:, 0], 2 * s[:, 0] + s[:, 1] + s[:, 2]),
            "precision": lambda s: ratio(s[:, 0], s[:, 0] + s[:, 1]),
            "recall": lambda s: ratio(s[:, 0], s[:, 0] + s[:, 2])}


def mean_statistics(columns: list[str]) -> dict[str, Statistic]:
    """Means over items from summed (value_1 ... value_k, count): for per-image scores."""
    count = len(columns)
    return {name: (lambda s, i=i: s[:, i] / np.maximum(s[:, count], 1)) for i, name in enumerate(columns)}


def toolkit_rows(scores: list[dict]) -> np.ndarray:
    """One row per image for the BIS5k toolkit's columns: its threshold curves, its per-image scalars (wFm,
    Sm, mae), and 1 (the count): summed over a unit's images, they give `toolkit_statistics` its means."""
    from .metrics.segmentation.segmentation import CURVES, FROM_CURVE, KEYS

    scalars = [key for key in KEYS if key not in FROM_CURVE]
    return np.array([np.concatenate([*(np.asarray(s[name], np.float64) for name in CURVES.values()),
                                     [s[key] for key in scalars], [1.0]]) for s in scores])


def toolkit_statistics() -> dict[str, Statistic]:
    """The toolkit's columns (medsets.metrics.segmentation.summarize) from summed `toolkit_rows`: curves
    averaged over images, then their mean or max over thresholds; the scalars averaged over images."""
    from .metrics.segmentation.segmentation import CURVES, FROM_CURVE, KEYS, THRESHOLDS

    curves, steps = list(CURVES.values()), len(THRESHOLDS)
    scalars = [key for key in KEYS if key not in FROM_CURVE]
    count = len(curves) * steps + len(scalars)

    def from_curve(name, stat):
        start = curves.index(name) * steps
        def statistic(s):
            mean_curve = s[:, start:start + steps] / np.maximum(s[:, count:count + 1], 1)
            return mean_curve.mean(1) if stat == "mean" else mean_curve.max(1)
        return statistic

    def scalar(key):
        return lambda s: s[:, len(curves) * steps + scalars.index(key)] / np.maximum(s[:, count], 1)

    return {key: from_curve(*FROM_CURVE[key]) if key in FROM_CURVE else scalar(key) for key in KEYS}


def overlap_statistics(num_classes: int, names: list[str]) -> dict[str, Statistic]:
    """Mean IoU and mean Dice over the classes (those with pixels in either), and the last class's Dice, from
    summed pixel confusion matrices (R, C*C), rows true: as medsets.training.segmentation_scores computes them."""
    def per_class(sums):
        matrix = sums.reshape(len(sums), num_classes, num_classes)
        tp = np.einsum("rii->ri", matrix)
        predicted, true = matrix.sum(1), matrix.sum(2)
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(predicted + true - tp > 0, tp / (predicted + true - tp), np.nan)
            dice = np.where(predicted + true > 0, 2 * tp / (predicted + true), np.nan)
        return iou, dice

    def mean(which):
        def statistic(sums):
            with np.errstate(invalid="ignore"):
                return np.nanmean(per_class(sums)[which], axis=1)
        return statistic

    return {"mean_iou": mean(0), "mean_dice": mean(1),
            f"dice {names[-1]}": lambda sums: per_class(sums)[1][:, -1]}
