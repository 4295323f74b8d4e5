"""Local `evaluate` metric modules, shipped in the package so that they load offline from an installed
wheel as from a clone:

    import evaluate, medsets
    metric = evaluate.load(medsets.metric_path("segmentation"))    # or "classification", "mitosis"

Each folder is also an ordinary subpackage (`from medsets.metrics.segmentation import toolkit_scores`)
for code that wants the functions without `evaluate`'s Arrow round trip.
"""

from pathlib import Path

NAMES = ("classification", "mitosis", "segmentation")


def metric_path(name: str) -> str:
    """The folder to pass to `evaluate.load` for metric NAME."""
    if name not in NAMES:
        raise ValueError(f"no medsets metric {name!r}; choose one of: {', '.join(NAMES)}")
    return str(Path(__file__).resolve().parent / name)
