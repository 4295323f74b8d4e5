"""Near-duplicates: the same object imaged again is grouped, look-alikes are not, and the groups reach the
report, the card and the `duplicate_group` column."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from datasets import load_dataset
from PIL import Image
from scipy import ndimage

from medsets import HEp2, synthetic
from medsets.cli import main
from medsets.export import build
from medsets.near_duplicates import CHUNK, Preparation, near_pairs, orient, prepared, signature, thumbnails_of


# -- the search itself, on drawn textures ------------------------------------------------------------------
def textured_blob(rng, size=78, shape=None):
    """A smooth blob of one size (the hard look-alike) with its own fine texture."""
    yy, xx = np.mgrid[0:size, 0:size]
    cy, cx, r = shape or (size / 2, size / 2, size * 0.27)
    blob = (np.hypot(yy - cy, xx - cx) < r).astype(np.float32)
    texture = ndimage.gaussian_filter(rng.standard_normal((size, size)).astype(np.float32), 1.0)
    return ndimage.gaussian_filter(blob * (0.7 + 0.1 * texture / texture.std()), 0.6)


def imaged(cell, rng, *, shift=(0, 0), gain=1.0, gamma=1.0, blur=0.0, orientation=0, jpeg=None):
    image = np.roll(cell, shift, axis=(0, 1))
    image = ndimage.gaussian_filter(image, blur) if blur else image
    image = gain * np.clip(image, 0, None) ** gamma + rng.normal(0.02, 0.02, image.shape)
    picture = Image.fromarray((np.clip(orient(image, orientation), 0, 1) * 255).astype(np.uint8))
    if jpeg:
        buffer = io.BytesIO()
        picture.save(buffer, format="JPEG", quality=jpeg)
        picture = Image.open(buffer)
    return picture


CHANGES = {"shift 3 px": dict(shift=(3, -2)), "exposure and gamma": dict(gain=1.25, gamma=0.85),
           "blur": dict(blur=0.7), "JPEG q75": dict(jpeg=75), "turned 90": dict(orientation=1),
           "mirrored": dict(orientation=4), "turned 270 and mirrored": dict(orientation=7)}


@pytest.mark.parametrize("change", CHANGES)
def test_the_same_object_imaged_again_is_found_among_look_alikes(change):
    rng = np.random.default_rng(7)
    cells = [textured_blob(rng) for _ in range(40)]  # one size, one brightness: look-alikes all
    pictures = [imaged(cell, rng) for cell in cells] + [imaged(cells[3], rng, **CHANGES[change])]
    crops = thumbnails_of([signature(p) for p in pictures])
    pairs = near_pairs(crops)
    assert [(i, j) for i, j, _ in pairs] == [(3, 40)], pairs


def test_look_alikes_alone_make_no_pair():
    rng = np.random.default_rng(1)
    shape = (39.0, 39.0, 21.0)
    pictures = [imaged(textured_blob(rng, shape=shape), rng) for _ in range(60)]
    crops = thumbnails_of([signature(p) for p in pictures])
    assert near_pairs(crops) == []


def test_the_preparation_made_while_rows_are_written_equals_the_one_made_after():
    """What a build prepares in the background (chunk by chunk, as rows are written) is what the search would
    prepare from all signatures at the end: whatever order the rows are read back in, with signatures it
    never saw (a worker process's, equal bytes in another object among them), and a tiled image's signature
    given once per tile."""
    import pickle

    rng = np.random.default_rng(5)
    pictures = [imaged(textured_blob(rng), rng) for _ in range(CHUNK * 2 + 10)]
    signatures = [signature(p) for p in pictures]
    preparation = Preparation()
    try:
        for number, one in enumerate(signatures[:CHUNK * 2 + 5]):
            assert preparation.add(one) == number
            assert preparation.add(one) == number  # the same object again: a tile of the same field, kept once
            assert preparation.signature(number) is one
        assert len(preparation._chunks) == 2  # the rest waits for a full chunk, or for `take`
        order = rng.permutation(len(signatures))
        asked = [signatures[i] if i % 3 else bytes(bytearray(signatures[i])) for i in order]
        descriptors, texture = preparation.take(asked)
    finally:
        preparation.close()
    expected = prepared(thumbnails_of([signatures[i] for i in order]))
    assert np.array_equal(descriptors, expected[0]) and np.array_equal(texture, expected[1])
    inert = pickle.loads(pickle.dumps(preparation))  # as a worker process receives it with its builder
    inert._owner = -1  # as seen from another process
    assert inert.add(signatures[0]) is None  # the worker stores it in the ledger instead
    assert not inert._signatures and not inert._chunks


# -- a build -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hep2_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("near")
    planted = {}
    source = synthetic.write_hep2_icpr2014(root / "raw", "processed", scale=0.05, seed=3, planted=planted)
    folder, report = build(HEp2, source, None, root / "hep2")
    return root, source, planted, folder, report


def groups_of(report_groups) -> set[tuple[int, ...]]:
    return {tuple(sorted(unit["image_id"] for unit in group)) for group in report_groups}


def test_every_reimaged_cell_is_grouped_and_no_look_alike(hep2_build):
    _, _, planted, _, report = hep2_build
    near = groups_of(report.near_duplicates["groups"])
    reimaged = {tuple(sorted(pair)) for pair in planted["reimaged"]}
    assert len(reimaged) == 15 and reimaged <= near  # recall: all of them
    look_alikes = [set(group) for group in planted["lookalikes"]]
    assert len(look_alikes) == 3
    assert not [group for group in near for alike in look_alikes if len(set(group) & alike) > 1]
    assert near == reimaged  # nothing else either: no cell is paired with a look-alike
    assert all(0.5 <= unit["similarity"] <= 1 for group in report.near_duplicates["groups"] for unit in group)


def test_worker_processes_find_the_same_groups(hep2_build, monkeypatch):
    """Rows written by worker processes leave their signatures in the ledger's side files, the parent's
    are kept by its background preparation: a build split between them finds what one process finds."""
    root, source, _, _, report = hep2_build
    # Train (~440 rows) in three jobs, the pool's; validation and test in one each, written by the parent.
    monkeypatch.setattr(HEp2, "RECORDS_PER_JOB", 200)
    _, two = build(HEp2, source, None, root / "hep2-two-processes", num_proc=2)
    assert two.near_duplicates == report.near_duplicates and two.duplicates == report.duplicates


def test_report_card_and_json_say_it_per_split_pair(hep2_build):
    _, _, planted, folder, report = hep2_build
    line = next(line for line in report.render().splitlines() if "near-duplicates:" in line)
    pairs = report.near_duplicates["pairs"]
    assert f"{sum(pairs.values())} near-duplicate pairs" in line
    assert all(f"{n} {where if '-' in where else 'within ' + where}" in line for where, n in pairs.items())
    saved = json.loads((folder / "reports" / "icpr2014.json").read_text())["near_duplicates"]
    assert saved["pairs"] == pairs
    assert set(saved["groups"][0][0]) == {"split", "image_id", "file_name", "similarity"}
    card = (folder / "README.md").read_text()
    assert "near-duplicates:" in card and "**Copies across splits (computed).**" in card
    crossing = sum(n for where, n in pairs.items() if "-" in where)
    assert crossing >= 1, pairs  # about half of the re-imaged pairs cross splits


def test_duplicate_group_loads_with_plain_datasets(hep2_build, tmp_path):
    _, _, planted, folder, report = hep2_build
    ds = load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    group_of = {row["image_id"]: row["duplicate_group"] for split in ds.values()
                for row in split.select_columns(["image_id", "duplicate_group"])}
    for one, again in planted["reimaged"]:
        assert group_of[one] == group_of[again] != -1
    for group in report.duplicates["groups"]:  # pixel-identical copies too
        assert len({group_of[unit["image_id"]] for unit in group}) == 1
    grouped = {i for pair in planted["reimaged"] for i in pair} | {
        unit["image_id"] for group in report.duplicates["groups"] for unit in group}
    assert all(g == -1 for image_id, g in group_of.items() if image_id not in grouped)
    assert ds["train"].features["duplicate_group"].dtype == "int64"


def test_drop_near_keeps_one_of_every_group_and_off_skips_the_search(hep2_build, capsys):
    root, source, planted, _, report = hep2_build
    assert main(["build", "hep2", "--source", str(source), "--out", str(root / "dropped"),
                 "--drop-duplicates", "near"]) == 0
    out = capsys.readouterr().out
    dropped = json.loads((root / "dropped" / "reports" / "icpr2014.json").read_text())["dropped"]
    exact = sum(len(group) - 1 for group in report.duplicates["groups"])
    assert len(dropped) == exact + len(planted["reimaged"])
    assert f"{len(dropped)} copies dropped" in out
    order = ["train", "validation", "test"]
    for group in report.near_duplicates["groups"]:  # the kept copy: the earliest split, then the lowest id
        kept = min(group, key=lambda unit: (order.index(unit["split"]), unit["image_id"]))
        assert kept["image_id"] not in {d["image_id"] for d in dropped}
    ds = load_dataset(str(root / "dropped"), cache_dir=str(root / "cache"))
    assert set(ds["train"]["duplicate_group"]) | set(ds["test"]["duplicate_group"]) == {-1}

    assert main(["build", "hep2", "--source", str(source), "--out", str(root / "off"), "--near-duplicates", "off"]) == 0
    assert "near-duplicates: not looked for (--near-duplicates off)" in capsys.readouterr().out
    off = json.loads((root / "off" / "reports" / "icpr2014.json").read_text())
    assert off["near_duplicates"] == {} and off["duplicates"]["pairs"] == report.duplicates["pairs"]


# -- every builder: the replica's re-imaged copy across splits is found --------------------------------------
def test_leukemia_bis5k_and_gzmh_find_their_replicas_copy(tmp_path):
    from medsets import BIS5k, GZMH, Leukemia
    from medsets.export import build_configs

    cases = [(Leukemia, synthetic.write_leukemia(tmp_path / "cnmc", "kaggle", scale=0.002), "train", "validation"),
             (BIS5k, synthetic.write_bis5k(tmp_path / "bis5k", scale=0.002, size=128), "train", "test"),
             (GZMH, synthetic.write_gzmh(tmp_path / "gzmh", "v2", scale=0.004, size=512), "train", "test_3_score")]
    for builder, source, first, second in cases:
        _, reports = build_configs(builder, source, None, tmp_path / f"out-{builder.__name__}")
        for config, report in reports.items():  # gzmh: tiles and full alike, by whole fields
            groups = report.near_duplicates.get("groups", [])
            assert [sorted(unit["split"] for unit in group) for group in groups] == [sorted([first, second])], (
                builder.__name__, config, groups)
            if config == "tiles":
                ds = load_dataset(str(tmp_path / f"out-{builder.__name__}"), "tiles", split=second,
                                  cache_dir=str(tmp_path / "cache"))
                field = groups[0][1]["image_id"] if groups[0][1]["split"] == second else groups[0][0]["image_id"]
                grouped = {row["source_image_id"] for row in ds if row["duplicate_group"] != -1}
                assert grouped == {field}  # every tile of the copied field carries the group, no other tile


# -- scores without the leak ---------------------------------------------------------------------------------
def test_leak_free_rows_leave_out_every_row_that_shares_a_group_with_what_the_model_saw():
    import datasets

    from medsets.duplicates import without_a_twin
    from medsets.training.splits import leak_free_rows

    assert without_a_twin([-1, 3, 4, 4, 7], [3, -1, 9]) == [0, 2, 3, 4]
    column = lambda groups: datasets.Dataset.from_dict({"duplicate_group": groups})  # noqa: E731
    splits = {"train": column([1, -1, 2]), "validation": column([5]), "test": column([-1, 2, 5, 6, 6])}
    assert leak_free_rows(splits, "test").tolist() == [0, 3, 4]  # a group within test alone is no leak
    assert leak_free_rows({"train": column([1]), "validation": column([1, -1])}, "validation").tolist() == [1]
    assert leak_free_rows({"test": datasets.Dataset.from_dict({"x": [1]})}, "test") is None
