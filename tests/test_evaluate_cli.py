"""`medsets evaluate`: masks (bis5k, gzmh) scored like the toolkit's Eval.py, label CSVs (hep2, leukemia) like
the HEp-2 report's Table 3 and C-NMC's weighted F1, detections (gzmh) by mitosis F1 under both rules."""

import csv
import json

import numpy as np
import pytest
from datasets import load_dataset
from PIL import Image

from medsets import GZMH, BIS5k, HEp2, Leukemia, synthetic
from medsets.cli import main
from medsets.export import build
from medsets.metrics import segmentation as toolkit


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("bis5k")
    source = synthetic.write_bis5k(root / "raw", scale=0.005, size=64)
    folder, _ = build(BIS5k, source, None, root / "bis5k")
    return folder


def truths(folder):
    rows = load_dataset(str(folder), split="test", cache_dir=str(folder.parent / "cache"))
    return {r["file_name"].rsplit("/", 1)[1]: np.asarray(r["label"]) > 0 for r in rows}


def read_csv(path, row=0):
    """The CSV's scores: its first row (on all scored images), or a later one (row 1: those without a twin)."""
    with open(path) as handle:
        header, *rows = list(csv.reader(handle))
    def value(text):
        try:
            return float(text)
        except ValueError:
            return text  # the interval's unit

    return dict(zip(header[1:], map(value, rows[row][1:])))


def test_scores_predictions_with_known_damage(built, tmp_path, capsys):
    gts = truths(built)
    names = sorted(gts)
    predictions = tmp_path / "BCSNet"
    predictions.mkdir()
    expected = []
    for i, name in enumerate(names):
        if i == 0:
            continue  # missing prediction: reported, not scored
        prediction = gts[name].astype(np.uint8) * 255
        if i == 1:
            prediction[:] = 0  # an empty prediction
        Image.fromarray(prediction).save(predictions / name)
        expected.append(toolkit.toolkit_scores(prediction, gts[name]))
    Image.new("L", (64, 64)).save(predictions / "stray.png")
    # A score over a subset is not the split's score: a missing prediction is an error, each one listed.
    assert main(["evaluate", "bis5k", "--predictions", str(predictions), "--dataset", str(built)]) == 2
    err = capsys.readouterr().err
    assert "missing prediction (1)" in err and f"BIS5k/formal_test/images/{names[0]}" in err
    assert not (tmp_path / "BCSNet-bis5k-test-scores.csv").exists()
    code = main(["evaluate", "bis5k", "--predictions", str(predictions), "--dataset", str(built), "--allow-missing"])
    out, err = capsys.readouterr()
    assert code == 0
    assert f"1 missing predictions (not scored): BIS5k/formal_test/images/{names[0]}" in err
    assert "1 predictions with no image" in err and "stray.png" in err
    assert f"{len(names) - 1} of {len(names)} images scored" in out
    scored = read_csv(tmp_path / "BCSNet-bis5k-test-scores.csv")
    columns = ["meanDic", "meanIoU", "wFm", "Sm", "meanEm", "mae", "maxEm", "maxDic", "maxIoU", "meanSen", "maxSen",
               "meanSpe", "maxSpe"]
    assert list(scored) == columns + ["images_scored", "images_in_split"] + [
        f"{c} {end}" for c in columns for end in ("ci_low", "ci_high")] + ["unit", "n_units"]
    assert scored["unit"] == "image" and scored["n_units"] == len(names) - 1  # BIS5k: each image its own unit
    assert all(scored[f"{c} ci_low"] <= scored[c] + 1e-9 <= scored[f"{c} ci_high"] + 2e-9 for c in columns)
    assert (scored["images_scored"], scored["images_in_split"]) == (len(names) - 1, len(names))
    for key, value in toolkit.summarize(expected).items():
        assert scored[key] == pytest.approx(value, abs=1e-6)
    # one of the scored images predicts nothing: Dice is 0 there and 1 on the others for t > 0
    assert scored["maxDic"] == pytest.approx((len(names) - 2) / (len(names) - 1))
    assert scored["mae"] > 0
    # the replica's first test image is a training image taken again; unscored here, so no second score
    assert "No scored test image has a copy in train" in out
    assert len(open(tmp_path / "BCSNet-bis5k-test-scores.csv").read().splitlines()) == 2


