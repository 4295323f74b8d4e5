"""The C-NMC leukemia builder on replicas of its three layouts, through to `load_dataset`."""

import io
import shutil
import subprocess
import sys

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from PIL import Image

from medsets import Leukemia, synthetic
from medsets.builders.leukemia import parse_original_name
from medsets.cli import main
from medsets.export import build
from medsets.source import Source

SPLITS = ["train", "validation", "test"]


def build_leukemia(source, out, **kwargs):
    # One process: the multi-process path is exercised once, in a subprocess with a timeout, below.
    return build(Leukemia, source, None, out, num_proc=1, **kwargs)


@pytest.mark.parametrize("name, expected", [
    ("UID_11_10_1_all.bmp", {"patient_id": "11", "image_number": 10, "cell_number": 1, "label": "leukemia"}),
    ("training_data/fold_0/hem/UID_H10_43_1_hem.bmp",
     {"patient_id": "H10", "image_number": 43, "cell_number": 1, "label": "normal"}),
    ("uid_h49_35_2_HEM.BMP", {"patient_id": "H49", "image_number": 35, "cell_number": 2, "label": "normal"}),
    ("1.bmp", None), ("UID_11_10_all.bmp", None), ("UID_11_10_1_xyz.bmp", None),
])
def test_original_names(name, expected):
    assert parse_original_name(name) == expected


@pytest.mark.parametrize("variant, layout, splits", [
    ("kaggle", "Kaggle download", SPLITS), ("tcia", "TCIA layout", SPLITS), ("flat", "openmedlab", SPLITS),
])
def test_every_layout(replicas, tmp_path, variant, layout, splits):
    source = replicas(variant, wrapper="downloads")
    folder, report = build_leukemia(source, tmp_path / "leukemia")
    assert layout in report.layout
    ds = load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert list(ds) == splits
    assert ds["train"].features["label"].names == Leukemia.LABELS
    bmps = [f for f in Source(source).files if f.lower().endswith(".bmp")]
    assert sum(len(d) for d in ds.values()) == len(bmps)
    for split in ds:
        for row in ds[split].select_columns(["label", "patient_id", "file_name", "fold"]):
            original = parse_original_name(row["file_name"])
            if split == "test" and variant != "flat":
                assert row["label"] == -1 and row["patient_id"] is None
            elif original:  # the label agrees with the name's _all/_hem ending and the patient is its UID
                assert Leukemia.LABELS[row["label"]] == original["label"]
                assert row["patient_id"] == original["patient_id"]
            else:  # anonymised prelim N.bmp: patient from the labels CSV
                assert row["patient_id"] is not None
            assert (row["fold"] is not None) == (split == "train" and variant != "flat")


def test_prelim_patients_come_from_the_labels_csv(replicas, tmp_path):
    source = replicas("kaggle")
    folder, report = build_leukemia(source, tmp_path / "leukemia")
    csv_rows = Source(source).read_rows(next(f for f in Source(source).files if f.endswith("_labels.csv")))[1:]
    expected = {new.split(".")[0]: parse_original_name(original)["patient_id"] for original, new, _ in csv_rows}
    validation = load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))["validation"]
    for row in validation.select_columns(["file_name", "patient_id"]):
        assert row["patient_id"] == expected[row["file_name"].rsplit("/", 1)[1].split(".")[0]]
    assert report.counts["validation"]["total"] == len(csv_rows)
    assert "fold+label" in report.counts["train"]


def test_bmp_becomes_pixel_identical_png(replicas, tmp_path):
    source = replicas("tcia", as_zip=True)
    folder, _ = build_leukemia(source, tmp_path / "leukemia")
    raw = Source(source)
    for shard in (folder / "data" / "cnmc").glob("*.parquet"):
        table = pq.read_table(shard, columns=["image", "file_name"])
        for image, file_name in zip(table["image"].to_pylist(), table["file_name"].to_pylist()):
            stored = Image.open(io.BytesIO(image["bytes"]))
            assert stored.format == "PNG" and stored.mode == "RGB" and stored.size == (450, 450)
            original = Image.open(io.BytesIO(raw.read_bytes(file_name)))
            assert np.array_equal(np.asarray(stored), np.asarray(original))


def test_card_says_test_labels_are_missing(replicas, tmp_path):
    folder, _ = build_leukemia(replicas("kaggle"), tmp_path / "leukemia")
    assert "`label` is -1 there" in (folder / "README.md").read_text()


