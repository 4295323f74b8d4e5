"""The GZMH builder: tolerant layout detection, objects from masks, box-file cross-check, tiling."""

import io
import json
import re
import subprocess
import sys
import zipfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from datasets import load_dataset
from huggingface_hub import DatasetCard
from PIL import Image

from medsets import GZMH, synthetic
from medsets.cli import main
from medsets.export import build, build_configs
from medsets.objects import components, tile_starts, tiles

SMALL = {"scale": 0.004, "size": 256}  # 6 (v1) or 7 (v2) images of 256x256


def rows(folder, config, split):
    return [r for shard in sorted((folder / "data" / config).glob(f"{split}-*.parquet"))
            for r in pq.read_table(shard).to_pylist()]


def pixels(cell) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(cell["bytes"])))


@pytest.mark.parametrize("layout", ["v1", "v2"])
def test_replica_layouts_build_and_load_offline(tmp_path, monkeypatch, layout):
    source = synthetic.write_gzmh(tmp_path / "raw", layout, wrapper="downloads", **SMALL)
    folder, reports = build_configs(GZMH, source, None, tmp_path / "gzmh")  # both configs, one pass
    assert list(reports) == ["tiles", "full"]
    report = reports["full"]
    splits = {"v1": ["train", "test"], "v2": ["train", "test_1or2_score", "test_3_score"]}[layout]
    assert list(report.counts) == splits
    assert report.layout.startswith("V2 (test split by mitotic score)" if layout == "v2" else "V1")
    assert ("cross-checked against VOC XML" in report.layout) == (layout == "v1")
    assert not [w for w in report.warnings if "box files vs masks" in w]  # replica boxes agree with masks
    for config in ("full", "tiles"):  # two rows: images with boxes, a zoom on one mitosis each
        assert Image.open(folder / f"sample-{config}.png").height == 2 * (128 + 4) + 4

    monkeypatch.chdir(tmp_path)
    full = load_dataset("gzmh", "full", cache_dir=str(tmp_path / "cache"))
    tiled = load_dataset("gzmh", cache_dir=str(tmp_path / "cache"))  # tiles: the default config
    assert "test" in full and "test" in tiled  # what the transformers detection example evaluates on
    if layout == "v2":  # declared as the union of the two scored test sets, without copying them
        assert len(full["test"]) == len(full["test_1or2_score"]) + len(full["test_3_score"])
        assert not list((folder / "data" / "full").glob("test-*"))
    features = full["train"].features
    assert features["objects"]["category"].feature.names == ["mitosis"]
    row = full["train"][0]
    assert row["image"].size == (256, 256) and row["image"].mode == "RGB" and row["label"].mode == "L"
    mask = np.asarray(row["label"])
    assert set(np.unique(mask)) <= {0, 1}
    assert len(row["objects"]["bbox"]) == components(mask)[0].max()
    assert sum(report.counts[s]["mitoses"] for s in splits) == sum(
        len(o["bbox"]) for s in splits for o in full[s]["objects"])
    assert set(tiled["train"].column_names) >= {"image", "label", "objects", "source_image_id", "offset"}
    assert tiled["train"][0]["image"].size == (256, 256)  # smaller than a tile: one tile per image


def test_jpeg_images_are_passed_through_and_masks_thresholded(tmp_path):
    source = synthetic.write_gzmh(tmp_path / "raw", "v2", **SMALL)
    folder, _ = build(GZMH, source, "full", tmp_path / "gzmh")
    for row in rows(folder, "full", "train"):
        assert row["image"]["bytes"] == (source / row["file_name"]).read_bytes()
        raw_mask = np.asarray(Image.open(source / row["file_name"].replace("/images/", "/masks/").replace(".jpg", ".png")))
        assert np.array_equal(pixels(row["label"]), (raw_mask >= 128).astype(np.uint8))


