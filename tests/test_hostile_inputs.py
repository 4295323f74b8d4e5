"""A hostile tester's third round: inputs that reach the edges of the build machinery. Each ends in exit 2
with one message naming what is wrong (never a traceback), and nothing outside the build's own files is
touched."""

from __future__ import annotations

import json
import os

import pytest

from medsets import synthetic
from medsets.cli import main


def cli(*args) -> int:
    return main([str(a) for a in args])


def said(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


def test_a_symlink_planted_as_the_lock_file_is_refused_and_its_target_untouched(tmp_path, replicas, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out" / "hep2"
    out.parent.mkdir()
    (out.parent / ".hep2.medsets-lock").symlink_to("../victim.txt")
    assert cli("build", "hep2", "--source", replicas("processed"), "--out", out) == 2
    err = said(capsys)
    assert "symbolic link" in err and ".hep2.medsets-lock" in err
    assert victim.read_text() == "precious\n" and not out.exists()


def test_a_lock_file_that_is_not_a_plain_file_is_refused(tmp_path, replicas, capsys):
    os.mkfifo(tmp_path / ".hep2.medsets-lock")
    assert cli("build", "hep2", "--source", replicas("processed"), "--out", tmp_path / "hep2") == 2
    assert "not a plain file" in said(capsys)


def test_an_output_inside_the_source_is_refused_before_any_work(tmp_path, capsys):
    source = synthetic.write_hep2_icpr2014(tmp_path / "raw", "processed", scale=0.003)
    before = sorted(p.relative_to(source) for p in source.rglob("*"))
    assert cli("build", "hep2", "--source", source, "--out", source / "built") == 2
    assert "inside the source" in said(capsys)
    assert sorted(p.relative_to(source) for p in source.rglob("*")) == before


def test_a_source_inside_the_output_folder_is_refused(tmp_path, capsys):
    source = synthetic.write_hep2_icpr2014(tmp_path / "out" / "raw", "processed", scale=0.003)
    assert cli("build", "hep2", "--source", source, "--out", tmp_path / "out", "--overwrite") == 2
    assert "inside the output folder" in said(capsys) and source.is_dir()


def test_a_source_that_is_a_loop_of_symbolic_links(tmp_path, capsys):
    (tmp_path / "a").symlink_to(tmp_path / "b")
    (tmp_path / "b").symlink_to(tmp_path / "a")
    assert cli("build", "hep2", "--source", tmp_path / "a", "--out", tmp_path / "hep2") == 2
    assert "cannot be followed" in said(capsys)


@pytest.mark.parametrize("num_proc", ["0", "-1", "two"])
def test_a_number_of_processes_below_one_is_refused(tmp_path, replicas, capsys, num_proc):
    with pytest.raises(SystemExit) as stopped:
        cli("build", "hep2", "--source", replicas("processed"), "--out", tmp_path / "hep2", "--num-proc", num_proc)
    assert stopped.value.code == 2 and "--num-proc" in said(capsys)


def test_the_python_api_refuses_it_too(tmp_path, replicas):
    from medsets import BuildError, HEp2
    from medsets.export import build

    with pytest.raises(BuildError, match="num_proc=0"):
        build(HEp2, replicas("processed"), None, tmp_path / "hep2", num_proc=0)


def test_every_problem_of_a_failed_build_is_listed_in_a_file_beside_the_output(tmp_path, capsys):
    """The message names 8 problems of a kind; the other ones must be findable too."""
    source = synthetic.write_hep2_icpr2014(tmp_path / "raw", "organisers", scale=0.005)
    train = source / "ICIP2013_training_1.0" / "train"
    broken = sorted(p for p in train.glob("*.png") if not p.stem.endswith("_Mask"))[:27]
    for path in broken:
        path.write_bytes(path.read_bytes()[:100])
    out = tmp_path / "hep2"
    assert cli("build", "hep2", "--source", source, "--out", out) == 2
    err = said(capsys)
    listing = tmp_path / ".hep2.medsets-problems.tsv"
    assert "and 19 more" in err and str(listing) in err and "All 27 problems" in err
    rows = listing.read_text().splitlines()
    assert rows[0] == "kind\tfile\tdetail" and len(rows) == 28
    assert {row.split("\t")[1].rsplit("/", 1)[-1] for row in rows[1:]} == {p.name for p in broken}
    assert not out.exists()
    # A later build that succeeds removes the list, which no longer describes the folder beside it.
    assert cli("build", "hep2", "--source", source, "--out", out, "--skip-bad") == 0
    assert not listing.exists()


def test_a_server_answering_html_instead_of_the_hub(replicas, tmp_path, monkeypatch, capsys):
    """A captive portal or a proxy answers 200 with a web page: a clear error, the token never shown."""
    import httpx2
    from huggingface_hub import constants
    from huggingface_hub.utils import _http

    from medsets import HEp2
    from medsets.export import build

    folder, _ = build(HEp2, replicas("processed"), "icpr2014", tmp_path / "hep2")
    token = "hf_not_a_real_token_9876543210"
    monkeypatch.setenv("HF_TOKEN", token)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    page = httpx2.Response(200, text="<html><body>Please log in to the network</body></html>",
                           headers={"content-type": "text/html"})
    _http.set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(lambda request: page)))
    try:
        assert cli("push", folder, "--repo", "org/hep2") == 2
    finally:
        _http.set_client_factory(_http.default_client_factory)
    err = said(capsys)
    assert "not the Hub's" in err and "HF_ENDPOINT" in err and token not in err


