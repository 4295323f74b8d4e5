"""What every medsets builder shares; a dataset module only describes its source.

A dataset module subclasses `MedsetsBuilder`, states its source's facts as class attributes (classes,
published counts, the layouts it knows, split-folder names beyond the usual ones, card notes) and provides
- `_info()` with its Features (from `schema`),
- `_scan(source)` -> `Scan`: which published layout this is, the records of each split, the
  structural problems found (missing files, unknown labels, ...) and the published counts,
and may override `_examples(record)` when its rows are not classification rows. The layout search it
needs (suffixes, split names and order, images/ + masks/ pairing, image ids, the not-found message) is
in `layout` and in the helpers below.

The base class turns records into examples with the per-example checks (image decodes, mask size),
collects every problem from every worker process, and after all splits are written either raises one
`BuildError` listing all of them or, with `skip_bad=True`, leaves the bad rows out and records them
in `self.report`.
"""

from __future__ import annotations

import abc
import dataclasses
import os
import re
import shutil
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import layout
from .checks import (BuildError, BuildReport, Ledger, Problem, PublishedCounts, compare_counts, copies_to_drop,
                     counted_parts, coverage_stats, duplicate_groups, duplicate_pairs, group_overlap, size_stats,
                     stray_mask_values, tally)
from .schema import UnreadableImage, image_value, mask_value, pixel_hash
from .layout import LayoutNotFound
from .source import Source, SourceError, UnreadableFile


@dataclass
class MedsetsConfig(datasets.BuilderConfig):
    # Build without the rows that fail a check, recording each one, instead of refusing to build.
    skip_bad: bool = False
    # Keep one image of each group of pixel-identical images (the first in split order, then by image_id)
    # and list the others as dropped; off by default, so that the published splits stay comparable.
    drop_duplicates: bool = False
    # Other configs of the dataset written in the same pass over the download (each image decoded once for
    # all of them); see `BUILT_TOGETHER` and `companions`.
    also_build: tuple[str, ...] = ()


@dataclass
class Scan:
    layout: str  # human-readable name of the detected variant, goes into the report and card
    splits: dict[str, list[dict]]  # split -> records, in a stable order
    problems: list[Problem] = field(default_factory=list)
    published: PublishedCounts = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def canonical(value: str, names: list[str], aliases: dict[str, str] | None = None) -> str | None:
    """Match a label spelling case- and separator-insensitively against canonical names."""
    key = re.sub(r"[\s\-_]+", "_", value.strip().lower())
    for name in names:
        if key == name.lower():
            return name
    return (aliases or {}).get(key)


