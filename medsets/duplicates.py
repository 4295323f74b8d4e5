"""Duplicates: images of identical pixel content within and across splits, found in every build.

How a build uses this module (builder.MedsetsBuilder._finish_build):
- while rows are written, each row's decoded pixels are hashed (`pixel_hash`) and the hash goes to the
  ledger with the row's other facts; only hashes are held, never images;
- after every split is written, `duplicate_groups` gathers rows of one hash, `duplicate_pairs` counts
  them per split pair, and `duplicates_finding` is the one line of the report and the card;
- with `drop_duplicates=True`, `copies_to_drop` names every copy but the one kept (the earliest split,
  then the lowest image_id) and `drop_rows` rewrites the Parquet shards already written without them.

A "unit" is what duplicates are sought among and dropped as a whole: a row, or for a dataset that cuts
images into tiles, a source image (GZMH: all tiles of a dropped field go).
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image as PILImage


def pixel_hash(image: PILImage.Image) -> str:
    """A hash of the decoded pixels (mode and size included), so that copies differing only in file encoding
    or metadata (a PNG tIME chunk, BMP vs PNG) hash alike."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(f"{image.mode}{image.size}".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()


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
