"""medsets.metrics.mitosis: centroid-matching detection F1 (GZMH), on hand-checked cases."""

import math

import numpy as np
import pytest

from medsets import metric_path
from medsets.metrics.mitosis import mitosis as mit


def scores(pred, true, **kwargs):
    return mit.summarize([mit.image_counts(pred, true, **kwargs)])


# -- distance and radius -------------------------------------------------------------------------------
def test_exact_hit():
    assert mit.match([[100, 200]], [[100, 200]]) == ([(0, 0)], [], [])
    assert scores([[100, 200]], [[100, 200]]) == {"precision": 1.0, "recall": 1.0, "f1": 1.0,
                                                  "tp": 1, "fp": 0, "fn": 0}


def test_radius_boundary():
    true = [[50.0, 50.0]]
    assert mit.match([[69.9, 50.0]], true) == ([(0, 0)], [], [])  # 19.9 px: hit
    assert mit.match([[50.0, 70.1]], true) == ([], [0], [0])  # 20.1 px: FP and FN
    assert mit.match([[62.0, 66.0]], true) == ([(0, 0)], [], [])  # (12, 16): exactly 20.0 px is a hit
    assert mit.match([[69.9, 50.0]], true, radius=10) == ([], [0], [0])  # radius is configurable
    assert scores([[50.0, 70.1]], true) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 1, "fn": 1}


# -- one-to-one ----------------------------------------------------------------------------------------
def test_two_predictions_near_one_mitosis():
    pairs, fp, fn = mit.match([[10, 0], [3, 0]], [[0, 0]])
    assert pairs == [(1, 0)] and fp == [0] and fn == []  # the nearer one is the hit
    assert scores([[10, 0], [3, 0]], [[0, 0]])["f1"] == pytest.approx(2 / 3)  # P 1/2, R 1


def test_one_prediction_between_two_mitoses():
    pairs, fp, fn = mit.match([[15, 0]], [[0, 0], [30, 0]])  # 15 px from both
    assert len(pairs) == 1 and fp == [] and len(fn) == 1
    assert scores([[15, 0]], [[0, 0], [30, 0]])["recall"] == 0.5


def greedy_nearest_first(pred, true, radius=20.0):
    """Matches the closest remaining pair first: what the optimal assignment improves on."""
    candidates = sorted((((p[0] - t[0]) ** 2 + (p[1] - t[1]) ** 2) ** 0.5, i, j)
                        for i, p in enumerate(pred) for j, t in enumerate(true))
    used_p, used_t = set(), set()
    for d, i, j in candidates:
        if d <= radius and i not in used_p and j not in used_t:
            used_p.add(i), used_t.add(j)
    return len(used_p)


def test_optimal_assignment_beats_greedy():
    # GT at x = 0 and 30; pred at 11 is 11 px from GT 0 and 19 px from GT 30; pred at -15 reaches
    # only GT 0 (15 px). Greedy takes (11, 0) first and strands the other two: 1 match; optimal 2.
    pred, true = [[11, 0], [-15, 0]], [[0, 0], [30, 0]]
    assert greedy_nearest_first(pred, true) == 1
    assert mit.match(pred, true) == ([(0, 1), (1, 0)], [], [])
    # The brief's layout (preds at 15 and -10): greedy by prediction order could pair 15 with GT 0.
    assert mit.match([[15, 0], [-10, 0]], true) == ([(0, 1), (1, 0)], [], [])


def test_equal_counts_prefer_smaller_total_distance():
    # Both assignments match 2; straight pairs total 2 px, crossed ones 20 px.
    assert mit.match([[1, 0], [11, 0]], [[0, 0], [10, 0]]) == ([(0, 0), (1, 1)], [], [])
    assert mit.match([[11, 0], [1, 0]], [[0, 0], [10, 0]]) == ([(0, 1), (1, 0)], [], [])


def matched_coordinates(pred, true, **kwargs):
    pairs, fp, fn = mit.match(pred, true, **kwargs)
    return (sorted((tuple(pred[i]), tuple(true[j])) for i, j in pairs),
            sorted(tuple(pred[i]) for i in fp), sorted(tuple(true[j]) for j in fn))


def test_equidistant_tie_is_deterministic():
    # One GT, two predictions 5 px either side; and a square of 2 GTs and 2 preds, all 10 px apart
    # along the sides, where both perfect assignments have the same total distance.
    layouts = [([[-5.0, 0.0], [5.0, 0.0]], [[0.0, 0.0]]),
               ([[0.0, 0.0], [10.0, 10.0]], [[10.0, 0.0], [0.0, 10.0]])]
    for pred, true in layouts:
        first = matched_coordinates(pred, true)
        assert all(matched_coordinates(pred, true) == first for _ in range(3))
        assert matched_coordinates(pred[::-1], true[::-1]) == first
        assert matched_coordinates(pred[::-1], true) == first
        assert matched_coordinates(pred, true[::-1]) == first
    assert matched_coordinates(*layouts[0])[0] == [((-5.0, 0.0), (0.0, 0.0))]  # first in (x, y) order


