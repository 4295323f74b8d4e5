"""The dataset card (README.md of a built folder): the prose of `cards/NAME.md`, the Hub YAML (configs,
dataset_info, size category, tags) and tables computed from every config's build report.

The prose ships as package data (`medsets.cards`), so a card built from an installed wheel is the same as
one built from a clone; a missing prose file is an error, never a silently empty card.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import datasets
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from .checks import BuildError, BuildReport
from .datasets_adapter import prepared_sizes
from .published import published_table


def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def card_prose(name: str) -> DatasetCard:
    """cards/<name>.md: YAML front matter (pretty_name, license, task_categories, tags) and the prose."""
    prose = resources.files("medsets.cards") / f"{name}.md"
    if not prose.is_file():
        raise BuildError(f"medsets: no card prose for {name!r} (cards/{name}.md is not in the installed package); "
                         "the card would lose its licence, terms and citation.",
                         hint="Reinstall medsets, or add cards/NAME.md beside the builder module NAME.")
    return DatasetCard(prose.read_text(encoding="utf-8"))


def write_card(folder: Path, builder_cls, info: datasets.DatasetInfo, config: str):
    """README.md: YAML (the prose's metadata, configs, dataset_info) merged with what is already there,
    then the prose and the tables computed from every config's build report."""
    readme = folder / "README.md"
    card_data = DatasetCard.load(readme).data if readme.exists() else DatasetCardData()
    name = builder_cls.__module__.rsplit(".", 1)[-1]
    prose = card_prose(name)
    for key, value in prose.data.to_dict().items():
        card_data[key] = value
    splits = list(info.splits)
    unions = builder_cls.split_unions(splits)
    MetadataConfigs({config: {
        "data_files": [{"split": s, "path": f"data/{config}/{s}-*"} for s in splits]
        + [{"split": name, "path": [f"data/{config}/{s}-*" for s in parts]} for name, parts in unions.items()],
    }}).to_dataset_card_data(card_data)
    # Exactly one default: the builder's, when it is present; otherwise datasets picks the only config.
    present = [c["config_name"] for c in card_data["configs"]]
    tasks = list(card_data.get("task_categories") or [])  # the prose's, and those of the configs present
    card_data["task_categories"] = list(dict.fromkeys(tasks + [t for c in present for t in builder_cls.CONFIG_TASKS.get(c, ())]))
    for entry in card_data["configs"]:
        entry.pop("default", None)
        if entry["config_name"] == builder_cls.DEFAULT_CONFIG_NAME and len(present) > 1:
            entry["default"] = True
    info = info.copy()
    info.config_name = config
    for union, parts in unions.items():  # declared so that load_dataset_builder reports its size too
        info.splits.add(datasets.SplitInfo(name=union, num_examples=sum(info.splits[p].num_examples for p in parts)))
    # The sizes a user's datasets computes from these files (what the builder counted while writing differs by
    # how its rows were grouped, and it knows no download size).
    files = {s: sorted(p.relative_to(folder).as_posix() for p in (folder / "data" / config).glob(f"{s}-*.parquet"))
             for s in splits}
    sizes = prepared_sizes(folder, {**files, **{name: [f for p in parts for f in files[p]] for name, parts in unions.items()}})
    for split, num_bytes in sizes["splits"].items():
        info.splits[split].num_bytes = num_bytes
    info.download_size, info.dataset_size = sizes["download_size"], sizes["dataset_size"]
    DatasetInfosDict({config: info}).to_dataset_card_data(card_data)
    card_data["tags"] = sorted(set(card_data.get("tags") or []) | {"medsets", "biology", "microscopy"})
    reports = [BuildReport.from_json(p.read_text(encoding="utf-8")) for p in sorted((folder / "reports").glob("*.json"))]
    card_data["size_categories"] = [size_category(max(sum(c["total"] for c in r.counts.values()) for r in reports))]
    title = card_data.get("pretty_name") or name
    body = card_text(name, builder_cls, reports, prose.text.strip(), folder)
    DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n# {title}\n\n{body}").save(readme)


def copies_across_splits(report: BuildReport) -> str:
    """What copies across splits mean for a score, in numbers: how many images of each later split have a
    copy (pixel-identical or re-imaged) in an earlier one."""
    groups = report.duplicates.get("groups", []) + report.near_duplicates.get("groups", [])
    order = list(report.counts)
    leaking: dict[str, set] = {}
    for group in groups:
        splits = {unit["split"] for unit in group}
        for unit in group:
            if any(order.index(other) < order.index(unit["split"]) for other in splits if other in order):
                leaking.setdefault(unit["split"], set()).add(unit["image_id"])
    if not leaking:
        return ""
    parts = [f"{len(ids)} of the {report.counts[split]['total']} {split} images" for split, ids in leaking.items()
             if split in report.counts]
    return ("**Copies across splits (computed).** " + "; ".join(parts) + " have a copy, pixel-identical or the same "
            "object imaged again, in an earlier split. A model scored on them is partly scored on images it has "
            "seen, so the score overstates how it does on new objects. Rows of one group share `duplicate_group` "
            "(-1: no copy): filter on it, or use it as the group of a GroupKFold. `medsets evaluate` and the "
            "fine-tuning scripts score the test images without them beside all of them.")


def card_text(name: str, builder_cls, reports: list[BuildReport], prose: str, folder: Path) -> str:
    lines = [prose or (builder_cls.__doc__ or "").strip(), ""]
    lines += [f"- {note}" for note in builder_cls.CARD_NOTES] + ([""] if builder_cls.CARD_NOTES else [])
    lines += ["## Built data", "",
              "Built with medsets from the raw download; every number below is computed from the built data.", ""]
    for report in reports:
        label_names = list(dict.fromkeys(v for c in report.counts.values() for v in c.get("label", {})))
        summed = list(dict.fromkeys(k for c in report.counts.values() for k, v in c.items()
                                    if k != "total" and isinstance(v, int)))
        lines += [f"### Config `{report.config}`", "", f"Source layout: {report.layout}.", ""]
        if (folder / f"sample-{report.config}.png").exists():
            lines += [f"![Examples of {report.config}](sample-{report.config}.png)", ""]
        columns = label_names + summed
        lines += ["| " + " | ".join(["split", "examples", *columns]) + " |", "|---|---|" + "---|" * len(columns)]
        def row(name, parts):
            def total(get):
                return str(sum(get(report.counts[p]) for p in parts))
            cells = [total(lambda c: c["total"])] + [total(lambda c, n=n: c.get("label", {}).get(n, 0)) for n in label_names]
            cells += [total(lambda c, k=k: c.get(k, 0)) for k in summed]
            return f"| {name} | " + " | ".join(cells) + " |"

        lines += [row(split, [split]) for split in report.counts]
        lines += [row(f"{name} (= {' + '.join(parts)}, no copy)", parts)
                  for name, parts in builder_cls.split_unions(list(report.counts)).items()]
        lines.append("")
        for split, s in report.image_sizes.items():
            lines.append(f"- {split} image size (w x h): min {s['min']}, median {s['median']}, max {s['max']}")
        for split, c in report.mask_coverage.items():
            lines.append(f"- {split} mask foreground fraction: mean {c['mean']}, min {c['min']}, max {c['max']}")
        duplicates = [line for line in report.duplicate_lines() if not line.startswith("  dropped")]
        findings = ([f"count differs from the published one: {m}" for m in report.count_mismatches]
                    + [f"left out with skip_bad=True: {p['kind']}: {p['file']} {p['detail']}".rstrip()
                       for p in report.skipped] + duplicates + report.findings + report.warnings)
        lines += ["", "Build findings:" if findings else "Build findings: none; counts match the published ones."]
        lines += [f"- {f}" for f in findings] + [""]
        leak = copies_across_splits(report)
        if leak:
            lines += [leak, ""]
        if report.dropped:  # every dropped row, folded: the line above says how many and why
            lines += [f"<details><summary>The {len(report.dropped)} rows dropped as copies</summary>",
                      "", "| split | file | same pixels as (kept) |", "|---|---|---|"]
            lines += [f"| {d['split']} | {d['file_name']} | {d['same_as']} |" for d in report.dropped]
            lines += ["", "</details>", ""]
        lines += ["```python", "from datasets import load_dataset",
                  f'ds = load_dataset("{name}", "{report.config}")', "```", ""]
    return "\n".join(lines + published_section(builder_cls))


def published_section(builder_cls) -> list[str]:
    """The published results with their protocols, and which of them a score on this build compares with."""
    table = published_table(builder_cls.PUBLISHED_RESULTS)
    lines = ["## Published results", ""]
    if not table:
        return lines + ["None found (searched December 2026): no paper we know of reports a score on this "
                        "dataset's test split, so there is nothing to compare with yet.", ""]
    return lines + ["Each number with the test set and protocol behind it; only those marked comparable were "
                    "measured on the split medsets builds, with the measure `medsets evaluate` computes.", "",
                    table, ""]