def test_the_score_without_the_test_images_seen_in_training_is_printed_and_written(built, tmp_path, capsys):
    gts = truths(built)
    predictions = tmp_path / "perfect"
    predictions.mkdir()
    names = sorted(gts)
    for i, name in enumerate(names):  # perfect but on the twin (the first test image), which predicts nothing
        Image.fromarray(gts[name].astype(np.uint8) * 255 * (i > 0)).save(predictions / name)
    assert main(["evaluate", "bis5k", "--predictions", str(predictions), "--dataset", str(built)]) == 0
    out = capsys.readouterr().out
    assert f"On the {len(names) - 1} of these {len(names)} images without a twin in train" in out
    every, free = read_csv(tmp_path / "perfect-bis5k-test-scores.csv"), read_csv(tmp_path / "perfect-bis5k-test-scores.csv", 1)
    perfect = toolkit.summarize([toolkit.toolkit_scores(gts[n].astype(np.uint8) * 255, gts[n]) for n in names[1:]])
    assert free["meanDic"] == pytest.approx(perfect["meanDic"], abs=1e-6) and every["meanDic"] < free["meanDic"]
    assert (free["images_scored"], free["images_in_split"]) == (len(names) - 1, len(names))
    assert "[without a twin in train]" in open(tmp_path / "perfect-bis5k-test-scores.csv").read()


def test_prediction_of_the_wrong_size_is_an_error(built, tmp_path, capsys):
    predictions = tmp_path / "preds"
    predictions.mkdir()
    name = sorted(truths(built))[0]
    Image.new("L", (10, 10)).save(predictions / name)
    assert main(["evaluate", "bis5k", "--predictions", str(predictions), "--dataset", str(built)]) == 2
    err = capsys.readouterr().err
    assert "unusable prediction (1)" in err and "10x10, its image is" in err


def test_missing_dataset_says_how_to_build_it(tmp_path, capsys):
    (tmp_path / "preds").mkdir()
    assert main(["evaluate", "bis5k", "--predictions", str(tmp_path / "preds"),
                 "--dataset", str(tmp_path / "nope")]) == 2
    assert "medsets build bis5k" in capsys.readouterr().err


def test_a_split_the_folder_lacks_a_folder_not_built_and_an_unwritable_csv(built, tmp_path, capsys):
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    for name, truth in truths(built).items():
        Image.fromarray(truth.astype(np.uint8) * 255).save(predictions / name)
    command = ["evaluate", "bis5k", "--predictions", str(predictions), "--dataset", str(built)]
    assert main(command + ["--split", "validation"]) == 2
    assert "has no split 'validation'; it has train, test" in capsys.readouterr().err
    assert main(["evaluate", "bis5k", "--predictions", str(predictions), "--dataset", str(predictions)]) == 2
    assert "not a folder built by medsets" in capsys.readouterr().err
    assert main(command + ["--csv", str(tmp_path / "no-such-folder" / "scores.csv")]) == 2
    err = capsys.readouterr().err
    assert "could not write the scores to" in err and "Traceback" not in err



def test_the_convention_is_chosen_by_name_and_said(built, tmp_path, capsys):
    predictions = tmp_path / "predictions"
    predictions.mkdir()
    for name, truth in truths(built).items():
        Image.fromarray((truth * 200).astype(np.uint8)).save(predictions / name)
    command = ["evaluate", "bis5k", "--predictions", str(predictions), "--dataset", str(built)]
    assert main(command + ["--csv", str(tmp_path / "u.csv")]) == 0
    assert "convention uacanet: UACANet's Eval.py" in capsys.readouterr().out
    assert main(command + ["--convention", "pysodmetrics", "--csv", str(tmp_path / "p.csv")]) == 0
    assert "convention pysodmetrics: the pysodmetrics package" in capsys.readouterr().out
    assert "(pysodmetrics)" in (tmp_path / "p.csv").read_text()


