"""The private parts of `datasets` that medsets relies on, in one place.

medsets builds through `datasets.GeneratorBasedBuilder` and needs four things the library keeps
private: the cache folder a builder was given (`_cache_dir_root`), the folder it is preparing
(`_output_dir`), a hook around the whole preparation (overriding `_download_and_prepare`) and the
bytes a Parquet writer has written so far (`_num_bytes`). Each is read here and nowhere else, so a
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
