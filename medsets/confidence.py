"""What `medsets evaluate` says of how far a score can be trusted: each headline number with its interval
over the unit that is independent, two prediction sets compared on the same units, and the published
results that compare.

The unit is the first of these the scored rows carry for every row: `specimen_id` (HEp-2 ICPR 2012: the
slide image), `patient_id` (C-NMC), `source_image_id` (GZMH tiles: the field). Otherwise each row is its
own unit (a BIS5k image, a GZMH field); for HEp-2 cells without specimen ids (the processed ICPR 2014
release) the printout says that the interval then treats cells of one specimen as independent, which they
are not, so the interval is too narrow. The intervals themselves are medsets.intervals'.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .intervals import (Bootstrap, Interval, Statistic, classification_statistics, confusion_rows, f1_statistics,
                        mcnemar_exact, per_unit, toolkit_rows, toolkit_statistics)

UNIT_COLUMNS = (("specimen_id", "specimen"), ("patient_id", "patient"), ("source_image_id", "field"))
# The numbers each kind of score gets an interval for (the others in its table are counts or settings).
HEADLINE = {"classification": ("accuracy", "mean_class_accuracy", "macro_f1", "weighted_f1")}


@dataclass
class Scored:
    """One prediction set's scores item by item: what an interval or a paired comparison needs."""
    rows: np.ndarray  # the split's row of each scored item
    stats: np.ndarray  # (items, k) sufficient statistics, summed per unit
    statistics: dict[str, Statistic]  # the table's column -> its value from summed statistics
    correct: np.ndarray | None = None  # classification: each item right or wrong (McNemar's test)

    def only(self, rows) -> Scored:
        keep = np.isin(self.rows, list(rows))
        return Scored(self.rows[keep], self.stats[keep], self.statistics,
                      None if self.correct is None else self.correct[keep])


def labels_scored(rows: list[int], predicted: list[int], truth: list[int], num_labels: int) -> Scored:
    statistics = classification_statistics(num_labels)
    return Scored(np.asarray(rows), confusion_rows(predicted, truth, num_labels),
                  {name: statistics[name] for name in HEADLINE["classification"]},
                  np.asarray(predicted) == np.asarray(truth))


def masks_scored(rows: list[int], per_image: list[dict]) -> Scored:
    return Scored(np.asarray(rows), toolkit_rows(per_image), toolkit_statistics())


def detections_scored(rows: list[int], counts_by_rule: dict[str, list[tuple]]) -> Scored:
    """Per image (tp, fp, fn) under each matching rule given ("one_to_one", and "gzmh_authors" for mitoses), at
    the threshold the table uses; the headline is each rule's F1."""
    stats = np.hstack([np.asarray(counts, np.float64).reshape(-1, 3) for counts in counts_by_rule.values()])
    rates = f1_statistics()
    statistics = {f"{rule} {name}": (lambda s, offset=3 * i, rate=rates[name]: rate(s[:, offset:offset + 3]))
                  for i, rule in enumerate(counts_by_rule) for name in rates}
    return Scored(np.asarray(rows), stats, {f"{rule} f1": statistics[f"{rule} f1"] for rule in counts_by_rule})


def units_of(split, name: str) -> tuple[np.ndarray, str, str | None]:
    """Each row's unit, the unit's name, and a caveat when the rows' true unit is unknown."""
    for column, unit in UNIT_COLUMNS:
        if column in split.column_names:
            values = split[column]
            if values and all(v not in (None, "", -1) for v in values):
                return np.asarray([str(v) for v in values]), unit, None
    if name == "hep2":
        return np.arange(len(split)).astype(str), "cell", (
            "these cells carry no specimen id: the interval treats cells of one specimen as independent, which "
            "they are not (they share its pattern and look), so it is too narrow")
    return np.arange(len(split)).astype(str), "field" if name == "gzmh" else "image", None


def intervals_of(scored: Scored, units: np.ndarray, unit: str, bootstrap: Bootstrap) -> dict[str, Interval]:
    unit_stats, _ = per_unit(scored.stats, units[scored.rows])
    return bootstrap.intervals(unit_stats, scored.statistics, unit)


def compare(a: Scored, b: Scored, units: np.ndarray, unit: str, bootstrap: Bootstrap) -> tuple[dict, dict | None]:
    """A against B on the rows both scored, the same units resampled for both; McNemar's exact test where
    the items are right or wrong."""
    common = np.intersect1d(a.rows, b.rows)
    a, b = a.only(common), b.only(common)
    order_a, order_b = np.argsort(a.rows), np.argsort(b.rows)
    item_units = units[a.rows[order_a]]
    stats_a, _ = per_unit(a.stats[order_a], item_units)
    stats_b, _ = per_unit(b.stats[order_b], item_units)
    paired = bootstrap.paired(stats_a, stats_b, a.statistics, unit)
    test = None if a.correct is None else mcnemar_exact(a.correct[order_a], b.correct[order_b])
    return paired, test


def interval_lines(intervals: dict[str, Interval], bootstrap: Bootstrap, caveat: str | None, width: int) -> list[str]:
    first = next(iter(intervals.values()))
    lines = [f"{bootstrap.confidence:.0%} intervals, percentile bootstrap over the {first.n_units} {first.unit}s "
             f"({bootstrap.resamples} resamples, seed {bootstrap.seed}):"]
    lines += [f"  {name:{width}s} {i.value:.4f}  [{i.ci_low:.4f}, {i.ci_high:.4f}]" for name, i in intervals.items()]
    return lines + ([f"  note: {caveat}"] if caveat else [])


def comparison_lines(a_name: str, b_name: str, paired: dict, test: dict | None, bootstrap: Bootstrap,
                     width: int) -> list[str]:
    first = next(iter(paired.values()))
    lines = [f"{a_name} minus {b_name}, paired over the same {first['n_units']} {first['unit']}s ({bootstrap.confidence:.0%} "
             f"interval of the difference, two-sided bootstrap p):"]
    for name, d in paired.items():
        lines.append(f"  {name:{width}s} {d['a']:.4f} vs {d['b']:.4f}: {d['difference']:+.4f}  "
                     f"[{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]  p = {d['p_value']:.4g}")
    if test:
        lines.append(f"  McNemar's exact test on the paired predictions: {test['a_right_b_wrong']} right only in "
                     f"{a_name}, {test['b_right_a_wrong']} only in {b_name}, p = {test['p_value']:.4g}")
    return lines
