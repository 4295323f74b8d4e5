"""HEp-2 ICPR 2012 from the MIVIA `Main_Dataset/` release: its cells as `icpr2012` (alone, or cross-checked
against the contest folder) and its 28 slides as `icpr2012_slides` (boxes, instance and semantic masks)."""

import io
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard
from PIL import Image

from medsets import HEp2, synthetic
from medsets.cli import main
from medsets.export import build

# The six patterns in published order (docs/hep2.md), as a literal: never the builder's own constant.
ICPR2012_PATTERNS = ["homogeneous", "coarse_speckled", "fine_speckled", "nucleolar", "centromere", "cytoplasmatic"]

SLIDE_SIZE = (700, 520)  # half the real 1388x1038: the same structure, a quarter of the pixels


def replica(path, **options):
    return synthetic.write_hep2_icpr2012(path, **{"scale": 0.05, "slide_size": SLIDE_SIZE,
                                                  "parts": ("contest", "main"), **options})


def pixels_by_split(folder, config):
    out = {}
    for shard in sorted((folder / "data" / config).glob("*.parquet")):
        split = shard.name.split("-")[0]
        for row in pq.read_table(shard, columns=["image", "label", "intensity"]).to_pylist():
            pixels = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB"))
            out.setdefault(split, []).append((pixels.tobytes(), row["label"], row["intensity"]))
    return {split: sorted(rows) for split, rows in out.items()}


def test_replica_is_faithful(tmp_path):
    root = replica(tmp_path / "raw") / "Main_Dataset"
    rows = (root / "Images" / "01" / "01.csv").read_bytes()
    assert not rows.startswith(b"\xef\xbb\xbf") and b"\r\n" not in rows  # BOM-free, ';', one header line
    lines = rows.decode().splitlines()
    assert lines[0].count(";") == 9 and any(";mitotic;" in line for line in lines)  # a row that is not a cell
    cell = next(line.split(";") for line in lines[1:] if ";cell;" in line)
    assert cell[5] == "centromeric"  # slide 1 is centromere, spelled as in the later release
    min_x, min_y, max_x, max_y = map(int, cell[6:10])
    mask = np.asarray(Image.open(root / "Cells" / "Cell_Masks" / "01" / f"{int(cell[1]):03d}.png")) > 0
    rows_, cols = np.nonzero(mask)
    assert (cols.min() + 1, rows_.min() + 1) >= (min_x, min_y) and (cols.max() + 1, rows_.max() + 1) <= (max_x, max_y)
    assert Image.open(root / "Images" / "01" / "01.bmp").size == SLIDE_SIZE
    assert sorted(int(p.name) for p in (root / "Images").iterdir()) == list(range(1, 29))


def test_icpr2012_from_main_dataset_alone_equals_the_contest_and_both_are_cross_checked(tmp_path):
    source = replica(tmp_path / "raw")
    both, report = build(HEp2, source, "icpr2012", tmp_path / "both")
    assert "cross-checked against Main_Dataset/ (28 slides" in report.layout
    assert "every slide agrees in cells, patterns and intensities" in report.layout
    contest = pixels_by_split(both, "icpr2012")

    shutil.rmtree(source / "ICPR2012_Cells_Classification_Contest")
    main_only, alone = build(HEp2, source, "icpr2012", tmp_path / "main")
    assert alone.layout.startswith("Main_Dataset") and "crops from Cells/Cell_Images" in alone.layout
    assert alone.counts == report.counts
    assert pixels_by_split(main_only, "icpr2012") == contest  # the same cells, pixel for pixel

    cut_source = replica(tmp_path / "cut", parts=("main",), cell_images=False, masks_at="crop")
    cut, cut_report = build(HEp2, cut_source, "icpr2012", tmp_path / "cut-out")
    assert "cut from the slide images by their boxes" in cut_report.layout
    assert "0 at slide size" in " ".join(cut_report.findings)  # masks at crop size, detected and said
    assert pixels_by_split(cut, "icpr2012") == contest
    ds = load_dataset(str(cut), "icpr2012", cache_dir=str(tmp_path / "cache"))
    first = ds["train"][0]
    assert first["file_name"].startswith("Main_Dataset/Images/01/01.bmp#") and first["specimen_id"] == "1"
    assert first["mask"].size == first["image"].size


def test_cross_check_lists_every_disagreement(tmp_path):
    source = replica(tmp_path / "raw")
    csv = source / "Main_Dataset" / "Images" / "03" / "03.csv"
    lines = csv.read_text().splitlines()
    index = next(i for i, line in enumerate(lines) if ";cell;" in line)
    lines[index] = lines[index].replace("intermediate", "positive", 1)  # slide 3 is intermediate
    csv.write_text("\n".join(lines) + "\n")
    _, report = build(HEp2, source, "icpr2012", tmp_path / "out")
    found = [w for w in report.warnings if "slide 3:" in w]
    assert len(found) == 1 and "1 centromere/positive" in found[0], report.warnings
    assert "1 disagreements" in report.layout