def test_the_evaluate_module_takes_the_convention(tmp_path):
    import evaluate

    from medsets import metric_path

    metric = evaluate.load(metric_path("segmentation"), cache_dir=str(tmp_path))
    gt = np.zeros((24, 24), bool)
    gt[4:14, 6:18] = True
    pred = np.where(gt, 180, 40).astype(np.uint8)
    for convention in ("uacanet", "pysodmetrics"):
        got = metric.compute(predictions=[toolkit.pack(pred)], references=[toolkit.pack(gt)], convention=convention)
        expected = toolkit.summarize([toolkit.toolkit_scores(pred, gt, convention)])
        assert got == pytest.approx(expected, abs=1e-12)


# -- class labels from a CSV -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hep2_2012(tmp_path_factory):
    root = tmp_path_factory.mktemp("hep2")
    folder, _ = build(HEp2, synthetic.write_hep2_icpr2012(root / "raw", scale=0.05), "icpr2012", root / "hep2")
    rows = load_dataset(str(folder), "icpr2012", split="test", cache_dir=str(root / "cache"))
    return folder, rows


def write_labels(path, rows, names, wrong=0):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "label"])
        for i, (file_name, label) in enumerate(zip(rows["file_name"], rows["label"])):
            writer.writerow([file_name.rsplit("/", 1)[1], names[(label + 1) % len(names) if i < wrong else label]])


def test_labels_are_scored_as_table_3(hep2_2012, tmp_path, capsys):
    folder, rows = hep2_2012
    names = rows.features["label"].names
    write_labels(tmp_path / "convnext.csv", rows, names, wrong=3)
    command = ["evaluate", "hep2", "--config", "icpr2012", "--dataset", str(folder)]
    assert main(command + ["--predictions", str(tmp_path / "convnext.csv")]) == 0
    out = capsys.readouterr().out
    assert "| f1 score for fine_speckled |" in out and "Custom CoAtNet JFT-3B" in out  # the report's columns beside
    scored = read_csv(tmp_path / "convnext-hep2-test-scores.csv")
    assert scored["accuracy"] == pytest.approx(1 - 3 / len(rows)) and scored["images_in_split"] == len(rows)


def test_a_scores_file_is_named_after_its_predictions_and_never_silently_replaced(hep2_2012, tmp_path, capsys):
    folder, rows = hep2_2012
    names = rows.features["label"].names
    for method, wrong in (("BCSNet", 1), ("UNet", 4)):
        (tmp_path / "results" / method).mkdir(parents=True)
        write_labels(tmp_path / "results" / method / "labels.csv", rows, names, wrong=wrong)
    command = ["evaluate", "hep2", "--config", "icpr2012", "--dataset", str(folder), "--predictions"]
    for method in ("BCSNet", "UNet"):  # results/<method>/labels.csv -> results/<method>/labels-hep2-test-scores.csv
        assert main(command + [str(tmp_path / "results" / method / "labels.csv")]) == 0
    first, second = (read_csv(tmp_path / "results" / m / "labels-hep2-test-scores.csv") for m in ("BCSNet", "UNet"))
    assert first["accuracy"] > second["accuracy"]  # both kept
    before = (tmp_path / "results" / "UNet" / "labels-hep2-test-scores.csv").read_bytes()
    capsys.readouterr()
    assert main(command + [str(tmp_path / "results" / "UNet" / "labels.csv")]) == 2  # a second run: refused
    err = capsys.readouterr().err
    assert "labels-hep2-test-scores.csv exists" in err and "--overwrite" in err and "--csv" in err
    assert (tmp_path / "results" / "UNet" / "labels-hep2-test-scores.csv").read_bytes() == before
    assert main(command + [str(tmp_path / "results" / "UNet" / "labels.csv"), "--overwrite"]) == 0


def test_label_csv_problems_are_each_listed(hep2_2012, tmp_path, capsys):
    folder, rows = hep2_2012
    names = rows.features["label"].names
    write_labels(tmp_path / "p.csv", rows, names)
    lines = (tmp_path / "p.csv").read_text().splitlines()
    lines[1] = lines[1].split(",")[0] + ",speckled-ish"  # an unknown class
    del lines[2]  # a missing image
    lines.append("999.png,homogeneous")  # an image the split lacks
    (tmp_path / "p.csv").write_text("\n".join(lines) + "\n")
    command = ["evaluate", "hep2", "--config", "icpr2012", "--dataset", str(folder), "--predictions", str(tmp_path / "p.csv")]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "unknown label (1)" in err and "'speckled-ish'" in err
    assert "missing prediction (1)" in err and "prediction with no image (1)" in err and "'999.png'" in err
    assert main(command + ["--allow-missing"]) == 2  # an unknown label is never scored
    lines[1] = lines[1].split(",")[0] + ",homogeneous"
    (tmp_path / "p.csv").write_text("\n".join(lines) + "\n")
    assert main(command + ["--allow-missing"]) == 0
    assert f"{len(rows) - 1} of {len(rows)} images scored" in capsys.readouterr().out


