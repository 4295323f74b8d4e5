"""A build's own processes: how SIGINT and SIGTERM stop it cleanly, and how its worker processes die with it.

`terminate_as_exception()` wraps a build (export.build_configs): in the building process the two signals
raise, so every `finally` runs and the output stays untouched; a worker that `datasets` forks during the
build gets the default dispositions back and the kernel's death signal, so it can neither hang the pool nor
outlive the build. The fork hook that does this is registered when the first build starts, not at import:
a program that imports medsets and never builds forks as it always did.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from contextlib import contextmanager

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


_building: list[int] = []  # the pid of the process running a build, while it runs (read by forked children)
_interrupted_by: list[int] = []  # the signal that stopped the build in this process, if one did
_fork_hook_registered: list[bool] = []


def _register_fork_hook():
    """Once per process, when its first build starts (os.register_at_fork cannot be undone)."""
    if not _fork_hook_registered:
        os.register_at_fork(after_in_child=_worker_signals_in_forked_child)
        _fork_hook_registered.append(True)


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


def stop_pool_maintenance(timeout: float = 5):
    """Stop the worker-maintenance thread of every pool that the interrupt left running.

    A pool's `__init__` starts that thread before it registers the finaliser that would terminate it; a
    signal that lands in between (about 1 in 8 two-process builds stopped at random) leaves a pool that
    nothing terminates and a thread that starts a new worker for each one that stops, even after the build
    has ended and `stop_children` ran: that worker outlives the build, waiting forever on the pool's queue,
    and a caller reading the build's output waits with it. The thread is told what `Pool.terminate` would
    tell it (private to multiprocessing, so looked up defensively) and joined."""
    for thread in _pool_threads("_handle_workers"):
        thread._state = sys.modules[thread._target.__module__].TERMINATE
        change_notifier = (getattr(thread, "_args", None) or (None,))[-1]  # wakes the thread from its wait
        if change_notifier is not None and hasattr(change_notifier, "put"):
            change_notifier.put(None)
        thread.join(timeout)


def _pool_threads(name: str) -> list:
    """The live threads of multiprocess(ing) pools running `Pool.<name>` (private to multiprocessing, so
    looked up defensively)."""

    found = []
    for thread in threading.enumerate():
        target = getattr(thread, "_target", None)
        module = getattr(target, "__module__", "") or ""
        if getattr(target, "__name__", "") == name and module in ("multiprocess.pool", "multiprocessing.pool"):
            found.append(thread)
    return found


def release_locks_of_dead_workers(held_for: float = 2.0) -> int:
    """Free a pool's result-queue write lock that stays held while a stopped build tears the pool down.

    Pool.terminate kills the workers with SIGTERM; one killed while putting its result on the queue dies
    holding that queue's write lock, and the pool's task handler (or terminate itself), which puts a last
    sentinel there, waits for it forever: CPython's own race, seen once in ~10 two-process builds stopped by
    a signal. A live holder keeps the lock for the microseconds one small message takes (the result handler
    reads until the sentinels arrive), so a lock still held after `held_for` seconds has only a dead holder:
    it is released. Returns how many were."""
    released = 0
    for thread in _pool_threads("_handle_tasks"):  # its args: taskqueue, put, outqueue, pool, cache
        outqueue = next((a for a in getattr(thread, "_args", ()) if hasattr(a, "_wlock") and hasattr(a, "_reader")),
                        None)
        lock = getattr(outqueue, "_wlock", None)
        if lock is None:
            continue
        if lock.acquire(timeout=held_for):
            lock.release()  # free: nothing is stuck on it
            continue
        try:
            lock.release()
            released += 1
        except ValueError:  # freed meanwhile
            pass
    return released


def _free_a_stuck_teardown(interrupts: int, done, every: float = 1.0):
    """While a build runs: once a signal has stopped it, keep its pools' teardown from hanging on a lock that
    a killed worker held (release_locks_of_dead_workers)."""
    while not done.wait(every):
        if len(_interrupted_by) > interrupts:
            release_locks_of_dead_workers()


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
    _register_fork_hook()

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

    done = threading.Event()  # started here, not by the signal: a handler must not start threads
    threading.Thread(target=_free_a_stuck_teardown, args=(interrupts, done), daemon=True,
                     name="medsets-teardown-watch").start()
    try:
        yield Stopped(interrupts)
    finally:
        done.set()
        # After an interrupt, a multiprocessing finaliser that the exception cut short in its __init__ fails
        # again when it is collected ("'Finalize' object has no attribute '_key'"), later, often at exit: that
        # report is left out too, for the rest of the process. Otherwise the caller's hook comes back.
        sys.unraisablehook = _without_broken_finalizers(previous_hook) if len(_interrupted_by) > interrupts \
            else previous_hook
        _building.remove(owner)
        if len(_interrupted_by) > interrupts:
            stop_pool_maintenance()
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
