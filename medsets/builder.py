"""What every medsets builder shares; a dataset module only describes its source.

A dataset module subclasses `MedsetsBuilder`, states its source's facts as class attributes (classes,
published counts, layouts, split-folder names, card notes) and provides `_info()` (Features from
`schema`) and `_scan(source)` -> `Scan`: the detected layout, each split's `Record`s, the problems found
while scanning and the published counts. It may override `_examples(record)` when its rows are not one
image each. Layout search is in `layout`, label files in `label_files`.

The base class turns records into rows with the per-row checks (`read` decodes a file and records why
it could not), collects every problem from every worker process in a `Ledger` (flushed once per job),
and after all splits are written either raises one `BuildError` listing all of them or, with
skip_bad=True, leaves the bad rows out and lists them in `self.report`. Copies, pixel-identical and near
(`duplicates`, `near_duplicates`), and configs written in the same pass (`companions`) have modules of
their own; `datasets`' private parts are reached through `datasets_adapter`.
"""

from __future__ import annotations

import abc
import os
import re
import shutil
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import datasets

from . import layout
from .checks import (BuildError, BuildReport, Ledger, Problem, PublishedCounts, RowProblems, compare_counts,
                     counted_parts, coverage_stats, group_overlap, listed_twice, size_stats, stray_mask_values, tally,
                     turned_upright)
from .companions import CompanionWriters, check_companions, companion_builder, take_shards
from .datasets_adapter import PrepareHooks
from .duplicates import array_hash, drop_rows, find_copies, read_signatures, set_duplicate_groups, store_signatures, target_of
from .layout import LayoutNotFound
from .near_duplicates import Preparation
from .schema import NO_GROUP, UnreadableImage, exif_orientation, image_value, mask_value
from .source import Source, SourceError, UnreadableFile


@dataclass
class MedsetsConfig(datasets.BuilderConfig):
    # Build without the rows that fail a check, recording each one, instead of refusing to build.
    skip_bad: bool = False
    # Keep one image of each group of copies (the first in split order, then by image_id), list the others as
    # dropped: True/"exact" for pixel-identical copies, "near" for re-imaged ones too. Off: splits as published.
    drop_duplicates: bool | str = False
    # Look for near-duplicates (the same object imaged twice); False skips the search (medsets.near_duplicates).
    near_duplicates: bool = True
    # Other configs written in the same pass over the download, each image decoded once (medsets.companions).
    companions: tuple[str, ...] = ()


@dataclass
class Record:
    """One image of the download as a scan found it, before it is read: what becomes one row (or, cut into
    tiles, several). A dataset that needs more per record subclasses it."""

    image_file: str  # path inside the source
    label: str | int | None = None  # the class name (classification); segmentation and detection have none
    mask_file: str | None = None
    metadata: dict = field(default_factory=dict)  # further columns of the row: intensity, patient_id, fold, ...
    image_id: int | None = None  # from the file's own id, else ranked by layout.rank_image_ids
    problems: list[Problem] = field(default_factory=list)  # found while scanning, reported with the row's own
    file_name: str | None = None  # the row's file_name when it is not image_file (a cell cut from a slide)

    @property
    def name(self) -> str:
        return self.file_name or self.image_file


@dataclass
class Scan:
    layout: str  # human-readable name of the detected variant, goes into the report and card
    splits: dict[str, list[Record]]  # split -> records, in a stable order
    problems: list[Problem] = field(default_factory=list)
    published: PublishedCounts = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


