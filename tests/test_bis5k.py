"""The BIS5k builder: pairing by stem, mask checks, and the result as transformers expects it."""

import io
import json

import numpy as np
import pyarrow.parquet as pq
from datasets import load_dataset
from PIL import Image

from medsets import BIS5k, synthetic
from medsets.cli import main
from medsets.export import build


def test_layout_loads_as_image_and_binary_label(tmp_path, monkeypatch):
    source = synthetic.write_bis5k(tmp_path / "raw", scale=0.002, wrapper="downloads", size=96)
    folder, report = build(BIS5k, source, None, tmp_path / "bis5k")
    assert {s: c["total"] for s, c in report.counts.items()} == {"train": 10, "test": 2}
    assert report.count_mismatches == ["train: 10 examples, published 5000", "test: 2 examples, published 929"]
    assert json.loads((folder / "id2label.json").read_text()) == {"0": "background", "1": "cancer"}
    monkeypatch.chdir(tmp_path)
    ds = load_dataset("bis5k", cache_dir=str(tmp_path / "cache"))
    assert list(ds) == ["train", "test"] and set(ds["train"].column_names) >= {"image", "label"}
    row = ds["train"][0]
    assert row["image"].mode == "RGB" and row["label"].mode == "L" and row["label"].size == row["image"].size
    assert set(np.unique(np.asarray(row["label"]))) == {0, 1}


def pixels(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def test_pairs_by_stem_not_by_sorted_order(tmp_path, capsys):
    """Sorted-order pairing would shift every pair after the gap; pairing by stem keeps them right."""
    source = synthetic.write_bis5k(tmp_path / "raw", scale=0.002, size=64)
    masks = source / "BIS5k" / "formal_train" / "masks"
    (masks / "bis_he_id000002.png").unlink()  # an image without its mask
    Image.new("L", (64, 64)).save(masks / "bis_he_id000001a.png")  # a mask without its image
    code = main(["build", "bis5k", "--source", str(source), "--out", str(tmp_path / "bis5k")])
    err = capsys.readouterr().err
    assert code == 2
    assert "missing mask (1)" in err and "formal_train/images/bis_he_id000002.png" in err
    assert "missing image (1)" in err and "formal_train/masks/bis_he_id000001a.png" in err

    folder, report = build(BIS5k, source, None, tmp_path / "bis5k", skip_bad=True)
    assert report.counts["train"]["total"] == 9 and len(report.skipped) == 2
    table = pq.read_table(next((folder / "data" / "default").glob("train-*.parquet")))
    for label, file_name in zip(table["label"].to_pylist(), table["file_name"].to_pylist()):
        raw_mask = pixels((source / file_name.replace("/images/", "/masks/")).read_bytes())
        assert np.array_equal(pixels(label["bytes"]), (raw_mask >= 128).astype(np.uint8))


def test_non_binary_masks_are_reported_and_thresholded(tmp_path):
    source = synthetic.write_bis5k(tmp_path / "raw", scale=0.0005, size=32)
    mask_path = source / "BIS5k" / "formal_test" / "masks" / "bis_val_id000000.png"
    mask = np.asarray(Image.open(mask_path)).copy()
    mask[:2, :3] = [[127, 128, 64], [1, 254, 200]]
    Image.fromarray(mask).save(mask_path)
    folder, report = build(BIS5k, source, None, tmp_path / "bis5k")
    assert any("1 masks are not binary: 6 pixels other than 0/255, thresholded at 128" in w and
               "bis_val_id000000.png (6)" in w for w in report.warnings)
    assert "masks are not binary" in (folder / "README.md").read_text()
    table = pq.read_table(next((folder / "data" / "default").glob("test-*.parquet")))
    assert pixels(table["label"][0].as_py()["bytes"])[:2, :3].tolist() == [[0, 1, 0], [0, 1, 1]]


def test_mask_of_another_size_is_a_problem(tmp_path, capsys):
    source = synthetic.write_bis5k(tmp_path / "raw", scale=0.0005, size=32)
    Image.new("L", (31, 32)).save(source / "BIS5k" / "formal_train" / "masks" / "bis_he_id000001.png")
    assert main(["build", "bis5k", "--source", str(source), "--out", str(tmp_path / "bis5k")]) == 2
    assert "mask size (1)" in capsys.readouterr().err
    assert not (tmp_path / "bis5k").exists()


def test_other_folder_is_not_bis5k(tmp_path, capsys):
    (tmp_path / "stuff").mkdir()
    (tmp_path / "stuff" / "notes.txt").write_text("x")
    assert main(["build", "bis5k", "--source", str(tmp_path / "stuff")]) == 2
    assert "does not hold the BIS5k layout" in capsys.readouterr().err


def test_what_the_transformers_segmentation_example_reads(tmp_path):
    """run_semantic_segmentation.py: load_dataset(name), columns image/label (both Image), a train split,
    and id2label.json beside the data read as {int(k): v}. Offline we read that file from the folder;
    the example itself fetches it with hf_hub_download once the folder is pushed."""
    source = synthetic.write_bis5k(tmp_path / "raw", scale=0.001, size=48)
    folder, _ = build(BIS5k, source, None, tmp_path / "bis5k")
    dataset = load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert "train" in dataset and {"image", "label"} <= set(dataset["train"].column_names)
    id2label = {int(k): v for k, v in json.loads((folder / "id2label.json").read_text()).items()}
    for example in dataset["train"]:
        image, target = np.array(example["image"].convert("RGB")), np.array(example["label"])
        assert image.shape[:2] == target.shape and target.dtype == np.uint8
        assert set(np.unique(target)) <= set(id2label)
