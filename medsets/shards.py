"""How a split's rows are laid out in the built folder's Parquet files (the Hub's
data/<config>/<split>-SSSSS-of-NNNNN.parquet).

A streaming `datasets` reader hands whole files to a DataLoader's workers, so a split in fewer files than
workers leaves workers idle (`load_dataset(..., streaming=True)` with `num_workers=8` uses at most as many
workers as files). So a split of more than `ROWS_FOR_WORKERS` rows is written as at least `WORKER_SHARDS`
files, and any split as at least one file per `SHARD_BYTES`, each file holding an equal share of the rows
in their order. What `datasets` wrote (one set of files per worker process, cut at 500 MB) is rewritten
row group by row group, the images' bytes copied as they are, so the files do not depend on `--num-proc`.
"""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow.parquet as pq

WORKER_SHARDS = 8  # a DataLoader's usual worker count
ROWS_FOR_WORKERS = 2000  # splits larger than this are cut into WORKER_SHARDS files at least
SHARD_BYTES = 100 * 2**20  # and no file holds much more than this


def shard_count(rows: int, num_bytes: int) -> int:
    return max(1, math.ceil(num_bytes / SHARD_BYTES), WORKER_SHARDS if rows > ROWS_FOR_WORKERS else 1)


def write_shards(shards: dict[str, list[Path]], target: Path):
    """Each split's rows, in order, as `shard_count` files under `target` (the written files removed)."""
    target.mkdir(parents=True)
    for split, files in shards.items():
        sources = [pq.ParquetFile(f) for f in files]
        rows = sum(s.metadata.num_rows for s in sources)
        count = min(max(rows, 1), shard_count(rows, sum(f.stat().st_size for f in files)))
        names = [target / f"{split}-{index:05d}-of-{count:05d}.parquet" for index in range(count)]
        if count == len(files) == 1:  # already as wanted (a small split: one file); several are re-cut to equal shares
            for source, file, name in zip(sources, files, names):
                source.close()
                file.rename(name)
            continue
        cuts = [rows * (index + 1) // count for index in range(count)]  # rows before the end of each file
        first = sources[0].metadata
        group_rows = first.row_group(0).num_rows if first.num_row_groups else rows
        compression = first.row_group(0).column(0).compression.lower() if first.num_row_groups else "none"
        index, done, writer = 0, 0, None
        try:
            for source in sources:
                for number in range(source.metadata.num_row_groups):
                    table = source.read_row_group(number)
                    while table.num_rows:
                        if writer is None:
                            writer = pq.ParquetWriter(names[index], source.schema_arrow,
                                                      compression="none" if compression == "uncompressed" else compression)
                        part = table.slice(0, cuts[index] - done)
                        writer.write_table(part, row_group_size=group_rows)
                        done, table = done + part.num_rows, table.slice(part.num_rows)
                        if done == cuts[index]:
                            writer.close()
                            writer, index = None, index + 1
                source.close()
        finally:
            if writer is not None:
                writer.close()
        for file in files:
            file.unlink()
