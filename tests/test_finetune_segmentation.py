"""scripts/finetune_segmentation.py and its pieces: target decoding, joint augmentation, class balance,
scores (medsets.training.segmentation_scores), and short runs on the BIS5k and GZMH tiles replicas that must learn."""

import json
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"  # run as programs, as users do
from medsets import GZMH, BIS5k, synthetic
from medsets.export import build
from medsets.training import image_pipeline
from medsets.training import segmentation_scores as ss
from medsets.training.splits import oversampled
from scripts import finetune_segmentation as ft

QUICK = ["--model_size", "b0", "--dataloader_num_workers", "0", "--per_device_train_batch_size", "8",
         "--disable_tqdm", "True", "--use_cpu", "True", "--save_total_limit", "1"]


def pairs_dataset(images, targets):
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Image(), "image_id": datasets.Value("int64")})
    return datasets.Dataset.from_dict({"image": [Image.fromarray(i) for i in images],
                                       "label": [Image.fromarray(t) for t in targets],
                                       "image_id": list(range(len(images)))}, features=features)


# -- decoding ----------------------------------------------------------------------------------------------
def test_targets_decode_once_by_nearest_neighbour_and_match_the_uncached_path(tmp_path):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    target = np.zeros((40, 60), np.uint8)
    target[10:30, 20:50] = 1
    target[0, 0] = 2  # a third class id survives resizing untouched (no interpolated values)
    ds = pairs_dataset([image], [target])
    label_path = image_pipeline.decode_once(ds, 32, False, 1, tmp_path, column="label")
    image_path = image_pipeline.decode_once(ds, 32, False, 1, tmp_path)
    assert label_path != image_path
    labels = np.load(label_path)
    assert labels.shape == (1, 1, 32, 32) and set(np.unique(labels)) == {0, 1, 2}
    cached = ft.SegmentationPairs(ds, 32, (image_path, label_path))
    on_the_fly = ft.SegmentationPairs(ds, 32, None)
    for a, b in zip(cached.pair(0), on_the_fly.pair(0)):
        assert a.shape == b.shape and np.array_equal(a, b)


# -- joint augmentation -------------------------------------------------------------------------------------
def test_joint_transform_moves_image_and_target_together():
    """A bright square drawn where the target is 1: after crop, flips and rotations the bright pixels and
    the target still coincide (nearest neighbour for the target, bilinear for the image)."""
    image = np.full((3, 64, 64), 30, np.uint8)
    target = np.zeros((64, 64), np.uint8)
    image[:, 8:28, 30:60] = 230
    target[8:28, 30:60] = 1
    transform = ft.JointTransform(48, crop_scale_min=0.5, rotate90=True)
    torch.manual_seed(0)
    seen = set()
    for _ in range(40):
        x, y = transform(torch.from_numpy(image), torch.from_numpy(target))
        assert x.shape == (3, 48, 48) and y.shape == (48, 48) and x.dtype == y.dtype == torch.uint8
        assert set(y.unique().tolist()) <= {0, 1}
        bright = x[0] > 128
        if y.sum() > 20:
            assert (bright == (y == 1)).float().mean() > 0.97
            seen.add(tuple(np.argwhere(y.numpy()).mean(0).round(-1)))  # where the square ended up
    assert len(seen) > 3  # the geometry really varies


# -- class balance, scores ---------------------------------------------------------------------------------
def test_rare_foreground_gets_weights_and_oversampling_unless_switched_off():
    counts, positive = np.array([99_900, 100]), np.array([True] + [False] * 9)
    notes = []
    weights, repeat, dice = ft.class_balance(ft.AugmentationArguments(), counts, positive, notes)
    assert weights.tolist() == pytest.approx([1.0, np.sqrt(999)], rel=1e-4) and repeat == 9 and dice == 1
    assert any("repeated 9 times" in n for n in notes)
    order = oversampled(np.arange(len(positive)), positive, repeat)
    assert len(order) == 18 and np.bincount(order).tolist() == [9] + [1] * 9

    assert ft.class_balance(ft.AugmentationArguments(class_balance="none"), counts, positive, []) == (None, 1.0, 0.0)
    weights, repeat, dice = ft.class_balance(ft.AugmentationArguments(class_weights="1,5", oversample_positive=2,
                                                                      dice_loss=0.5), counts, positive, [])
    assert weights.tolist() == [1.0, 5.0] and repeat == 2 and dice == 0.5
    common = np.array([600, 400])  # BIS5k-like: nothing to balance
    assert ft.class_balance(ft.AugmentationArguments(), common, np.ones(10, bool), []) == (None, 1.0, 0.0)
    with pytest.raises(SystemExit, match="3 numbers for 2 classes"):
        ft.class_balance(ft.AugmentationArguments(class_weights="1,2,3"), counts, positive, [])


