"""medsets as a user installs it: a wheel built from the repository, installed into a fresh virtual
environment, run from a folder outside the checkout. Everything a command needs at run time must ship
in the wheel: the dataset modules, the card prose, the metric modules.

No network: the wheel is built without build isolation (setuptools from this environment) and installed
with --no-deps; the fresh environment finds its dependencies (datasets, evaluate, ...) in this one through
a .pth line, which adds that folder to sys.path without running its own .pth files, so this checkout's
editable install of medsets stays invisible there.
"""

import json
import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from importlib.metadata import version as metadata_version
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from medsets import synthetic

REPOSITORY = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet",
                    "--wheel-dir", str(out), str(REPOSITORY)], check=True, cwd=out)
    (built,) = out.glob("medsets-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """A fresh environment holding only the wheel; returns a runner of commands in it, from a temporary folder."""
    root = tmp_path_factory.mktemp("fresh")
    env_dir = root / "env"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    fresh_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                check=True, capture_output=True, text=True).stdout.strip()
    (Path(fresh_site) / "project-dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet",
                    str(wheel)], check=True)
    work = root / "work"  # outside the checkout: nothing of the repository is on the path
    work.mkdir()
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PYTHONPATH": "",
                   "HF_DATASETS_CACHE": str(root / "cache"), "HF_MODULES_CACHE": str(root / "modules")}

    def run(*command, check=True):
        executable = str(env_dir / "bin" / command[0]) if command[0] in ("medsets", "python") else command[0]
        result = subprocess.run([executable, *command[1:]], cwd=work, env=environment, capture_output=True,
                                text=True, timeout=900)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
        return result

    run.work = work
    return run


def test_wheel_holds_the_builders_card_prose_and_metric_modules(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for dataset in ("hep2", "leukemia", "gzmh", "bis5k"):
        assert f"medsets/builders/{dataset}.py" in names and f"medsets/cards/{dataset}.md" in names
    for metric in ("classification", "mitosis", "segmentation"):
        assert f"medsets/metrics/{metric}/{metric}.py" in names
    assert {"medsets/training/image_pipeline.py", "medsets/synthetic/hep2.py", "medsets/__main__.py"} <= names
    # One import package: nothing else at the top level (the scripts stay in the repository).
    assert {name.split("/")[0] for name in names} == {"medsets", wheel.name.split("-py3")[0] + ".dist-info"}
    info = wheel.name.split("-py3")[0] + ".dist-info"
    assert f"{info}/licenses/LICENSE" in names  # the licence the metadata declares travels with the wheel
    metadata = zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    assert "License-Expression: Apache-2.0" in metadata and "Classifier: Intended Audience :: Science/Research" in metadata


def test_installed_package_is_the_wheel_not_the_checkout(installed):
    where = installed("python", "-c", "import medsets, medsets.builders; print(medsets.__file__); "
                                      "print(medsets.builders.__file__)").stdout.split()
    assert all("site-packages" in path and str(REPOSITORY) not in path for path in where)


def test_list_build_and_card_prose_from_the_wheel(installed):
    assert "hep2" in installed("medsets", "list").stdout
    replica = installed("medsets", "replica", "hep2-icpr2012", "--out", "raw-hep2", "--scale", "0.05")
    assert "medsets build hep2 --config icpr2012 --source raw-hep2" in replica.stdout  # the replicas ship too
    built = installed("medsets", "build", "hep2", "--config", "icpr2012", "--source", "raw-hep2", "--out", "hep2")
    assert "Wrote" in built.stdout
    card = (installed.work / "hep2" / "README.md").read_text()
    prose = (REPOSITORY / "cards" / "hep2.md").read_text().split("---", 2)[2].strip()
    assert prose.splitlines()[0] in card  # the prose shipped as package data, not an empty card
    assert "license:" in card


def test_evaluate_from_the_wheel(installed):
    raw = synthetic.write_bis5k(installed.work / "raw-bis5k", scale=0.002, size=64)
    installed("medsets", "build", "bis5k", "--source", str(raw), "--out", "bis5k")
    predictions = installed.work / "predictions"
    predictions.mkdir()
    for mask in sorted((raw / "BIS5k" / "formal_test" / "masks").iterdir()):
        Image.fromarray((np.asarray(Image.open(mask)) > 127).astype(np.uint8) * 255).save(predictions / mask.name)
    scored = installed("medsets", "evaluate", "bis5k", "--predictions", str(predictions), "--dataset", "bis5k",
                       "--csv", "scores.csv")
    # At threshold 0 every pixel is foreground, so even a perfect prediction has meanDic just under 1.
    assert "maxDic   1.0000" in scored.stdout and (installed.work / "scores.csv").is_file()


def test_metric_modules_load_with_evaluate_from_the_wheel(installed):
    code = ("import json, evaluate, medsets\n"
            "metric = evaluate.load(medsets.metric_path('classification'))\n"
            "print(json.dumps(metric.compute(predictions=[0, 1, 1], references=[0, 1, 0])['accuracy']))\n")
    assert json.loads(installed("python", "-c", code).stdout) == pytest.approx(2 / 3)


def test_push_help_and_module_entry_point_from_the_wheel(installed):
    assert "--repo" in installed("medsets", "push", "--help").stdout
    assert installed("medsets", "--version").stdout.strip() == f"medsets {metadata_version('medsets')}"
    assert "build" in installed("python", "-m", "medsets", "--help").stdout


def test_demo_builds_and_loads_from_the_wheel_and_says_where_training_lives(installed):
    demo = installed("medsets", "demo", "--out", "demo", "--scale", "0.01")
    assert "load_dataset('hep2', 'icpr2014')" in demo.stdout and "load_dataset('gzmh', 'tiles')" in demo.stdout
    assert "Fine-tuning skipped" in demo.stdout and "scripts/" in demo.stdout
