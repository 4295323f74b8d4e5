"""The private parts of `datasets` that medsets relies on, in one place.

medsets builds through `datasets.GeneratorBasedBuilder` and needs five things the library keeps
private: the cache folder a builder was given (`_cache_dir_root`), the folder it is preparing
(`_output_dir`), a hook around the whole preparation (overriding `_download_and_prepare`), the
bytes a Parquet writer has written so far (`_num_bytes`), and the tables its Parquet reader yields
(`_generate_tables`, to count a folder's sizes as datasets will). Each is read here and nowhere else, so a
`datasets` release that renames one breaks this module alone, and `SUPPORTED` below says which releases
were tested: tests/test_datasets_range.py builds and loads a replica with the oldest and the newest.
"""

from __future__ import annotations

import datasets

# The releases of `datasets` tested (pyproject.toml declares the same range).
SUPPORTED = (">=4.0", "<6")
OLDEST_TESTED = "4.0.0"


class PrepareHooks:
    """Mixed into a GeneratorBasedBuilder: `before_prepare()` runs before any split is generated,
    `after_prepare(succeeded)` after all of them (also when generating failed, with False), both in the
    process that called download_and_prepare."""

    def _download_and_prepare(self, dl_manager, verification_mode, **prepare_split_kwargs):
        self.before_prepare()
        succeeded = False
        try:
            super()._download_and_prepare(dl_manager, verification_mode, **prepare_split_kwargs)
            succeeded = True
        finally:
            self.after_prepare(succeeded)

    def before_prepare(self):
        pass

    def after_prepare(self, succeeded: bool):
        pass

    @property
    def cache_root(self) -> str:
        """The cache folder the builder was given (cache_dir=), which holds everything it writes."""
        return self._cache_dir_root

    @property
    def output_dir(self) -> str:
        """The folder download_and_prepare is writing (output_dir=, or one inside the cache)."""
        return self._output_dir

    @property
    def writer_batch_size(self) -> int | None:
        return self._writer_batch_size

    @writer_batch_size.setter
    def writer_batch_size(self, rows: int | None):
        self._writer_batch_size = rows  # rows per Arrow record batch, hence per Parquet row group


def bytes_written(writer: "datasets.arrow_writer.ArrowWriter") -> int:
    """Bytes a datasets ParquetWriter/ArrowWriter has written so far (to start a new shard past a size)."""
    return writer._num_bytes


def prepared_sizes(folder, files_of_split: dict[str, list[str]]) -> dict:
    """The sizes datasets computes when it prepares a config of a Parquet folder (`load_dataset(folder,
    config)`): each split's bytes as its Parquet builder reads the files and its ArrowWriter counts them
    (one-row tables pooled up to the writer's batch size, a new writer past the largest shard size: the
    count depends on how tables are grouped), the dataset size (the sum over the splits, a union of other
    splits counted again) and the download size (each file once). Reads every row once, a batch at a
    time, and writes nothing (the writer's stream is the null device)."""
    import inspect
    import os
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets.arrow_writer import ArrowWriter
    from datasets.packaged_modules.parquet.parquet import Parquet
    from datasets.utils.py_utils import convert_file_size_to_int

    folder = Path(folder)
    largest_shard = convert_file_size_to_int(datasets.config.MAX_SHARD_SIZE)
    splits = {}
    for split, files in files_of_split.items():
        paths = [str(folder / f) for f in files]
        features = datasets.Features.from_arrow_schema(pq.read_schema(paths[0]))
        reader = Parquet(cache_dir=None, data_files={split: paths}, features=features)
        with open(os.devnull, "wb") as null:
            def writer():
                return ArrowWriter(features=features, stream=pa.PythonFile(null, mode="w"))
            current, total = writer(), 0
            # datasets 5 takes the files and each one's row groups (None: all); 4.x a list of groups of files.
            takes_row_groups = len(inspect.signature(reader._generate_tables).parameters) > 1
            for _, table in reader._generate_tables(*([paths, [None] * len(paths)] if takes_row_groups else [[paths]])):
                if current._num_bytes > largest_shard:
                    total += current.finalize(close_stream=False)[1]
                    current = writer()
                current.write_row(table) if len(table) == 1 else current.write_table(table)
            total += current.finalize(close_stream=False)[1]
        splits[split] = total
    unique = {f for files in files_of_split.values() for f in files}
    return {"splits": splits, "dataset_size": sum(splits.values()),
            "download_size": sum((folder / f).stat().st_size for f in unique)}
