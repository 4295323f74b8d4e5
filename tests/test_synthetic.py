"""The replicas are faithful to SOURCES.md (names, quirks) and their classes really differ."""

import io
import zipfile

import numpy as np
from PIL import Image
from scipy import ndimage

from medsets import synthetic
from medsets.builders import hep2


def test_organisers_replica_quirks(tmp_path):
    root = synthetic.write_hep2_icpr2014(tmp_path / "r", "organisers", scale=0.002) / "ICIP2013_training_1.0"
    gt = (root / "gt_training.csv").read_bytes()
    assert gt.startswith(b"\xef\xbb\xbfImage ID,Image class\r\n1,Homogeneous\r\n")
    assert gt.endswith(b"\r\n\r\n\r\n")  # trailing blank lines
    assert (root / "train" / "00001_Mask.png").exists()  # capital M, as in the original
    first_golgi = synthetic.ICPR2014_ID_RANGES["golgi"][0]
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
    assert sum(n for *_, n in synthetic.ICPR2012_TRAIN_IMAGES) == 721
    assert sum(n for *_, n in synthetic.ICPR2012_TEST_IMAGES) == 734
    last = max(end for _, end in synthetic.ICPR2014_ID_RANGES.values())
    assert last == 13596


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


def test_classes_are_learnable_by_a_nearest_centroid_classifier():
    rng = np.random.default_rng(0)
    train = {p: np.array([features(synthetic.draw_cell(p, 78, 78, rng)[0]) for _ in range(30)])
             for p in hep2.HEp2.ICPR2014_LABELS}
    mean = np.concatenate(list(train.values())).mean(0)
    std = np.concatenate(list(train.values())).std(0)
    centroids = {p: ((f - mean) / std).mean(0) for p, f in train.items()}
    correct = total = 0
    for pattern in hep2.HEp2.ICPR2014_LABELS:
        for _ in range(20):
            x = (features(synthetic.draw_cell(pattern, 78, 78, rng, rng.choice([0.55, 1.0]))[0]) - mean) / std
            guess = min(centroids, key=lambda p: np.sum((centroids[p] - x) ** 2))
            correct += guess == pattern
            total += 1
    assert correct / total > 0.6  # chance is 1/6
