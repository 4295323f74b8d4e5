"""The hub-ready folder: Parquet shards with embedded images, README.md card, build reports.

    <out>/README.md                          YAML configs + dataset_info, then the card
    <out>/data/<config>/<split>-NNNNN-of-NNNNN.parquet
    <out>/reports/<config>.json, .txt        the build report of each config

The folder is written atomically: everything is assembled in a hidden temporary sibling and swapped in
by rename, so a failed or interrupted build leaves an existing output byte-identical and never leaves
a half-written one. Building another config into an existing folder keeps the configs already there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import uuid
from contextlib import contextmanager
from pathlib import Path

import datasets
from datasets.info import DatasetInfosDict
from datasets.utils.metadata import MetadataConfigs
from huggingface_hub import DatasetCard, DatasetCardData

from .checks import BuildError, BuildReport
from .picture import sample_picture

CARDS = Path(__file__).resolve().parents[1] / "cards"  # the prose of each card, one file per dataset
TEMP_TAG = ".tmp-"
OLD_TAG = ".old-"


class OutputError(BuildError):
    pass


def build(builder_cls, source, config: str | None, out, *, overwrite=False, skip_bad=False, num_proc=None,
          **config_options):
    """Build one config of a dataset from a raw download into the hub folder `out`; `config_options` set
    fields of the builder's config (gzmh tiles: tile_size, tile_overlap).

    Returns (folder, BuildReport). Raises BuildError (or SourceError) with every problem listed;
    the output is then untouched.
    """
    config = config or builder_cls.DEFAULT_CONFIG_NAME
    out = Path(out).expanduser().resolve()
    recover_interrupted(out)
    existing = check_output(out, config, overwrite)
    work = out.parent / f".{out.name}{TEMP_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with removed_on_exit(work), terminate_as_exception():
        builder = builder_cls(config_name=config, data_dir=str(source), cache_dir=str(work / "cache"),
                              skip_bad=skip_bad, **config_options)
        num_proc = num_proc or builder_cls.DEFAULT_NUM_PROC
        builder.download_and_prepare(output_dir=str(work / "prepared"), file_format="parquet",
                                     num_proc=num_proc if num_proc > 1 else None)
        stage = work / "out"
        stage.mkdir()
        if existing:
            carry_over(out, stage, keep=lambda rel: not owned_by(rel, config))
        splits = list(builder.info.splits)
        move_shards(work / "prepared", stage / "data" / config, builder.dataset_name, splits)
        sample_picture(sorted((stage / "data" / config).glob(f"{splits[0]}-*.parquet")), builder.info.features,
                       stage / f"sample-{config}.png")
        (stage / "reports").mkdir(exist_ok=True)
        (stage / "reports" / f"{config}.json").write_text(builder.report.to_json() + "\n", encoding="utf-8")
        (stage / "reports" / f"{config}.txt").write_text(builder.report.render() + "\n", encoding="utf-8")
        if builder_cls.ID2LABEL:  # what the transformers segmentation example downloads beside the data
            (stage / "id2label.json").write_text(json.dumps({str(k): v for k, v in builder_cls.ID2LABEL.items()},
                                                            indent=2) + "\n", encoding="utf-8")
        write_card(stage, builder_cls, builder.info, config)
        swap_in(stage, out)
    return out, builder.report


# -- output folder rules -----------------------------------------------------------------------------
def is_medsets_folder(folder: Path) -> bool:
    return (folder / "README.md").is_file() and any((folder / "reports").glob("*.json"))


def check_output(out: Path, config: str, overwrite: bool) -> bool:
    """Refuse before any work is done; True when `out` is an existing medsets folder to extend."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise OutputError(f"{out} exists and is a file.", hint="Choose another --out.")
    if not any(out.iterdir()):
        return False
    if not is_medsets_folder(out):
        raise OutputError(f"{out} exists and is not a folder built by medsets; it is left alone, even with "
                          "--overwrite.", hint="Choose another --out, or remove that folder yourself.")
    if (out / "data" / config).exists() and not overwrite:
        raise OutputError(f"{out} already holds config '{config}'.",
                          hint="Pass --overwrite to rebuild it (other configs in the folder are kept), "
                               "or choose another --out.")
    return True


def owned_by(rel: str, config: str) -> bool:
    return rel.startswith(f"data/{config}/") or rel in (f"reports/{config}.json", f"reports/{config}.txt",
                                                        f"sample-{config}.png")


def carry_over(old: Path, new: Path, keep):
    """Hard-link (or copy) the files of the other configs into the new folder."""
    for path in old.rglob("*"):
        rel = path.relative_to(old).as_posix()
        if path.is_file() and rel != "README.md" and keep(rel):
            target = new / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(path, target)
            except OSError:
                shutil.copy2(path, target)
    if (old / "README.md").exists():
        shutil.copy2(old / "README.md", new / "README.md")


