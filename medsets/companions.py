"""Companion configs: other configs of a dataset written in the same pass over the download.

GZMH's `tiles` and `full` come from the same 2084 px fields; decoding each field once for both halves
the build. A dataset declares them (`MedsetsBuilder.COMPANION_CONFIGS`: the configs a build naming no
config writes beside the default one) and overrides `_rows(record)` to yield the rows of every config
from one decode. The config being built lists its companions in its `companions` field.

How the rows travel: the default config's rows go through `datasets` as usual; a companion's rows are
written, in each worker process, by a `CompanionWriters` into Parquet files of their own in the build's
cache folder, and each file is recorded in the ledger. After the pass every companion gets a builder of
its own (`companion_builder`) that takes those files as its splits (`take_shards`) and makes its report.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import datasets

from .checks import BuildError
from .datasets_adapter import bytes_written


def check_companions(builder, writes_companions: bool) -> None:
    """Refuse, before any row is written, companions the dataset cannot write in one pass (`writes_companions`:
    whether the dataset overrides `_rows`)."""
    cls = type(builder)
    allowed = {cls.DEFAULT_CONFIG_NAME, *cls.COMPANION_CONFIGS} if cls.COMPANION_CONFIGS else set()
    unknown = [c for c in builder.config.companions
               if c not in allowed or c == builder.config.name or not writes_companions]
    if unknown:
        raise BuildError(f"{builder.name}: config {builder.config.name} cannot be built together with "
                         f"{', '.join(unknown)}" + (f"; one pass builds {', '.join(sorted(allowed))}" if allowed else ""))


def companion_builder(builder, name: str):
    """A builder of another config with the main one's options, to describe the rows written beside it."""
    own = {f.name for f in dataclasses.fields(datasets.BuilderConfig)} | {"companions"}
    options = {f.name: getattr(builder.config, f.name) for f in dataclasses.fields(builder.config) if f.name not in own}
    return type(builder)(config_name=name, data_dir=builder.config.data_dir, cache_dir=builder.cache_root, **options)


def take_shards(companion, splits: list[str], shards: list[dict]) -> None:
    """A companion's splits and shards, from what the workers of the main build wrote."""
    companion.companion_shards = {split: sorted(Path(s["file"]) for s in shards if s["split"] == split)
                                  for split in splits}
    split_dict = datasets.SplitDict(dataset_name=companion.dataset_name)
    for split in splits:
        mine = sorted((s for s in shards if s["split"] == split), key=lambda s: s["file"])
        split_dict.add(datasets.SplitInfo(name=split, num_examples=sum(s["num_examples"] for s in mine),
                                          num_bytes=sum(s["num_bytes"] for s in mine),
                                          shard_lengths=[s["num_examples"] for s in mine] if len(mine) > 1 else None,
                                          dataset_name=companion.dataset_name))
    companion.info.splits = split_dict


class CompanionWriters:
    """In a worker: the rows of the companion configs for one split, each config into its own Parquet
    files (a new one past `max_bytes`), named by the first image id of the job so that their order is the
    records' order whatever process wrote them."""

    def __init__(self, folder, split: str, first_image_id: int, features: dict, batch_sizes: dict, max_bytes: int):
        self.folder, self.split, self.first = Path(folder) if folder else None, split, first_image_id
        self.features, self.batch_sizes, self.max_bytes = features, batch_sizes, max_bytes
        self.open: dict[str, object] = {}
        self.parts: dict[str, int] = defaultdict(int)
        self.done: list[dict] = []

    def write(self, config: str, example: dict):
        from datasets.arrow_writer import ParquetWriter

        writer = self.open.get(config)
        if writer is None:
            path = self.folder / f"{config}-{self.split}-{self.first:012d}-{self.parts[config]:03d}.parquet"
            writer = self.open[config] = ParquetWriter(
                features=self.features[config], path=str(path), writer_batch_size=self.batch_sizes.get(config),
                embed_local_files=True)
            writer.medsets_path = path
        writer.write(example)
        if bytes_written(writer) >= self.max_bytes:
            self._close(config)

    def _close(self, config: str):
        writer = self.open.pop(config)
        num_examples, num_bytes = writer.finalize()
        writer.close()
        self.parts[config] += 1
        self.done.append({"config": config, "split": self.split, "file": str(writer.medsets_path),
                          "num_examples": num_examples, "num_bytes": num_bytes})

    def close(self) -> list[dict]:
        for config in list(self.open):
            self._close(config)
        return self.done