def test_leukemia_weighted_f1_and_the_unlabelled_final_split(tmp_path, capsys):
    source = synthetic.write_leukemia(tmp_path / "raw", "kaggle", scale=0.002)
    folder, _ = build(Leukemia, source, None, tmp_path / "leukemia", num_proc=1)
    for split, code in (("validation", 0), ("test", 2)):
        rows = load_dataset(str(folder), split=split, cache_dir=str(tmp_path / "cache"))
        with open(tmp_path / f"{split}.csv", "w") as handle:
            handle.write("image_id,label\n" + "".join(f"{i},{max(label, 0)}\n" for i, label in
                                                      zip(rows["image_id"], rows["label"])))
        assert main(["evaluate", "leukemia", "--dataset", str(folder), "--split", split,
                     "--predictions", str(tmp_path / f"{split}.csv")]) == code
    out, err = capsys.readouterr()
    assert "weighted_f1" in out and "1.0000" in out
    assert "unlabelled split (1)" in err and "no published label" in err


# -- gzmh: masks, and detections from a CSV ----------------------------------------------------------------
@pytest.fixture(scope="module")
def gzmh(tmp_path_factory):
    root = tmp_path_factory.mktemp("gzmh")
    folder, _ = build(GZMH, synthetic.write_gzmh(root / "raw", "v2", scale=0.004, size=256), "full", root / "gzmh")
    return folder, load_dataset(str(folder), "full", split="test", cache_dir=str(root / "cache"))