def test_icpr2012_slides_as_detection_and_segmentation(tmp_path):
    source = replica(tmp_path / "raw", parts=("main",))
    folder, report = build(HEp2, source, "icpr2012_slides", tmp_path / "hep2")
    assert {s: c["total"] for s, c in report.counts.items()} == {"train": 14, "test": 14}
    ds = load_dataset(str(folder), "icpr2012_slides", cache_dir=str(tmp_path / "cache"))
    features = ds["train"].features
    assert features["objects"]["category"].feature.names == ICPR2012_PATTERNS
    assert sum(report.counts[s]["cells"] for s in ds) == sum(len(o["id"]) for s in ds for o in ds[s]["objects"])
    slide = ds["train"][0]
    assert slide["image"].size == SLIDE_SIZE and slide["specimen_id"] == "1"
    instance, semantic = np.asarray(slide["instance_mask"]), np.asarray(slide["label"])
    assert slide["instance_mask"].mode == "I;16" and slide["label"].mode == "L"
    rows = [line.split(";") for line in (source / "Main_Dataset/Images/01/01.csv").read_text().splitlines()[1:]]
    cells = {int(r[1]): r for r in rows if r[4] == "cell"}
    assert sorted(np.unique(instance)[1:].tolist()) == sorted(cells)  # every cell's id, nothing else
    for object_id, box, csv_box, area, category in zip(*(slide["objects"][k] for k in (
            "id", "bbox", "csv_bbox", "area", "category"))):
        row = cells[object_id - 1000]
        min_x, min_y, max_x, max_y = map(int, row[6:10])
        assert csv_box == [min_x - 1, min_y - 1, max_x - min_x + 1, max_y - min_y + 1]  # 1-based bounds -> COCO
        ys, xs = np.nonzero(instance == object_id - 1000)  # (no overlap on this slide: each mask whole)
        assert box == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]  # the mask's tight box
        assert area == np.count_nonzero(instance == object_id - 1000)
        assert ICPR2012_PATTERNS[category] == "centromere"
        assert set(np.unique(semantic[instance == object_id - 1000])) == {category + 1}
    assert (semantic > 0).sum() == (instance > 0).sum()
    line = next(w for w in report.findings if w.startswith("cell boxes:"))
    assert "`bbox` is its mask's tight box" in line and "`csv_bbox`" in line and "median" in line
    # Its classes in a file of its own: the folder's id2label.json would be read for the default config (cells).
    assert (folder / "id2label-icpr2012_slides.json").exists() and not (folder / "id2label.json").exists()
    assert (folder / "sample-icpr2012_slides.png").exists()
    card = DatasetCard.load(folder / "README.md").data
    assert {"image-classification", "object-detection", "image-segmentation"} <= set(card.task_categories)
    picture = Image.open(folder / "sample-icpr2012_slides.png")
    assert picture.height == 22 + 2 * (128 + 4) + 4  # a header naming each column's slide and pattern
    assert picture.width > 6 * 128  # every pattern of the train slides, one slide each


@pytest.fixture(scope="module")
def main_dataset_built(tmp_path_factory):
    """Main_Dataset alone and its slides built from it, once: each fault below spoils a copy."""
    root = tmp_path_factory.mktemp("main-dataset")
    source = replica(root / "raw", parts=("main",))
    assert main(["build", "hep2", "--config", "icpr2012_slides", "--source", str(source), "--out",
                 str(root / "hep2")]) == 0
    return source, root / "hep2"


@pytest.mark.parametrize("fault", ["missing mask", "mask outside box", "missing label file"])
def test_bad_main_dataset_input_exits_2_naming_the_file(main_dataset_built, tmp_path, capsys, digest, fault):
    source = Path(shutil.copytree(main_dataset_built[0], tmp_path / "raw"))
    out = Path(shutil.copytree(main_dataset_built[1], tmp_path / "hep2"))
    before = digest(out)
    root = source / "Main_Dataset"
    if fault == "missing mask":
        named = sorted((root / "Cells" / "Cell_Masks" / "02").iterdir())[0]
        named.unlink()
        named = "Main_Dataset/Images/02/02.csv"
    elif fault == "mask outside box":
        named = sorted((root / "Cells" / "Cell_Masks" / "02").iterdir())[0]
        mask = np.asarray(Image.open(named)).copy()
        mask[0:5, 0:5] = 255  # a blob far from the cell's box
        Image.fromarray(mask).save(named)
        named = named.relative_to(source).as_posix()
    else:
        (root / "Images" / "02" / "02.csv").unlink()
        named = "Main_Dataset/Images/02/02.bmp"
    capsys.readouterr()
    for config in ("icpr2012_slides", "icpr2012"):
        assert main(["build", "hep2", "--config", config, "--source", str(source), "--out", str(out),
                     "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert f"{fault} (1)" in err and ("Main_Dataset/Images/02/02.csv" in err or named in err), err
    assert digest(out) == before


def test_slides_need_main_dataset(tmp_path, capsys):
    source = synthetic.write_hep2_icpr2012(tmp_path / "raw", scale=0.02)  # the contest folder alone
    assert main(["build", "hep2", "--config", "icpr2012_slides", "--source", str(source),
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "Main_Dataset/Images/NN/NN.bmp" in err and "build it with --config icpr2012" in err
