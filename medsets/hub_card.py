"""What the Hub accepts in a dataset card, checked offline: `card_problems(folder)` lists every way the card
(README.md) of a built folder would be refused or shown wrong, so that `medsets push` stops before any data
moves, and a test holds every card the builders write to it.

The lists are the Hub's own, kept here as data: the licence identifiers of its documentation page on
licences, its task categories and their task ids (the pipeline types and subtasks of the Hub's task list in
huggingface.js), datasets' size categories and annotation creators. The checks beyond the YAML's words are
those a reader meets: every `configs` pattern matches files of the folder and every data file is in a
config; each config's sizes are what datasets computes when it prepares the folder (`datasets_adapter`);
every Markdown table is a table in GitHub-flavoured Markdown (a header and a delimiter row of as many cells,
else the Hub shows a line of pipes).
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

HUB_LICENSES = frozenset("""
apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0 bigcode-openrail-m
afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear c-uda cc cc0-1.0 cc-by-2.0
cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0 cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0
cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0 cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0
cdla-permissive-1.0 cdla-permissive-2.0 wtfpl ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 agpl-3.0 gfdl gpl
gpl-2.0 gpl-3.0 lgpl lgpl-2.1 lgpl-3.0 isc lppl-1.3c ms-pl mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql
ofl-1.1 ncsa unlicense zlib pddl lgpl-lr deepfloyd-if-license llama2 gemma unknown other
""".split())

# The Hub's task categories for datasets' images, with their task ids (others exist for text, audio, ...;
# a card of this package names only these).
HUB_TASKS = {
    "image-classification": ("multi-label-image-classification", "multi-class-image-classification"),
    "object-detection": ("face-detection", "vehicle-detection"),
    "image-segmentation": ("instance-segmentation", "semantic-segmentation", "panoptic-segmentation"),
    "image-to-image": ("image-inpainting", "image-colorization", "super-resolution"),
    "image-to-text": ("image-captioning",),
    "image-feature-extraction": (),
    "mask-generation": (),
    "zero-shot-image-classification": (),
    "depth-estimation": (),
    "other": (),
}
ANNOTATION_CREATORS = ("found", "crowdsourced", "expert-generated", "machine-generated", "no-annotation", "other")
SIZE_CATEGORIES = ("unknown", "n<1K", "1K<n<10K", "10K<n<100K", "100K<n<1M", "1M<n<10M", "10M<n<100M")
SOURCE_DATASETS = ("original", "extended")  # or "extended|<hub id>"


def card_problems(folder: Path, text: str | None = None) -> list[str]:
    """Every problem of the folder's card (or of `text`, a card to be written there), each one line."""
    from huggingface_hub import DatasetCard

    folder = Path(folder)
    text = (folder / "README.md").read_text(encoding="utf-8") if text is None else text
    if not text.startswith("---\n"):
        return ["README.md has no YAML block between --- lines at its top"]
    try:
        card = DatasetCard(text)  # the library's own parsing of the YAML block
    except ValueError as err:
        return [f"README.md: the YAML does not parse: {str(err).splitlines()[0]}"]
    meta = card.data.to_dict()
    return metadata_problems(meta) + config_problems(folder, meta) + table_problems(card.text)


def metadata_problems(meta: dict) -> list[str]:
    problems = []
    licence = meta.get("license")
    if licence not in HUB_LICENSES:
        problems.append(f"license: {licence!r} is not a Hub licence identifier")
    if licence == "other" and not (meta.get("license_name") and meta.get("license_link")):
        problems.append("license: other needs license_name and license_link (the terms' text or page)")
    categories = meta.get("task_categories") or []
    for category in categories:
        if category not in HUB_TASKS:
            problems.append(f"task_categories: {category!r} is not a Hub task category for images")
    allowed_ids = {task_id for category in categories for task_id in HUB_TASKS.get(category, ())}
    for task_id in meta.get("task_ids") or []:
        if task_id not in allowed_ids:
            problems.append(f"task_ids: {task_id!r} is not a task id of {', '.join(categories) or 'no category'}")
    for key, allowed in (("annotations_creators", ANNOTATION_CREATORS), ("size_categories", SIZE_CATEGORIES)):
        values = meta.get(key) or []
        if not values:
            problems.append(f"{key}: missing")
        problems += [f"{key}: {value!r} is not one of {', '.join(allowed)}" for value in values if value not in allowed]
    sources = meta.get("source_datasets") or []
    if not sources:
        problems.append("source_datasets: missing")
    problems += [f"source_datasets: {value!r} is neither 'original' nor 'extended|<id>'" for value in sources
                 if value not in SOURCE_DATASETS and not str(value).startswith("extended|")]
    return problems


def config_problems(folder: Path, meta: dict) -> list[str]:
    """`configs` patterns against the folder's data files, and `dataset_info` sizes against those datasets
    computes from them."""
    from .datasets_adapter import prepared_sizes

    problems = []
    data_files = sorted(p.relative_to(folder).as_posix() for p in (folder / "data").rglob("*.parquet"))
    matched = set()
    stated = meta.get("dataset_info") or []
    infos = {info.get("config_name", "default"): info for info in ([stated] if isinstance(stated, dict) else stated)}
    for config in meta.get("configs") or []:
        name = config.get("config_name", "default")
        files_of_split = {}
        for entry in config.get("data_files") or []:
            patterns = entry["path"] if isinstance(entry["path"], list) else [entry["path"]]
            found = [f for f in data_files if any(fnmatch.fnmatchcase(f, pattern) for pattern in patterns)]
            if not found:
                problems.append(f"configs: {name}/{entry['split']}: {', '.join(patterns)} matches no file")
            files_of_split[entry["split"]] = found
            matched.update(found)
        info = infos.get(name)
        if info is None:
            problems.append(f"dataset_info: no entry for config {name}")
            continue
        if not all(files_of_split.values()):
            continue
        sizes = prepared_sizes(folder, files_of_split)
        stated = {split["name"]: split.get("num_bytes") for split in info.get("splits") or []}
        problems += [f"dataset_info: {name}/{split}: num_bytes {stated.get(split)} where datasets computes {size}"
                     for split, size in sizes["splits"].items() if stated.get(split) != size]
        for key in ("download_size", "dataset_size"):
            if info.get(key) != sizes[key]:
                problems.append(f"dataset_info: {name}: {key} {info.get(key)} where datasets computes {sizes[key]}")
    problems += [f"configs: data file {f} is in no config" for f in data_files if f not in matched]
    return problems


def table_problems(markdown: str) -> list[str]:
    """GitHub-flavoured Markdown tables: a header row and a delimiter row of the same number of cells."""
    problems = []
    lines = markdown.splitlines()
    for number, (header, delimiter) in enumerate(zip(lines, lines[1:]), start=1):
        if not re.fullmatch(r"\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*", delimiter):
            continue
        if cell_count(header) != cell_count(delimiter):
            problems.append(f"README.md table at body line {number}: {cell_count(header)} header cells over "
                            f"{cell_count(delimiter)} in the delimiter row: {header.strip()[:80]}")
    return problems


def cell_count(row: str) -> int:
    row = row.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return len(re.split(r"(?<!\\)\|", row))
