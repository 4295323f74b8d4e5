"""The contract every builder keeps, checked for every builder, every layout it knows and both forms of a
download (the extracted folder, inside a wrapper folder, and the .zip): `medsets build` as a user runs it
exits 0; the folder loads offline with plain `datasets` (no medsets code) into the splits the layout
has; every image of the download is a row, and the report, the card and the loaded splits agree on the
counts; then one unreadable image makes a rebuild exit 2, naming the file, and leaves the built folder
byte-identical. What is particular to a dataset (its labels, ids, objects) is tested in its own file.
"""

import zipfile
from pathlib import Path

import pytest
from datasets import load_dataset, load_dataset_builder
from huggingface_hub import DatasetCard

from medsets import synthetic
from medsets.checks import BuildReport
from medsets.cli import main
from medsets.hub_card import card_problems
from medsets.layout import MASK_FOLDERS, MASK_SUFFIX, is_image
from medsets.source import Source, stem

SMALL_GZMH = {"scale": 0.004, "size": 256}
# (dataset, config, replica writer, the layout's name in the report, its splits)
LAYOUTS = {
    "hep2-organisers": ("hep2", "icpr2014", lambda dest, zip_: synthetic.write_hep2_icpr2014(
        dest, "organisers", scale=0.005, as_zip=zip_, wrapper="HEp-2"), "organisers' release", ["train"]),
    "hep2-processed": ("hep2", "icpr2014", lambda dest, zip_: synthetic.write_hep2_icpr2014(
        dest, "processed", scale=0.005, as_zip=zip_, wrapper="HEp-2"), "processed 78x78",
        ["train", "validation", "test"]),
    "hep2-card": ("hep2", "icpr2014", lambda dest, zip_: synthetic.write_hep2_icpr2014(
        dest, "card", scale=0.005, as_zip=zip_, wrapper="HEp-2"), "train.csv/test.csv", ["train", "test"]),
    "hep2-icpr2012": ("hep2", "icpr2012", lambda dest, zip_: synthetic.write_hep2_icpr2012(
        dest, scale=0.03, as_zip=zip_, wrapper="MIVIA"), "ICPR 2012 contest", ["train", "test"]),
    "leukemia-kaggle": ("leukemia", "cnmc", lambda dest, zip_: synthetic.write_leukemia(
        dest, "kaggle", scale=0.002, as_zip=zip_, wrapper="downloads"), "Kaggle download",
        ["train", "validation", "test"]),
    "leukemia-tcia": ("leukemia", "cnmc", lambda dest, zip_: synthetic.write_leukemia(
        dest, "tcia", scale=0.002, as_zip=zip_, wrapper="downloads"), "TCIA layout", ["train", "validation", "test"]),
    "leukemia-flat": ("leukemia", "cnmc", lambda dest, zip_: synthetic.write_leukemia(
        dest, "flat", scale=0.002, as_zip=zip_, wrapper="downloads"), "openmedlab", ["train", "validation", "test"]),
    "bis5k": ("bis5k", "default", lambda dest, zip_: synthetic.write_bis5k(
        dest, scale=0.002, size=64, as_zip=zip_, wrapper="downloads"), "paired by file stem", ["train", "test"]),
    "gzmh-v1-full": ("gzmh", "full", lambda dest, zip_: synthetic.write_gzmh(
        dest, "v1", as_zip=zip_, wrapper="downloads", **SMALL_GZMH), "V1 (one test set)", ["train", "test"]),
    "gzmh-v2-full": ("gzmh", "full", lambda dest, zip_: synthetic.write_gzmh(
        dest, "v2", as_zip=zip_, wrapper="downloads", **SMALL_GZMH), "V2 (test split by mitotic score)",
        ["train", "test_1or2_score", "test_3_score"]),
    "gzmh-v2-tiles": ("gzmh", "tiles", lambda dest, zip_: synthetic.write_gzmh(
        dest, "v2", as_zip=zip_, wrapper="downloads", size=600, scale=0.004), "tiles 512x512",
        ["train", "test_1or2_score", "test_3_score"]),
}


def is_mask(path: str) -> bool:
    return bool(MASK_SUFFIX.match(stem(path))) or any(part.lower() in MASK_FOLDERS for part in path.split("/")[:-1])


def images_in(source: Path) -> list[str]:
    """The download's images (not masks), counted without the builder: each must become a row (a tile each)."""
    return [f for f in Source(source).files if is_image(f) and not is_mask(f)]


def spoil(source: Path, member: str) -> Path:
    """The same download with `member` replaced by bytes that are no image (a truncated download)."""
    if source.is_dir():
        (source / member).write_bytes(b"not an image")
        return source
    spoiled = source.with_name("spoiled-" + source.name)
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(spoiled, "w") as copy:
        for info in original.infolist():
            copy.writestr(info, b"not an image" if info.filename == member else original.read(info))
    return spoiled


@pytest.mark.parametrize("as_zip", [False, True], ids=["folder", "zip"])
@pytest.mark.parametrize("case", list(LAYOUTS))
def test_builder_contract(case, as_zip, tmp_path, monkeypatch, capsys, digest):
    name, config, write, layout, splits = LAYOUTS[case]
    source = write(tmp_path / "raw", as_zip)
    out = tmp_path / name
    command = ["build", name, "--config", config, "--source", str(source), "--out", str(out), "--num-proc", "1"]

    assert main(command) == 0
    report = BuildReport.from_json((out / "reports" / f"{config}.json").read_text())
    assert layout in report.layout and list(report.counts) == splits

    monkeypatch.chdir(tmp_path)  # loaded by name, from the folder beside us, as a user would
    loaded = load_dataset(name, config, cache_dir=str(tmp_path / "cache"))
    assert list(loaded)[:len(splits)] == splits  # (GZMH V2 also declares `test`, the union of its two parts)
    assert {split: len(loaded[split]) for split in splits} == {s: c["total"] for s, c in report.counts.items()}
    images = images_in(source)
    rows_per_image = "source_images" if config == "tiles" else "total"
    assert sum(c[rows_per_image] for c in report.counts.values()) == len(images)
    card = (out / "README.md").read_text()
    for split, counts in report.counts.items():
        assert f"| {split} | {counts['total']} |" in card
    assert card_problems(out) == []  # what the Hub would refuse or show wrong, checked offline
    # The card's sizes are those datasets computed while preparing the folder just now (unions included).
    prepared = load_dataset_builder(name, config, cache_dir=str(tmp_path / "cache")).info
    stated = next(i for i in DatasetCard(card).data["dataset_info"] if i["config_name"] == config) \
        if isinstance(DatasetCard(card).data["dataset_info"], list) else DatasetCard(card).data["dataset_info"]
    assert (stated["download_size"], stated["dataset_size"]) == (prepared.download_size, prepared.dataset_size)
    assert {s["name"]: s["num_bytes"] for s in stated["splits"]} == {s: i.num_bytes for s, i in prepared.splits.items()}
    first = loaded[splits[0]][0]
    assert first["image"].size[0] > 0 and first["file_name"] in Source(source).files  # traces back to a raw file

    before = digest(out)
    bad = sorted(images)[0]
    rebuild = [str(spoil(source, bad)) if part == str(source) else part for part in command] + ["--overwrite"]
    capsys.readouterr()
    assert main(rebuild) == 2
    error = capsys.readouterr().err
    assert "unreadable image" in error and bad in error and "Traceback" not in error
    assert digest(out) == before