class MedsetsBuilder(datasets.GeneratorBasedBuilder):
    BUILDER_CONFIG_CLASS = MedsetsConfig
    # -- the source's facts, declared by each dataset module ---------------------------------------------
    # The layouts of the download it knows, as the layout-not-found message lists them ("Looked for:").
    LAYOUTS: tuple[str, ...] = ()
    # Split-folder names of this source beyond the usual ones (layout.SPLIT_SYNONYMS), e.g. formal_train.
    SPLIT_FOLDERS: dict[str, str] = {}
    # Published counts: split ("*" for the whole download) -> {"total": n, column: {value: n}, fact: n}.
    PUBLISHED_COUNTS: dict[str, dict] = {}
    # Columns whose per-value counts are checked against published counts and shown in the report;
    # "fold+label" counts pairs of values.
    COUNTED_COLUMNS: tuple[str, ...] = ("label",)
    # zlib level for images re-encoded to PNG (BMP/TIFF sources); chosen per dataset by measurement.
    PNG_COMPRESS_LEVEL = 6
    # Worker processes when the caller does not say: 1 where passing bytes through is cheaper than
    # starting workers (measured on HEp-2), all cores where decoding/re-encoding dominates.
    DEFAULT_NUM_PROC = 1
    # Where a record's mask goes: "mask" beside a class label, or "label" when the mask is the target.
    MASK_COLUMN = "mask"
    # Segmentation datasets: class id -> name, exported as id2label.json at the folder root.
    ID2LABEL: dict[int, str] | None = None
    # Hub task categories of a config beyond the card prose's (a folder's card lists those of its configs).
    CONFIG_TASKS: dict[str, tuple[str, ...]] = {}
    # Facts a reader of the dataset card must know (shown under the title).
    CARD_NOTES: tuple[str, ...] = ()
    # Column naming the specimen/patient, audited for overlap across splits (leakage).
    GROUP_COLUMN: str | None = None
    RECORDS_PER_JOB = 1000
    # Per-example facts (ints) summed per split in the report and the card, e.g. objects per image.
    SUMMED_FACTS: tuple[str, ...] = ()
    # Configs that a build naming no config writes together, from one pass over the download: the first is
    # written through datasets, the others beside it by `_rows` (GZMH: tiles and full). Empty: the default.
    BUILT_TOGETHER: tuple[str, ...] = ()
    # Rows per Parquet row group, per config; datasets' default where not given.
    WRITER_BATCH_SIZE: dict[str, int] = {}
    MAX_SHARD_BYTES = 500 << 20  # as datasets' default max_shard_size

    report: BuildReport | None = None
    # The configs written beside this one (`also_build`), after a build: name -> a builder of that config
    # holding its report, its info (features and splits) and its shards (`shard_files`).
    companions: dict[str, "MedsetsBuilder"] = {}

    def __init__(self, *args, writer_batch_size=None, **kwargs):
        super().__init__(*args, writer_batch_size=writer_batch_size, **kwargs)
        self._writer_batch_size = writer_batch_size or self.WRITER_BATCH_SIZE.get(self.config.name)

    @classmethod
    def split_unions(cls, splits: list[str]) -> dict[str, list[str]]:
        """Extra splits declared in the card as unions of built ones (no bytes copied), for splits that
        tools expect by name; none by default."""
        return {}

    @classmethod
    def id2label(cls, config: str) -> dict[int, str] | None:
        """Class id -> name of a config's segmentation target, written as id2label.json; `ID2LABEL` by default."""
        return cls.ID2LABEL

    def summed_facts(self) -> tuple[str, ...]:
        """The facts summed per split in this config's report (a config may sum more, as GZMH tiles do)."""
        return self.SUMMED_FACTS

    # -- to be provided by dataset modules ------------------------------------------------------------
    @abc.abstractmethod
    def _scan(self, source: Source) -> Scan:
        """Detect the layout and list the records of each split; see the module docstring."""

    # -- layout helpers for `_scan`, reading the facts above ------------------------------------------
    def layout_not_found(self, source: Source, headline: str = "", looked_for: tuple[str, ...] = (),
                         hint: str = "") -> LayoutNotFound:
        """The error when no known layout fits: what was looked for (`LAYOUTS` unless given), what was found."""
        headline = headline or f"{self.name}: {source.path} does not hold a known {self.name} layout."
        return LayoutNotFound.in_source(source, headline, list(looked_for or self.LAYOUTS), hint)

    def split_names(self, folders) -> dict[str, str]:
        """Split folder -> split name (`\\w+`, synonyms and `SPLIT_FOLDERS` applied). Two folders that would
        become one split (V1 and V2 extracted side by side) cannot be told apart: that is an error, not a merge."""
        names = {folder: layout.split_name(folder, self.SPLIT_FOLDERS) for folder in folders}
        if len(names) == 1 and not re.search(r"train|test|val", next(iter(names.values()))):
            names = {folder: "train" for folder in names}  # one folder naming no split: `train`, as datasets would
        clashes = defaultdict(list)
        for folder, name in names.items():
            clashes[name].append(folder or ".")
        clashes = {name: found for name, found in clashes.items() if len(found) > 1}
        if clashes:
            raise BuildError(f"{self.name}: several folders would become the same split: " + "; ".join(
                f"{name}: {', '.join(sorted(found))}" for name, found in clashes.items()),
                hint="The download seems to hold two copies or versions; point --source at one of them.")
        return names

    def published(self, splits, counts: dict[str, dict] | None = None) -> dict[str, dict]:
        """The published counts (`PUBLISHED_COUNTS` unless given) of the splits found, and of the whole ("*")."""
        counts = self.PUBLISHED_COUNTS if counts is None else counts
        return {split: c for split, c in counts.items() if split in splits or split == "*"}

    # -- datasets hooks --------------------------------------------------------------------------------
    def _split_generators(self, dl_manager):
        if not self.config.data_dir:
            raise SourceError(f"{self.name}: pass data_dir= (the raw download: folder, wrapper folder or .zip)")
        self._source = Source(self.config.data_dir)
        self._scanned = self._scan(self._source)
        self._scanned.splits = layout.ordered_splits(self._scanned.splits)
        self._scanned.problems += listed_twice(self._scanned.splits)
        for problem in self._scanned.problems:
            self._ledger.problem(problem)
        one_pass = type(self)._rows is not MedsetsBuilder._rows  # a dataset that writes several configs says how
        if unknown := [c for c in self.config.also_build if c not in self.BUILT_TOGETHER or c == self.config.name
                       or not one_pass]:
            raise BuildError(f"{self.name}: config {self.config.name} cannot be built together with {', '.join(unknown)}"
                             + (f"; one pass builds {', '.join(self.BUILT_TOGETHER)}" if self.BUILT_TOGETHER else ""))
        self.companions = {name: self._companion(name) for name in self.config.also_build}
        self._companion_features = {name: c.info.features for name, c in self.companions.items()}
        # datasets gives each worker process a share of a list argument; chunks of this size keep small
        # splits in one process, where starting a pool would cost more than it saves.
        size = self.RECORDS_PER_JOB
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={
                "chunks": [records[i:i + size] for i in range(0, len(records), size)], "split": split})
            for split, records in self._scanned.splits.items()
        ]

    def _generate_examples(self, chunks: list[list[dict]], split: str):
        records = [r for chunk in chunks for r in chunk]
        side = SideWriters(self._side_folder, split, records[0]["image_id"] if records else 0,
                           self._companion_features, self.WRITER_BATCH_SIZE, self.MAX_SHARD_BYTES)
        for record in records:
            try:
                for config, example, image, facts in self._rows(record):
                    self._ledger.example(
                        **({"config": config} if config != self.config.name else {}),
                        split=split,
                        image_id=example["image_id"],
                        file_name=example["file_name"],
                        width=image.width,
                        height=image.height,
                        pixel_hash=facts["pixel_hash"] if "pixel_hash" in facts else pixel_hash(image),
                        **{c: self._value_name(c, example.get(c)) for c in counted_parts(self.COUNTED_COLUMNS)},
                        **({self.GROUP_COLUMN: example.get(self.GROUP_COLUMN)} if self.GROUP_COLUMN else {}),
                        **{key: value for key, value in facts.items() if key != "pixel_hash"},
                    )
                    if config == self.config.name:
                        yield f"{split}-{example['image_id']}", example
                    else:
                        side.write(config, example)
            except RowProblems as bad:
                for problem in bad.problems:
                    self._ledger.problem(problem)
        for shard in side.close():
            self._ledger.shard(**shard)

    def _rows(self, record: dict):
        """(config, example, decoded image, facts) for every row made from one record, in this config and
        in the ones written beside it (`also_build`); a dataset that supports `BUILT_TOGETHER` overrides
        this to decode each record once for all of them."""
        for example, image, facts in self._examples(record):
            yield self.config.name, example, image, facts

    def _companion(self, name: str) -> "MedsetsBuilder":
        """A builder of another config with this one's options, to describe the rows written beside."""
        own = {f.name for f in dataclasses.fields(datasets.BuilderConfig)} | {"also_build"}
        options = {f.name: getattr(self.config, f.name) for f in dataclasses.fields(self.config) if f.name not in own}
        return type(self)(config_name=name, data_dir=self.config.data_dir, cache_dir=self._cache_dir_root, **options)

    def _download_and_prepare(self, dl_manager, verification_mode, **prepare_split_kwargs):
        # Inside the build's cache folder (for `medsets build`, its work folder): whatever removes that after a
        # crash or a kill removes the ledger too.
        os.makedirs(self._cache_dir_root, exist_ok=True)
        self._ledger = Ledger(tempfile.mkdtemp(prefix="medsets-ledger-", dir=self._cache_dir_root))
        # The companion configs' shards: beside the ledger, moved into the output by the caller.
        self._side_folder = tempfile.mkdtemp(prefix="medsets-companions-", dir=self._cache_dir_root)
        try:
            super()._download_and_prepare(dl_manager, verification_mode, **prepare_split_kwargs)
            problems, examples, shards = self._ledger.read()
        finally:
            shutil.rmtree(self._ledger.folder, ignore_errors=True)
        if problems and not self.config.skip_bad:
            raise BuildError(
                f"{self.name}/{self.config.name}: {len(problems)} problems in {self._source.path} "
                f"({self._scanned.layout}):",
                problems,
                hint="Fix or re-download the files named above, or build without them with --skip-bad "
                "(each left-out row is then listed in the build report and the card).",
            )
        self._finish_build(problems, [ex for ex in examples if "config" not in ex])
        for name, companion in self.companions.items():
            companion._source, companion._scanned = self._source, companion._scan(self._source)
            companion._scanned.splits = layout.ordered_splits(companion._scanned.splits)
            companion._take_shards(list(self._scanned.splits), [s for s in shards if s["config"] == name])
            companion._finish_build(problems, [ex for ex in examples if ex.get("config") == name])

    def _finish_build(self, problems: list[Problem], examples: list[dict]):
        """After every row is written: the published counts, duplicates (dropped on request), the report."""
        order = list(self._scanned.splits)
        examples.sort(key=lambda ex: (order.index(ex["split"]), ex["image_id"]))
        # The published counts describe the download as released, duplicates included.
        self._count_mismatches = compare_counts(tally(examples, self.COUNTED_COLUMNS, self.summed_facts()),
                                                self._scanned.published)
        groups = duplicate_groups(self._duplicate_units(examples), order)
        self._duplicates = {"pairs": duplicate_pairs(groups, order), "groups": groups} if groups else {}
        self._dropped = copies_to_drop(groups) if self.config.drop_duplicates else []
        if self._dropped:
            gone = self._rows_of(examples, self._dropped)
            self._drop_rows(gone)
            examples = [ex for ex in examples if (ex["split"], ex["image_id"]) not in gone]
        self.report = self._make_report(problems, examples)

    def _take_shards(self, splits: list[str], shards: list[dict]):
        """A companion's splits and shards, from what the workers of the main build wrote."""
        self._side_shards = {split: sorted(Path(s["file"]) for s in shards if s["split"] == split) for split in splits}
        split_dict = datasets.SplitDict(dataset_name=self.dataset_name)
        for split in splits:
            mine = sorted((s for s in shards if s["split"] == split), key=lambda s: s["file"])
            split_dict.add(datasets.SplitInfo(name=split, num_examples=sum(s["num_examples"] for s in mine),
                                              num_bytes=sum(s["num_bytes"] for s in mine),
                                              shard_lengths=[s["num_examples"] for s in mine] if len(mine) > 1 else None,
                                              dataset_name=self.dataset_name))
        self.info.splits = split_dict

    def shard_files(self, split: str, folder: str | os.PathLike | None = None) -> list[Path]:
        """The Parquet shards of a split, in order: those datasets wrote into `folder` (by default the folder
        being prepared), or for a companion config the ones written beside the main build."""
        if getattr(self, "_side_shards", None) is not None:
            return self._side_shards[split]
        pattern = re.compile(rf"^{re.escape(self.dataset_name)}-{re.escape(split)}(-\d{{5}}-of-\d{{5}})?\.parquet$")
        return sorted(p for p in Path(folder or self._output_dir).iterdir() if pattern.match(p.name))

    # -- duplicates -------------------------------------------------------------------------------------
    def _duplicate_units(self, examples: list[dict]) -> list[dict]:
        """What duplicates are sought among, and dropped as a whole: each row, unless a dataset cuts images
        into tiles (then each source image)."""
        return [{key: ex[key] for key in ("split", "image_id", "file_name", "pixel_hash")} for ex in examples]

    def _rows_of(self, examples: list[dict], units: list[dict]) -> set[tuple[str, int]]:
        """The (split, image_id) of the rows that make up these units."""
        return {(unit["split"], unit["image_id"]) for unit in units}

    def _drop_rows(self, gone: set[tuple[str, int]]):
        """Remove rows from the shards already written, and from the split infos datasets recorded."""
        by_split = defaultdict(set)
        for split, image_id in gone:
            by_split[split].add(image_id)
        for split, image_ids in by_split.items():
            info = self.info.splits[split]
            lengths = []
            for shard in self.shard_files(split):
                rows, num_bytes = without_rows(shard, image_ids)
                lengths.append(rows)
                info.num_bytes -= num_bytes
            info.num_examples = sum(lengths)
            if info.shard_lengths:
                info.shard_lengths = lengths
            info.original_shard_lengths = None  # counted before the drop; nothing reads them for a local folder

    # -- per example -----------------------------------------------------------------------------------
    def _examples(self, record: dict):
        """The rows made from one record, each as (example, decoded image, facts for the report): one row
        per record unless a dataset cuts images into tiles. Raises RowProblems before yielding anything."""
        yield self._example(record)

    def _example(self, record: dict):
        """One row from a record: image, then the mask under `MASK_COLUMN` ("mask" for classification
        with cell masks, "label" for segmentation), else the record's label, then its metadata.
        Returns (example, decoded image, extra facts for the report)."""
        problems = list(record.get("problems", ()))  # found while scanning (a missing mask, ...): reported with the rest
        image_cell, image = self._read_image(record["image_file"], problems)
        example = {"image": image_cell, **record.get("metadata", {})}
        facts = {}
        if self.MASK_COLUMN != "label":
            example["label"] = record["label"]
        if self.MASK_COLUMN in self.info.features:
            example[self.MASK_COLUMN] = None
            if record.get("mask_file"):
                example[self.MASK_COLUMN], facts["stray_mask_pixels"], facts["mask_coverage"] = self._read_mask(
                    record["mask_file"], image, problems)
        if problems:
            raise RowProblems(problems)
        example["image_id"] = record["image_id"]
        example["file_name"] = record["image_file"]
        return example, image, facts

    def _read_image(self, file: str, problems: list):
        try:
            return image_value(self._source.read_bytes(file), compress_level=self.PNG_COMPRESS_LEVEL)
        except (UnreadableImage, UnreadableFile) as err:
            problems.append(Problem("unreadable image", file, str(err).removeprefix(f"{file}: ")))
            return None, None

    def _read_mask(self, file: str, image, problems: list):
        try:
            cell, mask, stray = mask_value(self._source.read_bytes(file))
        except (UnreadableImage, UnreadableFile) as err:
            problems.append(Problem("unreadable mask", file, str(err).removeprefix(f"{file}: ")))
            return None, 0, None
        if image is not None and (mask.shape[1], mask.shape[0]) != image.size:
            problems.append(Problem("mask size", file, f"{mask.shape[1]}x{mask.shape[0]}, its image is "
                                                       f"{image.width}x{image.height}"))
        return cell, stray, float(mask.mean()) if mask.size else 0.0

    # -- after all splits -----------------------------------------------------------------------------
    def _value_name(self, column: str, value):
        """Counted values as readable strings: class names for labels, '0' for fold 0, None if unknown."""
        feature = self.info.features[column]
        if isinstance(feature, datasets.ClassLabel) and isinstance(value, int):
            return feature.int2str(value) if value >= 0 else None
        return None if value is None else str(value)

    def _make_report(self, problems: list[Problem], examples: list[dict]) -> BuildReport:
        """The report of the built rows (`examples`, in split order); the published counts were compared, and
        duplicates found, over every row of the download before."""
        order = list(self._scanned.splits)
        counts = tally(examples, self.COUNTED_COLUMNS, self.summed_facts())
        warnings = list(self._scanned.warnings) + stray_mask_values(examples)
        if self.GROUP_COLUMN:
            warnings += group_overlap(examples, self.GROUP_COLUMN)
        return BuildReport(
            dataset=self.name,
            config=self.config.name,
            source=str(self._source.path),
            layout=self._scanned.layout,
            counts={split: counts.get(split, {"total": 0}) for split in order},
            count_mismatches=self._count_mismatches,
            skipped=[asdict(p) for p in problems],
            warnings=warnings,
            image_sizes=size_stats(examples),
            mask_coverage=coverage_stats(examples),
            duplicates=self._duplicates,
            dropped=self._dropped,
        )


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


def listed_twice(splits: dict[str, list[dict]]) -> list[Problem]:
    """An image that the label files list twice would become two rows: keep its first listing (in split
    order), drop the others, each a problem (fatal, or skipped once with --skip-bad)."""
    first, problems = {}, []
    for split, records in splits.items():
        kept = []
        for record in records:
            file = record.get("file_name", record["image_file"])  # a cell cut from a slide names the slide and itself
            if file in first:
                problems.append(Problem("duplicate id", file, f"listed twice: in {first[file]} and again in {split}"))
            else:
                first[file] = split
                kept.append(record)
        records[:] = kept
    return problems


class SideWriters:
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
        if writer._num_bytes >= self.max_bytes:
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


class RowProblems(Exception):
    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))
