"""The HEp-2 builder on replicas of every published layout, through to `load_dataset`."""

import csv
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import Image, load_dataset
from PIL import Image as PILImage

from medsets.label_files import canonical
from medsets.cli import as_flags
from medsets.builders import hep2
from medsets.source import Source

# The published facts, as the releases state them (docs/hep2.md); never the builder's own constants.
ICPR2014_PATTERNS = ["homogeneous", "speckled", "nucleolar", "centromere", "numem", "golgi"]
ICPR2012_PATTERNS = ["homogeneous", "coarse_speckled", "fine_speckled", "nucleolar", "centromere", "cytoplasmatic"]
ICPR2012_TRAIN_SLIDES = (1, 2, 3, 5, 6, 7, 8, 9, 11, 14, 18, 20, 25, 26)
ICPR2012_TEST_SLIDES = (4, 10, 12, 13, 15, 16, 17, 19, 21, 22, 23, 24, 27, 28)

ICPR2014_VARIANTS = [
    ("organisers", {}, "organisers' release", ["train"]),
    ("processed", {"split_folders": "data"}, "processed 78x78", ["train", "validation", "test"]),
    ("processed", {"split_folders": "short"}, "processed 78x78", ["train", "validation", "test"]),
    ("processed", {"split_folders": "cellimage"}, "processed 78x78", ["train", "validation", "test"]),
    ("card", {}, "train.csv/test.csv", ["train", "test"]),
]


def expected_labels(source_path) -> dict:
    """file name -> class, read straight from the replica's own label files (independent of the builder)."""
    source = Source(source_path)
    labels, by_id = {}, {}
    for f in source.files:
        if f.lower().endswith(".csv") and "cells.csv" not in f.lower():
            rows = list(csv.reader(io.StringIO(source.read_text(f).replace(";", ","))))
            for row in rows[1:]:
                if len(row) >= 2:
                    by_id[(f.rsplit("/", 1)[0], row[0].split(".")[0].lstrip("0"))] = row[1]
                    by_id[("", row[0].split(".")[0].lstrip("0"))] = row[1]
    for f in source.files:
        if f.lower().endswith(".png") and "mask" not in f.lower():
            key = f.rsplit("/", 1)[-1].split(".")[0].lstrip("0")
            labels[f] = by_id.get((f.rsplit("/", 1)[0], key)) or by_id[("", key)]
    return labels


@pytest.mark.parametrize("variant, options, layout, splits", ICPR2014_VARIANTS,
                         ids=["organisers", "processed-data", "processed-short", "processed-cellimage", "card"])
def test_icpr2014_every_layout(replicas, build_hep2, tmp_path, variant, options, layout, splits):
    source = replicas(variant, wrapper="HEp-2", **options)
    folder, report = build_hep2(source)
    assert layout in report.layout
    assert list(report.counts) == splits
    ds = load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert list(ds) == splits
    assert ds["train"].features["label"].names == ICPR2014_PATTERNS
    truth = expected_labels(source)
    assert sum(len(d) for d in ds.values()) == len(truth)
    for split in splits:
        names = ds[split].features["label"].names
        for row in ds[split].select_columns(["label", "file_name"]):
            assert canonical(truth[row["file_name"]], names, hep2.HEp2.ICPR2014_ALIASES) == names[row["label"]]
    assert (ds["train"][0]["mask"] is not None) == (variant == "organisers")


