"""The dataset card of a built folder: Hub-valid YAML, numbers computed from the data, a sample picture."""

import re

import pytest
from datasets import load_dataset, load_dataset_builder
from huggingface_hub import DatasetCard, DatasetCardData
from PIL import Image

from medsets import BIS5k, HEp2, Leukemia
from medsets.export import build
from medsets.picture import THUMBNAIL, MARGIN


@pytest.fixture
def hep2_folder(replicas, tmp_path):
    folder, _ = build(HEp2, replicas("processed"), "icpr2014", tmp_path / "hep2")
    build(HEp2, replicas("icpr2012"), "icpr2012", tmp_path / "hep2")
    return folder


def test_card_yaml_is_hub_valid_and_drives_datasets(hep2_folder, tmp_path):
    card = DatasetCard.load(hep2_folder / "README.md")
    assert isinstance(card.data, DatasetCardData)
    data = card.data.to_dict()
    assert data["pretty_name"].startswith("HEp-2") and data["license"] == "unknown"
    assert data["task_categories"] == ["image-classification"] and data["size_categories"] == ["n<1K"]
    assert {"medsets", "hep-2"} <= set(data["tags"])
    assert [c["config_name"] for c in data["configs"]] == ["icpr2012", "icpr2014"]
    assert [c.get("default", False) for c in data["configs"]] == [False, True]
    builder = load_dataset_builder(str(hep2_folder), "icpr2012", cache_dir=str(tmp_path / "cache"))
    assert builder.info.features["label"].names[1] == "coarse_speckled"  # features come from the YAML
    assert builder.info.splits["train"].num_examples == 36


def test_card_numbers_are_the_data(hep2_folder, tmp_path):
    text = DatasetCard.load(hep2_folder / "README.md").text
    for config in ("icpr2014", "icpr2012"):
        ds = load_dataset(str(hep2_folder), config, cache_dir=str(tmp_path / "cache"))
        names = ds["train"].features["label"].names
        section = text.split(f"### Config `{config}`")[1].split("### Config")[0]
        header = re.search(r"^\| split \| examples \| (.*) \|$", section, re.M).group(1).split(" | ")
        for split, rows in ds.items():
            cells = re.search(rf"^\| {split} \| (\d+) \| (.*) \|$", section, re.M)
            assert int(cells.group(1)) == len(rows)
            per_class = dict(zip(header, map(int, cells.group(2).split(" | "))))
            assert per_class == {n: rows["label"].count(i) for i, n in enumerate(names) if n in per_class}
        assert f"![Examples of {config}](sample-{config}.png)" in section


@pytest.mark.parametrize("builder_cls, kind, config, rows", [
    (HEp2, "icpr2012", "icpr2012", 6), (Leukemia, "kaggle", "cnmc", 2), (BIS5k, None, "default", 2)])
def test_sample_picture_has_a_row_per_class(replicas, tmp_path, builder_cls, kind, config, rows):
    from medsets import synthetic

    source = replicas(kind) if kind else synthetic.write_bis5k(tmp_path / "raw", scale=0.002, size=64)
    folder, _ = build(builder_cls, source, config, tmp_path / "out", num_proc=1)
    picture = Image.open(folder / f"sample-{config}.png")
    assert picture.height == rows * (THUMBNAIL + MARGIN) + MARGIN
    assert picture.width > 6 * THUMBNAIL


def test_card_says_what_was_left_out(replicas, tmp_path):
    folder, _ = build(Leukemia, replicas("flat"), None, tmp_path / "leukemia", num_proc=1)
    text = (folder / "README.md").read_text()
    assert "CC BY 3.0" in text and "license: cc-by-3.0" in text
    assert "count differs from the published one: all splits: 3 examples, published 1867" in text


def test_every_builder_has_its_card_prose_and_a_missing_one_is_an_error():
    from medsets import BUILDERS
    from medsets.card import card_prose
    from medsets.checks import BuildError

    for name in BUILDERS:  # the prose ships as package data: a licence line and text, for every dataset
        prose = card_prose(name)
        assert prose.data.get("license") and len(prose.text.strip()) > 100
    with pytest.raises(BuildError, match="no card prose for 'unknown'"):  # never a silently empty card
        card_prose("unknown")
