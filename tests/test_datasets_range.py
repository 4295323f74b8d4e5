"""The supported `datasets` range, tested at both ends: the newest release is the one the suite runs on; the
oldest (medsets/datasets_adapter.py OLDEST_TESTED, installed by `make` into .venv/datasets-oldest) builds
and loads replicas here, in a process that puts it first on the path. Both go through every private part
of `datasets` that medsets uses (datasets_adapter): a plain build, a companion config written in the same
pass, and rows dropped from written shards."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import datasets
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from medsets import datasets_adapter

ROOT = Path(__file__).resolve().parent.parent
OLDEST_FOLDER = ROOT / ".venv" / "datasets-oldest"

BUILD_AND_LOAD = r"""
import sys
import datasets
from medsets import GZMH, HEp2, synthetic
from medsets.export import build_configs

print("datasets", datasets.__version__, datasets.__file__)
hep2 = synthetic.write_hep2_icpr2014("raw/hep2", "processed", scale=0.01, wrapper="HEp-2")
_, reports = build_configs(HEp2, hep2, None, "hep2", drop_duplicates=True)
gzmh = synthetic.write_gzmh("raw/gzmh", "v2", scale=0.004, size=512)
_, both = build_configs(GZMH, gzmh, None, "gzmh", num_proc=2)
for folder, config in (("hep2", "icpr2014"), ("gzmh", "tiles"), ("gzmh", "full")):
    loaded = datasets.load_dataset(folder, config)
    print(folder, config, {split: len(rows) for split, rows in loaded.items()})
print("dropped", len(reports["icpr2014"].dropped), "configs", sorted(both))
"""


def test_the_declared_range_is_the_adapters_and_holds_the_release_the_suite_runs_on():
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    declared = re.search(r'"datasets([^"]+)"', pyproject)[1]
    assert SpecifierSet(declared) == SpecifierSet(",".join(datasets_adapter.SUPPORTED))
    assert Version(datasets.__version__) in SpecifierSet(declared)
    assert Version(datasets_adapter.OLDEST_TESTED) in SpecifierSet(declared)
    assert not Version(datasets_adapter.OLDEST_TESTED).pre


def test_the_oldest_supported_release_builds_and_loads(tmp_path):
    installed = OLDEST_FOLDER / "datasets"
    assert installed.is_dir(), (f"{OLDEST_FOLDER} holds no datasets {datasets_adapter.OLDEST_TESTED}: `make test` "
                                "installs it there (see Makefile)")
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(OLDEST_FOLDER), str(ROOT)]),
                   "HF_DATASETS_CACHE": str(tmp_path / "cache"), "HF_DATASETS_OFFLINE": "1"}
    result = subprocess.run([sys.executable, "-c", BUILD_AND_LOAD], cwd=tmp_path, env=environment,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    assert f"datasets {datasets_adapter.OLDEST_TESTED} {installed}" in out, out
    assert "hep2 icpr2014 {'train': " in out and "gzmh tiles {" in out and "gzmh full {" in out
    assert "configs ['full', 'tiles']" in out and "dropped 0" not in out, out
