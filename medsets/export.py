"""The hub-ready folder: Parquet shards with embedded images, README.md card, build reports.

    <out>/README.md                          YAML configs + dataset_info, then the card
    <out>/data/<config>/<split>-NNNNN-of-NNNNN.parquet
    <out>/reports/<config>.json, .txt        the build report of each config

The folder is written atomically: everything is assembled in a hidden temporary sibling and swapped in
by rename, so a failed or interrupted build leaves an existing output byte-identical and never leaves
a half-written one. Building another config into an existing folder keeps the configs already there.
Builds into one folder take turns (a lock beside it), so two at once cannot lose each other's config;
clean-up after a killed build removes only the siblings a build of ours made (their exact name, and a
marker inside).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import shutil
import stat
import sys
import uuid
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

from datasets.exceptions import DatasetGenerationError

from .card import write_card
from .croissant import write_croissant
from .shards import write_shards
from .source import check_exists
from .checks import MAX_NAMES_PER_KIND, BuildError
from .picture import sample_picture
from .processes import terminate_as_exception

TEMP_TAG = ".tmp-"
OLD_TAG = ".old-"
# Written first into every work folder: clean-up removes a .NAME.tmp-PID-XXXXXXXX folder only when it holds this.
WORK_MARKER = ".medsets-build"
# The siblings a build makes: .NAME.tmp-PID-XXXXXXXX (its work folder), .NAME.old-PID-XXXXXXXX (the output it
# replaces, for the instant between two renames).
SIBLING = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[0-9a-f]{8}$")
PROBLEMS_SUFFIX = ".medsets-problems.tsv"  # beside the output: every problem of the last failed build
LOCK_SUFFIX = ".medsets-lock"


class OutputError(BuildError):
    pass


def build(builder_cls, source, config: str | None, out, *, overwrite=False, skip_bad=False, num_proc=None,
          **config_options):
    """Build a dataset from a raw download into the hub folder `out`: the config named, or with none the
    dataset's default (with its `COMPANION_CONFIGS`, written in the same pass).
    `config_options` set fields of the builder's config (gzmh: tile_size, tile_overlap, tile_format;
    every dataset: drop_duplicates).

    Returns (folder, BuildReport of the first config built; `build_configs` returns every one). Raises
    BuildError (or SourceError) with every problem listed; the output is then untouched.
    """
    folder, reports = build_configs(builder_cls, source, config, out, overwrite=overwrite, skip_bad=skip_bad,
                                    num_proc=num_proc, **config_options)
    return folder, next(iter(reports.values()))


def build_configs(builder_cls, source, config: str | None, out, *, overwrite=False, skip_bad=False, num_proc=None,
                  **config_options):
    """As `build`; returns (folder, {config: BuildReport}) for every config written."""
    configs = [config] if config else [builder_cls.DEFAULT_CONFIG_NAME, *builder_cls.COMPANION_CONFIGS]
    out = Path(out).expanduser().resolve()
    if num_proc is not None and (isinstance(num_proc, bool) or not isinstance(num_proc, int) or num_proc < 1):
        raise BuildError(f"num_proc={num_proc!r}: the number of worker processes is a whole number, 1 or more.",
                         hint="Leave it out for the dataset's default.")
    check_exists(source)  # before the output's state: nothing can be built without it
    check_apart(source, out)
    with output_errors(out.parent, "create the folder that will hold the output"):
        out.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out), terminate_as_exception() as stopped:
        recover_interrupted(out)
        existing = check_output(out, configs, overwrite)
        problems_file = out.parent / f".{out.name}{PROBLEMS_SUFFIX}"
        try:
            built = build_into(builder_cls, source, configs, out, existing, skip_bad, num_proc, config_options,
                               stopped.check)
        except BuildError as err:
            raise with_every_problem_listed(err, problems_file) from None
        problems_file.unlink(missing_ok=True)  # an earlier failed build's list, out of date now
        return built


def check_apart(source, out: Path):
    """The output may not lie inside the download (the next build would read it as raw data), nor the
    download inside the output (replacing the output would delete it)."""
    try:
        source = Path(source).expanduser().resolve()
    except (OSError, RuntimeError):  # a symbolic-link loop: Source says so
        return
    if out == source or source in out.parents:
        raise OutputError(f"{out} lies inside the source {source}: the next build would read the output as part of "
                          "the download. Nothing was changed.", hint="Choose an out= folder outside the download.")
    if out in source.parents:
        raise OutputError(f"the source {source} lies inside the output folder {out}, which a build replaces. "
                          "Nothing was changed.", hint="Move the download out of that folder, or choose another out=.")


def with_every_problem_listed(err: BuildError, problems_file: Path) -> BuildError:
    """A failed build's error; where its message leaves problems unnamed (it names MAX_NAMES_PER_KIND of a
    kind), all of them written, one per line, to `problems_file` beside the output (replacing an older list),
    and the message saying where."""
    problems_file.unlink(missing_ok=True)  # an older list describes another attempt
    if max(Counter(p.kind for p in err.problems).values(), default=0) <= MAX_NAMES_PER_KIND:
        return err
    lines = [f"{p.kind}\t{p.file}\t{p.detail}" for p in err.problems]
    try:
        problems_file.write_text("kind\tfile\tdetail\n" + "\n".join(lines) + "\n", encoding="utf-8",
                                 errors="backslashreplace")
    except OSError:
        return err  # a full or read-only disk: the message alone, as before
    listed = f"All {len(err.problems)} problems, one per line: {problems_file}"
    return type(err)(err.what, err.problems, hint="\n".join(filter(None, [listed, err.hint])))


def build_into(builder_cls, source, configs: list[str], out: Path, existing: bool, skip_bad, num_proc, config_options,
               check_not_stopped=lambda: None):
    """The build itself, in a work folder beside `out` (the caller holds the output's lock): the first
    config through datasets, the others written beside it in the same pass."""
    work = out.parent / f".{out.name}{TEMP_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with removed_on_exit(work), output_errors(work, "write the build"):
        work.mkdir()
        (work / WORK_MARKER).write_text("a medsets build works here; removed when it ends\n")
        builder = builder_cls(config_name=configs[0], data_dir=str(source), cache_dir=str(work / "cache"),
                              skip_bad=skip_bad, companions=tuple(configs[1:]), **config_options)
        num_proc = num_proc or builder_cls.DEFAULT_NUM_PROC
        builder.download_and_prepare(output_dir=str(work / "prepared"), file_format="parquet",
                                     num_proc=num_proc if num_proc > 1 else None)
        stage = work / "out"
        stage.mkdir()
        if existing:
            carry_over(out, stage, keep=lambda rel: not any(owned_by(rel, config) for config in configs))
        (stage / "reports").mkdir(exist_ok=True)
        written = {configs[0]: builder, **builder.companions}
        for config, built in written.items():
            splits = splits_with_rows(built, config)
            write_shards({split: built.shard_files(split, work / "prepared") for split in splits},
                         stage / "data" / config)
            sample_picture(sorted((stage / "data" / config).glob(f"{splits[0]}-*.parquet")), built.info.features,
                           stage / f"sample-{config}.png")
            (stage / "reports" / f"{config}.json").write_text(built.report.to_json() + "\n", encoding="utf-8")
            (stage / "reports" / f"{config}.txt").write_text(built.report.render() + "\n", encoding="utf-8")
            write_card(stage, builder_cls, built.info, config)
        write_croissant(stage, builder_cls.__module__.rsplit(".", 1)[-1])  # every config of the folder
        # What the transformers segmentation example downloads beside the data, for the config it loads (the
        # default); a config with other classes gets its own file (HEp-2's slides: the default is cells).
        default = builder_cls.id2label(builder_cls.DEFAULT_CONFIG_NAME)
        for config in written:
            labels = builder_cls.id2label(config)
            if labels:
                name = "id2label.json" if labels == default else f"id2label-{config}.json"
                (stage / name).write_text(json.dumps({str(k): v for k, v in labels.items()}, indent=2) + "\n",
                                          encoding="utf-8")
        check_not_stopped()  # a signal whose exception a finaliser swallowed must still stop the build
        swap_in(stage, out)
    return out, {config: built.report for config, built in written.items()}


def splits_with_rows(built, config: str) -> list[str]:
    """The config's splits that kept rows. A split that --skip-bad or --drop-duplicates emptied is left out of
    the folder (its card's configs and split list), with a report line: `datasets` cannot load an empty split
    from Parquet. None kept: the build is refused."""
    empty = [split for split, info in built.info.splits.items() if not info.num_examples]
    if len(empty) == len(built.info.splits):
        raise BuildError(f"{built.name}/{config}: no rows are left in any split: nothing to build.",
                         hint="Build without skip_bad=True to see every problem, or fix the files the report names.")
    for split in empty:
        del built.info.splits[split]
        built.report.warnings.append(f"{split}: no rows left (every one skipped or dropped as a copy); the split "
                                     "is left out of the folder, which loads without it")
    return list(built.info.splits)


# -- output folder rules -----------------------------------------------------------------------------
def is_medsets_folder(folder: Path) -> bool:
    return (folder / "README.md").is_file() and any((folder / "reports").glob("*.json"))


def check_output(out: Path, configs: list[str], overwrite: bool) -> bool:
    """Refuse before any work is done; True when `out` is an existing medsets folder to extend."""
    if not out.exists():
        return False
    if not out.is_dir():
        raise OutputError(f"{out} exists and is a file.", hint="Choose another out= folder.")
    if not any(out.iterdir()):
        return False
    if not is_medsets_folder(out):
        raise OutputError(f"{out} exists and is not a folder built by medsets; it is left alone, even with "
                          "overwrite=True.", hint="Choose another out= folder, or remove that folder yourself.")
    held = [config for config in configs if (out / "data" / config).exists()]
    if held and not overwrite:
        raise OutputError(f"{out} already holds config{'s' if len(held) > 1 else ''} {', '.join(map(repr, held))}.",
                          hint="Pass overwrite=True to rebuild (other configs in the folder are kept), "
                               "or choose another out= folder.")
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


def swap_in(stage: Path, out: Path):
    if out.exists():
        old = out.parent / f".{out.name}{OLD_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)
        os.rename(stage, out)
        shutil.rmtree(old)
    else:
        os.rename(stage, out)


def recover_interrupted(out: Path):
    """Clean up after a build that was killed outright (SIGKILL, power loss) before it could: only siblings
    named exactly as a build names them, of a process no longer running, holding what a build put there
    (the work marker; for a replaced output, a medsets folder). Anything else is the user's and stays."""
    if not out.parent.exists():
        return
    for sibling in out.parent.iterdir():
        match = SIBLING.match(sibling.name)
        if not match or match["name"] != out.name or not sibling.is_dir() or pid_alive(int(match["pid"])):
            continue
        if match["kind"] == "old" and is_medsets_folder(sibling):
            if not out.exists():
                os.rename(sibling, out)  # killed between the two renames of swap_in: the old output is whole
            else:
                shutil.rmtree(sibling, ignore_errors=True)
        elif match["kind"] == "tmp" and (sibling / WORK_MARKER).is_file():
            shutil.rmtree(sibling, ignore_errors=True)


@contextmanager
def output_lock(out: Path):
    """Builds into one output folder take turns: an exclusive lock on .NAME.medsets-lock beside it, held
    from the first look at the folder until the new one is swapped in. A build that finds it taken says
    whose it is and waits. The holder removes the file before letting go; a waiter that then finds the
    file gone or replaced opens it anew, so no two ever hold locks on different files."""
    path = out.parent / f".{out.name}{LOCK_SUFFIX}"
    while True:
        handle = _open_lock_file(path, out)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            print(f"medsets: {out} is being written by another build ({holder}); waiting for it to finish ...",
                  file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            same = os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        handle.close()
    try:  # unbuffered, so that closing the file never has a line left to write
        os.ftruncate(handle.fileno(), 0)
        os.write(handle.fileno(), f"pid {os.getpid()}, {' '.join(sys.argv[:1] + sys.argv[1:4])}\n".encode())
    except OSError as err:  # a disk already full: not even the lock's line fits
        os.unlink(path)
        handle.close()
        raise output_error(err, out.parent, "lock the output folder") from None
    try:
        yield
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        handle.close()  # releases the lock


def _open_lock_file(path: Path, out: Path):
    """The lock file, opened without following a symbolic link (one planted there would have the build write
    to whatever it points at) and only if it is a plain file."""
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_NOFOLLOW", 0)
                             | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as err:
        if err.errno == errno.ELOOP or path.is_symlink():
            raise OutputError(f"{path} is a symbolic link; medsets takes the output's lock only in a plain file of "
                              "its own and follows no link there. Nothing was changed.",
                              hint=f"Remove {path} (no build is using it) and build again.") from None
        raise output_error(err, out.parent, "lock the output folder") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise OutputError(f"{path} is not a plain file; medsets keeps the output's lock there. Nothing was changed.",
                          hint=f"Remove {path} and build again.")
    return os.fdopen(descriptor, "a+")


@contextmanager
def output_errors(where: Path, doing: str):
    """An operating-system error while writing (disk full, read-only file system, a file where a folder
    should be) as an OutputError that says what failed and where; the caller's clean-up still runs."""
    try:
        yield
    except OSError as err:
        raise output_error(err, where, doing) from None
    except DatasetGenerationError as err:  # datasets wraps what failed while it wrote the shards
        cause = os_error_under(err)
        if cause is not None:
            raise output_error(cause, where, doing) from None
        raise


def os_error_under(err: BaseException) -> OSError | None:
    """The operating-system error beneath a wrapped one: a direct cause, or, from a worker process, the one
    its traceback names (multiprocessing sends the traceback's text, not the error: "OSError: [Errno 28] ...")."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError):
            return err
        named = re.search(r"^(?:\w+\.)*\w*(?:OSError|IOError|Error): \[Errno (\d+)\] ([^\n]*)", str(getattr(err, "tb", "")),
                          re.MULTILINE)
        if named:
            code, message = int(named.group(1)), named.group(2)
            place = re.search(r": '([^']+)'$", message)
            return OSError(code, os.strerror(code), place.group(1) if place else None)
        err = err.__cause__ or err.__context__
    return None


def output_error(err: OSError, where: Path, doing: str) -> OutputError:
    place = err.filename or where
    work = re.match(rf"^(.*)/\.([^/]+){re.escape(TEMP_TAG)}[^/]*", str(place))
    if work:  # inside a build's work folder, gone by now: the output it was writing is what the user knows
        place = f"{work.group(1)}/{work.group(2)} (its work folder beside it)"
    reason = err.strerror or str(err) or type(err).__name__
    hint = {errno.ENOSPC: "Free some disk space (a build needs about twice the output's size) or choose another out= folder.",
            errno.EROFS: "That file system is read-only: choose another out= folder.",
            errno.EACCES: "You may not write there: choose another out= folder.",
            errno.ENOTDIR: "A file stands where a folder should be: choose another out= folder."}.get(
        err.errno, "Choose another out= folder, or fix the problem named above.")
    return OutputError(f"could not {doing}: {reason}: {place}. Nothing was changed.", hint=hint)


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