# -- empty images and 0/0 conventions ------------------------------------------------------------------
def test_empty_inputs():
    assert mit.match([], [[1, 2], [3, 4]]) == ([], [], [0, 1])
    assert mit.match([[1, 2]], []) == ([], [0], [])
    assert mit.match([], []) == ([], [], [])
    # No predictions, some GT: precision 0 (FN > 0), recall 0.
    assert scores([], [[1, 2]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 0, "fn": 1}
    # Some predictions, no GT: recall 0 (FP > 0), precision 0.
    assert scores([[1, 2]], []) == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "tp": 0, "fp": 1, "fn": 0}
    # Nothing on either side: nothing missed, nothing false.
    assert scores([], []) == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "tp": 0, "fp": 0, "fn": 0}
    assert mit.summarize([]) == scores([], [])


def test_all_found_but_one_false_alarm():
    got = mit.summarize([(3, 1, 0)])
    assert (got["precision"], got["recall"], got["f1"]) == (0.75, 1.0, pytest.approx(6 / 7))


# -- over images ---------------------------------------------------------------------------------------
def test_micro_average_over_images():
    images = [([[0, 0]], [[0, 0]]),  # TP 1: F1 1
              ([[500, 500]], [[0, 0], [100, 0], [200, 0]])]  # FP 1, FN 3: F1 0
    per_image = [mit.image_counts(p, t) for p, t in images]
    assert per_image == [(1, 0, 0), (0, 1, 3)]
    got = mit.summarize(per_image)
    # Micro: TP 1, FP 1, FN 3 -> P 1/2, R 1/4, F1 1/3; the mean of per-image F1s would be 1/2.
    assert got["f1"] == pytest.approx(1 / 3)
    assert got["f1"] != pytest.approx(sum(mit.summarize([c])["f1"] for c in per_image) / 2)


def test_score_threshold():
    pred, true = [[0, 0, 0.9], [100, 100, 0.3], [200, 200]], [[0, 0]]
    assert mit.image_counts(pred, true) == (1, 2, 0)
    assert mit.image_counts(pred, true, score_threshold=0.5) == (1, 1, 0)  # the [x, y] row stays
    assert mit.image_counts(pred, true, score_threshold=0.9) == (1, 1, 0)  # score >= threshold kept
    assert mit.image_counts(pred, true, score_threshold=0.95) == (0, 1, 1)
    pairs, fp, fn = mit.match([[0, 0], [1, 0]], true, scores=[0.1, 0.8], score_threshold=0.5)
    assert (pairs, fp, fn) == ([(1, 0)], [], [])  # prediction 0 is left out, neither TP nor FP


def test_box_centre_and_bad_rows():
    assert mit.box_centre([10, 20, 30, 40]) == (25.0, 40.0)
    with pytest.raises(ValueError, match=r"\[x, y\] or \[x, y, score\]"):
        mit.image_counts([[1, 2, 3, 4]], [])
    with pytest.raises(ValueError, match="references must be"):
        mit.match([], [[1, 2, 3]])
    with pytest.raises(ValueError, match="radius"):
        mit.match([], [], radius=-1)


# -- the evaluate interface ----------------------------------------------------------------------------
def test_evaluate_matches_pure_functions(tmp_path):
    import evaluate
    batches = [
        ([[[69.9, 50.0, 0.8]], [], [[15.0, 0.0], [-10.0, 0.0]]],
         [[[50.0, 50.0]], [[7.0, 7.0]], [[0.0, 0.0], [30.0, 0.0]]]),
        ([[[1.0, 1.0, 0.2], [40.0, 40.0, 0.7]], [[300.0, 300.0]], []],
         [[[0.0, 0.0]], [], []]),
    ]
    metric = evaluate.load(metric_path("mitosis"), cache_dir=str(tmp_path))
    assert "Wang, Huadeng" in metric.citation
    for predictions, references in batches:
        metric.add_batch(predictions=predictions, references=references)
    got = metric.compute(radius=25.0, score_threshold=0.5)

    pairs = [pair for preds, refs in batches for pair in zip(preds, refs)]
    expected = mit.summarize([mit.image_counts(p, t, radius=25.0, score_threshold=0.5) for p, t in pairs])
    # By hand: TP 3 (image 0, two in image 2), FP 2 (40,40 and 300,300), FN 2 (7,7 and 0,0; 1,1 is filtered).
    assert expected == {"precision": 0.6, "recall": 0.6, "f1": pytest.approx(0.6), "tp": 3, "fp": 2, "fn": 2}
    assert got == expected
    assert all(isinstance(got[k], int) for k in ("tp", "fp", "fn"))