# -- tiling parameters that once passed validation ------------------------------------------------------------
def test_tile_starts_always_end_and_never_repeat():
    from medsets.objects import tile_starts

    with pytest.raises(ValueError, match="cannot start on a 16 px block grid"):
        tile_starts(1040, 512, 500, 16)  # once an endless search
    for length, tile, overlap, grid in [(1040, 512, 496, 16), (2084, 512, 64, 16), (270, 64, 56, 8), (97, 64, 0, 16)]:
        starts = tile_starts(length, tile, overlap, grid)
        assert starts == sorted(set(starts)) and starts[-1] == max(0, length - tile)
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:]))


@pytest.mark.parametrize(("size", "overlap", "tile_format", "says"), [
    (512, 500, "jpeg", "closer than the JPEG block grid (16 px)"),
    (128, 127, "png", "into 3,829,849 tiles (at most 2,500)"),
    (64, 62, "png", "into 1,022,121 tiles (at most 2,500)"),
])
def test_tilings_that_never_end_or_make_millions_of_tiles_are_refused_up_front(tmp_path, capsys, size, overlap,
                                                                                tile_format, says):
    source = synthetic.write_gzmh(tmp_path / "raw", "v2", scale=0.002, size=270)
    assert cli("build", "gzmh", "--config", "tiles", "--source", source, "--out", tmp_path / "gzmh",
               "--tile-size", size, "--tile-overlap", overlap, "--tile-format", tile_format) == 2
    assert says in said(capsys) and not (tmp_path / "gzmh").exists()


def test_a_field_far_larger_than_published_is_a_problem_not_colliding_ids(tmp_path, capsys, monkeypatch):
    """Tile ids are the field's id * 10,000 + the tile's number: a field cut into more tiles than the bound
    (judged on the published 2084 px fields) is named, never written with ids shared with another field.
    The bound is lowered here so that small replica fields exceed it."""
    from medsets.builders import gzmh

    monkeypatch.setattr(gzmh, "MAX_TILES_PER_IMAGE", 20)
    monkeypatch.setattr(gzmh, "FIELD_SIDE", 300)
    source = synthetic.write_gzmh(tmp_path / "raw", "v2", scale=0.002, size=768)
    assert cli("build", "gzmh", "--config", "tiles", "--source", source, "--out", tmp_path / "gzmh",
               "--tile-size", 128, "--tile-overlap", 16, "--tile-format", "png", "--num-proc", 1) == 2
    err = said(capsys)
    assert "too many tiles" in err and "768x768 px would make 49 tiles of 128 px (at most 20)" in err