def test_overlap_scores_from_the_confusion_matrix_and_ignored_pixels():
    target = np.array([[0, 0, 1, 1], [0, 0, 1, 255]], np.uint8)
    predicted = np.array([[0, 1, 1, 0], [0, 0, 1, 1]], np.uint8)
    matrix = ss.confusion(predicted, target, 2)
    assert matrix.tolist() == [[3, 1], [1, 2]]  # the 255 pixel is left out
    scores = ss.overlap_scores(matrix, ["background", "cancer"])
    assert scores["iou_by_class"] == {"background": pytest.approx(3 / 5), "cancer": pytest.approx(2 / 4)}
    assert scores["dice_by_class"]["cancer"] == pytest.approx(4 / 6)
    assert scores["mean_iou"] == pytest.approx((0.6 + 0.5) / 2) and scores["pixel_accuracy"] == pytest.approx(5 / 7)
    assert np.isnan(ss.overlap_scores(np.array([[5, 0], [0, 0]]), ["a", "b"])["iou_by_class"]["b"])
    maps = np.array([[[0, 127, 128, 255]]], np.uint8)
    assert ss.predicted_classes(maps, 2).tolist() == [[[0, 0, 1, 1]]]  # probability >= 0.5 is foreground


def test_mask_regions_become_full_image_detections_counted_once():
    """Two 512 px tiles of one 960 px wide image, overlapping by 64 px (cores split at x = 480), maps at
    128 px. A blob in the overlap, seen by both tiles, is kept once, by the tile whose core holds it; its
    score is the region's highest probability and its centre the region's centroid in full-image pixels."""
    from medsets.training.full_images import TileTable, tile_cores

    source, offset, size = np.array([0, 0]), np.array([[0, 0], [448, 0]]), np.array([[512, 512], [512, 512]])
    table = TileTable(source, offset, size, tile_cores(source, offset, size), [np.zeros((0, 4))] * 2, {0: []})
    maps = np.zeros((2, 128, 128), np.uint8)
    maps[0, 40:44, 118:122] = 200  # tile 0: x 472-488 px, centre 480 (the core boundary): tile 1's
    maps[0, 41, 119] = 250
    maps[1, 40:44, 6:10] = 180  # the same blob seen by tile 1: 448 + 24..40 = 472-488
    maps[1, 100:102, 100:102] = 127  # below p = 0.5: no region
    maps[0, 10:12, 10:12] = 255  # a second mitosis, tile 0 only: centre (44, 44)
    found = ss.mask_detections(maps, table, dedupe_radius=20.0)[0]
    assert found.shape == (2, 5)
    by_x = found[np.argsort(found[:, 0])]
    assert by_x[0, :3].tolist() == pytest.approx([44.0, 44.0, 1.0])
    assert by_x[1, :3].tolist() == pytest.approx([480.0, 168.0, 180 / 255])  # tile 1's view of the blob
    assert by_x[1, 3:].tolist() == pytest.approx([16.0, 16.0])


def test_scores_at_source_size_resize_predictions_not_targets():
    target = np.zeros((8, 12), np.uint8)
    target[2:6, 4:8] = 1
    ds = pairs_dataset([np.zeros((8, 12, 3), np.uint8)], [target])
    probabilities = np.zeros((1, 4, 4), np.uint8)
    probabilities[0, 1:3, 1:3] = 255  # the same square at a third of the width, half the height
    maps, targets = ss.at_source_size(probabilities, ds, classes=2)
    assert targets[0].shape == (8, 12) and (targets[0] == target).all()
    assert maps[0].shape == (8, 12) and maps[0].dtype == np.uint8
    assert 0 < maps[0][1, 3] < 255  # bilinear: grey levels at the edge, as the toolkit reads probabilities
    scores = ss.split_scores(maps, targets, ["background", "cancer"], toolkit_workers=1)
    assert scores["dice_by_class"]["cancer"] > 0.7 and scores["all_background"]["dice_by_class"]["cancer"] == 0
    assert sum(map(sum, scores["confusion_matrix"])) == 8 * 12 and scores["meanDic"] > 0.5
    ids = np.array([[[0, 2], [1, 0]]], np.uint8)  # more than two classes: class ids, resized by nearest neighbour
    assert set(np.unique(ss.at_source_size(ids, ds, classes=3)[0][0])) == {0, 1, 2}


# -- short runs ----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bis5k_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bis5k")
    source = synthetic.write_bis5k(root / "raw", scale=0.01, size=128)  # 50 train, 9 test images
    return build(BIS5k, source, "default", root / "bis5k")[0]


@pytest.fixture(scope="module")
def gzmh_tiles_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("gzmh")
    source = synthetic.write_gzmh(root / "raw", "v2", scale=0.01, size=1024)  # the demo's: 15 fields, 3x3 tiles each
    return build(GZMH, source, "tiles", root / "gzmh")[0]