def move_shards(prepared: Path, target: Path, dataset_name: str, splits: list[str]):
    """datasets names shards '<name>-<split>[-SSSSS-of-NNNNN].parquet'; the Hub convention is
    data/<config>/<split>-SSSSS-of-NNNNN.parquet."""
    target.mkdir(parents=True)
    for split in splits:
        pattern = re.compile(rf"^{re.escape(dataset_name)}-{re.escape(split)}(-\d{{5}}-of-\d{{5}})?\.parquet$")
        shards = sorted(p for p in prepared.iterdir() if pattern.match(p.name))
        for index, shard in enumerate(shards):
            shard.rename(target / f"{split}-{index:05d}-of-{len(shards):05d}.parquet")


def swap_in(stage: Path, out: Path):
    if out.exists():
        old = out.parent / f".{out.name}{OLD_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
        os.rename(stage, out)
        shutil.rmtree(old)
    else:
        os.rename(stage, out)


def recover_interrupted(out: Path):
    """Clean up after a build that was killed outright (SIGKILL, power loss) before it could."""
    if not out.parent.exists():
        return
    for sibling in out.parent.glob(f".{out.name}.*-*"):
        tag = sibling.name[len(out.name) + 1:]
        pid = tag.split("-", 1)[1].split("-")[0] if "-" in tag else ""
        if not pid.isdigit() or pid_alive(int(pid)):
            continue
        if tag.startswith(OLD_TAG) and not out.exists():
            os.rename(sibling, out)  # killed between the two renames of swap_in: the old output is whole
        else:
            shutil.rmtree(sibling, ignore_errors=True)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def removed_on_exit(folder: Path):
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _default_sigterm_in_forked_child():
    """Forked children get SIGTERM's default action back (see terminate_as_exception)."""
    if getattr(signal.getsignal(signal.SIGTERM), "medsets_owner", None) not in (None, os.getpid()):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


os.register_at_fork(after_in_child=_default_sigterm_in_forked_child)


@contextmanager
def terminate_as_exception():
    """Turn SIGTERM into an exception in the main thread so that cleanup (`finally`) runs.

    Only in this process. Worker processes forked by `datasets` (num_proc > 1) would inherit the handler,
    and the pool stops its workers with SIGTERM when a split is done. A worker must then die as with the
    default action: one that raised instead could be left blocked on the pool's queue lock, and so could
    one whose signal the kernel handed to another of its threads (Arrow's pool), since a Python handler
    only runs once the main thread wakes up, and a thread blocked on that lock never does. Either way the
    build hung in Pool.terminate (seen in about 1 of 4 two-process builds). So a fork resets SIGTERM to
    the default at once (os.register_at_fork), and the handler itself exits at once outside its process."""
    owner = os.getpid()

    def raise_exit(signum, frame):
        if os.getpid() != owner:
            os._exit(128 + signum)
        raise SystemExit(128 + signum)

    raise_exit.medsets_owner = owner

    try:
        previous = signal.signal(signal.SIGTERM, raise_exit)
    except ValueError:  # not the main thread: leave signal handling to the caller
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- the card -----------------------------------------------------------------------------------------
def size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def card_prose(name: str) -> DatasetCard:
    """cards/<name>.md: YAML front matter (pretty_name, license, task_categories, tags) and the prose."""
    path = CARDS / f"{name}.md"
    return DatasetCard(path.read_text(encoding="utf-8")) if path.exists() else DatasetCard("---\n---\n")


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
    for entry in card_data["configs"]:
        entry.pop("default", None)
        if entry["config_name"] == builder_cls.DEFAULT_CONFIG_NAME and len(present) > 1:
            entry["default"] = True
    info = info.copy()
    info.config_name = config
    for union, parts in unions.items():  # declared so that load_dataset_builder reports its size too
        info.splits.add(datasets.SplitInfo(name=union, num_examples=sum(info.splits[p].num_examples for p in parts),
                                           num_bytes=sum(info.splits[p].num_bytes for p in parts)))
    DatasetInfosDict({config: info}).to_dataset_card_data(card_data)
    card_data["tags"] = sorted(set(card_data.get("tags") or []) | {"medsets", "biology", "microscopy"})
    reports = [BuildReport.from_json(p.read_text(encoding="utf-8")) for p in sorted((folder / "reports").glob("*.json"))]
    card_data["size_categories"] = [size_category(max(sum(c["total"] for c in r.counts.values()) for r in reports))]
    title = card_data.get("pretty_name") or name
    body = card_text(name, builder_cls, reports, prose.text.strip(), folder)
    DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n# {title}\n\n{body}").save(readme)


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
        lines += ["| split | examples | " + " | ".join(columns) + " |", "|---|---|" + "---|" * len(columns)]
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
        findings = ([f"count differs from the published one: {m}" for m in report.count_mismatches]
                    + [f"left out with --skip-bad: {p['kind']}: {p['file']} {p['detail']}".rstrip()
                       for p in report.skipped] + report.warnings)
        lines += ["", "Build findings:" if findings else "Build findings: none; counts match the published ones."]
        lines += [f"- {f}" for f in findings] + [""]
        lines += ["```python", "from datasets import load_dataset",
                  f'ds = load_dataset("{name}", "{report.config}")', "```", ""]
    return "\n".join(lines)
