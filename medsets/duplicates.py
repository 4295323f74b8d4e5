"""Duplicates: images of identical pixel content within and across splits, found in every build.

How a build uses this module (builder.MedsetsBuilder._finish_build):
- while rows are written, each row's decoded pixels are hashed (`pixel_hash`) and the hash goes to the
  ledger with the row's other facts, its near-duplicate signature (a small grey crop) to the ledger's side
  file (`store_signatures`, read back by `read_signatures`); never whole images;
- after every split is written, `find_copies` does the rest: `duplicate_groups` gathers rows of one hash,
  `duplicate_pairs` counts them per split pair, and `duplicates_finding` is the one line of the report and
  the card;
- `near_groups` adds the same object imaged twice (medsets.near_duplicates finds the pairs): near groups
  are reported beside the exact ones, and both together make the groups of the `duplicate_group` column,
  which `set_duplicate_groups` writes into the shards;
- with `drop_duplicates=True` (or "near"), `copies_to_drop` names every copy but the one kept (the earliest
  split, then the lowest image_id) and `drop_rows` rewrites the Parquet shards already written without them.

A "unit" is what duplicates are sought among and dropped as a whole: a row, or for a dataset that cuts
images into tiles, a source image (GZMH: all tiles of a dropped field go).
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image as PILImage


def pixel_hash(image: PILImage.Image, pixels: bytes | None = None) -> str:
    """A hash of the decoded pixels (mode and size included), so that copies differing only in file encoding
    or metadata (a PNG tIME chunk, BMP vs PNG) hash alike. `pixels`: `image.tobytes()`, if already made."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.mode}{image.size}".encode())
    digest.update(image.tobytes() if pixels is None else pixels)
    return digest.hexdigest()


def array_hash(array) -> str:
    """A hash of an array's values and shape (a decoded mask), to tell two masks apart without keeping them."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{array.dtype}{array.shape}".encode())
    digest.update(array.tobytes())
    return digest.hexdigest()


def target_of(example: dict) -> dict:
    """What a row says about its image, to compare pixel-identical copies: its label (class name) and its
    mask's hash, where it has them."""
    return {key: example[key] for key in ("label", "mask_hash") if example.get(key) is not None}


def conflicting(groups: list[list[dict]]) -> list[str]:
    """Report lines for pixel-identical images whose rows disagree: another label or another mask for the
    same pixels. Either the annotation of one copy is wrong or the image was reused; `--drop-duplicates`
    keeping one of them keeps one annotation without a word, so every build says so."""
    lines = []
    for group in groups:
        targets = [unit.get("target") or {} for unit in group]
        differing = [key for key in ("label", "mask_hash") if len({str(t.get(key)) for t in targets}) > 1]
        if not differing:
            continue
        what = " and ".join({"label": "labels", "mask_hash": "masks"}[key] for key in differing)
        members = ", ".join(f"{u['split']}:{u['file_name']}" + (f" ({t['label']})" if "label" in differing else "")
                            for u, t in zip(group, targets))
        lines.append(f"pixel-identical images with different {what}: {members}")
    return lines


def duplicate_groups(units: list[dict], split_order: list[str]) -> list[list[dict]]:
    """Units of identical pixel content, as groups of two or more: each group in keeping order (split order,
    then image_id), the groups ordered by their first member. A unit is {split, image_id, file_name,
    pixel_hash}."""
    by_hash: dict[str, list[dict]] = defaultdict(list)
    for unit in units:
        by_hash[unit["pixel_hash"]].append(unit)

    def keeping_order(unit):
        return split_order.index(unit["split"]), unit["image_id"]

    groups = [sorted(group, key=keeping_order) for group in by_hash.values() if len(group) > 1]
    return sorted(groups, key=lambda group: keeping_order(group[0]))


