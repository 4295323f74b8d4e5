"""Classification scores as HEp-2 and C-NMC papers report them, as a local `evaluate` metric.

One pass over (prediction, reference) pairs gives the confusion matrix; every score is read off it:
- accuracy: correct / all (what HEp-2 papers call "average classification accuracy", Table 3 of the
  ICPR 2012 report on ConvNeXt-B and CoAtNet);
- mean_class_accuracy (MCA): the mean over classes of per-class recall, the ICPR 2014 contest's measure;
- f1 per class, macro_f1 (unweighted mean) and weighted_f1 (weighted by class support): C-NMC ranked
  entries by weighted F1;
- confusion_matrix: rows are true classes, columns predicted classes.

Load it by path, offline:

    import evaluate
    metric = evaluate.load(medsets.metric_path("classification"))
    metric.compute(predictions=[0, 1, 1], references=[0, 1, 0], num_labels=2)

or call `confusion(...)` and `scores(...)` directly.
"""

import datasets
import evaluate
import numpy as np

_DESCRIPTION = """\
Accuracy, mean class accuracy (mean per-class recall), per-class precision/recall/F1, macro and
support-weighted F1, and the confusion matrix (rows true, columns predicted), all from one confusion
matrix. Conventions for empty denominators: a class never predicted has precision 0; a class absent
from the references has recall 0 and is left out of the mean class accuracy and of macro F1 (so a
subset of the classes can be scored); F1 is 0 when precision + recall is 0.

Equal to scikit-learn (tests/test_classification_metric.py): accuracy = accuracy_score; mean class
accuracy = balanced_accuracy_score; precision, recall, f1 = *_score(average=None, labels=range(num_labels),
zero_division=0); macro_f1 = f1_score(average="macro", labels=<classes in the references>), which is
sklearn's plain macro F1 whenever no class is predicted that the references lack; weighted_f1 =
f1_score(average="weighted") (C-NMC's challenge metric); confusion_matrix = confusion_matrix(labels=...).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of `int`): predicted class ids.
    references (`list` of `int`): true class ids.
    num_labels (`int`, *optional*): number of classes; default: 1 + the largest id seen.
    label_names (`list` of `str`, *optional*): class names, for `f1_by_class` keys.

Returns:
    `dict`: accuracy, mean_class_accuracy, macro_f1, weighted_f1 (floats); precision, recall, f1
    (lists, one value per class); f1_by_class (name -> F1); support (list of ints); confusion_matrix
    (list of lists of ints, rows true, columns predicted).

Examples:
    >>> import evaluate
    >>> metric = evaluate.load(medsets.metric_path("classification"))
    >>> r = metric.compute(predictions=[0, 0, 1, 2], references=[0, 1, 1, 2], num_labels=3)
    >>> r["accuracy"], r["mean_class_accuracy"], r["confusion_matrix"]
    (0.75, 0.8333333333333334, [[1, 0, 0], [1, 1, 0], [0, 0, 1]])
"""


def confusion(predictions, references, num_labels: int | None = None) -> np.ndarray:
    predictions = np.asarray(predictions, dtype=np.int64).ravel()
    references = np.asarray(references, dtype=np.int64).ravel()
    if predictions.shape != references.shape:
        raise ValueError(f"{predictions.size} predictions for {references.size} references")
    if (predictions < 0).any() or (references < 0).any():
        raise ValueError("class ids must be >= 0 (unlabelled examples, label -1, cannot be scored)")
    seen = int(max(predictions.max(initial=-1), references.max(initial=-1))) + 1
    num_labels = num_labels or seen
    if seen > num_labels:
        raise ValueError(f"class id {seen - 1} is out of range for num_labels={num_labels}")
    return np.bincount(references * num_labels + predictions, minlength=num_labels * num_labels).reshape(
        num_labels, num_labels)


def scores(matrix: np.ndarray, label_names: list[str] | None = None) -> dict:
    matrix = np.asarray(matrix, dtype=np.int64)
    correct = np.diag(matrix).astype(float)
    support = matrix.sum(axis=1)
    predicted = matrix.sum(axis=0)
    total = int(matrix.sum())
    precision = np.divide(correct, predicted, out=np.zeros_like(correct), where=predicted > 0)
    recall = np.divide(correct, support, out=np.zeros_like(correct), where=support > 0)
    both = precision + recall
    f1 = np.divide(2 * precision * recall, both, out=np.zeros_like(correct), where=both > 0)
    present = support > 0
    names = label_names or [str(i) for i in range(len(matrix))]
    return {
        "accuracy": float(correct.sum() / total) if total else 0.0,
        "mean_class_accuracy": float(recall[present].mean()) if present.any() else 0.0,
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "weighted_f1": float((f1 * support).sum() / total) if total else 0.0,
        "precision": precision.tolist(),
        "recall": recall.tolist(),
        "f1": f1.tolist(),
        "f1_by_class": dict(zip(names, f1.tolist())),
        "support": support.tolist(),
        "confusion_matrix": matrix.tolist(),
    }


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Classification(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": datasets.Value("int64"), "references": datasets.Value("int64")}),
        )

    def _compute(self, predictions, references, num_labels=None, label_names=None):
        if label_names is not None and num_labels is None:
            num_labels = len(label_names)
        return scores(confusion(predictions, references, num_labels), label_names)