def test_icpr2012_contest_layout(replicas, build_hep2, tmp_path):
    source = replicas("icpr2012", as_zip=True, wrapper="downloads")
    folder, report = build_hep2(source, "icpr2012")
    ds = load_dataset(str(folder), "icpr2012", cache_dir=str(tmp_path / "cache"))
    assert list(ds) == ["train", "test"]
    assert ds["train"].features["label"].names == ICPR2012_PATTERNS
    assert ds["train"].features["intensity"].names == ["positive", "intermediate"]
    train, test = ds["train"], ds["test"]
    # ids restart at 001 in test/; image_id stays unique within the config
    assert len(set(train["image_id"]) | set(test["image_id"])) == len(train) + len(test)
    # specimens (source slide images) from cells.csv: the contest's 14 slides for training, 14 others for test
    assert set(train["specimen_id"]) == {str(n) for n in ICPR2012_TRAIN_SLIDES}
    assert set(test["specimen_id"]) == {str(n) for n in ICPR2012_TEST_SLIDES}
    assert not any("specimen_id" in w for w in report.warnings)
    assert None not in train["intensity"]
    first = train[0]
    assert first["image"].mode == "RGB" and first["mask"].size == first["image"].size


def test_icpr2012_at_full_size_matches_published_counts(tmp_path, build_hep2):
    from medsets import synthetic

    source = synthetic.write_hep2_icpr2012(tmp_path / "raw", scale=1.0)
    _, report = build_hep2(source, "icpr2012", num_proc=2)
    assert report.counts["train"]["total"] == 721 and report.counts["test"]["total"] == 734
    assert report.counts["train"]["intensity"] == {"positive": 396, "intermediate": 325}
    assert report.count_mismatches == []


def test_small_replica_reports_every_count_mismatch(replicas, build_hep2):
    _, report = build_hep2(replicas("processed"))
    assert len(report.count_mismatches) == 18  # 3 splits x 6 classes, none silently accepted
    assert "train: label golgi" in " ".join(report.count_mismatches)


def test_png_bytes_pass_through_and_masks_align(replicas, build_hep2):
    source_path = replicas("organisers", as_zip=True)
    folder, _ = build_hep2(source_path)
    source = Source(source_path)
    table = pq.read_table(next((folder / "data" / "icpr2014").glob("train-*.parquet")))
    for image, mask, file_name in zip(table["image"].to_pylist(), table["mask"].to_pylist(),
                                      table["file_name"].to_pylist()):
        assert image["bytes"] == source.read_bytes(file_name)  # not decoded and re-encoded
        raw_mask = np.asarray(PILImage.open(io.BytesIO(source.read_bytes(file_name.replace(".png", "_Mask.png")))))
        built_mask = PILImage.open(io.BytesIO(mask["bytes"]))
        assert built_mask.mode == "L"
        assert built_mask.size == PILImage.open(io.BytesIO(image["bytes"])).size
        assert np.array_equal(np.asarray(built_mask), (raw_mask >= 128).astype(np.uint8))


def test_second_config_is_added_and_first_kept(replicas, build_hep2, tmp_path):
    folder, _ = build_hep2(replicas("processed"))
    first_shards = {p.name: p.read_bytes() for p in (folder / "data" / "icpr2014").iterdir()}
    build_hep2(replicas("icpr2012"), "icpr2012")
    assert {p.name: p.read_bytes() for p in (folder / "data" / "icpr2014").iterdir()} == first_shards
    cache = str(tmp_path / "cache")
    assert list(load_dataset(str(folder), cache_dir=cache)) == ["train", "validation", "test"]  # default
    assert list(load_dataset(str(folder), "icpr2012", cache_dir=cache)) == ["train", "test"]
    assert sorted(p.name for p in (folder / "reports").iterdir()) == [
        "icpr2012.json", "icpr2012.txt", "icpr2014.json", "icpr2014.txt"]