def test_components_of_known_shapes():
    mask = np.zeros((20, 30), np.uint8)
    mask[0:3, 0:4] = 1  # touches the top and left borders
    mask[10, 10] = 1  # one pixel
    mask[10:12, 20:22] = 1  # two objects one background column apart
    mask[10:12, 23:25] = 1
    mask[17, 27] = mask[18, 28] = mask[19, 29] = 1  # diagonal chain touching the corner: one object
    labels, found = components(mask)
    assert [c.bbox for c in found] == [(0, 0, 4, 3), (10, 10, 1, 1), (20, 10, 2, 2), (23, 10, 2, 2), (27, 17, 3, 3)]
    assert [c.area for c in found] == [12, 1, 4, 4, 3]
    assert [c.centroid for c in found] == [(2.0, 1.5), (10.5, 10.5), (21.0, 11.0), (24.0, 11.0), (28.5, 18.5)]
    assert labels.max() == 5 and components(np.zeros((4, 4), np.uint8))[1] == []


def test_tile_geometry():
    assert tile_starts(2084, 512, 64) == [0, 393, 786, 1179, 1572]
    # On a JPEG's 16 px block grid, all but the last, which ends at the border; the overlap still holds.
    assert tile_starts(2084, 512, 64, grid=16) == [0, 400, 784, 1184, 1572]
    for length in range(513, 2500, 37):
        for grid in (1, 8, 16):
            starts = tile_starts(length, 512, 64, grid)
            assert starts[-1] == length - 512 and all(s % grid == 0 for s in starts[:-1])
            assert all(b - a <= 512 - 64 for a, b in zip(starts, starts[1:]))
    assert tile_starts(1024, 512, 0) == [0, 512] and tile_starts(300, 512, 64) == [0]
    grid = tiles(2084, 2084, 512, 64)
    cores = {(t.core[0], t.core[1]) for t in grid}
    edges = sorted(cores)
    assert edges[0][0] == 0 and edges[-1][1] == 2084
    assert all(a[1] == b[0] for a, b in zip(edges, edges[1:]))  # cores partition the axis
    with pytest.raises(ValueError):
        tile_starts(100, 64, 64)


