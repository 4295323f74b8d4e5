"""`medsets evaluate bis5k`: a folder of predictions scored like the toolkit's Eval.py."""

import csv

import numpy as np
import pytest
from datasets import load_dataset
from PIL import Image

from medsets import BIS5k, synthetic
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


def read_csv(path):
    with open(path) as handle:
        header, values = list(csv.reader(handle))
    return dict(zip(header[1:], map(float, values[1:])))


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
    assert not (tmp_path / "bis5k-test-scores.csv").exists()
    code = main(["evaluate", "bis5k", "--predictions", str(predictions), "--dataset", str(built), "--allow-missing"])
    out, err = capsys.readouterr()
    assert code == 0
    assert f"1 missing predictions (not scored): BIS5k/formal_test/images/{names[0]}" in err
    assert "1 predictions with no image" in err and "stray.png" in err
    assert f"{len(names) - 1} of {len(names)} images scored" in out
    scored = read_csv(tmp_path / "bis5k-test-scores.csv")
    assert list(scored) == ["meanDic", "meanIoU", "wFm", "Sm", "meanEm", "mae", "maxEm", "maxDic", "maxIoU",
                            "meanSen", "maxSen", "meanSpe", "maxSpe", "images_scored", "images_in_split"]
    assert (scored["images_scored"], scored["images_in_split"]) == (len(names) - 1, len(names))
    for key, value in toolkit.summarize(expected).items():
        assert scored[key] == pytest.approx(value, abs=1e-6)
    # one of the scored images predicts nothing: Dice is 0 there and 1 on the others for t > 0
    assert scored["maxDic"] == pytest.approx((len(names) - 2) / (len(names) - 1))
    assert scored["mae"] > 0


def test_prediction_of_the_wrong_size_is_an_error(built, tmp_path, capsys):
    predictions = tmp_path / "preds"
    predictions.mkdir()
    name = sorted(truths(built))[0]
    Image.new("L", (10, 10)).save(predictions / name)
    assert main(["evaluate", "bis5k", "--predictions", str(predictions), "--dataset", str(built)]) == 2
    err = capsys.readouterr().err
    assert "unusable prediction (1)" in err and "differs from ground-truth shape" in err


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