def test_loads_by_name_streaming_and_without_the_raw_source(replicas, build_hep2, tmp_path, monkeypatch):
    raw = tmp_path / "raw.zip"
    shutil.copy(replicas("organisers", as_zip=True), raw)
    build_hep2(raw)
    build_hep2(replicas("icpr2012"), "icpr2012")
    raw.unlink()
    monkeypatch.chdir(tmp_path)
    cache = str(tmp_path / "cache")
    ds = load_dataset("hep2", cache_dir=cache)
    assert len(ds["train"]) == 135
    streamed = load_dataset("hep2", "icpr2012", streaming=True)
    row = next(iter(streamed["train"]))
    assert row["image"].mode == "RGB" and row["mask"].mode == "L"
    assert streamed["train"].features["label"].names == ICPR2012_PATTERNS
    raw_bytes = ds["train"].cast_column("image", Image(decode=False))[0]["image"]["bytes"]
    assert raw_bytes.startswith(b"\x89PNG")


def test_label_columns_found_by_content_without_header(tmp_path, build_hep2):
    """A card-layout CSV with no header, tab-separated, class first, lower-case names."""
    from medsets import synthetic

    source = synthetic.write_hep2_icpr2014(tmp_path / "raw", "card", scale=0.005)
    written = {}
    for split in ("train", "test"):
        csv_path = source / "HEp-2" / f"{split}.csv"
        rows = [line.split(",") for line in csv_path.read_text().splitlines()[1:]]
        csv_path.write_text("".join(f"{cls.lower()}\t{name}\n" for name, cls in rows))
        written[split] = len(rows)
    _, report = build_hep2(source)
    assert {split: c["total"] for split, c in report.counts.items()} == written
    assert not report.skipped


def test_extra_columns_of_the_organisers_file_are_kept(tmp_path, build_hep2):
    from medsets import synthetic

    source = synthetic.write_hep2_icpr2014(tmp_path / "raw", "organisers", scale=0.005, extra_columns=True)
    folder, report = build_hep2(source)
    ds = load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))["train"]
    assert set(ds["intensity"]) <= {0, 1} and None not in ds["intensity"]
    assert all(s.startswith("S") for s in ds["specimen_id"])


def test_cross_split_duplicates_and_specimen_overlap_are_reported(tmp_path, build_hep2):
    from medsets import synthetic

    source = synthetic.write_hep2_icpr2012(tmp_path / "raw", scale=0.05)
    contest = source / "ICPR2012_Cells_Classification_Contest"
    # copy training cell 001 (and its mask) over test cell 001, and move test cell 002 onto slide 1
    for suffix in (".png", "_mask.png"):
        shutil.copy(contest / "training" / f"001{suffix}", contest / "test" / f"001{suffix}")
    cells = (contest / "cells.csv").read_text().replace("2;test;4;", "2;test;1;")
    (contest / "cells.csv").write_text(cells)
    _, report = build_hep2(source, "icpr2012")
    assert "specimen_id values occur in more than one split: 1 (test+train)" in " ".join(report.warnings)
    assert report.duplicates["pairs"] == {"train-test": 1}
    [group] = report.duplicates["groups"]
    assert [(u["split"], u["file_name"].rsplit("/", 2)[-2:]) for u in group] == [
        ("train", ["training", "001.png"]), ("test", ["test", "001.png"])]


def pixels_of(folder: Path) -> list[tuple[str, int, bytes]]:
    rows = []
    for shard in sorted((folder / "data" / "icpr2014").glob("*.parquet")):
        table = pq.read_table(shard, columns=["image", "image_id"]).to_pylist()
        rows += [(shard.name.split("-")[0], r["image_id"], PILImage.open(io.BytesIO(r["image"]["bytes"])).tobytes())
                 for r in table]
    return rows


def test_icpr2014_replica_repeats_a_numem_block_as_the_real_release_does(tmp_path):
    """The real processed distribution holds cells 11005-11198 again as 11199-11392: equal pixels, other bytes."""
    from medsets import synthetic

    source = synthetic.write_hep2_icpr2014(tmp_path / "raw", "processed", scale=0.02)
    files = {int(p.stem): p for p in source.rglob("*.png")}
    copies = [(cell, cell + 194) for cell in range(11005, 11199) if cell in files]
    assert len(copies) == 7  # the real 80/3/7/54/35/15 pairs, scaled, at least one per split pair
    for original, copy in copies:
        assert files[copy].read_bytes() != files[original].read_bytes()  # the tIME chunks differ
        assert PILImage.open(files[copy]).tobytes() == PILImage.open(files[original]).tobytes()
    assert not (source / "gt_training.csv").read_bytes().endswith(b"\n")  # no final newline, as the real file