# -- the GZMH authors' rule (antifen/mitosis-nuclei-detection, mmdetection/predict_rely.py, count_index) ----
def authors_count_index(gt, pr):
    """count_index's loop as it is written: each ground truth's nearest prediction, searched from 1000 px
    with `<=`, is a hit when closer than 20 px; the scores are 0 when TP is 0."""
    tp = 0
    for g in gt:
        nearest = 1000
        for p in pr:
            distance = math.hypot(g[0] - p[0], g[1] - p[1])
            if distance <= nearest:
                nearest = distance
        if nearest < 20:
            tp += 1
    precision = tp / len(pr) if tp else 0
    recall = tp / len(gt) if tp else 0
    f1 = 2 * precision * recall / (precision + recall) if tp else 0
    return tp, len(pr), len(gt), precision, recall, f1


def random_image(rng):
    gt = rng.uniform(0, 2084, (rng.integers(0, 6), 2))
    near = gt[rng.integers(0, len(gt), rng.integers(0, 6))] + rng.normal(0, 12, (1, 2)) if len(gt) else np.zeros((0, 2))
    pr = np.concatenate([near, rng.uniform(0, 2084, (rng.integers(0, 4), 2))])
    if len(gt) > 1 and rng.random() < 0.3:  # two mitoses close together, one detection between them
        gt[1] = gt[0] + rng.normal(0, 8, 2)
        pr = np.concatenate([pr, gt[:1] + rng.normal(0, 4, (1, 2))])
    return gt.tolist(), pr.tolist()


def test_gzmh_authors_rule_equals_count_index_per_image_and_summed():
    rng = np.random.default_rng(0)
    images = [random_image(rng) for _ in range(400)]
    totals = np.zeros(3, np.int64)
    shared = 0
    for gt, pr in images:
        tp, pr_num, gt_num, precision, recall, f1 = authors_count_index(gt, pr)
        counts = mit.image_counts(pr, gt, matching="gzmh_authors")
        assert counts == (tp, pr_num - tp, gt_num - tp)
        ours = mit.summarize([counts], matching="gzmh_authors")
        assert (ours["precision"], ours["recall"], ours["f1"]) == pytest.approx((precision, recall, f1), abs=1e-12)
        totals += (tp, pr_num, gt_num)
        shared += tp > pr_num  # one prediction serving several mitoses: precision above 1, as the code gives
    assert shared > 0
    tp, predicted, true = totals.tolist()
    summed = mit.summarize([mit.image_counts(pr, gt, matching="gzmh_authors") for gt, pr in images],
                           matching="gzmh_authors")
    assert (summed["tp"], summed["tp"] + summed["fp"], summed["tp"] + summed["fn"]) == (tp, predicted, true)
    assert summed["precision"] == pytest.approx(tp / predicted) and summed["recall"] == pytest.approx(tp / true)


def test_the_two_rules_differ_where_the_authors_say_they_do():
    true = [[0, 0], [10, 0]]
    one = [[5, 0]]  # one detection between two mitoses
    assert mit.image_counts(one, true) == (1, 0, 1)  # one-to-one: it confirms one of them
    assert mit.image_counts(one, true, matching="gzmh_authors") == (2, -1, 0)  # the authors: both
    assert mit.image_counts([[20, 0]], [[0, 0]]) == (1, 0, 0)  # exactly 20 px: a hit one-to-one ...
    assert mit.image_counts([[20, 0]], [[0, 0]], matching="gzmh_authors") == (0, 1, 1)  # ... strictly under 20 there
    scored = [[0, 0, 0.3], [50, 0, 0.31]]
    assert mit.image_counts(scored, [[0, 0]], score_threshold=0.3) == (1, 1, 0)  # score >= threshold kept
    assert mit.image_counts(scored, [[0, 0]], score_threshold=0.3, matching="gzmh_authors") == (0, 1, 1)  # > only
    assert mit.summarize([(0, 3, 2)], matching="gzmh_authors") == {"precision": 0.0, "recall": 0.0, "f1": 0.0,
                                                                    "tp": 0, "fp": 3, "fn": 2}
    with pytest.raises(ValueError, match="matching='nearest'"):
        mit.summarize([], matching="nearest")


def test_evaluate_module_takes_the_matching_rule(tmp_path):
    import evaluate

    from medsets import metric_path

    metric = evaluate.load(metric_path("mitosis"), cache_dir=str(tmp_path))
    got = metric.compute(predictions=[[[5, 0, 0.9]]], references=[[[0, 0], [10, 0]]], matching="gzmh_authors")
    assert got["tp"] == 2 and got["precision"] == 2.0 and got["recall"] == 1.0


def test_points_as_numpy_arrays(tmp_path):
    import evaluate

    metric = evaluate.load(metric_path("mitosis"), cache_dir=str(tmp_path))
    predictions = [np.array([[10.0, 10.0, 0.9], [300.0, 40.0, 0.2]]), np.zeros((0, 3))]
    references = [np.array([[15.0, 22.0]]), np.array([[500.0, 500.0]])]
    expected = {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "tp": 1, "fp": 0, "fn": 1}
    assert metric.compute(predictions=predictions, references=references, score_threshold=0.5) == pytest.approx(expected)
    metric.add_batch(predictions=predictions, references=references)
    assert metric.compute(score_threshold=0.5) == pytest.approx(expected)