# -- a split that --skip-bad empties ----------------------------------------------------------------------------
def test_a_split_emptied_by_skip_bad_is_left_out_and_the_folder_loads(tmp_path, capsys):
    from datasets import load_dataset

    source = synthetic.write_hep2_icpr2014(tmp_path / "raw", "processed", scale=0.003)
    for path in source.rglob("*.png"):
        if "test" in path.parts:
            path.write_bytes(path.read_bytes()[:100])
    out = tmp_path / "hep2"
    assert cli("build", "hep2", "--source", source, "--out", out, "--skip-bad") == 0
    assert "test: no rows left" in capsys.readouterr().out
    loaded = load_dataset(str(out), "icpr2014")
    assert sorted(loaded) == ["train", "validation"] and loaded["train"].num_rows > 0
    assert not list((out / "data" / "icpr2014").glob("test-*"))
    warnings = json.loads((out / "reports" / "icpr2014.json").read_text())["warnings"]
    assert any(w.startswith("test: no rows left") for w in warnings)


def test_a_build_that_would_keep_no_row_at_all_is_refused(tmp_path, capsys):
    source = synthetic.write_hep2_icpr2014(tmp_path / "raw", "processed", scale=0.003)
    for path in source.rglob("*.png"):
        path.write_bytes(path.read_bytes()[:100])
    assert cli("build", "hep2", "--source", source, "--out", tmp_path / "hep2", "--skip-bad") == 2
    assert "no rows are left in any split" in said(capsys) and not (tmp_path / "hep2").exists()


# -- copies that disagree ---------------------------------------------------------------------------------------
def test_pixel_identical_cells_with_different_labels_are_reported_dropped_or_not(tmp_path, capsys):
    source = synthetic.write_hep2_icpr2014(tmp_path / "raw", "processed", scale=0.003)
    labels = dict(line.split(",") for line in (source / "gt_training.csv").read_text().splitlines()[1:])
    golgi = next(cell for cell, label in labels.items() if label == "Golgi")
    homogeneous = next(cell for cell, label in labels.items() if label == "Homogeneous")
    files = {p.stem: p for p in source.rglob("*.png")}
    files[homogeneous].write_bytes(files[golgi].read_bytes())  # a Golgi cell's pixels under a homogeneous label
    for extra in ([], ["--drop-duplicates"]):
        out = tmp_path / f"hep2{len(extra)}"
        assert cli("build", "hep2", "--source", source, "--out", out, *extra) == 0
        printed = capsys.readouterr().out
        assert "pixel-identical images with different labels" in printed
        line = next(w for w in json.loads((out / "reports" / "icpr2014.json").read_text())["warnings"]
                    if w.startswith("pixel-identical images with different labels"))
        assert f"{golgi}.png (golgi)" in line and f"{homogeneous}.png (homogeneous)" in line


def test_pixel_identical_fields_with_different_masks_are_reported(tmp_path, capsys):
    source = synthetic.write_gzmh(tmp_path / "raw", "v1", scale=0.002, size=256)
    train = source / "GZMH" / "train"
    (train / "0002.png").write_bytes((train / "0001.png").read_bytes())  # same pixels, 0002's own mask
    assert cli("build", "gzmh", "--source", source, "--out", tmp_path / "gzmh", "--num-proc", 1) == 0
    printed = capsys.readouterr().out
    assert "pixel-identical images with different masks: train:GZMH/train/0001.png, train:GZMH/train/0002.png" in printed


# -- EXIF orientation: an image stored upright takes its mask with it ---------------------------------------
def with_orientation(path, tag: int):
    """The same pixels, saved again with an EXIF orientation tag (as a camera or phone would)."""
    from PIL import Image

    picture = Image.open(path)
    picture.load()
    exif = picture.getexif()
    exif[0x0112] = tag
    picture.save(path, exif=exif.tobytes())


def mean_under(image, mask) -> float:
    import numpy as np

    grey, inside = np.asarray(image.convert("L"), float), np.asarray(mask) > 0
    return float(grey[inside].mean())


@pytest.mark.parametrize("tag", [6, 3])
def test_a_gzmh_field_with_an_exif_orientation_keeps_its_mask_on_its_mitoses(tmp_path, capsys, tag):
    from datasets import load_dataset
    from PIL import Image

    source = synthetic.write_gzmh(tmp_path / "raw", "v1", scale=0.002, size=256)
    field, mask = source / "GZMH" / "train" / "0001.png", source / "GZMH" / "train" / "0001_mask.png"
    as_drawn = mean_under(Image.open(field), Image.open(mask))  # mitoses are dark: low grey under the mask
    with_orientation(field, tag)
    out = tmp_path / "gzmh"
    assert cli("build", "gzmh", "--config", "full", "--source", source, "--out", out, "--num-proc", 1) == 0
    assert f"1 images carry an EXIF orientation tag (tag: images, {tag}: 1)" in capsys.readouterr().out
    row = next(r for r in load_dataset(str(out), "full", split="train") if r["file_name"].endswith("0001.png"))
    assert mean_under(row["image"], row["label"]) == pytest.approx(as_drawn, abs=0.5)