def test_duplicates_counted_per_split_pair_and_dropped_on_request(tmp_path, build_hep2):
    from medsets import synthetic

    source = synthetic.write_hep2_icpr2014(tmp_path / "raw", "processed", scale=0.02)
    folder, report = build_hep2(source)
    line = ("7 pixel-identical pairs (7 groups, 14 images): 2 within train, 1 within validation, 1 within test, "
            "1 train-validation, 1 train-test, 1 validation-test; 3 cross splits")
    assert line in report.render() and line in (folder / "README.md").read_text()
    assert report.count_mismatches == [] or all("published" in m for m in report.count_mismatches)
    saved = json.loads((folder / "reports" / "icpr2014.json").read_text())["duplicates"]
    assert len(saved["groups"]) == 7 and all(len(group) == 2 for group in saved["groups"])
    rows = pixels_of(folder)
    assert len(rows) - len({pixels for *_, pixels in rows}) == 7  # kept as published by default

    dropped_folder, dropped = build_hep2(source, out=tmp_path / "dropped", drop_duplicates=True)
    rows = pixels_of(dropped_folder)
    assert len({pixels for *_, pixels in rows}) == len(rows)  # no two pixel-identical images left
    assert {s: c["total"] for s, c in dropped.counts.items()} == {
        s: c["total"] - sum(1 for d in dropped.dropped if d["split"] == s) for s, c in report.counts.items()}
    order = ["train", "validation", "test"]
    for group in saved["groups"]:  # the copy kept is the earliest split's, then the lowest id
        kept = min(group, key=lambda u: (order.index(u["split"]), u["image_id"]))
        assert (kept["split"], kept["image_id"]) in {(s, i) for s, i, _ in rows}
        assert all((u["split"], u["image_id"]) not in {(s, i) for s, i, _ in rows} for u in group if u is not kept)
    card = (dropped_folder / "README.md").read_text()
    assert "7 copies dropped with drop_duplicates=True" in card  # the card names the Python option
    assert "7 copies dropped with --drop-duplicates" in as_flags(dropped.render())  # the command line, its flag
    assert all(f"| {d['split']} | {d['file_name']} | {d['same_as']} |" in card for d in dropped.dropped)
    assert len(dropped.dropped) == 7 and all(f"dropped {d['split']}:{d['file_name']}" in dropped.render()
                                             for d in dropped.dropped)
    ds = load_dataset(str(dropped_folder), cache_dir=str(tmp_path / "cache"))
    assert {s: len(ds[s]) for s in ds} == {s: c["total"] for s, c in dropped.counts.items()}


def test_python_api_as_a_datasets_builder(replicas, tmp_path):
    builder = hep2.HEp2(config_name="icpr2012", data_dir=str(replicas("icpr2012", as_zip=True)),
                        cache_dir=str(tmp_path / "cache"))
    builder.download_and_prepare()
    assert builder.report.counts["train"]["total"] == len(builder.as_dataset("train"))


def test_unzipped_zip_equals_folder(replicas, build_hep2, tmp_path):
    """The same replica as folder and as zip builds to the same rows."""
    zipped = replicas("processed", as_zip=True, wrapper="HEp-2")
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(tmp_path / "extracted")
    a, _ = build_hep2(zipped, out=tmp_path / "a")
    b, _ = build_hep2(tmp_path / "extracted", out=tmp_path / "b")
    for shard in (a / "data" / "icpr2014").iterdir():
        assert pq.read_table(shard).equals(pq.read_table(b / "data" / "icpr2014" / shard.name))
