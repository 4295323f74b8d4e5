"""The replicas are faithful to the real files (names, quirks, counts: docs/) and their classes really differ."""

import io
import zipfile

import numpy as np
from PIL import Image
from scipy import ndimage

from medsets import synthetic


def test_organisers_replica_quirks(tmp_path):
    root = synthetic.write_hep2_icpr2014(tmp_path / "r", "organisers", scale=0.002) / "ICIP2013_training_1.0"
    gt = (root / "gt_training.csv").read_bytes()
    assert gt.startswith(b"\xef\xbb\xbfImage ID,Image class\r\n1,Homogeneous\r\n")
    assert gt.endswith(b"\r\n\r\n\r\n")  # trailing blank lines
    assert (root / "train" / "00001_Mask.png").exists()  # capital M, as in the original
    first_golgi = synthetic.hep2.ICPR2014_ID_RANGES["golgi"][0]
    assert first_golgi == 12873 and (root / "train" / f"{first_golgi}.png").exists()
    mask = np.asarray(Image.open(root / "train" / "00001_Mask.png"))
    assert set(np.unique(mask)) == {0, 255}
    assert Image.open(root / "train" / "00001.png").mode == "L"


def test_processed_replica_layout_and_zip(tmp_path):
    path = synthetic.write_hep2_icpr2014(tmp_path / "r", "processed", scale=0.002, as_zip=True, wrapper="HEp-2")
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert "HEp-2/gt_training.csv" in names
        assert {n.split("/")[2] for n in names if n.count("/") == 3} == {"training", "validation", "test"}
        image = Image.open(io.BytesIO(archive.read(next(n for n in names if n.endswith(".png")))))
        assert image.size == (78, 78) and image.mode == "L"
        assert archive.read("HEp-2/gt_training.csv").decode().splitlines()[0] == "Image ID,Image class"


def test_contest_replica_quirks(tmp_path):
    root = synthetic.write_hep2_icpr2012(tmp_path / "r", scale=0.02) / "ICPR2012_Cells_Classification_Contest"
    assert (root / "training" / "training.csv").read_text().splitlines()[0] == "ID;intensity;width;height"
    assert (root / "training" / "gt_training.csv").read_bytes().startswith(b"ID;pattern\r\n1;")
    assert (root / "test" / "001_mask.png").exists()  # ids restart at 001 in test/, lower-case _mask
    cell = np.asarray(Image.open(root / "training" / "001.png"), dtype=float)
    r, g, b = cell.reshape(-1, 3).mean(axis=0)
    assert g > 5 * r and g > 20 * b  # green-dominant, like the real crops


def test_full_size_counts_are_the_published_ones():
    assert sum(n for *_, n in synthetic.hep2.ICPR2012_TRAIN_IMAGES) == 721
    assert sum(n for *_, n in synthetic.hep2.ICPR2012_TEST_IMAGES) == 734
    ranges = synthetic.hep2.ICPR2014_ID_RANGES
    assert max(end for _, end in ranges.values()) == 13596
    assert {name: end - first + 1 for name, (first, end) in ranges.items()} == {
        "homogeneous": 2494, "speckled": 2831, "nucleolar": 2598, "centromere": 2741, "numem": 2208, "golgi": 724}
    assert {split: sum(c.values()) for split, c in synthetic.hep2.ICPR2014_SPLIT_COUNTS.items()} == {
        "train": 8701, "validation": 2175, "test": 2720}
    assert synthetic.leukemia.FOLD_COUNTS == {"0": (2397, 1130), "1": (2418, 1163), "2": (2457, 1096)}
    assert synthetic.leukemia.PRELIM_COUNTS == (1219, 648)
    assert synthetic.bis5k.PUBLISHED_COUNTS == {"formal_train": 5000, "formal_test": 929}
    assert (synthetic.gzmh.PUBLISHED_IMAGES, synthetic.gzmh.PUBLISHED_MITOSES) == (1534, 2355)


