"""croissant.json in every built folder: valid for mlcroissant (the MLCommons reference library), and its
records, read by mlcroissant from the Parquet files, equal to what plain `datasets` loads, class names
included."""

import io
import itertools
import json

import numpy as np
import pytest
from datasets import load_dataset

from medsets import GZMH, HEp2, synthetic
from medsets.export import build, build_configs

mlc = pytest.importorskip("mlcroissant")
pytestmark = pytest.mark.filterwarnings("ignore:The inplace keyword")  # inside mlcroissant, with pandas 3


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("croissant")
    hep2, _ = build(HEp2, synthetic.write_hep2_icpr2014(root / "raw-2014", "processed", scale=0.005), "icpr2014",
                    root / "hep2")
    build(HEp2, synthetic.write_hep2_icpr2012(root / "raw-2012", scale=0.02), "icpr2012", hep2)
    gzmh, _ = build_configs(GZMH, synthetic.write_gzmh(root / "raw-gzmh", "v2", scale=0.004, size=256), None,
                            root / "gzmh")
    return {"hep2": hep2, "gzmh": gzmh}


def records(folder, record_set):
    dataset = mlc.Dataset(jsonld=str(folder / "croissant.json"))
    return list(dataset.records(record_set=record_set))


@pytest.mark.parametrize("name", ["hep2", "gzmh"])
def test_it_validates_with_every_config_a_record_set(folders, name):
    folder = folders[name]
    dataset = mlc.Dataset(jsonld=str(folder / "croissant.json"))  # raises on any validation error
    assert not dataset.metadata.issues.errors
    configs = sorted(p.name for p in (folder / "data").iterdir())
    assert configs == sorted(rs.name for rs in dataset.metadata.record_sets if "/" not in rs.name)
    metadata = json.loads((folder / "croissant.json").read_text())
    assert metadata["citeAs"].startswith("@article") and metadata["url"].startswith("https://")


def test_class_names_travel_with_the_file(folders):
    names = {r["icpr2014/label-classes/index"]: r["icpr2014/label-classes/name"]
             for r in records(folders["hep2"], "icpr2014/label-classes")}
    loaded = load_dataset(str(folders["hep2"]), "icpr2014", split="train")
    assert list(names.values()) == loaded.features["label"].names


@pytest.mark.parametrize("name, config", [("hep2", "icpr2014"), ("hep2", "icpr2012"), ("gzmh", "tiles")])
def test_the_records_equal_what_datasets_loads(folders, name, config):
    folder = folders[name]
    loaded = load_dataset(str(folder), config)
    by_key = {(split, row["image_id"]): row for split in loaded for row in loaded[split].cast_column(
        "image", loaded[split].features["image"].__class__(decode=False))}
    read = records(folder, config)
    # Every row once, by the split of its file (the card's union splits, GZMH's `test`, hold no file).
    files = {f.name.split("-")[0] for f in (folder / "data" / config).glob("*.parquet")}
    assert sorted((r[f"{config}/split"].decode(), r[f"{config}/image_id"]) for r in read) == \
        sorted(key for key in by_key if key[0] in files)
    for record in itertools.islice(read, 40):
        split = record[f"{config}/split"].decode()
        row = by_key[(split, record[f"{config}/image_id"])]
        assert record[f"{config}/file_name"].decode() == row["file_name"]
        assert np.array_equal(np.asarray(record[f"{config}/image"]), _pixels(row["image"]["bytes"]))
        if "label" in row and isinstance(row["label"], int):
            assert record[f"{config}/label"] == row["label"]
        if "objects" in row:
            objects = record[f"{config}/objects"]
            assert [list(map(float, box)) for box in objects[f"{config}/objects/bbox"]] == \
                [list(map(float, box)) for box in row["objects"]["bbox"]]
            assert list(objects[f"{config}/objects/category"]) == row["objects"]["category"]


def _pixels(data: bytes):
    from PIL import Image

    return np.asarray(Image.open(io.BytesIO(data)))
