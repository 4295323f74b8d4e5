"""Each split in enough Parquet files for a DataLoader's workers, the same whatever --num-proc was."""

import pyarrow.parquet as pq
from datasets import load_dataset

from medsets import HEp2, shards, synthetic
from medsets.export import build
from medsets.shards import ROWS_FOR_WORKERS, SHARD_BYTES, WORKER_SHARDS, shard_count


def test_the_count_follows_rows_and_bytes_only():
    assert shard_count(ROWS_FOR_WORKERS, 1000) == 1  # a small split stays one file
    assert shard_count(ROWS_FOR_WORKERS + 1, 1000) == WORKER_SHARDS
    assert shard_count(100, 5 * SHARD_BYTES + 1) == 6  # large images: one file per 100 MB


def test_a_large_split_streams_to_eight_workers_whatever_num_proc(tmp_path, monkeypatch):
    # The rule at a smaller size, so that the replica builds in seconds (the count itself is tested above).
    monkeypatch.setattr(shards, "ROWS_FOR_WORKERS", 100)
    source = synthetic.write_hep2_icpr2014(tmp_path / "raw", "processed", scale=0.02)  # train ~170, test ~55
    built = {}
    for num_proc in (1, 2):
        folder, report = build(HEp2, source, "icpr2014", tmp_path / f"hep2-{num_proc}", num_proc=num_proc,
                               near_duplicates=False)
        assert report.counts["train"]["total"] > shards.ROWS_FOR_WORKERS > report.counts["test"]["total"]
        files = sorted((folder / "data" / "icpr2014").glob("train-*.parquet"))
        assert [f.name for f in files] == [f"train-{i:05d}-of-00008.parquet" for i in range(8)]
        built[num_proc] = [pq.read_table(f, columns=["image_id"])["image_id"].to_pylist() for f in files]
        assert max(map(len, built[num_proc])) - min(map(len, built[num_proc])) <= 1  # equal shares
        assert len(list((folder / "data" / "icpr2014").glob("test-*.parquet"))) == 1  # a small split: one file
    assert built[1] == built[2]  # the same rows in the same files, in order
    streamed = load_dataset(str(tmp_path / "hep2-1"), "icpr2014", split="train", streaming=True)
    assert streamed.num_shards == WORKER_SHARDS  # what a DataLoader's workers share out
