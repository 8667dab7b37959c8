"""Work for a CPU the caller leaves idle, done in low-priority worker processes and dropped where not begun.

A stage that works on in its own process for a while (the group stage) leaves the machine's other
CPUs idle; work that a later stage would do anyway (the summaries of the new articles) can be
begun there, as an advance that nothing depends on.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

from feedletter.workers import quiet_worker

__all__ = ["SPARE_NICENESS", "SparePool", "stopping"]

log = logging.getLogger(__name__)

# How much lower a spare worker's priority is than its run's (nice 10 weighs a tenth of nice 0).
SPARE_NICENESS = 10


# In a spare worker: set once its pool is stopping (see stopping()).
_stop: Any = None


def _spare(parent: int, stop: Any) -> None:
    global _stop
    quiet_worker(parent)
    os.nice(SPARE_NICENESS)
    _stop = stop  # (quiet_worker has frozen what the worker was forked with)


def stopping() -> bool:
    """In a spare worker: whether its pool is being stopped. A long call asks between its steps and
    returns what it has made so far, so that stopping waits for one step, not a whole call (and
    calls can be long enough that the worker never runs out of work while its caller is busy)."""
    return _stop is not None and bool(_stop.is_set())


class SparePool:
    """Work that may use a CPU the caller leaves idle, and is dropped where it has not run.

    Calls go to worker processes of low priority (niceness :data:`SPARE_NICENESS`), so that the
    caller, working on in its own process meanwhile, keeps its CPU. :meth:`stop` drops every call
    not yet begun and waits only for those running; :meth:`done` then gives the calls that ended
    with a value. Nothing depends on a call having run: it is an advance on work that is done
    anyway where it is missing, and a pool that cannot start simply gets nothing done.
    """

    def __init__(self, processes: int, *, preload: Sequence[str] = ()) -> None:
        context = multiprocessing.get_context("forkserver")
        if preload:
            context.set_forkserver_preload(list(preload))
        self._stop = context.Event()
        self._pool = ProcessPoolExecutor(processes, mp_context=context, initializer=_spare,
                                         initargs=(os.getpid(), self._stop))
        self._futures: list[Future[Any]] = []
        self._failed = False

    def submit(self, func: Callable[..., Any], *args: Any) -> int:
        """Hand ``func(*args)`` over; its number among this pool's calls (see :meth:`done`)."""
        try:
            self._futures.append(self._pool.submit(func, *args))
        except Exception as exc:  # broken, stopped, or no process to be had: the call is dropped
            if not self._failed:
                log.info("spare worker processes unavailable (%s); work they would have begun is done later", exc)
            self._failed = True
            self._futures.append(_dropped())
        return len(self._futures) - 1

    def wait(self, timeout: float) -> bool:
        """Wait until every call has ended (tests use it); True if they all have."""
        return not futures_wait(self._futures, timeout).not_done

    def stop(self) -> None:
        """Drop the calls not begun; tell those running (see :func:`stopping`) and wait for them; end
        the workers."""
        self._stop.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def done(self) -> dict[int, Any]:
        """The value of each call that ended with one, by its number."""
        return {k: f.result() for k, f in enumerate(self._futures)
                if f.done() and not f.cancelled() and f.exception() is None}

    def __enter__(self) -> SparePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _dropped() -> Future[Any]:
    future: Future[Any] = Future()
    future.cancel()
    future.set_running_or_notify_cancel()  # done, as far as waiting for it goes
    return future
