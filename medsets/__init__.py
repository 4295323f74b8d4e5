"""medsets: raw biomedical microscopy downloads to Hugging Face datasets.

The builders are ordinary `datasets.GeneratorBasedBuilder`s, one per source dataset (`medsets.builders`):

    from medsets import HEp2
    builder = HEp2(config_name="icpr2014", data_dir="~/Downloads/ICIP2013_training_1.0.zip")
    builder.download_and_prepare()
    ds = builder.as_dataset()

`BUILDERS` maps the names used on the command line to those classes. Bad input raises a `MedsetsError`
(a `BuildError` for a download that does not build), whose message lists every problem found. The metrics are local `evaluate`
modules shipped in the package: `evaluate.load(medsets.metric_path("segmentation"))`.

Names are resolved on first use, so that `medsets --help` answers without importing `datasets`.
"""

from .errors import MedsetsError
from .metrics import metric_path

__all__ = ["BUILDERS", "BIS5k", "BuildError", "GZMH", "HEp2", "Leukemia", "MedsetsError", "metric_path"]


def __getattr__(name: str):
    if name == "BuildError":
        from .checks import BuildError

        return BuildError
    if name in __all__:
        from . import builders

        return getattr(builders, name)
    raise AttributeError(f"module 'medsets' has no attribute {name!r}")