def duplicate_pairs(groups: list[list[dict]], split_order: list[str]) -> dict[str, int]:
    """Pixel-identical pairs per split pair ("train" within train, "train-test" across), in split order;
    a group of k images holds k(k-1)/2 pairs."""
    pairs: dict[tuple[int, int], int] = defaultdict(int)
    for group in groups:
        where = [split_order.index(unit["split"]) for unit in group]
        for i, a in enumerate(where):
            for b in where[i + 1:]:
                pairs[(min(a, b), max(a, b))] += 1

    def name(a, b):
        return split_order[a] if a == b else f"{split_order[a]}-{split_order[b]}"

    ordered = sorted(pairs, key=lambda ab: (ab[0] != ab[1], ab))  # within a split first, then across
    return {name(a, b): pairs[(a, b)] for a, b in ordered}


def duplicates_finding(duplicates: dict) -> str:
    """The one line of the report and the card: '194 pixel-identical pairs (194 groups, 388 images): 80
    within train, ..., 54 train-test; 104 cross splits'."""
    pairs, groups = duplicates["pairs"], duplicates["groups"]
    total = sum(pairs.values())
    across = sum(n for where, n in pairs.items() if "-" in where)  # split names are words: no hyphen
    parts = [f"{n} {where if '-' in where else 'within ' + where}" for where, n in pairs.items()]
    images = sum(len(group) for group in groups)
    return (f"{total} pixel-identical pair{'s' if total != 1 else ''} ({len(groups)} group{'s' if len(groups) != 1 else ''},"
            f" {images} images): {', '.join(parts)}; {across} cross splits")