def features(image: np.ndarray) -> np.ndarray:
    """A few hand-made texture and shape statistics; enough if the classes differ for real."""
    foreground = image > image.mean()
    fine = np.abs(image - ndimage.gaussian_filter(image, 1.0))
    coarse = np.abs(ndimage.gaussian_filter(image, 1.0) - ndimage.gaussian_filter(image, 3.0))
    labels, blobs = ndimage.label(image > 0.5 * image.max())
    centre = np.array(ndimage.center_of_mass(foreground))
    yy, xx = np.indices(image.shape)
    radius = np.hypot(yy - centre[0], xx - centre[1])
    ring = image[(radius > 0.6 * radius[foreground].max())].mean() / max(image[radius < 8].mean(), 1e-3)
    return np.array([fine.mean() / image.mean(), coarse.mean() / image.mean(), np.log1p(blobs), ring,
                     image.std() / image.mean(), foreground.mean()])


ICPR2014_PATTERNS = ["homogeneous", "speckled", "nucleolar", "centromere", "numem", "golgi"]


def test_classes_are_learnable_by_a_nearest_centroid_classifier():
    rng = np.random.default_rng(0)
    train = {p: np.array([features(synthetic.draw_cell(p, 78, 78, rng)[0]) for _ in range(30)])
             for p in ICPR2014_PATTERNS}
    mean = np.concatenate(list(train.values())).mean(0)
    std = np.concatenate(list(train.values())).std(0)
    centroids = {p: ((f - mean) / std).mean(0) for p, f in train.items()}
    correct = total = 0
    for pattern in ICPR2014_PATTERNS:
        for _ in range(20):
            x = (features(synthetic.draw_cell(pattern, 78, 78, rng, rng.choice([0.55, 1.0]))[0]) - mean) / std
            guess = min(centroids, key=lambda p: np.sum((centroids[p] - x) ** 2))
            correct += guess == pattern
            total += 1
    assert correct / total > 0.6  # chance is 1/6


def test_medsets_replica_writes_one_that_builds_and_refuses_what_it_cannot_do(tmp_path, capsys):
    from medsets.cli import main

    assert main(["replica", "leukemia", "--layout", "tcia", "--out", str(tmp_path / "raw"), "--scale", "0.002"]) == 0
    said = capsys.readouterr().out
    assert "Wrote a replica of leukemia (tcia, scale 0.002)" in said and "medsets build leukemia --source" in said
    assert main(["build", "leukemia", "--source", str(tmp_path / "raw"), "--out", str(tmp_path / "built")]) == 0
    capsys.readouterr()
    assert main(["replica", "leukemia", "--out", str(tmp_path / "raw")]) == 2  # never over what is there
    assert main(["replica", "gzmh", "--layout", "v3", "--out", str(tmp_path / "g")]) == 2
    assert main(["replica", "bis5k", "--scale", "2", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "exists; nothing was written" in err and "choose one of v2, v1" in err and "--scale 2.0" in err
    assert not (tmp_path / "g").exists() and not (tmp_path / "b").exists()


def test_the_icpr2012_replica_is_the_mivia_download_with_its_slides_unless_asked_for_the_contest_alone(tmp_path, capsys):
    from medsets.cli import main

    assert main(["replica", "hep2-icpr2012", "--out", str(tmp_path / "mivia"), "--scale", "0.02"]) == 0
    assert "--config icpr2012_slides" in capsys.readouterr().out
    assert main(["replica", "hep2-icpr2012", "--layout", "contest", "--out", str(tmp_path / "contest")]) == 0
    assert [p.name for p in (tmp_path / "contest").iterdir()] == ["ICPR2012_Cells_Classification_Contest"]
    slides = sorted((tmp_path / "mivia" / "Main_Dataset" / "Images").glob("*/*.bmp"))  # what icpr2012_slides builds
    assert len(slides) == 28 and all(p.with_suffix(".csv").is_file() for p in slides)
