"""The `mitosis` metric module; `evaluate.load(medsets.metric_path("mitosis"))` loads the same file."""

from .mitosis import MATCHING, Mitosis, authors_hits, box_centre, image_counts, match, split_scores, summarize

__all__ = ['MATCHING', 'Mitosis', 'authors_hits', 'box_centre', 'image_counts', 'match', 'split_scores', 'summarize']
