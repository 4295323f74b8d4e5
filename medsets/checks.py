"""Problems found in raw data, and the build report.

Checks run in two places. While examples are generated (possibly in several `datasets` worker
processes) each example either passes the per-example checks or is recorded as a `Problem` and left
out; the facts of every written example (split, label, size, pixel hash, specimen/patient) go to a
`Ledger` on disk so that the parent process can see them. After all splits are written the
per-build checks (published counts, duplicates across splits, group overlap) run over the ledger.
"""

from __future__ import annotations

import json
import os
import statistics
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .duplicates import duplicates_finding, near_duplicates_finding
from .errors import MedsetsError

# What a user can do about each kind of problem; shown once per kind in the error.
ADVICE = {
    "unlabelled image": "an image has no row in the label file; check that the label file matches this download",
    "unknown label": "the label file uses a class spelling we do not know",
    "unreadable image": "the file does not decode (truncated or not an image); re-download it",
    "unreadable mask": "the mask does not decode (truncated or not an image); re-download it",
    "mask size": "the mask's size differs from its image's",
    "too many tiles": "an image far larger than the dataset's fields: choose larger tiles, or leave it out",
    "missing mask": "an image has no mask although the layout pairs every image with one",
    "bad label file": "a label file could not be parsed",
    "duplicate id": "two files or rows claim the same image id, or one image is listed twice",
    "unknown value": "a metadata column (intensity, ...) holds a value outside its vocabulary",
    "unparseable name": "the name is not of the form UID_<patient>_<image>_<cell>_<all|hem>.bmp, so it has no patient",
    "label contradicts name": "the folder or CSV label disagrees with the _all/_hem ending of the original name",
    "missing image": "a mask or label row names an image that is not in the download; re-download or extract it again",
    "missing label file": "a slide image has no CSV of its cells beside it, so its cells are unknown",
    "mask outside box": "a cell's mask reaches beyond the box its CSV row gives (or is empty); the mask or the row is wrong",
    "unreadable box file": "a box file (VOC XML, COCO JSON, CSV, YOLO txt) does not parse; fix it or remove it "
                           "(objects come from the masks, box files are only cross-checked)",
    "unusable prediction": "a predicted mask that cannot be scored against its image",
    "missing prediction": "an image of the split has no prediction",
    "prediction with no image": "a prediction names no image of the split (misnamed, or from another split)",
    "bad results file": "a results file could not be read as the CSV it should be",
    "unlabelled split": "the split's labels were never published, so predictions on it cannot be scored",
    "card": "the card's YAML or Markdown would be refused by the Hub or shown wrong there",
}

MAX_NAMES_PER_KIND = 8


@dataclass(frozen=True)
class Problem:
    kind: str  # one of ADVICE's keys
    file: str  # path inside the source, so the user can find it
    detail: str = ""

    def __str__(self):
        return f"{self.file}: {self.detail}" if self.detail else self.file


