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

import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import sys
import uuid
from contextlib import contextmanager
from pathlib import Path

from datasets.exceptions import DatasetGenerationError

from .card import write_card
from .checks import BuildError
from .picture import sample_picture

TEMP_TAG = ".tmp-"
OLD_TAG = ".old-"
# Written first into every work folder: clean-up removes a .NAME.tmp-PID-XXXXXXXX folder only when it holds this.
WORK_MARKER = ".medsets-build"
# The siblings a build makes: .NAME.tmp-PID-XXXXXXXX (its work folder), .NAME.old-PID-XXXXXXXX (the output it
# replaces, for the instant between two renames).
SIBLING = re.compile(r"^\.(?P<name>.+)\.(?P<kind>tmp|old)-(?P<pid>\d+)-[0-9a-f]{8}$")
LOCK_SUFFIX = ".medsets-lock"


class OutputError(BuildError):
    pass


def build(builder_cls, source, config: str | None, out, *, overwrite=False, skip_bad=False, num_proc=None,
          **config_options):
    """Build a dataset from a raw download into the hub folder `out`: the config named, or with none the
    dataset's default (for a dataset with `BUILT_TOGETHER` configs, all of those in one pass).
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
    configs = [config] if config else list(builder_cls.BUILT_TOGETHER or [builder_cls.DEFAULT_CONFIG_NAME])
    out = Path(out).expanduser().resolve()
    with output_errors(out.parent, "create the folder that will hold the output"):
        out.parent.mkdir(parents=True, exist_ok=True)
    with output_lock(out), terminate_as_exception() as stopped:
        recover_interrupted(out)
        existing = check_output(out, configs, overwrite)
        return build_into(builder_cls, source, configs, out, existing, skip_bad, num_proc, config_options,
                          stopped.check)


def build_into(builder_cls, source, configs: list[str], out: Path, existing: bool, skip_bad, num_proc, config_options,
               check_not_stopped=lambda: None):
    """The build itself, in a work folder beside `out` (the caller holds the output's lock): the first
    config through datasets, the others written beside it in the same pass."""
    work = out.parent / f".{out.name}{TEMP_TAG}{os.getpid()}-{uuid.uuid4().hex[:8]}"
    with removed_on_exit(work), output_errors(work, "write the build"):
        work.mkdir()
        (work / WORK_MARKER).write_text("a medsets build works here; removed when it ends\n")
        builder = builder_cls(config_name=configs[0], data_dir=str(source), cache_dir=str(work / "cache"),
                              skip_bad=skip_bad, also_build=tuple(configs[1:]), **config_options)
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
            splits = list(built.info.splits)
            move_shards({split: built.shard_files(split, work / "prepared") for split in splits},
                        stage / "data" / config)
            sample_picture(sorted((stage / "data" / config).glob(f"{splits[0]}-*.parquet")), built.info.features,
                           stage / f"sample-{config}.png")
            (stage / "reports" / f"{config}.json").write_text(built.report.to_json() + "\n", encoding="utf-8")
            (stage / "reports" / f"{config}.txt").write_text(built.report.render() + "\n", encoding="utf-8")
            write_card(stage, builder_cls, built.info, config)
        id2label = next((labels for config in written if (labels := builder_cls.id2label(config))), None)
        if id2label:  # what the transformers segmentation example downloads beside the data
            (stage / "id2label.json").write_text(json.dumps({str(k): v for k, v in id2label.items()},
                                                            indent=2) + "\n", encoding="utf-8")
        check_not_stopped()  # a signal whose exception a finaliser swallowed must still stop the build
        swap_in(stage, out)
    return out, {config: built.report for config, built in written.items()}


# -- output folder rules -----------------------------------------------------------------------------
def is_medsets_folder(folder: Path) -> bool:
    return (folder / "README.md").is_file() and any((folder / "reports").glob("*.json"))


def check_output(out: Path, configs: list[str], overwrite: bool) -> bool:
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
    held = [config for config in configs if (out / "data" / config).exists()]
    if held and not overwrite:
        raise OutputError(f"{out} already holds config{'s' if len(held) > 1 else ''} {', '.join(map(repr, held))}.",
                          hint="Pass --overwrite to rebuild (other configs in the folder are kept), "
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


def move_shards(shards: dict[str, list[Path]], target: Path):
    """Each split's shards, in order, under the Hub convention data/<config>/<split>-SSSSS-of-NNNNN.parquet."""
    target.mkdir(parents=True)
    for split, files in shards.items():
        for index, shard in enumerate(files):
            shard.rename(target / f"{split}-{index:05d}-of-{len(files):05d}.parquet")


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
        try:
            handle = open(path, "a+")
        except OSError as err:
            raise output_error(err, out.parent, "lock the output folder") from None
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
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}, {' '.join(sys.argv[:1] + sys.argv[1:4])}\n")
    handle.flush()
    try:
        yield
    finally:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        handle.close()  # releases the lock


@contextmanager
def output_errors(where: Path, doing: str):
    """An operating-system error while writing (disk full, read-only file system, a file where a folder
    should be) as an OutputError that says what failed and where; the caller's clean-up still runs."""
    try:
        yield
    except OSError as err:
        raise output_error(err, where, doing) from None
    except DatasetGenerationError as err:  # datasets wraps what failed while it wrote the shards
        if isinstance(err.__cause__, OSError):
            raise output_error(err.__cause__, where, doing) from None
        raise