def near_groups(units: list[dict], exact: list[list[dict]], split_order: list[str], preparation=None
                ) -> tuple[list[list[dict]], list[list[dict]]]:
    """(near groups, all groups). Near groups: units joined by near-duplicate pairs (never two pixel-identical
    ones, which are exact copies), each member with its best `similarity` to another member. All groups:
    the exact and near relations together, each in keeping order (split order, then image_id).
    `preparation`: the near_duplicates.Preparation the signatures were handed to while rows were written."""
    from .near_duplicates import near_pairs, pairs_among, thumbnails_of

    searched = [index for index, unit in enumerate(units) if unit.get("near_signature")]
    signatures = [units[index]["near_signature"] for index in searched]
    found = pairs_among(*preparation.take(signatures)) if preparation is not None and len(signatures) > 1 \
        else near_pairs(thumbnails_of(signatures))
    pairs = [(searched[i], searched[j], similarity) for i, j, similarity in found
             if units[searched[i]]["pixel_hash"] != units[searched[j]]["pixel_hash"]
             or units[searched[i]]["pixel_hash"] is None]
    parent = list(range(len(units)))

    def root(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def keeping_order(unit):
        return split_order.index(unit["split"]), unit["image_id"]

    best: dict[int, float] = {}
    for i, j, similarity in pairs:
        parent[root(i)] = root(j)
        best[i], best[j] = max(best.get(i, 0.0), similarity), max(best.get(j, 0.0), similarity)
    members: dict[int, list[int]] = {}
    for index in best:
        members.setdefault(root(index), []).append(index)
    near = [sorted(({**units[i], "similarity": best[i]} for i in group), key=keeping_order)
            for group in members.values()]
    near.sort(key=lambda group: keeping_order(group[0]))
    position = {(unit["split"], unit["image_id"]): index for index, unit in enumerate(units)}
    for group in exact:  # the exact relation joins the same sets
        first = position[(group[0]["split"], group[0]["image_id"])]
        for unit in group[1:]:
            parent[root(position[(unit["split"], unit["image_id"])])] = root(first)
    together: dict[int, list[int]] = {}
    for index in range(len(units)):
        together.setdefault(root(index), []).append(index)
    combined = [sorted((units[i] for i in group), key=keeping_order) for group in together.values() if len(group) > 1]
    combined.sort(key=lambda group: keeping_order(group[0]))
    return near, combined


def without_a_twin(groups, seen_groups) -> list[int]:
    """Positions of the rows (their `duplicate_group` values, -1 for none) that share no group with a row of
    `seen_groups`: the rows a model that saw those never met, as the same pixels or the same object re-imaged."""
    from .schema import NO_GROUP

    seen = {group for group in seen_groups if group != NO_GROUP}
    return [index for index, group in enumerate(groups) if group == NO_GROUP or group not in seen]


def near_duplicates_finding(near: dict) -> str:
    """The report's and the card's line on near-duplicates, as duplicates_finding's."""
    return duplicates_finding(near).replace("pixel-identical pair", "near-duplicate pair")


def set_duplicate_groups(shard_files, splits: list[str], group_of_row: dict[tuple[str, int], int]) -> None:
    """Write each row's group into the `duplicate_group` column of the shards already written (-1 stays for
    rows without a copy); only shards holding a grouped row are rewritten, row group by row group."""
    from .schema import NO_GROUP

    for split in splits:
        mine = {image_id: group for (where, image_id), group in group_of_row.items() if where == split}
        if not mine:
            continue
        ids = pa.array(sorted(mine), pa.int64())
        numbers = pa.array([mine[i] for i in sorted(mine)], pa.int64())
        for shard in shard_files(split):
            source = pq.ParquetFile(shard)
            if not source.metadata.num_row_groups:
                continue
            compression = source.metadata.row_group(0).column(0).compression.lower()
            rewritten = shard.with_name(shard.name + ".grouped")
            with pq.ParquetWriter(rewritten, source.schema_arrow,
                                  compression="none" if compression == "uncompressed" else compression) as writer:
                for index in range(source.metadata.num_row_groups):
                    group = source.read_row_group(index)
                    found = pc.index_in(group["image_id"], value_set=ids)
                    column = pc.if_else(pc.is_valid(found), pc.take(numbers, found),
                                        pa.scalar(NO_GROUP, pa.int64()))
                    position = group.schema.get_field_index("duplicate_group")
                    writer.write_table(group.set_column(position, "duplicate_group", column))
            source.close()
            os.replace(rewritten, shard)


SIGNATURE_KEYS = ("near_signature", "source_near_signature")  # a row's own, a tiled row's source image's


def store_signatures(facts: dict, image, ledger, search: bool, preparation=None) -> dict:
    """The row's facts with its `pixel_hash` and its near-duplicate signature (each made from `image` unless
    the dataset gave it; the signature None when the search is off), the signatures (its own and any source
    image's) stored where `read_signatures` finds them: the facts keep where. That is the `preparation` (a
    near_duplicates.Preparation, which prepares them as they come) in the process that made it, else the
    ledger's side file (a worker process)."""
    from .near_duplicates import signature

    facts = dict(facts)
    # A grey image's bytes serve both: read once (they are most of the cost of each).
    pixels = image.tobytes() if "pixel_hash" not in facts or (search and image.mode == "L") else None
    if "pixel_hash" not in facts:
        facts["pixel_hash"] = pixel_hash(image, pixels)
    if "near_signature" not in facts:
        facts["near_signature"] = signature(image, pixels) if search else None
    for key in SIGNATURE_KEYS:
        if isinstance(facts.get(key), bytes):
            number = preparation.add(facts[key]) if preparation is not None else None
            facts[key] = [PREPARED, number] if number is not None else ledger.blob(facts[key])
    return facts


PREPARED = ""  # in place of a ledger side file's name: the signature is kept by the build's Preparation


def read_signatures(ledger, examples: list[dict], preparation=None) -> None:
    """Each example's signatures back from where they were stored (the ledger's side files, or the
    Preparation that kept them), in place of where."""
    from .near_duplicates import MAX_SIDE

    size = MAX_SIDE * MAX_SIDE
    for key in SIGNATURE_KEYS:
        stored = [ex for ex in examples if isinstance(ex.get(key), list) and ex[key][0] != PREPARED]
        data = ledger.read_blobs([ex[key] for ex in stored], size)
        for index, ex in enumerate(stored):
            ex[key] = data[index * size:(index + 1) * size]
        for ex in examples:
            if isinstance(ex.get(key), list):
                ex[key] = preparation.signature(ex[key][1])


@dataclass
class Copies:
    """What a build found: the report's `duplicates` and `near_duplicates` ({"pairs", "groups"}, empty when
    there are none), every group of copies (exact and near together, in keeping order) and the units dropped."""
    duplicates: dict
    near_duplicates: dict
    groups: list[list[dict]]
    dropped: list[dict]
    conflicts: list[str]  # report lines: pixel-identical images whose labels or masks differ

    def groups_left(self) -> list[list[dict]]:
        """The groups as the built rows hold them: without the dropped units, and none of one unit left."""
        gone = {(unit["split"], unit["image_id"]) for unit in self.dropped}
        left = [[unit for unit in group if (unit["split"], unit["image_id"]) not in gone] for group in self.groups]
        return [group for group in left if len(group) > 1]


def find_copies(units: list[dict], split_order: list[str], *, near: bool, drop: bool | str, preparation=None) -> Copies:
    """Pixel-identical groups, near groups when `near` (the same object imaged twice), and the units to drop:
    none, every exact copy but one (drop True or "exact"), or every exact and near copy but one ("near")."""
    exact = duplicate_groups(units, split_order)
    near_found, together = near_groups(units, exact, split_order, preparation) if near else ([], exact)
    dropped = copies_to_drop(together if drop == "near" else exact) if drop else []
    return Copies(duplicates={"pairs": duplicate_pairs(exact, split_order), "groups": strip(exact)} if exact else {},
                  near_duplicates={"pairs": duplicate_pairs(near_found, split_order),
                                   "groups": strip(near_found, ("pixel_hash",))} if near_found else {},
                  groups=together, dropped=strip([dropped])[0], conflicts=conflicting(exact))


def strip(groups: list[list[dict]], also: tuple[str, ...] = ()) -> list[list[dict]]:
    """Groups as the report keeps them: without the signatures they were found by (nor the keys in `also`)."""
    return [[{key: value for key, value in unit.items() if key not in SIGNATURE_KEYS and key != "target"
              and key not in also} for unit in group] for group in groups]


def copies_to_drop(groups: list[list[dict]]) -> list[dict]:
    """Every member of a group but its first (the earliest split, then the lowest image_id), each with the
    copy that is kept."""
    return [{**unit, "same_as": f"{group[0]['split']}:{group[0]['file_name']}"} for group in groups for unit in group[1:]]


def drop_rows(split_infos, shard_files, gone: set[tuple[str, int]]):
    """Remove rows, given as (split, image_id), from a config's written shards (`shard_files(split)`) and from
    the split infos datasets recorded for them."""
    by_split = defaultdict(set)
    for split, image_id in gone:
        by_split[split].add(image_id)
    for split, image_ids in by_split.items():
        info = split_infos[split]
        lengths = []
        for shard in shard_files(split):
            rows, num_bytes = without_rows(shard, image_ids)
            lengths.append(rows)
            info.num_bytes -= num_bytes
        info.num_examples = sum(lengths)
        if info.shard_lengths:
            info.shard_lengths = lengths
        info.original_shard_lengths = None  # counted before the drop; nothing reads them for a local folder


def without_rows(shard: Path, image_ids: set[int]) -> tuple[int, int]:
    """Rewrite a Parquet shard without the rows of these image ids, row group by row group (memory: one row
    group), keeping its schema and the features datasets stored in it. Returns (rows left, Arrow bytes removed)."""
    source = pq.ParquetFile(shard)
    compression = source.metadata.row_group(0).column(0).compression.lower() if source.metadata.num_row_groups else "none"
    kept_rows = removed_bytes = 0
    rewritten = shard.with_name(shard.name + ".filtered")
    with pq.ParquetWriter(rewritten, source.schema_arrow, compression="none" if compression == "uncompressed" else compression) as writer:
        for index in range(source.metadata.num_row_groups):
            group = source.read_row_group(index)
            dropped = pc.is_in(group["image_id"], value_set=pa.array(sorted(image_ids), pa.int64()))
            kept = group.filter(pc.invert(dropped))
            removed_bytes += group.nbytes - kept.nbytes
            kept_rows += kept.num_rows
            if kept.num_rows:
                writer.write_table(kept)
    source.close()
    os.replace(rewritten, shard)
    return kept_rows, removed_bytes
