"""The `segmentation` metric module; `evaluate.load(medsets.metric_path("segmentation"))` loads the same file."""

from .segmentation import (CONVENTIONS, Segmentation, as_grey, centroid, decode, e_measure_curve, grey_histograms, pack,
                           s_measure, score_encoded, summarize, threshold_curves, toolkit_scores, undefined_columns,
                           undefined_in_reference, unpack, weighted_f_measure)

__all__ = ["CONVENTIONS", "Segmentation", "as_grey", "centroid", "decode", "e_measure_curve", "grey_histograms", "pack", "s_measure",
           "score_encoded", "summarize", "threshold_curves", "toolkit_scores", "undefined_columns",
           "undefined_in_reference", "unpack", "weighted_f_measure"]