def write_layout(root, files: dict, fmt="PNG"):
    """A hand-made raw download: path -> uint8 array (image or 0/255 mask) or text."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            path.write_text(content)
        else:
            Image.fromarray(content).save(path, format=fmt if path.suffix.lower() != ".png" else "PNG")
    return root


def field(size=(600, 600), seed=0):
    return np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)


def test_tiles_count_each_object_once_and_reassemble(tmp_path):
    mask = np.zeros((600, 600), np.uint8)
    blobs = [(5, 5), (250, 250), (300, 300), (280, 150), (595, 20), (340, 590), (100, 500)]  # seams, corners, edges
    for x, y in blobs:
        mask[max(0, y - 6):y + 6, max(0, x - 6):x + 6] = 255
    source = write_layout(tmp_path / "raw", {"train/images/a.png": field(), "train/masks/a.png": mask})
    folder, full_report = build(GZMH, source, "full", tmp_path / "gzmh")
    (full_row,) = rows(folder, "full", "train")
    ids = full_row["objects"]["id"]
    assert len(ids) == len(blobs) == full_report.counts["train"]["mitoses"]
    for overlap in (0, 64, 200):
        out = tmp_path / f"tiles-{overlap}"
        _, report = build(GZMH, source, "tiles", out, tile_size=256, tile_overlap=overlap)
        tile_rows = rows(out, "tiles", "train")
        assert report.counts["train"] == {"total": len(tile_rows), "mitoses": len(blobs), "source_images": 1}
        counted = [i for r in tile_rows for i, c in zip(r["objects"]["id"], r["objects"]["counted"]) if c]
        assert sorted(counted) == sorted(ids)  # every object counted in exactly one tile
        canvas = np.full((600, 600), 9, np.uint8)
        for r in tile_rows:
            x, y = r["offset"]
            piece = pixels(r["label"])
            region = canvas[y:y + piece.shape[0], x:x + piece.shape[1]]
            written = region != 9
            assert np.array_equal(region[written], piece[written])  # overlapping tiles agree
            region[:] = piece
            assert np.array_equal(pixels(r["image"]), field()[y:y + piece.shape[0], x:x + piece.shape[1]])
            for bx, by, bw, bh in r["objects"]["bbox"]:  # clipped to the tile
                assert 0 <= bx and 0 <= by and bx + bw <= piece.shape[1] and by + bh <= piece.shape[0]
            for cx, cy in r["objects"]["centroid"]:
                assert 0 <= cx < piece.shape[1] and 0 <= cy < piece.shape[0]
        assert np.array_equal(canvas, (mask >= 128).astype(np.uint8))  # masks reassemble to the original
    # With overlap, the object on the seam at (250, 250) shows in several tiles but is counted in one.
    listed = [i for r in tile_rows for i in r["objects"]["id"]]
    assert len(listed) > len(ids)


def test_pixels_of_an_object_centred_elsewhere_stay_in_the_tile(tmp_path):
    mask = np.zeros((512, 512), np.uint8)
    mask[100:120, 250:270] = 255  # centroid (260, 110): right of the seam at 256 with overlap 0
    source = write_layout(tmp_path / "raw", {"train/images/a.png": field((512, 512)), "train/masks/a.png": mask})
    folder, _ = build(GZMH, source, "tiles", tmp_path / "gzmh", tile_size=256, tile_overlap=0)
    left = next(r for r in rows(folder, "tiles", "train") if r["offset"] == [0, 0])
    right = next(r for r in rows(folder, "tiles", "train") if r["offset"] == [256, 0])
    assert left["objects"]["id"] == [] and pixels(left["label"])[100:120, 250:256].all()
    assert right["objects"]["bbox"] == [[0.0, 100.0, 14.0, 20.0]] and right["objects"]["area"] == [280]
    assert right["objects"]["centroid"] == [[4.0, 110.0]]


@pytest.mark.parametrize("boxes", ["voc", "coco", "csv", "yolo"])
def test_box_files_are_cross_checked_and_disagreements_listed(tmp_path, boxes):
    source = synthetic.write_gzmh(tmp_path / "raw", "v1", boxes=boxes, scale=0.006, size=512, seed=3)
    _, report = build(GZMH, source, None, tmp_path / "clean")
    assert not [w for w in report.warnings if "box files vs masks" in w]
    assert f"cross-checked against {dict(voc='VOC XML', coco='COCO JSON', csv='CSV', yolo='YOLO txt')[boxes]}" in report.layout

    # Plant: erase one object, add one, move one by 8 px (the box files keep the old truth).
    planted = {}
    for path in sorted((source / "GZMH" / "train").glob("*_mask.png")):
        mask = np.asarray(Image.open(path)).copy()
        labels, found = components(mask)
        if found and "erased" not in planted:
            mask[labels == 1] = 0
            planted["erased"] = path
        elif found and "moved" not in planted and found[0].bbox[0] < 400:
            mask[labels == 1] = 0
            mask |= np.roll(np.where(labels == 1, 255, 0).astype(np.uint8), 8, axis=1)
            planted["moved"] = path
        elif "added" not in planted and not mask[490:518, 490:518].any():
            mask[500:508, 500:508] = 255
            planted["added"] = path
        Image.fromarray(mask).save(path)
    assert len(planted) == 3, planted
    if boxes == "voc":  # a box file for an image that is not there
        (source / "GZMH" / "train" / "0999.xml").write_bytes((source / "GZMH" / "train" / "0001.xml").read_bytes()
                                                             .replace(b"0001.png", b"0999.png"))
    _, report = build(GZMH, source, None, tmp_path / "planted")
    lines = [w for w in report.warnings if "train/" in w]
    assert any("box files vs masks: 3 disagreements" in w for w in report.warnings)
    assert (boxes == "voc") == any("box files of train name 1 images not in the download" in w and "0999" in w
                                   for w in report.warnings)
    image = {k: p.name.replace("_mask", "") for k, p in planted.items()}
    assert any(image["erased"] in w and "has no mask object within 20 px" in w for w in lines)
    assert any(image["added"] in w and "mask object at (504.0, 504.0)" in w and "has no box" in w for w in lines)
    moved = [w for w in lines if image["moved"] in w and "disagrees with" in w]
    # Moved by 8 px; box files without centroids are compared by box centre, which is not the centroid.
    assert len(moved) == 1 and 7 <= float(re.search(r"centres ([\d.]+) px apart", moved[0]).group(1)) <= 9


@pytest.mark.parametrize("fault", ["missing mask", "mask size", "unreadable box file"])
def test_bad_input_exits_2_listing_the_file_and_leaves_output_alone(tmp_path, capsys, digest, fault):
    source = synthetic.write_gzmh(tmp_path / "raw", "v1", **SMALL)
    out = tmp_path / "gzmh"
    assert main(["build", "gzmh", "--source", str(source), "--out", str(out)]) == 0
    before = digest(out)
    train = source / "GZMH" / "train"
    if fault == "missing mask":
        (train / "0002_mask.png").unlink()
    elif fault == "mask size":
        Image.new("L", (255, 256)).save(train / "0002_mask.png")
    else:
        (train / "0002.xml").write_text("<annotation><object><bndbox><xmin>3</xmin></bndbox>")
    capsys.readouterr()
    assert main(["build", "gzmh", "--source", str(source), "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert f"{fault} (1)" in err and "GZMH/train/0002" in err
    assert digest(out) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".gzmh")] == []

    _, report = build(GZMH, source, None, tmp_path / "skipped", skip_bad=True)
    assert [p["kind"] for p in report.skipped] == [fault]
    # A skipped box file leaves its image unchecked, rather than reported as boxes missing.
    assert not [w for w in report.warnings if "box files vs masks" in w]


def test_tolerant_layouts_sibling_folders_above_splits_bmp_tiff(tmp_path):
    mask = np.zeros((64, 64), np.uint8)
    mask[10:20, 10:20] = 255
    source = write_layout(tmp_path / "raw", {
        "GZMH/img/Training/001.bmp": field((64, 64)),
        "GZMH/label/Training/001_label.tif": mask,
        "GZMH/img/Test 3-Score/002.bmp": field((64, 64), 1),
        "GZMH/label/Test 3-Score/002_label.tif": mask,
        "GZMH/readme.txt": "not a box file",
    }, fmt="BMP")
    for rel in ("GZMH/label/Training/001_label.tif", "GZMH/label/Test 3-Score/002_label.tif"):
        Image.fromarray(mask).save(source / rel, format="TIFF")
    folder, report = build(GZMH, source, None, tmp_path / "gzmh")
    assert list(report.counts) == ["train", "test_3_score"]
    assert "images in img/ and masks in label/, masks named *_label" in report.layout
    (row,) = rows(folder, "full", "train")
    assert np.array_equal(pixels(row["image"]), field((64, 64)))  # BMP re-encoded losslessly
    assert row["objects"]["bbox"] == [[10.0, 10.0, 10.0, 10.0]]
    card = (folder / "README.md").read_text()
    assert "test (= test_3_score, no copy)" in card and 'load_dataset("gzmh", "full")' in card


def test_no_layout_and_two_versions_are_clear_errors(tmp_path, capsys):
    only_images = write_layout(tmp_path / "images-only", {"data/0001.png": field((32, 32))})
    assert main(["build", "gzmh", "--source", str(only_images), "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err
    assert "no image/mask pairs found" in err and "Looked for:" in err and "data/: 1 files (1 .png)" in err

    both = tmp_path / "both"
    synthetic.write_gzmh(both / "v1", "v1", **SMALL)
    synthetic.write_gzmh(both / "v1-again", "v1", **SMALL)
    assert main(["build", "gzmh", "--source", str(both), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "several folders would become the same split" in err and "v1/GZMH/train" in err


def test_tile_options_only_for_tiles(tmp_path, capsys):
    source = synthetic.write_gzmh(tmp_path / "raw", "v2", **SMALL)
    assert main(["build", "gzmh", "--config", "full", "--source", str(source), "--tile-size", "128",
                 "--out", str(tmp_path / "a")]) == 2
    assert "apply to gzmh tiles, not to gzmh full" in capsys.readouterr().err
    assert main(["build", "gzmh", "--config", "tiles", "--source", str(source), "--tile-size", "128",
                 "--tile-overlap", "16", "--out", str(tmp_path / "b")]) == 0
    report = json.loads((tmp_path / "b" / "reports" / "tiles.json").read_text())
    assert report["counts"]["train"]["total"] == 9 * report["counts"]["train"]["source_images"]  # 3x3 per image
    assert "tiles 128x128, overlap 16" in report["layout"]
    assert main(["build", "gzmh", "--config", "tiles", "--source", str(source), "--tile-size", "128",
                 "--tile-overlap", "128", "--out", str(tmp_path / "c")]) == 2


def test_replica_is_faithful(tmp_path):
    path = synthetic.write_gzmh(tmp_path / "r", "v2", as_zip=True, **SMALL)
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        image = Image.open(io.BytesIO(archive.read("GZMH Dataset V2/train/images/0001.jpg")))
        mask = np.asarray(Image.open(io.BytesIO(archive.read("GZMH Dataset V2/train/masks/0001.png"))))
    assert {n.split("/")[1] for n in names} == {"train", "test_1or2_score", "test_3_score"}
    assert image.format == "JPEG" and image.size == (256, 256) and set(np.unique(mask)) <= {0, 255}
    voc = (synthetic.write_gzmh(tmp_path / "v1", "v1", **SMALL) / "GZMH" / "train" / "0001.xml").read_text()
    assert "<filename>0001.png</filename>" in voc and "<width>256</width>" in voc


def test_multiprocess_build_equals_single_process(tmp_path):
    """Workers share a split's images (two per chunk): 40 images use two processes. In a subprocess, so a
    stuck pool fails the test instead of hanging CI."""
    source = synthetic.write_gzmh(tmp_path / "raw", "v1", scale=0.026, size=128, as_zip=True)
    for num_proc in (1, 2):
        result = subprocess.run([sys.executable, "-m", "medsets", "build", "gzmh", "--config", "tiles",
                                 "--tile-size", "64", "--tile-overlap", "8", "--source", str(source),
                                 "--num-proc", str(num_proc), "--out", str(tmp_path / f"np{num_proc}")],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    one, two = ([(r["image_id"], r["objects"], r["image"]["bytes"]) for r in rows(tmp_path / f"np{n}", "tiles", "train")]
                for n in (1, 2))
    assert len(one) == 28 * 9 and sorted(one, key=lambda r: r[0]) == sorted(two, key=lambda r: r[0])
    reports = [json.loads((tmp_path / f"np{n}" / "reports" / "tiles.json").read_text()) for n in (1, 2)]
    assert reports[0]["counts"] == reports[1]["counts"]


def test_masks_with_low_label_values_keep_their_objects(tmp_path):
    """The encoding is unpublished: instance ids 1, 2 (below the 0/255 threshold) must not vanish."""
    mask = np.zeros((128, 128), np.uint8)
    mask[10:20, 10:20] = 1
    mask[60:70, 60:70] = 2
    binary = np.where(mask > 0, 255, 0).astype(np.uint8)
    source = write_layout(tmp_path / "raw", {"train/images/a.png": field((128, 128)), "train/masks/a.png": mask,
                                             "train/images/b.png": field((128, 128), 1), "train/masks/b.png": binary})
    folder, report = build(GZMH, source, "full", tmp_path / "gzmh")
    by_name = {r["file_name"].rsplit("/", 1)[-1]: r for r in rows(folder, "full", "train")}
    assert len(by_name["a.png"]["objects"]["bbox"]) == 2 and pixels(by_name["a.png"]["label"]).max() == 1
    assert any("mask encodings found" in w and "values {0, 1, 2} (nonzero read as mitosis) in 1 masks" in w
               and "0/255 in 1 masks" in w for w in report.findings), report.findings


def test_one_pass_writes_both_configs_as_two_separate_builds_would(tmp_path):
    """`medsets build gzmh` decodes each image once for tiles and full; the rows equal those of two builds."""
    source = synthetic.write_gzmh(tmp_path / "raw", "v2", scale=0.004, size=700)
    together, reports = build_configs(GZMH, source, None, tmp_path / "together")
    for config in ("full", "tiles"):
        alone, report = build(GZMH, source, config, tmp_path / config)
        assert report.counts == reports[config].counts and report.layout == reports[config].layout
        for split in report.counts:
            assert rows(together, config, split) == rows(alone, config, split)
    ds = load_dataset(str(together), cache_dir=str(tmp_path / "cache"))  # the default: tiles of 512x512
    assert {row["image"].size for row in ds["train"]} == {(512, 512)}
    configs = DatasetCard.load(together / "README.md").data["configs"]
    assert [c["config_name"] for c in configs if c.get("default")] == ["tiles"]
    assert 'load_dataset("gzmh", "full")' in (together / "README.md").read_text()  # the card says how


def test_jpeg_tiles_keep_the_sources_tables_on_its_block_grid_and_png_tiles_are_exact(tmp_path):
    source = synthetic.write_gzmh(tmp_path / "raw", "v2", scale=0.002, size=1100)
    folder, report = build(GZMH, source, "tiles", tmp_path / "jpeg")
    finding = next(w for w in report.findings if w.startswith("tiles: "))
    assert re.search(r"tiles: \d+ JPEG .* 0 PNG", finding) and "on the block grid: mean |difference|" in finding
    for row in rows(folder, "tiles", "train"):
        tile = Image.open(io.BytesIO(row["image"]["bytes"]))
        original = Image.open(source / row["file_name"])
        assert tile.format == "JPEG" and tile.quantization == original.quantization
        x, y = row["offset"]
        crop = np.asarray(original.convert("RGB"))[y:y + 512, x:x + 512].astype(int)
        difference = np.abs(np.asarray(tile.convert("RGB")).astype(int) - crop)
        on_grid = x % 16 == 0 and y % 16 == 0
        assert on_grid or x == 1100 - 512 or y == 1100 - 512  # only the last row and column are off the grid
        assert difference.mean() < (0.5 if on_grid else 4)
    png, _ = build(GZMH, source, "tiles", tmp_path / "png", tile_format="png")
    for row in rows(png, "tiles", "train"):
        x, y = row["offset"]
        crop = np.asarray(Image.open(source / row["file_name"]).convert("RGB"))[y:y + 512, x:x + 512]
        assert np.array_equal(pixels(row["image"]), crop)  # lossless


def test_duplicate_images_are_found_and_dropped_whole_in_tiles_and_full(tmp_path):
    source = synthetic.write_gzmh(tmp_path / "raw", "v2", **SMALL)
    root = source / "GZMH Dataset V2"
    for kind in ("images", "masks"):  # the first training field again in test_3_score, under another name
        suffix = ".jpg" if kind == "images" else ".png"
        (root / "test_3_score" / kind / f"0999{suffix}").write_bytes((root / "train" / kind / f"0001{suffix}").read_bytes())
    _, reports = build_configs(GZMH, source, None, tmp_path / "kept")
    assert all(r.duplicates["pairs"] == {"train-test_3_score": 1} for r in reports.values())
    folder, reports = build_configs(GZMH, source, None, tmp_path / "dropped", drop_duplicates=True)
    for config, report in reports.items():
        [dropped] = report.dropped
        assert dropped["split"] == "test_3_score" and dropped["file_name"].endswith("0999.jpg")
        assert not [r for r in rows(folder, config, "test_3_score") if r["file_name"].endswith("0999.jpg")]
    assert reports["tiles"].counts["test_3_score"]["source_images"] == reports["full"].counts["test_3_score"]["total"]
