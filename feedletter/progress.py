"""Progress of long CLI work: a rich bar on a terminal, a few plain log lines anywhere else.

Library stages take an optional ``progress`` callable and call it with the number of items just
finished (``progress(1)`` per source fetched, per message sent); they know nothing of terminals.
"""

from __future__ import annotations

import io
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any, TextIO

from rich.ansi import AnsiDecoder
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from feedletter.runreport import handlers_in_use

Advance = Callable[[int], None]
PLAIN_LINES = 10  # a log file gets about this many lines per task, however many items


@contextmanager
def report_progress(label: str, total: int | None, *, unit: str = "", stream: TextIO | None = None,
                    terminal: bool | None = None, capture_logging: bool = True) -> Iterator[Advance]:
    """An ``advance(n)`` callable that shows ``label`` moving toward ``total`` on ``stream``.

    ``terminal`` (default: whether ``stream`` is one) draws a bar. While it is drawn, with
    ``capture_logging``, the log handlers that write to the terminal print their lines above the
    bar (see :func:`logs_above`) rather than into it.
    """
    out = stream or sys.stderr
    if terminal if terminal is not None else out.isatty():
        console = Console(file=out, force_terminal=True if terminal else None)
        # Handlers are pointed at the console before the bar starts: rich then swaps sys.stderr for
        # a proxy of its own, which would hide which handlers hold the terminal's stream.
        with logs_above(console, out) if capture_logging else nullcontext(), \
                Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                         TextColumn(unit), TimeElapsedColumn(), console=console) as bar:
            task = bar.add_task(label, total=total)

            def advance_bar(n: int = 1) -> None:
                bar.advance(task, n)

            yield advance_bar
        return
    lock = threading.Lock()
    step = max(1, (total or 0) // PLAIN_LINES)
    state = {"done": 0, "shown": 0}
    of = f"/{total}" if total is not None else ""

    def line() -> None:
        print(f"{label}: {state['done']}{of} {unit}".rstrip(), file=out, flush=True)
        state["shown"] = state["done"]

    def advance(n: int = 1) -> None:
        # Called from worker threads during a gather: the lock keeps the counts and lines whole.
        with lock:
            state["done"] += n
            if state["done"] - state["shown"] >= step:
                line()

    yield advance
    with lock:
        if state["done"] != state["shown"] or state["done"] == 0:
            line()


def _writes_to_terminal(stream: Any, out: TextIO) -> bool:
    """Whether a handler's stream is the bar's, or a standard stream on a terminal.

    Standard streams are compared as objects, before and after any redirection, because handlers
    keep the object they were given: Prefect's console handler and ``logging.basicConfig`` take
    ``sys.stderr`` when logging is set up, which is before any bar starts.
    """
    if stream is None:
        return False
    if stream is out:
        return True
    if not any(stream is std for std in (sys.stderr, sys.stdout, sys.__stderr__, sys.__stdout__)):
        return False
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


@contextmanager
def logs_above(console: Console, out: TextIO) -> Iterator[None]:
    """For the block, the log handlers writing to ``out`` or to a terminal write through ``console``.

    A line written straight to the terminal lands after the bar on its line, and the bar's next
    refresh draws itself again below, leaving a broken bar behind; written through the console
    that draws the bar, the line is printed above it. Every ``logging.StreamHandler`` of any logger
    whose stream is ``out``, or ``sys.stderr``/``sys.stdout`` on a terminal, gets a proxy of the
    console as its stream; one that prints through a rich console of its own (Prefect's
    ``PrefectConsoleHandler`` keeps one as ``console``, found here by its ``file``, so prefect is
    not imported) gets the proxy as that console's file, keeping its colours (rich's own
    ``FileProxy`` would not do there: a console writes past it, to the file it wraps). All are put back
    after. Files and other streams are left alone. A line from stdout may go to stderr, the bar's
    stream, meanwhile: on a terminal both are the same screen.
    """
    changed: list[tuple[logging.StreamHandler[Any], Any, Any, _AboveBar]] = []
    for handler in handlers_in_use():
        if not isinstance(handler, logging.StreamHandler) or not _writes_to_terminal(handler.stream, out):
            continue
        stream = handler.stream
        proxy = _AboveBar(console, stream)
        inner = getattr(handler, "console", None)
        inner = inner if inner is not None and getattr(inner, "file", None) is stream else None
        handler.acquire()  # emit holds it: no record is written half to each stream
        try:
            handler.stream = proxy
            if inner is not None:
                inner.file = proxy
        finally:
            handler.release()
        changed.append((handler, stream, inner, proxy))
    try:
        yield
    finally:
        for handler, stream, inner, proxy in reversed(changed):
            handler.acquire()
            try:
                proxy.flush()
                if handler.stream is proxy:
                    handler.stream = stream
                if inner is not None and inner.file is proxy:
                    inner.file = stream
            finally:
                handler.release()


class _AboveBar(io.TextIOBase):
    """A stream whose every line ``console`` prints, which a live bar on it prints above the bar.

    Colours written as ANSI codes (Prefect's console on a terminal) are kept. Each handler gets
    its own, and writes to it under its lock; the console takes care of the bar's refresh thread.
    """

    def __init__(self, console: Console, stream: Any) -> None:
        super().__init__()
        self._console = console
        self._stream = stream  # asked whether it is a terminal, as a handler's console would ask it
        self._partial = ""
        self._decoder = AnsiDecoder()

    def write(self, text: str) -> int:
        *lines, self._partial = (self._partial + text).split("\n")
        if lines:
            self._console.print(Text("\n").join(self._decoder.decode_line(line) for line in lines))
        return len(text)

    def flush(self) -> None:
        if self._partial:
            partial, self._partial = self._partial, ""
            self._console.print(self._decoder.decode_line(partial))

    def isatty(self) -> bool:
        return bool(self._stream.isatty())

    def writable(self) -> bool:
        return True
