"""Intervals by the independent unit and paired comparisons (medsets.intervals, medsets.confidence): checked
against a textbook interval, against the unit-level bootstrap they must equal, and against the metric
modules whose numbers they give intervals for."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest, norm

from medsets.intervals import (Bootstrap, classification_statistics, confusion_rows, f1_statistics, mcnemar_exact,
                               per_unit, toolkit_rows, toolkit_statistics)
from medsets.metrics.classification import confusion, scores
from medsets.metrics.segmentation.segmentation import summarize, toolkit_scores


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    z = norm.ppf(1 - (1 - confidence) / 2)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def test_without_clustering_the_accuracy_interval_agrees_with_wilson():
    rng = np.random.default_rng(1)
    truth = rng.integers(0, 2, 2000)
    predicted = np.where(rng.random(2000) < 0.8, truth, 1 - truth)
    found = Bootstrap().intervals(confusion_rows(predicted, truth, 2), classification_statistics(2), "image")
    low, high = wilson(int((predicted == truth).sum()), 2000)
    assert found["accuracy"].value == pytest.approx((predicted == truth).mean())
    assert abs(found["accuracy"].ci_low - low) < 0.01 and abs(found["accuracy"].ci_high - high) < 0.01


def test_units_whose_items_agree_give_the_unit_level_interval_wider_than_the_item_level_one():
    rng = np.random.default_rng(2)
    right = rng.random(50) < 0.7  # 50 specimens, each all right or all wrong
    units = np.repeat(np.arange(50), 20)
    truth = np.zeros(1000, np.int64)
    predicted = np.where(np.repeat(right, 20), 0, 1)
    items = confusion_rows(predicted, truth, 2)
    statistics = classification_statistics(2)
    clustered = Bootstrap().intervals(per_unit(items, units)[0], statistics, "specimen")["accuracy"]
    unit_level = Bootstrap().intervals(confusion_rows(np.where(right, 0, 1), np.zeros(50, np.int64), 2),
                                       statistics, "specimen")["accuracy"]
    item_level = Bootstrap().intervals(items, statistics, "cell")["accuracy"]
    assert (clustered.ci_low, clustered.ci_high) == pytest.approx((unit_level.ci_low, unit_level.ci_high))
    assert clustered.n_units == 50 and item_level.n_units == 1000
    assert clustered.ci_high - clustered.ci_low > 3 * (item_level.ci_high - item_level.ci_low)


def test_a_rerun_prints_the_same_interval_and_another_seed_another():
    items = confusion_rows([0, 1, 1, 0, 1] * 40, [0, 1, 0, 0, 1] * 40, 2)
    statistics = classification_statistics(2)
    first = Bootstrap(seed=0).intervals(items, statistics, "image")["accuracy"]
    assert Bootstrap(seed=0).intervals(items, statistics, "image")["accuracy"] == first
    assert Bootstrap(seed=1).intervals(items, statistics, "image")["accuracy"] != first


def test_statistics_from_summed_counts_equal_the_metric_modules():
    rng = np.random.default_rng(3)
    truth, predicted = rng.integers(0, 5, 300), rng.integers(0, 5, 300)
    truth[truth == 4] = 3  # a class never true: left out of the class means, as the module does
    expected = scores(confusion(predicted, truth, 5))
    totals = confusion_rows(predicted, truth, 5).sum(0, keepdims=True)
    for name, statistic in classification_statistics(5).items():
        assert statistic(totals)[0] == pytest.approx(expected[name]), name
    masks = []
    for _ in range(6):
        truth_mask = rng.random((32, 32)) < 0.3
        masks.append(toolkit_scores((rng.random((32, 32)) * 255).astype(np.uint8), truth_mask))
    totals = toolkit_rows(masks).sum(0, keepdims=True)
    for name, value in summarize(masks).items():
        assert toolkit_statistics()[name](totals)[0] == pytest.approx(value, abs=1e-9), name
    f1 = f1_statistics()["f1"](np.array([[8.0, 2.0, 4.0]]))[0]
    assert f1 == pytest.approx(2 * 8 / (2 * 8 + 2 + 4))


def test_paired_comparison_and_mcnemar():
    rng = np.random.default_rng(4)
    truth = rng.integers(0, 2, 400)
    better = np.where(rng.random(400) < 0.9, truth, 1 - truth)
    worse = np.where(rng.random(400) < 0.7, truth, 1 - truth)
    statistics = classification_statistics(2)
    paired = Bootstrap().paired(confusion_rows(better, truth, 2), confusion_rows(worse, truth, 2), statistics, "image")
    accuracy = paired["accuracy"]
    assert accuracy["difference"] == pytest.approx((better == truth).mean() - (worse == truth).mean())
    assert 0 < accuracy["ci_low"] < accuracy["difference"] < accuracy["ci_high"] and accuracy["p_value"] < 0.01
    same = Bootstrap().paired(confusion_rows(better, truth, 2), confusion_rows(better, truth, 2), statistics, "image")
    assert same["accuracy"]["difference"] == 0 and same["accuracy"]["p_value"] == 1.0
    test = mcnemar_exact(better == truth, worse == truth)
    only_a, only_b = test["a_right_b_wrong"], test["b_right_a_wrong"]
    assert only_a == int(((better == truth) & (worse != truth)).sum())
    assert test["p_value"] == pytest.approx(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def test_the_unit_is_the_specimen_patient_or_field_and_cells_without_one_are_said_to_be_assumed_independent():
    import datasets

    from medsets.confidence import units_of

    with_specimens = datasets.Dataset.from_dict({"specimen_id": [3, 3, 7], "label": [0, 1, 0]})
    units, unit, caveat = units_of(with_specimens, "hep2")
    assert units.tolist() == ["3", "3", "7"] and unit == "specimen" and caveat is None
    units, unit, caveat = units_of(datasets.Dataset.from_dict({"specimen_id": [None, None]}), "hep2")
    assert unit == "cell" and "treats cells of one specimen as independent" in caveat
    assert units_of(datasets.Dataset.from_dict({"source_image_id": [1, 1, 2]}), "gzmh")[1] == "field"
    assert units_of(datasets.Dataset.from_dict({"label": [0, 1]}), "bis5k")[1:] == ("image", None)
