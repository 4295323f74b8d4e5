"""medsets.metrics.classification against scikit-learn, the implementation the field's papers use (C-NMC's
weighted F1 is sklearn's f1_score), on random cases: every number equal, and the sklearn call it equals."""

import numpy as np
import pytest
from sklearn import metrics as sk

from medsets.metrics.classification.classification import confusion, scores


def random_case(rng):
    classes = int(rng.integers(2, 7))
    n = int(rng.integers(1, 60))
    references = rng.integers(0, classes, n)
    predictions = np.where(rng.random(n) < 0.6, references, rng.integers(0, classes, n))
    return classes, predictions, references


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn's own, on the edge cases tested on purpose
@pytest.mark.parametrize("seed", range(200))
def test_every_number_equals_scikit_learn(seed):
    classes, predictions, references = random_case(np.random.default_rng(seed))
    labels = list(range(classes))
    present = sorted(set(references.tolist()))  # classes with references: MCA and macro F1 average over these
    ours = scores(confusion(predictions, references, classes))
    assert ours["confusion_matrix"] == sk.confusion_matrix(references, predictions, labels=labels).tolist()
    assert ours["accuracy"] == sk.accuracy_score(references, predictions)
    assert ours["mean_class_accuracy"] == pytest.approx(sk.balanced_accuracy_score(references, predictions), abs=1e-15)
    per_class = dict(labels=labels, average=None, zero_division=0)
    assert ours["precision"] == pytest.approx(sk.precision_score(references, predictions, **per_class), abs=1e-15)
    assert ours["recall"] == pytest.approx(sk.recall_score(references, predictions, **per_class), abs=1e-15)
    assert ours["f1"] == pytest.approx(sk.f1_score(references, predictions, **per_class), abs=1e-15)
    assert ours["macro_f1"] == pytest.approx(
        sk.f1_score(references, predictions, labels=present, average="macro", zero_division=0), abs=1e-15)
    assert ours["weighted_f1"] == pytest.approx(
        sk.f1_score(references, predictions, average="weighted", zero_division=0), abs=1e-15)
    if set(predictions.tolist()) <= set(present):  # then sklearn's plain macro F1 is ours too
        assert ours["macro_f1"] == pytest.approx(sk.f1_score(references, predictions, average="macro"), abs=1e-15)
