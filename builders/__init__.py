"""One module per source dataset, each a description of its raw download: its facts as class attributes
(classes, published counts, split-folder names, card notes) and how its layout is read. The mechanisms
they share (source access, layout search, checks, report, export) live once in the `medsets` package.

This folder is installed as `medsets.builders` (pyproject.toml maps it).
"""

from .bis5k import BIS5k
from .gzmh import GZMH
from .hep2 import HEp2
from .leukemia import Leukemia

BUILDERS = {"hep2": HEp2, "leukemia": Leukemia, "gzmh": GZMH, "bis5k": BIS5k}

__all__ = ["BUILDERS", "BIS5k", "GZMH", "HEp2", "Leukemia"]