def test_gzmh_masks_and_detections(gzmh, tmp_path, capsys):
    folder, rows = gzmh
    masks = tmp_path / "masks"
    masks.mkdir()
    for file_name, label in zip(rows["file_name"], rows["label"]):
        Image.fromarray((np.asarray(label) > 0).astype(np.uint8) * 255).save(masks / (file_name.rsplit("/", 1)[1].rsplit(".", 1)[0] + ".png"))
    assert main(["evaluate", "gzmh", "--dataset", str(folder), "--predictions", str(masks)]) == 0
    assert "maxDic" in capsys.readouterr().out
    detections = [["image", "x", "y", "score"]]
    for file_name, objects in zip(rows["file_name"], rows["objects"]):
        detections += [[file_name.rsplit("/", 1)[1], x + 3, y - 2, 0.9] for x, y in objects["centroid"]]
    detections.append([rows["file_name"][0].rsplit("/", 1)[1], 5, 5, 0.3])  # a false one, scored low
    with open(tmp_path / "detections.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(detections)
    command = ["evaluate", "gzmh", "--dataset", str(folder), "--predictions", str(tmp_path / "detections.csv")]
    assert main(command + ["--threshold", "0.5"]) == 0
    scored = read_csv(tmp_path / "detections-gzmh-test-scores.csv")
    mitoses = sum(len(o["centroid"]) for o in rows["objects"])
    assert scored["one_to_one f1"] == 1.0 and scored["gzmh_authors f1"] == 1.0 and scored["one_to_one tp"] == mitoses
    assert main(command + ["--threshold", "0.2", "--overwrite"]) == 0  # the false one counts now
    assert read_csv(tmp_path / "detections-gzmh-test-scores.csv")["one_to_one fp"] == 1
    with open(tmp_path / "detections.csv", "a") as handle:
        handle.write("no-such-image.jpg,1,1,0.9\n")
    assert main(command + ["--overwrite"]) == 2
    assert "prediction with no image (1)" in capsys.readouterr().err



def test_images_are_named_by_file_or_by_id_as_the_header_says(hep2_2012, tmp_path, capsys):
    folder, rows = hep2_2012
    names = rows.features["label"].names
    by_name = "file_name,label\n" + "".join(f"{int(f.rsplit('/', 1)[1].split('.')[0])},{names[l]}\n"
                                            for f, l in zip(rows["file_name"], rows["label"]))  # 001.png as 1
    by_id = "image_id,label\n" + "".join(f"{i},{l}\n" for i, l in zip(rows["image_id"], rows["label"]))
    for text in (by_name, by_id):
        (tmp_path / "p.csv").write_text(text)
        assert main(["evaluate", "hep2", "--config", "icpr2012", "--dataset", str(folder),
                     "--predictions", str(tmp_path / "p.csv"), "--overwrite"]) == 0
        assert read_csv(tmp_path / "p-hep2-test-scores.csv")["accuracy"] == 1.0
    capsys.readouterr()


def test_intervals_by_specimen_a_paired_comparison_and_the_published_results(hep2_2012, tmp_path, capsys):
    folder, rows = hep2_2012
    names = rows.features["label"].names
    write_labels(tmp_path / "good.csv", rows, names, wrong=2)
    write_labels(tmp_path / "poor.csv", rows, names, wrong=len(rows) // 2)
    assert main(["evaluate", "hep2", "--config", "icpr2012", "--dataset", str(folder), "--predictions",
                 str(tmp_path / "good.csv"), "--compare", str(tmp_path / "poor.csv"), "--json",
                 str(tmp_path / "scores.json"), "--resamples", "500"]) == 0
    out = capsys.readouterr().out
    specimens = len(set(rows["specimen_id"]))
    assert f"95% intervals, percentile bootstrap over the {specimens} specimens (500 resamples, seed 0)" in out
    assert "good minus poor, paired over the same" in out and "McNemar's exact test" in out
    assert "Published results on this split:" in out and "DACN: average classification accuracy 0.8120" in out
    saved = json.loads((tmp_path / "scores.json").read_text())
    accuracy = saved["accuracy"]
    assert accuracy["unit"] == "specimen" and accuracy["n_units"] == specimens
    assert accuracy["value"] == pytest.approx(1 - 2 / len(rows))
    assert accuracy["ci_low"] <= accuracy["value"] <= accuracy["ci_high"]
    paired = saved["comparison"]["paired"]["accuracy"]
    assert paired["difference"] > 0 and paired["ci_low"] > 0 and paired["p_value"] < 0.05
    mcnemar = saved["comparison"]["mcnemar"]
    assert mcnemar["b_right_a_wrong"] == 0 and mcnemar["p_value"] < 0.001
    scored = read_csv(tmp_path / "good-hep2-test-scores.csv")
    assert scored["unit"] == "specimen" and scored["accuracy ci_low"] <= scored["accuracy"]


def test_interval_settings_and_a_comparison_of_unlike_predictions_are_errors(hep2_2012, tmp_path, capsys):
    folder, rows = hep2_2012
    write_labels(tmp_path / "a.csv", rows, rows.features["label"].names)
    command = ["evaluate", "hep2", "--config", "icpr2012", "--dataset", str(folder), "--predictions", str(tmp_path / "a.csv")]
    assert main(command + ["--confidence", "95"]) == 2
    assert "the level must lie between 0 and 1" in capsys.readouterr().err
    assert main(command + ["--compare", str(tmp_path)]) == 2
    assert "compare like with like" in capsys.readouterr().err


def test_two_mask_folders_compared_over_the_same_images(built, tmp_path, capsys):
    gts = truths(built)
    for folder, empty in (("sharp", 1), ("blank", 3)):  # blank predicts nothing on three images, sharp on one
        (tmp_path / folder).mkdir()
        for i, name in enumerate(sorted(gts)):
            Image.fromarray(gts[name].astype(np.uint8) * 255 * (i >= empty)).save(tmp_path / folder / name)
    assert main(["evaluate", "bis5k", "--predictions", str(tmp_path / "sharp"), "--dataset", str(built),
                 "--compare", str(tmp_path / "blank"), "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert f"sharp minus blank, paired over the same {len(gts)} images" in out and "McNemar" not in out
    paired = json.loads((tmp_path / "s.json").read_text())["comparison"]["paired"]["meanDic"]
    assert paired["difference"] == pytest.approx(paired["a"] - paired["b"]) and paired["difference"] > 0.3


# -- predictions a hostile tester gave (issue 25) ----------------------------------------------------------------
def png_header_claiming(width: int, height: int) -> bytes:
    """A PNG whose header claims a size, its pixel data a few bytes (what a reader sees before decoding)."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


def test_a_path_naming_another_split_is_not_matched_by_its_stem(hep2_2012, tmp_path, capsys):
    folder, rows = hep2_2012
    names = rows.features["label"].names
    with open(tmp_path / "p.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "label"])
        for file_name, label in zip(rows["file_name"], rows["label"]):
            writer.writerow([file_name.replace("test", "training"), names[label]])  # the right stems, another split
    command = ["evaluate", "hep2", "--config", "icpr2012", "--dataset", str(folder)]
    assert main(command + ["--predictions", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err
    assert f"prediction with no image ({len(rows)})" in err and "Traceback" not in err
    write_labels(tmp_path / "q.csv", rows, names)  # bare names, and the split's own paths, still match
    assert main(command + ["--predictions", str(tmp_path / "q.csv")]) == 0


@pytest.mark.parametrize("damage", ["label map", "truncated", "claims 20000x20000", "two files, one stem"])
def test_predicted_masks_that_cannot_be_scored_are_named(built, tmp_path, capsys, damage):
    gts = truths(built)
    predictions = tmp_path / "preds"
    predictions.mkdir()
    for name, truth in gts.items():
        Image.fromarray(truth.astype(np.uint8) * 255).save(predictions / name)
    target = predictions / sorted(gts)[0]
    if damage == "label map":  # a multi-class ground truth given as a prediction: class ids, not grey levels
        Image.fromarray((gts[target.name].astype(np.uint8) * 3 + np.eye(*gts[target.name].shape, dtype=np.uint8))).save(target)
    elif damage == "truncated":
        target.write_bytes(target.read_bytes()[:60])
    elif damage == "claims 20000x20000":
        target.write_bytes(png_header_claiming(20000, 20000))
    else:
        Image.fromarray(gts[target.name].astype(np.uint8) * 255).save(target.with_suffix(".tif"))
    assert main(["evaluate", "bis5k", "--predictions", str(predictions), "--dataset", str(built)]) == 2
    err = capsys.readouterr().err
    assert "unusable prediction (1)" in err and target.stem in err and "Traceback" not in err
    said = {"label map": "holds class ids [0, 1, 3, 4]", "truncated": "cannot be decoded",
            "claims 20000x20000": "400000000 pixels", "two files, one stem": "two predictions for one image"}
    assert said[damage] in err


@pytest.mark.parametrize("bad", ["nan", "inf", "-4"])
def test_detections_that_are_not_finite_or_are_negative_are_refused(gzmh, tmp_path, capsys, bad):
    folder, rows = gzmh
    name = rows["file_name"][0].rsplit("/", 1)[1]
    (tmp_path / "detections.csv").write_text(f"image,x,y,score\n{name},10,{bad},0.9\n{name},12,12,0.8\n")
    assert main(["evaluate", "gzmh", "--dataset", str(folder), "--predictions", str(tmp_path / "detections.csv")]) == 2
    err = capsys.readouterr().err
    assert "line 2: x, y and score must be numbers of 0 or more" in err and "Traceback" not in err


def test_toolkit_numbers_that_look_wrong_are_explained_under_the_table(built, tmp_path, capsys):
    gts = truths(built)
    for kind, scale in (("perfect", 255), ("nothing", 0)):
        (tmp_path / kind).mkdir()
        for name, truth in gts.items():
            Image.fromarray(truth.astype(np.uint8) * scale).save(tmp_path / kind / name)
        assert main(["evaluate", "bis5k", "--predictions", str(tmp_path / kind), "--dataset", str(built)]) == 0
    perfect, nothing = capsys.readouterr().out.split("bis5k/test:")[1:]
    assert "note: maxEm 1.000" in perfect and "N / (N - 1)" in perfect  # as UACANet's Eval.py divides
    assert "note: meanDic" in perfect and "specificity 0" not in perfect
    assert "note: specificity 0" in nothing and "TP = 0" in nothing and "note: maxEm" not in nothing