def test_a_hep2_cell_with_an_exif_orientation_keeps_its_mask(tmp_path, capsys):
    from datasets import load_dataset
    from PIL import Image

    source = synthetic.write_hep2_icpr2014(tmp_path / "raw", "organisers", scale=0.005)
    train = source / "ICIP2013_training_1.0" / "train"
    cell = sorted(p for p in train.glob("*.png") if not p.stem.endswith("_Mask"))[0]
    mask = cell.with_name(f"{cell.stem}_Mask.png")
    as_drawn = mean_under(Image.open(cell), Image.open(mask))
    with_orientation(cell, 8)
    out = tmp_path / "hep2"
    assert cli("build", "hep2", "--source", source, "--out", out) == 0
    assert "EXIF orientation tag (tag: images, 8: 1)" in capsys.readouterr().out
    row = next(r for r in load_dataset(str(out), "icpr2014", split="train") if r["file_name"].endswith(cell.name))
    assert mean_under(row["image"], row["mask"]) == pytest.approx(as_drawn, abs=0.5)


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA"])
def test_gzmh_fields_in_other_modes_are_stored_rgb_in_both_configs(tmp_path, capsys, mode):
    from datasets import load_dataset
    from PIL import Image

    source = synthetic.write_gzmh(tmp_path / "raw", "v1", scale=0.002, size=256)
    field = source / "GZMH" / "train" / "0001.png"
    as_found = Image.open(field).convert(mode)
    if mode == "CMYK":  # PNG cannot hold CMYK: a JPEG, as some scanners write
        field.unlink()
        field = field.with_suffix(".jpg")
        as_found.save(field, quality=95)
    else:
        as_found.save(field)
    out = tmp_path / "gzmh"
    assert cli("build", "gzmh", "--source", source, "--out", out, "--num-proc", 1) == 0
    assert f"1 images were not RGB ({mode}: 1): stored converted to RGB" in capsys.readouterr().out
    for config in ("full", "tiles"):
        assert {row["image"].mode for row in load_dataset(str(out), config, split="train")} == {"RGB"}


# -- a full disk, with worker processes -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gzmh_fields(tmp_path_factory):
    return synthetic.write_gzmh(tmp_path_factory.mktemp("gzmh") / "raw", "v2", scale=0.01, size=768)


def test_a_full_disk_in_a_worker_process_is_a_clear_error(gzmh_fields, tmp_path, capsys, digest, monkeypatch):
    """A worker's OSError reaches the build as the text of its traceback (multiprocessing sends that, not the
    error): it must still end in exit 2 naming the disk, not in datasets' DatasetGenerationError."""
    import errno

    import pyarrow.parquet as pq

    out = tmp_path / "gzmh"
    assert cli("build", "gzmh", "--config", "full", "--source", gzmh_fields, "--out", out, "--num-proc", 2) == 0
    before = digest(out)

    def no_space(self, *args, **kwargs):  # inherited by the forked workers
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", no_space)
    capsys.readouterr()
    assert cli("build", "gzmh", "--source", gzmh_fields, "--out", out, "--num-proc", 2, "--overwrite") == 2
    err = said(capsys)
    assert "No space left on device" in err and "Free some disk space" in err and "DatasetGenerationError" not in err
    assert digest(out) == before and sorted(p.name for p in tmp_path.iterdir()) == ["gzmh"]


@pytest.fixture
def small_disk(tmp_path):
    """A 5 MB file system of its own (tmpfs), where mounting one is allowed (root on Linux); skipped elsewhere."""
    import subprocess

    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a small file system needs root")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_really_full_disk_ends_in_exit_2_with_two_workers_every_time(gzmh_fields, small_disk, capsys):
    for fill in (1_400_000, 2_800_000, 4_200_000, 6_000_000):  # the last fills it before the build starts
        for leftover in small_disk.iterdir():
            leftover.unlink()
        with open(small_disk / "filler", "wb") as handle:
            try:
                handle.write(os.urandom(fill))
            except OSError:
                pass  # full
        assert cli("build", "gzmh", "--source", gzmh_fields, "--out", small_disk / "gzmh", "--num-proc", 2) == 2
        err = said(capsys)
        assert "No space left on device" in err, err
        assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no lock, no work folder, no output