class RowProblems(Exception):
    """Raised while a row is made: the row is left out and each of its problems recorded."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("; ".join(map(str, problems)))


class BuildError(MedsetsError):
    """The raw data cannot be built as it is. Carries every problem found, not just the first."""

    def __init__(self, what: str, problems: list[Problem] | None = None, hint: str = ""):
        self.what = what
        self.problems = list(problems or [])
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        lines = [self.what]
        by_kind: dict[str, list[Problem]] = defaultdict(list)
        for p in self.problems:
            by_kind[p.kind].append(p)
        for kind, found in by_kind.items():
            lines.append(f"  {kind} ({len(found)}): {ADVICE.get(kind, '')}".rstrip(": "))
            for p in found[:MAX_NAMES_PER_KIND]:
                lines.append(f"    - {p}")
            if len(found) > MAX_NAMES_PER_KIND:
                lines.append(f"    ... and {len(found) - MAX_NAMES_PER_KIND} more")
        if self.hint:
            lines.append(self.hint)
        return "\n".join(lines)


class Ledger:
    """Append-only JSON-lines files in a folder, one per process, read back by the parent.

    Writes are buffered: whoever writes calls `flush()` when its job ends (a pool worker may leave through
    os._exit, which drops unflushed buffers), and `read()` flushes this process's own files first."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self._handle = None
        self._pid = None

    def __getstate__(self):
        return {"folder": self.folder, "_handle": None, "_pid": None, "_blobs": None}

    def blob(self, data: bytes) -> list:
        """Store bytes of a fixed size per kind (a near-duplicate signature) in this process's side file, and
        return [file, index] to record with the example: the JSON stays small and the parent reads the side
        files as arrays, without holding them as text."""
        blobs = getattr(self, "_blobs", None)
        if blobs is None or blobs[0] != os.getpid():
            handle = open(self.folder / f"{os.getpid()}-{len(data)}.bin", "ab")
            self._blobs = blobs = (os.getpid(), handle, handle.tell() // len(data))
        pid, handle, count = blobs
        handle.write(data)
        self._blobs = (pid, handle, count + 1)
        return [handle.name.rsplit("/", 1)[-1], count]

    def read_blobs(self, refs: list[list], size: int) -> bytes:
        """The bytes of each [file, index], in order, as one buffer of len(refs) * size bytes."""
        import numpy as np

        names = sorted({ref[0] for ref in refs})
        if len(names) == 1 and all(index == position for position, (_, index) in enumerate(refs)):
            data = (self.folder / names[0]).read_bytes()  # one process's file, every row in order: as it is
            if len(data) == len(refs) * size:
                return data
        arrays = {name: np.fromfile(self.folder / name, np.uint8).reshape(-1, size) for name in names}
        return b"".join(arrays[name][index].tobytes() for name, index in refs)

    def _write(self, record: dict):
        if self._handle is None or self._pid != os.getpid():
            self._pid = os.getpid()
            self._handle = open(self.folder / f"{self._pid}.jsonl", "a", encoding="utf-8")
        self._handle.write(json.dumps(record) + "\n")

    def flush(self):
        """Hand this process's buffered records to the files: once per job, not a system call per row."""
        if self._handle is not None and self._pid == os.getpid():
            self._handle.flush()
        blobs = getattr(self, "_blobs", None)
        if blobs is not None and blobs[0] == os.getpid():
            blobs[1].flush()

    def problem(self, problem: Problem):
        self._write({"problem": asdict(problem)})

    def example(self, **facts):
        self._write({"example": facts})

    def shard(self, **facts):
        """A Parquet file a worker wrote beside the build (a companion config's rows)."""
        self._write({"shard": facts})

    def read(self) -> tuple[list[Problem], list[dict], list[dict]]:
        self.flush()
        problems, examples, shards = [], [], []
        for path in sorted(self.folder.glob("*.jsonl")):
            for line in path.read_text(encoding="utf-8").splitlines():
                record = json.loads(line)
                if "problem" in record:
                    problems.append(Problem(**record["problem"]))
                elif "shard" in record:
                    shards.append(record["shard"])
                else:
                    examples.append(record["example"])
        return problems, examples, shards


# Published counts: {split: {"total": n, "<column>": {value: n}}}; split "*" means all splits together.
PublishedCounts = dict[str, dict]


@dataclass
class BuildReport:
    dataset: str
    config: str
    source: str
    layout: str
    counts: dict = field(default_factory=dict)  # split -> {"total": n, column -> {value: n}}
    count_mismatches: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # problems whose rows were left out (skip_bad=True)
    warnings: list[str] = field(default_factory=list)  # what a user should act on or know before using it
    findings: list[str] = field(default_factory=list)  # what the build found and how it read it (for information)
    image_sizes: dict = field(default_factory=dict)  # split -> {"min": [w, h], "median": .., "max": ..}
    mask_coverage: dict = field(default_factory=dict)  # split -> foreground fraction {"mean", "min", "max"}
    # Pixel-identical images: {"pairs": {split pair: n}, "groups": [[{split, image_id, file_name, pixel_hash}]]}
    duplicates: dict = field(default_factory=dict)
    # The same object imaged twice: {"pairs": {split pair: n}, "groups": [[{split, image_id, file_name,
    # similarity}]]}; near_search False when the search was switched off.
    near_duplicates: dict = field(default_factory=dict)
    near_search: bool = True
    dropped: list[dict] = field(default_factory=list)  # rows left out with drop_duplicates=True, each with "same_as"
    dropped_with: str = "drop_duplicates=True"  # or drop_duplicates="near": every near copy too

    def duplicate_lines(self) -> list[str]:
        """What the report and the card say of copies: a line for pixel-identical ones, a line for near
        ones (the same object imaged twice), then every dropped row."""
        where = f"every group in reports/{self.config}.json"
        lines = [f"duplicates: {duplicates_finding(self.duplicates)} ({where})"] if self.duplicates else []
        if self.near_duplicates:
            lines.append(f"near-duplicates: {near_duplicates_finding(self.near_duplicates)} (the same object imaged "
                         f"again: shifted, re-exposed, noisy, flipped or turned; {where})")
        elif not self.near_search:
            lines.append("near-duplicates: not looked for (near_duplicates=False)")
        if not lines:
            return []
        if not self.dropped:
            return lines[:-1] + [lines[-1] + "; all kept, as published (drop_duplicates=True keeps one of each "
                                             "pixel-identical group, drop_duplicates=\"near\" of every group)"]
        return lines + [f"{len(self.dropped)} copies dropped with {self.dropped_with} (the first of each group, in "
                        "split order then by image_id, is kept):"] + [
            f"  dropped {d['split']}:{d['file_name']} (= {d['same_as']})" for d in self.dropped]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> "BuildReport":
        return cls(**json.loads(text))

    def render(self) -> str:
        lines = [f"Build report: {self.dataset}/{self.config} from {self.source}", f"  layout: {self.layout}"]
        for split, c in self.counts.items():
            per_label = ", ".join(f"{k} {v}" for k, v in c.get("label", {}).items())
            summed = "".join(f", {v} {k}" for k, v in c.items() if k != "total" and isinstance(v, int))
            lines.append(f"  {split}: {c['total']} examples{summed}" + (f" ({per_label})" if per_label else ""))
        for split, s in self.image_sizes.items():
            lines.append(f"  {split} image size (w x h): min {s['min']}, median {s['median']}, max {s['max']}")
        for split, c in self.mask_coverage.items():
            lines.append(f"  {split} mask foreground fraction: mean {c['mean']}, min {c['min']}, max {c['max']}")
        if self.count_mismatches:
            lines.append(f"  counts differing from the published ones ({len(self.count_mismatches)}):")
            lines += [f"    - {m}" for m in self.count_mismatches]
        else:
            lines.append("  counts match the published ones" + (" (before drop_duplicates=True)" if self.dropped else ""))
        lines += [f"  {line}" for line in self.duplicate_lines()]
        if self.skipped:
            lines.append(f"  rows left out with skip_bad=True ({len(self.skipped)}):")
            lines += [f"    - {p['kind']}: {p['file']} {p['detail']}".rstrip() for p in self.skipped]
        lines += [f"  found: {f}" for f in self.findings]
        lines += [f"  warning: {w}" for w in self.warnings]
        return "\n".join(lines)


def counted_parts(counted_columns: tuple[str, ...]) -> list[str]:
    """'fold+label' counts pairs of values; the facts must then carry both columns."""
    return list(dict.fromkeys(part for spec in counted_columns for part in spec.split("+")))


def tally(examples: list[dict], counted_columns: tuple[str, ...], summed_facts: tuple[str, ...] = ()) -> dict:
    counts: dict = {}
    for ex in examples:
        c = counts.setdefault(ex["split"], {"total": 0, **{fact: 0 for fact in summed_facts}})
        c["total"] += 1
        for fact in summed_facts:
            c[fact] += ex.get(fact, 0)
        for column in counted_columns:
            parts = [ex.get(part) for part in column.split("+")]
            value = None if None in parts else "/".join(map(str, parts))
            if value is not None:
                per_value = c.setdefault(column, {})
                per_value[value] = per_value.get(value, 0) + 1
    return counts


def compare_counts(counts: dict, published: PublishedCounts) -> list[str]:
    """Every published number that the built data does not reproduce, as a readable line."""
    combined: dict = {"total": 0}
    for c in counts.values():
        for column, per_value in c.items():
            if isinstance(per_value, int):
                combined[column] = combined.get(column, 0) + per_value
            elif isinstance(per_value, dict):
                for value, n in per_value.items():
                    combined.setdefault(column, {}).setdefault(value, 0)
                    combined[column][value] += n
    mismatches = []
    for split, expected in published.items():
        got = combined if split == "*" else counts.get(split, {"total": 0})
        where = "all splits" if split == "*" else split
        for column, want in expected.items():
            if column == "total":
                if got["total"] != want:
                    mismatches.append(f"{where}: {got['total']} examples, published {want}")
                continue
            if isinstance(want, int):  # a summed fact, such as objects over all images
                if got.get(column, 0) != want:
                    mismatches.append(f"{where}: {got.get(column, 0)} {column}, published {want}")
                continue
            for value, n in want.items():
                have = got.get(column, {}).get(value, 0)
                if have != n:
                    mismatches.append(f"{where}: {column} {value} {have}, published {n}")
    return mismatches


def group_overlap(examples: list[dict], group_column: str) -> list[str]:
    """Specimens/patients present in more than one split (splits meant to be subject-disjoint leak)."""
    splits_of: dict[str, set] = defaultdict(set)
    for ex in examples:
        if ex.get(group_column) is not None:
            splits_of[ex[group_column]].add(ex["split"])
    shared = sorted((g for g, s in splits_of.items() if len(s) > 1), key=str)
    if not shared:
        return []
    detail = ", ".join(f"{g} ({'+'.join(sorted(splits_of[g]))})" for g in shared[:20])
    return [f"{len(shared)} {group_column} values occur in more than one split: {detail}"]


def converted_modes(examples: list[dict], mode: str) -> list[str]:
    """A report line for images found in another mode than the config stores (`converted_from`)."""
    found = Counter(ex["converted_from"] for ex in examples if ex.get("converted_from"))
    if not found:
        return []
    modes = ", ".join(f"{name}: {n}" for name, n in sorted(found.items()))
    return [f"{sum(found.values())} images were not {mode} ({modes}): stored converted to {mode}, as every other"]


def turned_upright(examples: list[dict]) -> list[str]:
    """A report line for images stored upright from an EXIF orientation tag, their masks turned with them."""
    turned = Counter(ex["exif_orientation"] for ex in examples if ex.get("exif_orientation", 1) != 1)
    if not turned:
        return []
    tags = ", ".join(f"{tag}: {n}" for tag, n in sorted(turned.items()))
    return [f"{sum(turned.values())} images carry an EXIF orientation tag (tag: images, {tags}): stored upright as "
            "viewers show them, each mask turned the same way (masks are drawn on the stored pixels)"]


def stray_mask_values(examples: list[dict], max_listed: int = 10) -> list[str]:
    """Masks that are not strictly 0/255: kept (thresholded at 128), but never silently."""
    stray = [ex for ex in examples if ex.get("stray_mask_pixels")]
    if not stray:
        return []
    total = sum(ex["stray_mask_pixels"] for ex in stray)
    shown = ", ".join(f"{ex['file_name']} ({ex['stray_mask_pixels']})" for ex in stray[:max_listed])
    more = f" and {len(stray) - max_listed} more" if len(stray) > max_listed else ""
    return [f"{len(stray)} masks are not binary: {total} pixels other than 0/255, thresholded at 128 "
            f"(images: {shown}{more})"]


def coverage_stats(examples: list[dict]) -> dict:
    """Fraction of mask pixels that are foreground, per split (cell area, tumour area, ...)."""
    by_split: dict[str, list] = defaultdict(list)
    for ex in examples:
        if ex.get("mask_coverage") is not None:
            by_split[ex["split"]].append(ex["mask_coverage"])
    return {split: {"mean": round(statistics.fmean(v), 4), "min": round(min(v), 4), "max": round(max(v), 4)}
            for split, v in by_split.items()}


def size_stats(examples: list[dict]) -> dict:
    stats = {}
    by_split: dict[str, list] = defaultdict(list)
    for ex in examples:
        by_split[ex["split"]].append((ex["width"], ex["height"]))
    for split, sizes in by_split.items():
        areas = sorted(sizes, key=lambda wh: (wh[0] * wh[1], wh))
        stats[split] = {
            "min": list(areas[0]),
            "median": [int(statistics.median(w for w, _ in sizes)), int(statistics.median(h for _, h in sizes))],
            "max": list(areas[-1]),
        }
    return stats


def listed_twice(splits: dict[str, list]) -> list[Problem]:
    """An image that the label files list twice would become two rows: keep its first listing (in split
    order), drop the others, each a problem (fatal, or skipped once with skip_bad=True)."""
    first, problems = {}, []
    for split, records in splits.items():
        kept = []
        for record in records:
            file = record.name  # a cell cut from a slide names the slide and itself
            if file in first:
                problems.append(Problem("duplicate id", file, f"listed twice: in {first[file]} and again in {split}"))
            else:
                first[file] = split
                kept.append(record)
        records[:] = kept
    return problems
