"""CPU-bound work handed from the fetch threads to worker processes, once a run has enough of it.

Parsing, sanitizing and hashing a feed is pure CPU. In the fetch threads it all runs under one GIL,
and sixteen threads contending for it made it twice as slow as one thread doing it alone (measured
on the loopback farm, 500 feeds of 20 items: 9.5 s in the fetch threads, 5.1 s in one thread,
3.1 s in two processes). A run that parses only a few feeds (the usual hourly run, where most
answer 304) never pays for the processes: the first ``after`` calls run in the calling thread, then
a background thread starts the pool, and calls go on running inline until it is ready.

Workers come from a fork server (``forkserver``), not a plain ``fork`` of this process: the
caller has threads (the fetch pool, Prefect's), and a child forked while one of them holds a lock
can hang on it. The fork server imports ``preload`` once (:mod:`feedletter.entries`, a third of
a second here) and every worker forks from it ready to work, in this run and in later ones of the
same process. As with any multiprocessing, it also imports the caller's ``__main__``: a script of
your own that gathers needs the usual ``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

__all__ = ["CpuPool", "default_processes", "processes_for"]

log = logging.getLogger(__name__)
R = TypeVar("R")


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


def _quiet() -> None:
    # Ctrl-C reaches the whole process group: the parent shuts the pool down, the workers need not
    # print a traceback each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class CpuPool:
    """Run picklable functions inline or in worker processes; safe to call from many threads.

    ``processes`` of 0 or 1 keeps everything inline. A pool that breaks or cannot start (a worker
    killed for memory, say) is not fatal: that call and every later one runs inline, and the reason
    is logged once.
    """

    def __init__(self, processes: int, *, after: int = 16, preload: Sequence[str] = ()) -> None:
        self.processes = processes
        self.after = after
        self.preload = list(preload)
        self._lock = threading.Lock()
        self._inline = threading.Lock()
        self._calls = 0
        self._starter: threading.Thread | None = None
        self._pool: ProcessPoolExecutor | None = None  # set once a worker has answered
        self._broken = False
        self._closed = False

    def _executor(self) -> ProcessPoolExecutor | None:
        with self._lock:
            self._calls += 1
            if self.processes < 2 or self._broken or self._closed or self._calls <= self.after:
                return None
            if self._starter is None:
                self._starter = threading.Thread(target=self._start, name="feedletter-workers", daemon=True)
                self._starter.start()
            return self._pool

    def _start(self) -> None:
        try:
            context = multiprocessing.get_context("forkserver")
            if self.preload:
                context.set_forkserver_preload(self.preload)
            pool = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_quiet)
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

    def run(self, func: Callable[..., R], *args: Any) -> R:
        """``func(*args)``, in a worker process when the pool is ready, else here.

        Here means one call at a time: threads contending for the GIL with CPU-bound work get less
        done together than one of them alone, while the others wait on the network or on this.
        """
        pool = self._executor()
        while pool is None:
            if self._inline.acquire(timeout=0.05):
                try:
                    return func(*args)
                finally:
                    self._inline.release()
            pool = self._pool  # ready while this call waited its turn
        try:
            return pool.submit(func, *args).result()
        except BrokenProcessPool as exc:
            self._stopped(exc)
        with self._inline:
            return func(*args)

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
        with self._lock:
            self._closed = True
            starter, pool, self._pool = self._starter, self._pool, None
        if starter is not None:
            starter.join()  # a pool still starting shuts itself down when it sees _closed
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> CpuPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