# -- the MIVIA Main_Dataset and contest folders ------------------------------------------------------------------
def mivia(path, parts=("main",)):
    from test_hep2_slides import replica

    return replica(path, parts=parts)


def edit_first_cell_row(csv_path, edit):
    lines = csv_path.read_text().splitlines()
    row = next(i for i, line in enumerate(lines) if line.split(";")[4:5] == ["cell"])
    fields = lines[row].split(";")
    edit(fields)
    lines[row] = ";".join(fields)
    csv_path.write_text("\n".join(lines) + "\n")
    return row + 1


def bmp_claiming(path, width, height):
    """The slide's BMP with a header claiming another size (the pixel data left as it was)."""
    import struct

    data = bytearray(path.read_bytes())
    data[18:26] = struct.pack("<ii", width, height)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("fault", ["empty csv", "type typo", "fractional bound", "infinite bound", "huge bound",
                                   "header claims 40000x30000"])
def test_main_dataset_files_that_would_build_silently_wrong_are_problems(tmp_path, capsys, fault):
    source = mivia(tmp_path / "raw")
    slide = source / "Main_Dataset" / "Images" / "02"
    if fault == "empty csv":
        (slide / "02.csv").write_text((slide / "02.csv").read_text().splitlines()[0] + "\n")
        says = "no cell rows (0 rows of other types): slide 2 would have no cells"
    elif fault == "type typo":
        line = edit_first_cell_row(slide / "02.csv", lambda f: f.__setitem__(4, "Cel"))
        says = f"line {line}: type 'Cel' is close to 'cell' but not it"
    elif fault == "header claims 40000x30000":
        bmp_claiming(slide / "02.bmp", 40000, 30000)
        says = "exceeds limit"
    else:
        bound = {"fractional bound": "423.9", "infinite bound": "inf", "huge bound": "1e400"}[fault]
        line = edit_first_cell_row(slide / "02.csv", lambda f: f.__setitem__(8, bound))
        says = f"line {line}: id and bounds must be whole numbers"
    for config in ("icpr2012_slides", "icpr2012"):
        assert cli("build", "hep2", "--config", config, "--source", source, "--out", tmp_path / config) == 2
        err = said(capsys)
        assert says in err and "Main_Dataset/Images/02/02." in err, err


def test_main_dataset_rows_of_other_types_and_unlisted_masks_are_reported(tmp_path, capsys):
    source = mivia(tmp_path / "raw")
    masks = source / "Main_Dataset" / "Cells" / "Cell_Masks" / "02"
    (masks / "999.png").write_bytes(sorted(masks.iterdir())[0].read_bytes())  # a mask of no listed cell
    assert cli("build", "hep2", "--config", "icpr2012_slides", "--source", source, "--out", tmp_path / "hep2") == 0
    printed = capsys.readouterr().out
    assert "rows whose type is not 'cell', left out as not cells: 'mitotic':" in printed
    assert "slide 2: 1 cell masks or crops name ids its 02.csv lacks (ignored): 999" in printed


def test_an_empty_crop_size_mask_and_crops_larger_than_their_boxes_are_problems(tmp_path, capsys):
    """Crops from Cells/Cell_Images larger than their boxes, masks at slide size: the mask cut to the box no
    longer fits its image (once an IndexError in the sample picture); an all-zero mask at crop size once gave
    area 0 and a NaN centroid."""
    from PIL import Image

    source = mivia(tmp_path / "raw")
    root = source / "Main_Dataset"
    rows = [line.split(";") for line in (root / "Images" / "02" / "02.csv").read_text().splitlines()[1:]]
    first, second = [r for r in rows if r[4] == "cell"][:2]
    crop = root / "Cells" / "Cell_Images" / "02" / f"{int(first[1]):03d}.png"
    width, height = int(first[8]) - int(first[6]) + 1, int(first[9]) - int(first[7]) + 1
    Image.new("RGB", (width + 6, height + 6), (40, 90, 40)).save(crop)  # larger than its box
    empty = root / "Cells" / "Cell_Masks" / "02" / f"{int(second[1]):03d}.png"
    Image.new("L", (int(second[8]) - int(second[6]) + 1, int(second[9]) - int(second[7]) + 1)).save(empty)
    assert cli("build", "hep2", "--config", "icpr2012", "--source", source, "--out", tmp_path / "hep2") == 2
    err = said(capsys)
    assert f"its image {crop.relative_to(source).as_posix()}" in err or f"{crop.name} is {width + 6}x{height + 6}" in err, err
    assert f"{empty.relative_to(source).as_posix()}: the mask is empty" in err