class MedsetsBuilder(PrepareHooks, datasets.GeneratorBasedBuilder):
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
    # Published results with their protocols (medsets.published): the card's table, evaluate's comparisons.
    PUBLISHED_RESULTS: tuple = ()
    RECORDS_PER_JOB = 1000
    # Per-example facts (ints) summed per split in the report and the card, e.g. objects per image.
    SUMMED_FACTS: tuple[str, ...] = ()
    # Configs that a build naming no config writes beside the default one, from the same pass over the
    # download (GZMH: full beside tiles); the dataset's `_rows` yields their rows. See medsets.companions.
    COMPANION_CONFIGS: tuple[str, ...] = ()
    # Rows per Parquet row group, per config; datasets' default where not given.
    WRITER_BATCH_SIZE: dict[str, int] = {}
    MAX_SHARD_BYTES = 500 << 20  # as datasets' default max_shard_size

    report: BuildReport | None = None
    # The configs written beside this one (its config's `companions`), after a build: name -> a builder of
    # that config holding its report, its info (features and splits) and its shards (`shard_files`).
    companions: dict[str, "MedsetsBuilder"] = {}
    companion_shards: dict[str, list[Path]] | None = None  # set on a companion: its shards, per split
    _near_preparation: Preparation | None = None  # the search's per-image work, done while rows are written

    def __init__(self, *args, writer_batch_size=None, **kwargs):
        super().__init__(*args, writer_batch_size=writer_batch_size, **kwargs)
        self.writer_batch_size = writer_batch_size or self.WRITER_BATCH_SIZE.get(self.config.name)

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

    def counted_columns(self) -> tuple[str, ...]:
        """The columns counted per value in this config's report (`COUNTED_COLUMNS` unless a config says)."""
        return self.COUNTED_COLUMNS

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
                hint="The download seems to hold two copies or versions; point data_dir= at one of them.")
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
        check_companions(self, writes_companions=type(self)._rows is not MedsetsBuilder._rows)
        self.companions = {name: companion_builder(self, name) for name in self.config.companions}
        self._companion_features = {name: c.info.features for name, c in self.companions.items()}
        # datasets gives each worker process a share of a list argument; chunks of this size keep small
        # splits in one process, where starting a pool would cost more than it saves.
        size = self.RECORDS_PER_JOB
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={
                "chunks": [records[i:i + size] for i in range(0, len(records), size)], "split": split})
            for split, records in self._scanned.splits.items()
        ]

    def _generate_examples(self, chunks: list[list[Record]], split: str):
        records = [r for chunk in chunks for r in chunk]
        companion_rows = CompanionWriters(self._companion_folder, split, records[0].image_id if records else 0,
                                          self._companion_features, self.WRITER_BATCH_SIZE, self.MAX_SHARD_BYTES)
        for record in records:
            try:
                for config, example, image, facts in self._rows(record):
                    example.setdefault("duplicate_group", NO_GROUP)  # set after the pass, once groups are known
                    facts = store_signatures(facts, image, self._ledger, self.config.near_duplicates, self._near_preparation)
                    self._ledger.example(
                        **({"config": config} if config != self.config.name else {}),
                        split=split,
                        image_id=example["image_id"],
                        file_name=example["file_name"],
                        width=image.width,
                        height=image.height,
                        **{c: self._value_name(c, example.get(c)) for c in counted_parts(self.counted_columns())},
                        **({self.GROUP_COLUMN: example.get(self.GROUP_COLUMN)} if self.GROUP_COLUMN else {}),
                        **facts,
                    )
                    if config == self.config.name:
                        yield f"{split}-{example['image_id']}", example
                    else:
                        companion_rows.write(config, example)
            except RowProblems as bad:
                for problem in bad.problems:
                    self._ledger.problem(problem)
        for shard in companion_rows.close():
            self._ledger.shard(**shard)
        self._ledger.flush()

    def _rows(self, record: Record):
        """(config, example, decoded image, facts) for every row made from one record, in this config and
        in its companions; a dataset with `COMPANION_CONFIGS` overrides this to decode each record once for
        all of them."""
        for example, image, facts in self._examples(record):
            yield self.config.name, example, image, facts

    def before_prepare(self):
        # Inside the build's cache folder (for `medsets build`, its work folder): whatever removes that after a
        # crash or a kill removes the ledger too.
        os.makedirs(self.cache_root, exist_ok=True)
        self._ledger = Ledger(tempfile.mkdtemp(prefix="medsets-ledger-", dir=self.cache_root))
        # The companion configs' shards: beside the ledger, moved into the output by the caller.
        self._companion_folder = tempfile.mkdtemp(prefix="medsets-companions-", dir=self.cache_root)
        self._near_preparation = Preparation() if self.config.near_duplicates else None  # on an idle core

    def after_prepare(self, succeeded: bool):
        try:
            if not succeeded:
                return
            problems, examples, shards = self._ledger.read()
            read_signatures(self._ledger, examples, self._near_preparation)
        finally:
            shutil.rmtree(self._ledger.folder, ignore_errors=True)
            if self._near_preparation is not None:  # no more rows: its thread ends (its queue dropped on failure)
                self._near_preparation.close(finish=succeeded)
        if problems and not self.config.skip_bad:
            raise BuildError(
                f"{self.name}/{self.config.name}: {len(problems)} problems in {self._source.path} "
                f"({self._scanned.layout}):",
                problems,
                hint="Fix or re-download the files named above, or build without them with skip_bad=True "
                "(each left-out row is then listed in the build report and the card).",
            )
        self._finish_build(problems, [ex for ex in examples if "config" not in ex])
        for name, companion in self.companions.items():
            companion._source, companion._scanned = self._source, companion._scan(self._source)
            companion._near_preparation = self._near_preparation  # its rows' signatures were handed to ours
            companion._scanned.splits = layout.ordered_splits(companion._scanned.splits)
            take_shards(companion, list(self._scanned.splits), [s for s in shards if s["config"] == name])
            companion._finish_build(problems, [ex for ex in examples if ex.get("config") == name])

    def _finish_build(self, problems: list[Problem], examples: list[dict]):
        """After every row is written: the published counts, duplicates (dropped on request), the report."""
        order = list(self._scanned.splits)
        examples.sort(key=lambda ex: (order.index(ex["split"]), ex["image_id"]))
        # The published counts describe the download as released, duplicates included.
        self._count_mismatches = compare_counts(tally(examples, self.counted_columns(), self.summed_facts()),
                                                self._scanned.published)
        drop = self.config.drop_duplicates
        if drop not in (False, True, "exact", "near"):
            raise BuildError(f"{self.name}: drop_duplicates={drop!r}; choose False, True (\"exact\") or \"near\"")
        copies = find_copies(self._duplicate_units(examples), order, near=self.config.near_duplicates, drop=drop,
                             preparation=self._near_preparation)
        self._duplicates, self._near_duplicates, self._dropped = copies.duplicates, copies.near_duplicates, copies.dropped
        self._copy_conflicts = copies.conflicts
        if self._dropped:
            gone = self._rows_of(examples, self._dropped)
            drop_rows(self.info.splits, self.shard_files, gone)
            examples = [ex for ex in examples if (ex["split"], ex["image_id"]) not in gone]
        # The column describes the built rows: a group of which one row is left is no group any more.
        group_of_row = {row: number for number, group in enumerate(copies.groups_left())
                        for row in self._rows_of(examples, group)}
        set_duplicate_groups(self.shard_files, list(self.info.splits), group_of_row)
        self.report = self._make_report(problems, examples)

    def shard_files(self, split: str, folder: str | os.PathLike | None = None) -> list[Path]:
        """The Parquet shards of a split, in order: those datasets wrote into `folder` (by default the folder
        being prepared), or for a companion config the ones written beside the main build."""
        if self.companion_shards is not None:
            return self.companion_shards[split]
        pattern = re.compile(rf"^{re.escape(self.dataset_name)}-{re.escape(split)}(-\d{{5}}-of-\d{{5}})?\.parquet$")
        return sorted(p for p in Path(folder or self.output_dir).iterdir() if pattern.match(p.name))

    # -- duplicates -------------------------------------------------------------------------------------
    def _duplicate_units(self, examples: list[dict]) -> list[dict]:
        """What duplicates are sought among, and dropped as a whole: each row, unless a dataset cuts images
        into tiles (then each source image)."""
        return [{**{key: ex.get(key) for key in ("split", "image_id", "file_name", "pixel_hash", "near_signature")},
                 "target": target_of(ex)} for ex in examples]

    def _rows_of(self, examples: list[dict], units: list[dict]) -> set[tuple[str, int]]:
        """The (split, image_id) of the rows that make up these units."""
        return {(unit["split"], unit["image_id"]) for unit in units}

    # -- per example -----------------------------------------------------------------------------------
    def _examples(self, record: Record):
        """The rows made from one record, each as (example, decoded image, facts for the report): one row
        per record unless a dataset cuts images into tiles. Raises RowProblems before yielding anything."""
        yield self._example(record)

    def _example(self, record: Record):
        """One row from a record: image, then the mask under `MASK_COLUMN` ("mask" for classification
        with cell masks, "label" for segmentation), else the record's label, then its metadata.
        Returns (example, decoded image, extra facts for the report)."""
        problems = list(record.problems)  # found while scanning (a missing mask, ...): reported with the rest
        stored_image, image = self.read(record.image_file, problems) or (None, None)
        example = {"image": stored_image, **record.metadata}
        facts = {"exif_orientation": exif_orientation(image)} if exif_orientation(image) != 1 else {}
        if self.MASK_COLUMN != "label":
            example["label"] = record.label
        if self.MASK_COLUMN in self.info.features:
            example[self.MASK_COLUMN] = None
            if record.mask_file:
                mask = self.read(record.mask_file, problems, as_mask=True,
                                 decode=lambda raw: mask_value(raw, exif_orientation(image)))
                if mask is not None:
                    example[self.MASK_COLUMN], binary, facts["stray_mask_pixels"] = mask
                    facts["mask_coverage"], facts["mask_hash"] = float(binary.mean()) if binary.size else 0.0, array_hash(binary)
                    self.check_mask_size(record.mask_file, binary, image, problems)
        if problems:
            raise RowProblems(problems)
        example["image_id"] = record.image_id
        example["file_name"] = record.name
        return example, image, facts

    def read(self, file: str, problems: list[Problem], *, as_mask: bool = False, decode=None):
        """Read and decode one file of the source; a file that cannot be read or decoded is recorded in
        `problems` as an "unreadable image" (or "unreadable mask") naming it, and None is returned.
        `decode(bytes)` is `schema.image_value` for an image, `schema.mask_value` for a mask, unless given."""
        decode = decode or (mask_value if as_mask else lambda raw: image_value(raw, compress_level=self.PNG_COMPRESS_LEVEL))
        try:
            return decode(self._source.read_bytes(file))
        except (UnreadableImage, UnreadableFile) as err:
            problems.append(Problem(f"unreadable {'mask' if as_mask else 'image'}", file,
                                    str(err).removeprefix(f"{file}: ")))
            return None

    @staticmethod
    def check_mask_size(file: str, mask, image, problems: list[Problem]) -> None:
        """A mask (an array) must have its image's size; where it does not, that is a problem naming the mask."""
        if image is not None and (mask.shape[1], mask.shape[0]) != image.size:
            problems.append(Problem("mask size", file, f"{mask.shape[1]}x{mask.shape[0]}, its image is "
                                                       f"{image.width}x{image.height}"))

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
        counts = tally(examples, self.counted_columns(), self.summed_facts())
        warnings = list(self._scanned.warnings) + stray_mask_values(examples) + turned_upright(examples) + self._copy_conflicts
        if self.GROUP_COLUMN:
            warnings += group_overlap(examples, self.GROUP_COLUMN)
        return BuildReport(
            dataset=self.name, config=self.config.name, source=str(self._source.path), layout=self._scanned.layout,
            counts={split: counts.get(split, {"total": 0}) for split in order},
            count_mismatches=self._count_mismatches,
            skipped=[asdict(p) for p in problems],
            warnings=warnings,
            image_sizes=size_stats(examples), mask_coverage=coverage_stats(examples),
            duplicates=self._duplicates, near_duplicates=self._near_duplicates,
            near_search=bool(self.config.near_duplicates),
            dropped=self._dropped,
            dropped_with=f"drop_duplicates={self.config.drop_duplicates!r}".replace("'", '"'),
        )
