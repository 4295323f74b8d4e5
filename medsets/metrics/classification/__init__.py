"""The `classification` metric module; `evaluate.load(medsets.metric_path("classification"))` loads the same file."""

from .classification import Classification, confusion, scores

__all__ = ['Classification', 'confusion', 'scores']
