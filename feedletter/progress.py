"""Progress of long CLI work: a rich bar on a terminal, a few plain log lines anywhere else.

Library stages take an optional ``progress`` callable and call it with the number of items just
finished (``progress(1)`` per source fetched, per message sent); they know nothing of terminals.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

Advance = Callable[[int], None]
PLAIN_LINES = 10  # a log file gets about this many lines per task, however many items


@contextmanager
def report_progress(label: str, total: int | None, *, unit: str = "", stream: TextIO | None = None,
                    terminal: bool | None = None) -> Iterator[Advance]:
    """An ``advance(n)`` callable that shows ``label`` moving toward ``total`` on ``stream``."""
    out = stream or sys.stderr
    if terminal if terminal is not None else out.isatty():
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TextColumn(unit), TimeElapsedColumn(), console=Console(file=out)) as bar:
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