def test_contest_cells_missing_from_the_info_file_or_cells_csv_are_reported(tmp_path, capsys):
    source = mivia(tmp_path / "raw", parts=("contest",))
    contest = next(source.rglob("cells.csv")).parent
    cells_csv = contest / "cells.csv"
    lines = cells_csv.read_text().splitlines()
    dropped = next(line for line in lines if line.split(";")[1:2] == ["training"])
    cells_csv.write_text("\n".join(line for line in lines if line != dropped) + "\n")
    info = next(p for p in (contest / "training").iterdir() if p.suffix == ".csv" and p.name != "gt_training.csv")
    info_lines = info.read_text().splitlines()
    info.write_text("\n".join(info_lines[:1] + info_lines[2:]) + "\n")  # the first cell's row gone
    assert cli("build", "hep2", "--config", "icpr2012", "--source", source, "--out", tmp_path / "hep2") == 0
    printed = capsys.readouterr().out
    assert f"no row for 1 train cells, intensity left empty for them: {int(info_lines[1].split(';')[0])}" in printed
    assert f"cells.csv: no row for 1 train cells, specimen left empty for them: {int(dropped.split(';')[0])}" in printed


@pytest.mark.parametrize("fault", ["infinite bound", "header claims 40000x30000"])
def test_main_dataset_faults_beside_the_contest_folder_are_cross_check_findings(tmp_path, capsys, fault):
    """With the contest folder beside it, `icpr2012` builds the contest's cells and only cross-checks
    Main_Dataset: its faults are findings in the report, never a crash (once an OverflowError or a
    DecompressionBombError traceback)."""
    source = mivia(tmp_path / "raw", parts=("contest", "main"))
    slide = source / "Main_Dataset" / "Images" / "02"
    if fault == "infinite bound":
        edit_first_cell_row(slide / "02.csv", lambda f: f.__setitem__(8, "1e400"))
        says = "02.csv: line"
    else:
        bmp_claiming(slide / "02.bmp", 40000, 30000)
        says = "Main_Dataset/Images/02/02.bmp: Image size"
    assert cli("build", "hep2", "--config", "icpr2012", "--source", source, "--out", tmp_path / "hep2") == 0
    printed = capsys.readouterr().out
    assert "cross-check with Main_Dataset/" in printed and says in printed, printed


def test_a_split_emptied_by_drop_duplicates_is_left_out_too(tmp_path, capsys):
    from datasets import load_dataset

    source = synthetic.write_hep2_icpr2014(tmp_path / "raw", "processed", scale=0.003)
    train = sorted(p for p in source.rglob("*.png") if "train" in p.parts[-2])
    for number, path in enumerate(sorted(p for p in source.rglob("*.png") if "test" in p.parts[-2])):
        path.write_bytes(train[number % len(train)].read_bytes())  # every test cell a copy of a training cell
    out = tmp_path / "hep2"
    assert cli("build", "hep2", "--source", source, "--out", out, "--drop-duplicates") == 0
    assert "test: no rows left" in capsys.readouterr().out
    assert sorted(load_dataset(str(out), "icpr2014")) == ["train", "validation"]


def test_a_missing_source_is_said_before_anything_about_the_output(replicas, tmp_path, capsys):
    out = tmp_path / "hep2"
    assert cli("build", "hep2", "--source", replicas("processed"), "--out", out) == 0
    capsys.readouterr()
    assert cli("build", "hep2", "--source", tmp_path / "no-such-download", "--out", out) == 2  # no --overwrite either
    err = said(capsys)
    assert "no-such-download: no such file or folder" in err and "--overwrite" not in err
