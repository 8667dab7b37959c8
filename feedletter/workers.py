"""CPU-bound work handed from the fetch threads to worker processes, once a run has enough of it.

Parsing, sanitizing and hashing a feed is pure CPU. In the fetch threads it all runs under one GIL,
and sixteen threads contending for it made it twice as slow as one thread doing it alone (measured
on the loopback farm, 500 feeds of 20 items: 9.5 s in the fetch threads, 5.1 s in one thread,
3.1 s in two processes). A run that parses only a few feeds (the usual hourly run, where most
answer 304) never pays for the processes: the first ``after`` calls run in the calling thread and
the pool starts only when more come; calls go on running inline until a worker is ready.

Workers come from a fork server (``forkserver``), not a plain ``fork`` of this process: the
caller has threads (the fetch pool, Prefect's), and a child forked while one of them holds a lock
can hang on it. Nothing is preloaded into the fork server, because preloading makes it import the
caller's ``__main__`` too (a script without a ``__name__`` guard would run again); each worker
imports what the first call it gets needs, about 0.7 s here, while the caller goes on fetching.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

__all__ = ["CpuPool", "default_processes"]

log = logging.getLogger(__name__)
R = TypeVar("R")


def default_processes() -> int:
    """One worker per CPU this process may use; none on a single CPU, where they only add copying."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return cpus if cpus > 1 else 0


def _quiet() -> None:
    # Ctrl-C reaches the whole process group: the parent shuts the pool down, the workers need not
    # print a traceback each.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class CpuPool:
    """Run picklable functions inline or in worker processes; safe to call from many threads.

    ``processes`` of 0 or 1 keeps everything inline. A pool that breaks (a worker killed for memory,
    say) is not fatal: that call and every later one runs inline, and the reason is logged once.
    """

    def __init__(self, processes: int, *, after: int = 16) -> None:
        self.processes = processes
        self.after = after
        self._lock = threading.Lock()
        self._calls = 0
        self._pool: ProcessPoolExecutor | None = None
        self._ready: Future[int] | None = None
        self._broken = False

    def _executor(self) -> ProcessPoolExecutor | None:
        with self._lock:
            self._calls += 1
            if self.processes < 2 or self._broken or self._calls <= self.after:
                return None
            if self._pool is None:
                context = multiprocessing.get_context("forkserver")
                self._pool = ProcessPoolExecutor(self.processes, mp_context=context, initializer=_quiet)
                # Until a worker has answered (it imports for a second or so), calls go on inline.
                self._ready = self._pool.submit(int)
            if self._ready is not None and not self._ready.done():
                return None
            return self._pool

    def run(self, func: Callable[..., R], *args: Any) -> R:
        """``func(*args)``, in a worker process when the pool is running, else here."""
        pool = self._executor()
        if pool is not None:
            try:
                return pool.submit(func, *args).result()
            except BrokenProcessPool as exc:
                with self._lock:
                    if not self._broken:
                        log.warning("worker processes stopped (%s); the rest of this run works in-process", exc)
                    self._broken = True
        return func(*args)

    @property
    def started(self) -> bool:
        return self._pool is not None

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> CpuPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
