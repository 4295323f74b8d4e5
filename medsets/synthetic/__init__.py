"""Faithful synthetic replicas of the raw downloads, for the demo and the tests; one module per dataset.

Each writer reproduces one published layout, quirks included (file and folder names, case of suffixes,
delimiters, BOM and CRLF, wrapper folders, zip), at any size from a few cells up to the full published
counts (`scale=1.0`), and returns the path of what it wrote (a folder, or `dest` + '.zip'):

    from medsets import synthetic
    raw = synthetic.write_hep2_icpr2014("raw/hep2", variant="processed", scale=0.05)

The images are drawn so that the classes really differ (`drawing`), so a model trained on a replica has
something real to learn. docs/ says, for each dataset, which facts of the real files a replica carries.
"""

from .bis5k import draw_he_tile, write_bis5k
from .drawing import draw_cell
from .files import Writer
from .gzmh import draw_mitosis_field, write_gzmh
from .hep2 import write_hep2_icpr2012, write_hep2_icpr2014, write_mivia
from .leukemia import draw_blood_cell, write_leukemia

# `medsets replica NAME`: each replica, its layouts (the first is the default) and the download it stands for.
REPLICAS = {
    "hep2": (write_hep2_icpr2014, ("processed", "organisers", "card"),
             "HEp-2 ICPR 2014 cells (processed 78x78 release; organisers' ICIP2013_training_1.0; train/test CSVs)"),
    "hep2-icpr2012": (write_mivia, ("mivia", "contest"),
                      "HEp-2 ICPR 2012 MIVIA: the contest's cell crops and Main_Dataset's slides; contest: the crops alone"),
    "leukemia": (write_leukemia, ("kaggle", "tcia", "flat"), "C-NMC 2019 (Kaggle download, TCIA, openmedlab)"),
    "gzmh": (write_gzmh, ("v2", "v1"), "GZMH mitosis fields (V2: test split by mitotic score; V1)"),
    "bis5k": (write_bis5k, (), "BIS5k H&E images and cancer masks"),
}

__all__ = ["REPLICAS", "Writer", "draw_blood_cell", "draw_cell", "draw_he_tile", "draw_mitosis_field", "write_bis5k",
           "write_gzmh", "write_hep2_icpr2012", "write_hep2_icpr2014", "write_leukemia", "write_mivia"]