def test_short_run_on_bis5k_learns_and_writes_its_files(bis5k_folder, tmp_path):
    """SegFormer-B0 from scratch, 64 px, 10 epochs (~15 s on 2 cores): the cancer Dice was 0.79 on the demo
    replica; the all-background prediction scores 0."""
    out = tmp_path / "run"
    results = ft.main(["--dataset", str(bis5k_folder), "--output_dir", str(out), "--image_size", "64",
                       "--num_train_epochs", "10"] + QUICK)
    test = results["test"]
    assert results["split_sizes"] == {"train": 45, "validation": 5, "test": 9}
    assert test["dice_by_class"]["cancer"] > 0.5 and test["all_background"]["dice_by_class"]["cancer"] == 0
    assert test["meanDic"] > 0.4 and test["all_background"]["meanDic"] < 0.01
    meandic = test["intervals"]["meanDic"]  # the BIS5k toolkit's columns have their intervals too, by image
    assert meandic["unit"] == "image" and meandic["n_units"] == 9 and meandic["value"] == pytest.approx(test["meanDic"])
    assert meandic["ci_low"] <= test["meanDic"] <= meandic["ci_high"] and "mean_iou" in test["intervals"]
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["test"]["mean_iou"] == pytest.approx(test["mean_iou"])
    table = (out / "table.md").read_text()
    assert "meanDic" in table and "all background (trivial)" in table
    assert Image.open(out / "predictions.png").size[0] > 700
    assert (out / "config.json").exists() and (out / "preprocessor_config.json").exists()
    assert json.loads((out / "config.json").read_text())["id2label"] == {"0": "background", "1": "cancer"}


def test_short_run_on_gzmh_tiles_finds_mitoses(gzmh_tiles_folder, tmp_path):
    """Mitoses cover ~0.02% of the pixels: without the class balance the model predicts background
    everywhere. With it (auto), SegFormer-B0 with a 64-wide decode head and no dropout (`--config_overrides`),
    6 epochs at 128 px (~17 s on 2 idle cores; the 256-wide head, 4 epochs: 28 s): the test mitosis Dice of
    the best epoch measured 0.59 and 0.25 for seeds 1 and 2 (full-image mitosis F1 0.57 both); the
    all-background prediction scores 0."""
    out = tmp_path / "run"
    results = ft.main(["--dataset", str(gzmh_tiles_folder), "--config", "tiles", "--output_dir", str(out),
                       "--image_size", "128", "--num_train_epochs", "6", "--seed", "1", "--config_overrides",
                       "decoder_hidden_size=64,classifier_dropout_prob=0.0,drop_path_rate=0.0"] + QUICK)
    assert any("loss weights per class" in n for n in results["notes"])
    assert any("repeated" in n for n in results["notes"])
    assert results["split_sizes"]["test"] % 9 == 0  # V2's two test sets together, 3x3 tiles per field
    test = results["test"]
    assert test["dice_by_class"]["mitosis"] > 0.1 and test["all_background"]["dice_by_class"]["mitosis"] == 0
    assert any("validation" in n and "with and without objects" in n for n in results["notes"])
    assert (out / "predictions.png").exists()
    # The papers' measure on full images, from the mask's regions (the detection script's scoring).
    mitoses = results["mitosis_f1"]
    assert mitoses["test"]["images"] * 9 == results["split_sizes"]["test"] and mitoses["test"]["mitoses"] > 0
    assert mitoses["test"]["f1"] > 0.2 and mitoses["no_detection_baseline"]["f1"] == 0
    assert "Mitosis detection F1" in (out / "table.md").read_text() and (out / "detections.png").exists()
    # V2's last test set opens with the first training field scanned again: its tiles are scored apart too
    free = results["test_without_twins"]
    assert (free["images"], free["of"]) == (results["split_sizes"]["test"] - 9, results["split_sizes"]["test"])
    assert mitoses["test_without_twins"]["images"] == mitoses["test"]["images"] - 1
    assert mitoses["test_without_twins"]["intervals"]["one_to_one f1"]["n_units"] == mitoses["test"]["images"] - 1
    assert free["intervals"]["mean_dice"]["n_units"] == mitoses["test"]["images"] - 1  # fields, without the twin
    assert set(mitoses["test"]["intervals"]) == {"one_to_one f1", "gzmh_authors f1"}
    assert mitoses["test"]["intervals"]["one_to_one f1"]["unit"] == "field"
    tiles = results["test"]["intervals"]["mean_dice"]  # tiles of one field resampled together
    assert tiles["unit"] == "field" and tiles["n_units"] == mitoses["test"]["images"]
    assert "without a twin in the splits it learnt from" in (out / "table.md").read_text()


def test_two_processes_on_cpu_with_torchrun(bis5k_folder, tmp_path):
    """Trainer's DDP over gloo (as `torchrun --nproc_per_node 2` or `accelerate launch` on a machine without
    GPUs): evaluation, best checkpoint and the final scoring see every validation and test pixel once."""
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29535",
               str(SCRIPTS / "finetune_segmentation.py"), "--dataset", str(bis5k_folder), "--output_dir",
               str(tmp_path / "ddp"), "--image_size", "32", "--max_steps", "4", "--eval_strategy", "steps",
               "--eval_steps", "2", "--save_strategy", "steps", "--save_steps", "2", *QUICK]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    for split in ("validation", "test"):  # scored at the replica's stored 128 px, not the 32 px input
        assert sum(map(sum, metrics[split]["confusion_matrix"])) == metrics["split_sizes"][split] * 128 * 128
    assert metrics["best_checkpoint"] and (tmp_path / "ddp" / "predictions.png").exists()