def output_error(err: OSError, where: Path, doing: str) -> OutputError:
    place = err.filename or where
    reason = err.strerror or str(err) or type(err).__name__
    hint = {errno.ENOSPC: "Free some disk space (a build needs about twice the output's size) or choose another --out.",
            errno.EROFS: "That file system is read-only: choose another --out.",
            errno.EACCES: "You may not write there: choose another --out.",
            errno.ENOTDIR: "A file stands where a folder should be: choose another --out."}.get(
        err.errno, "Choose another --out, or fix the problem named above.")
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


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _worker_signals_in_forked_child():
    """A process forked during a build (a `datasets` worker) gets SIGTERM's default action back (see
    terminate_as_exception), ignores SIGINT (Ctrl-C reaches the whole process group; the build stops its
    workers itself), and dies with the build: the kernel kills it when its parent ends, even by SIGKILL,
    where it would otherwise wait forever on a queue nobody reads."""
    if not _building or _building[-1] == os.getpid():
        return
    owner = _building[-1]
    _building.clear()  # its own children inherit the dispositions below; the kernel's death signal they need not
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sys.unraisablehook = _quiet_when_the_queue_is_gone(sys.unraisablehook)
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass
        if os.getppid() != owner:  # the build ended between the fork and the prctl
            os._exit(128 + signal.SIGKILL)


def _quiet_when_the_queue_is_gone(report):
    """datasets' `_prepare_split_single` yields in a `finally`: when a stopped build shuts the queue down under
    a worker, closing that generator raises "generator ignored GeneratorExit", which Python prints as an
    unraisable error. The build has stopped and says so; only that report is left out."""
    def hook(unraisable):
        if not (isinstance(unraisable.exc_value, RuntimeError) and "ignored GeneratorExit" in str(unraisable.exc_value)):
            report(unraisable)
    return hook


os.register_at_fork(after_in_child=_worker_signals_in_forked_child)
_building: list[int] = []  # the pid of the process running a build, while it runs (read by forked children)
_interrupted_by: list[int] = []  # the signal that stopped the build in this process, if one did


def active_children() -> list:
    return [child for name in ("multiprocess", "multiprocessing")  # datasets uses the first
            for child in (sys.modules[name].active_children() if name in sys.modules else ())]


def stop_children(keep: set[int] = frozenset()):
    """Kill the processes the build's worker pool left (a manager started just before the interrupt, a
    worker the pool started while it was being torn down): at exit multiprocessing would wait for each.
    Children in `keep` (the caller's own, from before the build) are left alone."""
    children = [child for child in active_children() if child.pid not in keep]
    for child in children:  # all at once: a worker that outlived the manager would complain on its way out
        child.kill()
    for child in children:
        child.join(timeout=5)


def interrupted_by() -> int | None:
    """SIGTERM or SIGINT when one of them stopped a build in this process: whatever exception then reaches
    the caller (the pool may raise its own while the interrupt unwinds it), that is why it stopped."""
    return _interrupted_by[-1] if _interrupted_by else None


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
        _interrupted_by.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise SystemExit(128 + signum)

    raise_exit.medsets_owner = owner

    try:
        previous = {signum: signal.signal(signum, raise_exit) for signum in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread: leave signal handling to the caller
        yield Stopped(len(_interrupted_by))
        return
    interrupts = len(_interrupted_by)
    callers_children = {child.pid for child in active_children()}
    _building.append(owner)
    # The handler's exception, raised while a finaliser (__del__, a weakref callback) runs, is "ignored" by
    # Python: printed and dropped, and the build would go on and swap its output in. The signal is recorded,
    # so the build checks before it swaps (Stopped.check); the "Exception ignored" report is left out.
    previous_hook = sys.unraisablehook

    def quiet_when_ours(unraisable):
        if not (isinstance(unraisable.exc_value, (KeyboardInterrupt, SystemExit)) and len(_interrupted_by) > interrupts):
            previous_hook(unraisable)

    sys.unraisablehook = quiet_when_ours
    try:
        yield Stopped(interrupts)
    finally:
        # After an interrupt, a multiprocessing finaliser that the exception cut short in its __init__ fails
        # again when it is collected ("'Finalize' object has no attribute '_key'"), later, often at exit: that
        # report is left out too, for the rest of the process. Otherwise the caller's hook comes back.
        sys.unraisablehook = _without_broken_finalizers(previous_hook) if len(_interrupted_by) > interrupts \
            else previous_hook
        _building.remove(owner)
        if len(_interrupted_by) > interrupts:
            stop_children(keep=callers_children)
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _without_broken_finalizers(report):
    def hook(unraisable):
        kind = type(unraisable.object)
        if not (kind.__name__ == "Finalize" and kind.__module__.startswith(("multiprocess", "multiprocessing"))):
            report(unraisable)
    return hook


class Stopped:
    """Whether SIGINT or SIGTERM arrived since a build began, whatever became of the exception it raised."""

    def __init__(self, mark: int):
        self.mark = mark

    def check(self):
        if len(_interrupted_by) > self.mark:
            signum = _interrupted_by[-1]
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
