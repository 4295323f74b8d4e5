"""Shared fixtures: offline environment, small synthetic replicas, and a build helper."""

import atexit
import os
import shutil
import tempfile

# Before datasets is imported anywhere: no test touches the network or the user's cache.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
if "HF_DATASETS_CACHE" not in os.environ:
    # A cache of our own, removed when the session ends: each run fills it with a few hundred MB, and CI
    # machines (this one too) have seen their disk run out under leftovers of earlier runs.
    os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="medsets-test-cache-")
    atexit.register(shutil.rmtree, os.environ["HF_DATASETS_CACHE"], ignore_errors=True)
os.environ["HF_DATASETS_DISABLE_PROGRESS_BARS"] = "1"

import hashlib
from pathlib import Path

import pytest

from medsets import HEp2, synthetic
from medsets.export import build


@pytest.fixture(scope="session")
def replicas(tmp_path_factory):
    """Small replicas of every layout, each written once per session (never modify them)."""
    root = tmp_path_factory.mktemp("replicas")
    made = {}

    def get(kind: str, as_zip: bool = False, **options):
        key = (kind, as_zip, tuple(sorted(options.items())))
        if key not in made:
            name = f"{kind}-{len(made)}"
            if kind in ("kaggle", "tcia", "flat"):
                made[key] = synthetic.write_leukemia(root / name, kind, as_zip=as_zip, **{"scale": 0.002, **options})
            elif kind == "icpr2012":
                made[key] = synthetic.write_hep2_icpr2012(root / name, as_zip=as_zip, **{"scale": 0.05, **options})
            else:
                made[key] = synthetic.write_hep2_icpr2014(root / name, kind, as_zip=as_zip,
                                                          **{"scale": 0.01, **options})
        return made[key]

    return get


@pytest.fixture
def build_hep2(tmp_path):
    def run(source, config="icpr2014", out=None, **kwargs):
        return build(HEp2, source, config, out or tmp_path / "hep2", **kwargs)

    return run


def tree_digest(folder: Path) -> dict:
    """Every file under `folder` with its content hash, to prove a folder was left byte-identical."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def digest():
    return tree_digest
