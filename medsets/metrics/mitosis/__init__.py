"""The `mitosis` metric module; `evaluate.load(medsets.metric_path("mitosis"))` loads the same file."""

from .mitosis import Mitosis, box_centre, image_counts, match, split_scores, summarize

__all__ = ['Mitosis', 'box_centre', 'image_counts', 'match', 'split_scores', 'summarize']
