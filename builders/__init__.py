"""medsets: raw biomedical microscopy downloads to Hugging Face datasets.

`BUILDERS` maps the names used on the command line to builder classes, which are ordinary
`datasets.GeneratorBasedBuilder`s:

    from builders import HEp2
    builder = HEp2(config_name="icpr2014", data_dir="~/Downloads/ICIP2013_training_1.0.zip")
    builder.download_and_prepare()
    ds = builder.as_dataset()
"""

from .bis5k import BIS5k
from .gzmh import GZMH
from .hep2 import HEp2
from .leukemia import Leukemia

BUILDERS = {"hep2": HEp2, "leukemia": Leukemia, "gzmh": GZMH, "bis5k": BIS5k}

__all__ = ["BUILDERS", "BIS5k", "GZMH", "HEp2", "Leukemia"]
