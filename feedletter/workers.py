"""CPU-bound work handed from the fetch threads to worker processes, once a run has enough of it.

Parsing, sanitizing and hashing a feed is pure CPU. In the fetch threads it all runs under one GIL,
and sixteen threads contending for it made it twice as slow as one thread doing it alone (measured
on the loopback farm, 500 feeds of 20 items: 9.5 s in the fetch threads, 5.1 s in one thread,
3.1 s in two processes). A run that parses only a few feeds (the usual hourly run, where most
answer 304) never pays for the processes: the first ``after`` calls run in the calling thread, then
a background thread starts the pool, and calls go on running inline until it is ready.

Workers come from a fork server (``forkserver``), not a plain ``fork`` of this process: the
caller has threads (the fetch pool, Prefect's), and a child forked while one of them holds a lock
can hang on it. The fork server imports ``preload`` once (:mod:`feedletter.ingest.entries`, a third of
a second here) and every worker forks from it ready to work, in this run and in later ones of the
same process. As with any multiprocessing, it also imports the caller's ``__main__``: a script of
your own that gathers needs the usual ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import functools
import gc
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import CancelledError, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from typing import Any, Generic, TypeVar

__all__ = ["CpuPool", "Job", "default_processes", "give_back_memory", "processes_for", "quiet_worker"]

log = logging.getLogger(__name__)
R = TypeVar("R")


# Calls a gather stage makes inline before its pool starts worker processes (feeds parsed in the fetch
# threads, pages extracted): a run with fewer never starts them.
PROCESSES_AFTER = 16


def default_processes() -> int:
    """One worker per CPU this process may use; none on a single CPU, where they only add copying."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return cpus if cpus > 1 else 0


def processes_for(setting: int | None) -> int:
    """Worker processes for a ``gather.processes`` setting: unset means one per CPU."""
    return default_processes() if setting is None else setting


def give_back_memory() -> None:
    """Hand the C allocator's free pages back to the system (glibc's ``malloc_trim``; elsewhere nothing).

    A stage that held thousands of texts and dicts leaves its freed memory inside the allocator's
    heap, between blocks still in use, where it stays counted in this process's memory for the rest
    of the run (measured: 110 MB after grouping 10k articles). Called as such a stage ends; it costs
    tens of milliseconds (46 ms after 200 MB of small strings were freed).
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        import ctypes

        func: Callable[[int], int] = ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return func


ORPHAN_CHECK = 0.5  # seconds between a worker's checks that the process it works for is alive


def quiet_worker(parent: int) -> None:
    """A worker process's start: Ctrl-C is its parent's to handle, and it ends with ``parent``."""
    # Ctrl-C reaches the whole process group: the parent shuts the pool down, the workers need not
    # print a traceback each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with, args=(parent,), name="feedletter-orphan-check", daemon=True).start()
    # What the worker was forked with (the fork server's imports) lives as long as it does: frozen,
    # the collector's full passes skip it, and do not write to those pages, which stay shared.
    gc.freeze()


def _exit_with(parent: int) -> None:
    """End this worker once ``parent`` is gone (killed with SIGKILL, say): no worker outlives its run.

    A worker's own parent is the fork server, which a killed run leaves behind too; so the worker
    watches the run's process itself, and the fork server and the resource tracker end once no
    worker is left to hold their pipes.
    """
    while True:
        time.sleep(ORPHAN_CHECK)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:
            pass


def start_fork_server(preload: Sequence[str]) -> None:
    """Start the fork server that worker processes come from, with ``preload`` imported in it, and
    return at once: a pool made a moment later finds it ready, or nearly, instead of starting it
    then. If it cannot start, nothing is lost: the pool tries again, and works inline if that fails.
    """
    try:
        multiprocessing.get_context("forkserver").set_forkserver_preload(list(preload))
        multiprocessing.forkserver.ensure_running()
    except Exception as exc:  # e.g. no /dev/shm or process limit: the pool will say so if it matters
        log.debug("the fork server did not start ahead (%s)", exc)


class Job(Generic[R]):
    """A call handed to a :class:`CpuPool`: :meth:`result` waits for its value or raises its error."""

    __slots__ = ("_args", "_callbacks", "_done", "_error", "_func", "_pool", "_rerun", "_value")

    def __init__(self, pool: CpuPool, func: Callable[..., R], args: tuple[Any, ...]) -> None:
        self._pool, self._func, self._args = pool, func, args
        self._done = threading.Event()
        self._value: R | None = None
        self._error: BaseException | None = None
        self._rerun = False  # the pool broke before answering: result() runs the call here
        self._callbacks: list[Callable[[Job[R]], None]] = []

    def result(self) -> R:
        self._done.wait()
        if self._rerun:
            return self._pool._inline(self._func, self._args)
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def add_done_callback(self, callback: Callable[[Job[R]], None]) -> None:
        """Call ``callback(job)`` once the job is done (at once if it is), from whichever thread ends it."""
        with self._pool._lock:
            if not self._done.is_set():
                self._callbacks.append(callback)
                return
        callback(self)

    def _finish(self, *, value: R | None = None, error: BaseException | None = None, rerun: bool = False) -> None:
        self._value, self._error, self._rerun = value, error, rerun
        if not rerun:
            self._args = ()  # a feed's body is not kept past its parse
        with self._pool._lock:
            self._done.set()
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)


def _run_batch(calls: list[tuple[Callable[..., Any], tuple[Any, ...]]]) -> list[tuple[bool, Any]]:
    """In a worker: each call's value, or the exception it raised, in order."""
    out: list[tuple[bool, Any]] = []
    for func, args in calls:
        try:
            out.append((True, func(*args)))
        except Exception as exc:  # handed back to the caller's Job, as an executor would
            out.append((False, exc))
    return out