@pytest.mark.parametrize("line_format", ["{name},{label}", "{name}\t{label}", "image/{name} {word}"])
def test_flat_txt_line_formats(tmp_path, line_format):
    source = synthetic.write_leukemia(tmp_path / "raw", "flat", scale=0.003)
    words = {"0": "normal", "1": "leukemia"}
    for txt in ("train.txt", "val.txt", "test.txt"):
        path = source / "Leukemia" / txt
        rows = [line.split() for line in path.read_text().splitlines()]
        path.write_text("".join(line_format.format(name=n, label=l, word=words[l]) + "\r\n" for n, l in rows))
    folder, report = build_leukemia(source, tmp_path / "leukemia")
    assert sum(c["total"] for c in report.counts.values()) == len(list((source / "Leukemia" / "image").iterdir()))


def test_patient_in_two_splits_is_a_leakage_warning(tmp_path):
    source = synthetic.write_leukemia(tmp_path / "raw", "kaggle", scale=0.002)
    root = source / "C-NMC_Leukemia"
    moved = next((root / "training_data" / "fold_1" / "all").iterdir())
    prelim = root / "validation_data" / "C-NMC_test_prelim_phase_data"
    number = len(list(prelim.iterdir())) + 1
    shutil.copy(moved, prelim / f"{number}.bmp")
    labels = root / "validation_data" / "C-NMC_test_prelim_phase_data_labels.csv"
    labels.write_text(labels.read_text() + f"{moved.name},{number}.bmp,1\n")
    _, report = build_leukemia(source, tmp_path / "leukemia")
    patient = parse_original_name(moved.name)["patient_id"]
    assert f"1 patient_id values occur in more than one split: {patient} (train+validation)" in report.warnings
    assert report.duplicates["pairs"] == {"train-validation": 1}  # the very same cell, too


def damage_unparseable_name(root):
    next((root / "training_data" / "fold_0" / "hem").iterdir()).rename(
        root / "training_data" / "fold_0" / "hem" / "cell 7.bmp")
    return "unparseable name", "fold_0/hem/cell 7.bmp"


def damage_csv_row_without_image(root):
    (root / "validation_data" / "C-NMC_test_prelim_phase_data" / "2.bmp").unlink()
    return "missing image", "lists 2.bmp"


def damage_image_not_in_csv(root):
    shutil.copy(root / "validation_data" / "C-NMC_test_prelim_phase_data" / "1.bmp",
                root / "validation_data" / "C-NMC_test_prelim_phase_data" / "999.bmp")
    return "unlabelled image", "C-NMC_test_prelim_phase_data/999.bmp: not listed"


def damage_truncated_bmp(root):
    path = next((root / "training_data" / "fold_2" / "all").iterdir())
    path.write_bytes(path.read_bytes()[:5000])
    return "unreadable image", path.name


def damage_label_contradicts_folder(root):
    path = next((root / "training_data" / "fold_1" / "all").iterdir())
    path.rename(root / "training_data" / "fold_1" / "hem" / path.name)
    return "label contradicts name", f"fold_1/hem/{path.name}: in a hem/ folder"


DAMAGES = [damage_unparseable_name, damage_csv_row_without_image, damage_image_not_in_csv, damage_truncated_bmp,
           damage_label_contradicts_folder]


def test_bad_inputs_are_all_listed_and_nothing_is_written(tmp_path, capsys):
    source = synthetic.write_leukemia(tmp_path / "raw", "kaggle", scale=0.002)
    expected = [damage(source / "C-NMC_Leukemia") for damage in DAMAGES]
    code = main(["build", "leukemia", "--source", str(source), "--out", str(tmp_path / "leukemia"),
                 "--num-proc", "1"])
    err = capsys.readouterr().err
    assert code == 2 and f"{len(DAMAGES)} problems" in err
    for kind, where in expected:
        assert f"{kind} (1)" in err and where in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw"]


def test_default_build_uses_every_core_and_loads_by_name(replicas, tmp_path, monkeypatch):
    """The CLI as a user runs it (num_proc = all cores), in a subprocess so a stuck pool cannot hang CI."""
    result = subprocess.run([sys.executable, "-m", "medsets", "build", "leukemia",
                             "--source", str(replicas("kaggle", as_zip=True))],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    monkeypatch.chdir(tmp_path)
    ds = load_dataset("leukemia", cache_dir=str(tmp_path / "cache"))
    assert {s: len(d) for s, d in ds.items()} == {"train": 21, "validation": 3, "test": 5}
    assert ds["test"].features["label"].names == Leukemia.LABELS