class CpuPool:
    """Run picklable functions inline or in worker processes; safe to call from many threads.

    ``processes`` of 0 or 1 keeps everything inline. A pool that breaks or cannot start (a worker
    killed for memory, say) is not fatal: that call and every later one runs inline, and the reason
    is logged once.

    :meth:`submit` hands a call over without waiting for it; calls waiting for a worker go to it
    several at a time. Each hand-over costs the caller's process about 0.4 ms of CPU in the
    executor's threads and pipes, which batching divides: a tenth of gathering 500 feeds had
    gone there. At most ``max_waiting`` calls wait (their arguments held in memory); ``submit``
    blocks while that many do.
    """

    def __init__(self, processes: int, *, after: int = 16, preload: Sequence[str] = (),
                 batch: int = 8, max_waiting: int = 32) -> None:
        self.processes = processes
        self.after = after
        self.preload = list(preload)
        self.batch = batch
        self.max_waiting = max_waiting
        self._lock = threading.RLock()
        self._room = threading.Condition(self._lock)
        self._inline_lock = threading.Lock()
        self._calls = 0
        self._starter: threading.Thread | None = None
        self._pool: ProcessPoolExecutor | None = None  # set once a worker has answered
        self._broken = False
        self._closed = False
        self._waiting: deque[Job[Any]] = deque()
        self._in_flight = 0  # batches handed to the executor and not yet answered

    def start(self) -> None:
        """Start the worker processes now, rather than at the ``after``-th call, for a caller that
        knows the calls will come; calls made before the workers are ready still run here."""
        with self._lock:
            if self.processes >= 2 and not self._broken and not self._closed:
                self._begin()

    def _begin(self) -> None:
        if self._starter is None:
            self._starter = threading.Thread(target=self._start, name="feedletter-workers", daemon=True)
            self._starter.start()

    def _executor(self) -> ProcessPoolExecutor | None:
        with self._lock:
            self._calls += 1
            if self.processes < 2 or self._broken or self._closed or (self._calls <= self.after
                                                                       and self._starter is None):
                return None
            self._begin()
            return self._pool

    def _start(self) -> None:
        try:
            context = multiprocessing.get_context("forkserver")
            if self.preload:
                context.set_forkserver_preload(self.preload)
            pool = ProcessPoolExecutor(self.processes, mp_context=context, initializer=quiet_worker,
                                       initargs=(os.getpid(),))
            pool.submit(int).result()  # the fork server's imports, then a worker's answer
        except Exception as exc:  # any failure to start means: work inline
            self._stopped(exc)
            return
        with self._lock:
            if not self._closed:
                self._pool = pool
                return
        pool.shutdown(wait=True)

    def _stopped(self, exc: BaseException) -> None:
        with self._lock:
            if not self._broken:
                log.warning("worker processes stopped (%s); the rest of this run works in-process", exc)
            self._broken = True
            waiting, self._waiting = list(self._waiting), deque()
            self._room.notify_all()
        for job in waiting:
            job._finish(rerun=True)

    def run(self, func: Callable[..., R], *args: Any) -> R:
        """``func(*args)``, in a worker process when the pool is ready, else here."""
        return self.submit(func, *args).result()

    def submit(self, func: Callable[..., R], *args: Any) -> Job[R]:
        """Hand ``func(*args)`` to a worker process when the pool is ready, else run it here now.

        Here means one call at a time: threads contending for the GIL with CPU-bound work get less
        done together than one of them alone, while the others wait on the network or on this.
        """
        job: Job[R] = Job(self, func, args)
        pool = self._executor()
        while pool is None:
            if self._inline_lock.acquire(timeout=0.05):
                try:
                    job._finish(value=func(*args))
                except Exception as exc:
                    job._finish(error=exc)
                finally:
                    self._inline_lock.release()
                return job
            pool = self._pool  # ready while this call waited its turn
        with self._lock:
            while len(self._waiting) >= self.max_waiting and not self._broken:
                self._room.wait()
            if self._broken:
                job._finish(rerun=True)
                return job
            self._waiting.append(job)
            self._pump()
        return job

    def _inline(self, func: Callable[..., R], args: tuple[Any, ...]) -> R:
        with self._inline_lock:
            return func(*args)

    def _pump(self) -> None:
        """Hand waiting calls to the executor, a batch at a time, keeping one batch queued per worker."""
        with self._lock:
            while self._waiting and self._pool is not None and self._in_flight < self.processes + 1:
                # Shared out between the workers, so that a short queue is not all given to one.
                size = min(self.batch, -(-len(self._waiting) // self.processes))
                batch = [self._waiting.popleft() for _ in range(size)]
                self._in_flight += 1
                try:
                    future = self._pool.submit(_run_batch, [(job._func, job._args) for job in batch])
                except (BrokenProcessPool, RuntimeError) as exc:  # broken, or shut down under us
                    self._in_flight -= 1
                    self._waiting.extendleft(reversed(batch))
                    self._stopped(exc)
                    return
                future.add_done_callback(functools.partial(self._answered, batch))
            self._room.notify_all()

    def _answered(self, batch: list[Job[Any]], future: Future[list[tuple[bool, Any]]]) -> None:
        try:
            outcomes = future.result()
        except BrokenProcessPool as exc:
            self._stopped(exc)
            for job in batch:
                job._finish(rerun=True)
        except CancelledError:  # the pool was closed first: whoever asks runs the call
            for job in batch:
                job._finish(rerun=True)
        except BaseException as exc:  # the batch as a whole failed (an argument that does not pickle)
            for job in batch:
                job._finish(error=exc)
        else:
            for job, (ok, value) in zip(batch, outcomes, strict=True):
                if ok:
                    job._finish(value=value)
                else:
                    job._finish(error=value)
        with self._lock:
            self._in_flight -= 1
            self._pump()

    def wait_ready(self, timeout: float) -> bool:
        """Wait for a started pool to be ready (tests use it); True when calls now go to workers."""
        starter = self._starter
        if starter is not None:
            starter.join(timeout)
        return self._pool is not None and not self._broken

    @property
    def started(self) -> bool:
        return self._starter is not None

    def close(self) -> None:
        """Stop the workers; calls still waiting run in this process, when their results are asked."""
        with self._lock:
            self._closed = True
            starter, pool, self._pool = self._starter, self._pool, None
            waiting, self._waiting = list(self._waiting), deque()
            self._room.notify_all()
        for job in waiting:
            job._finish(rerun=True)
        if starter is not None:
            starter.join()  # a pool still starting shuts itself down when it sees _closed
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> CpuPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def paused_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector around a bulk computation.

    Building millions of tuples, sets and dicts that all stay alive makes the collector rescan
    them again and again (it tripled the time of LSH bucketing at 100k documents); none of them
    form cycles, so reference counting frees them anyway.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
