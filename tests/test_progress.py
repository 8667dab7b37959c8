"""progress.py: log lines printed while a bar is drawn land above it, whole; plain mode as before."""

from __future__ import annotations

import io
import logging
import re
import sys
import threading
from collections.abc import Iterator

import pytest

from feedletter.progress import report_progress

_TOKEN = re.compile(r"\x1b\[\??[\d;]*[A-Za-z]|\r|\n|[^\x1b\r\n]+")


def screen(raw: str) -> list[str]:
    """What a terminal shows after ``raw``: the few controls a rich bar uses (carriage return, line
    feed, cursor up, erase line; colours and cursor hiding change no text)."""
    rows, row, col = [""], 0, 0
    for token in _TOKEN.findall(raw):
        if token == "\r":
            col = 0
        elif token == "\n":
            row, col = row + 1, 0
            if row == len(rows):
                rows.append("")
        elif token.startswith("\x1b["):
            if token.endswith("A"):
                row = max(0, row - int(token[2:-1] or 1))
            elif token == "\x1b[2K":
                rows[row] = ""
        else:
            line = rows[row].ljust(col)
            rows[row] = line[:col] + token + line[col + len(token):]
            col += len(token)
    return [r.rstrip() for r in rows if r.strip()]


def test_the_screen_reader() -> None:
    assert screen("bar 1/4\r\x1b[2Kline\nbar 4/4\n") == ["line", "bar 4/4"]
    assert screen("a\nb\x1b[1A\r\x1b[2Kc") == ["c", "b"]


@pytest.fixture
def out(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    monkeypatch.setenv("COLUMNS", "100")  # the width rich gives a file that is no terminal
    return io.StringIO()


@pytest.fixture
def root_handler(out: io.StringIO) -> Iterator[logging.StreamHandler[io.StringIO]]:
    """A handler that took the terminal's stream when logging was set up, before any bar: as
    ``logging.basicConfig()`` does with ``sys.stderr``."""
    handler = logging.StreamHandler(out)
    logging.getLogger().addHandler(handler)
    yield handler
    logging.getLogger().removeHandler(handler)


def _log_from_a_worker(message: str) -> None:
    # As the fetch threads of a gather do.
    thread = threading.Thread(target=logging.getLogger("feedletter.ingest.gather").warning, args=(message,))
    thread.start()
    thread.join()


def _run(out: io.StringIO, *, capture_logging: bool = True) -> None:
    with report_progress("gather", 4, unit="sources", stream=out, terminal=True,
                         capture_logging=capture_logging) as advance:
        advance(1)
        _log_from_a_worker("fetch: https://x.example/feed: HTTP 404 Not Found")
        advance(3)


def _is_final_bar(row: str) -> bool:
    return row.startswith("gather ") and "━" in row and "4/4 sources" in row


def test_a_log_line_prints_whole_above_the_bar(out: io.StringIO,
                                               root_handler: logging.StreamHandler[io.StringIO]) -> None:
    _run(out)
    rows = screen(out.getvalue())
    assert rows[0] == "fetch: https://x.example/feed: HTTP 404 Not Found"
    assert len(rows) == 2 and _is_final_bar(rows[1])
    assert root_handler.stream is out  # given back


def test_without_capture_the_line_breaks_the_bar(out: io.StringIO,
                                                 root_handler: logging.StreamHandler[io.StringIO]) -> None:
    del root_handler
    _run(out, capture_logging=False)
    rows = screen(out.getvalue())
    assert rows[0].startswith("gather ") and rows[0].endswith("HTTP 404 Not Found")  # glued to a stale bar


def test_prefect_and_feedletter_console_handlers(out: io.StringIO) -> None:
    from prefect.logging.handlers import PrefectConsoleHandler

    prefect_handler = PrefectConsoleHandler(stream=out)  # prints through a rich console of its own
    ours = logging.StreamHandler(out)
    logging.getLogger("prefect").addHandler(prefect_handler)
    flows = logging.getLogger("feedletter")
    flows.addHandler(ours)
    try:
        with report_progress("gather", 4, unit="sources", stream=out, terminal=True) as advance:
            advance(2)
            logging.getLogger("prefect.flow_runs.test").warning("Finished in state Completed()")
            flows.warning("store: 12 new")
            advance(2)
    finally:
        logging.getLogger("prefect").removeHandler(prefect_handler)
        flows.removeHandler(ours)
    rows = screen(out.getvalue())
    assert rows[:2] == ["Finished in state Completed()", "store: 12 new"]
    assert len(rows) == 3 and _is_final_bar(rows[2])
    assert prefect_handler.stream is out and prefect_handler.console.file is out and ours.stream is out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_handler_on_a_standard_stream_that_is_a_terminal(out: io.StringIO, monkeypatch: pytest.MonkeyPatch) -> None:
    tty = _Terminal()
    monkeypatch.setattr(sys, "stdout", tty)
    handler = logging.StreamHandler(sys.stdout)  # as logging.basicConfig(stream=sys.stdout) leaves it
    logging.getLogger().addHandler(handler)
    try:
        _run(out)
    finally:
        logging.getLogger().removeHandler(handler)
    rows = screen(out.getvalue())
    assert rows[0] == "fetch: https://x.example/feed: HTTP 404 Not Found" and _is_final_bar(rows[1])
    assert tty.getvalue() == "" and handler.stream is tty


def test_handlers_on_other_streams_are_left_alone(out: io.StringIO, root_handler: logging.StreamHandler[io.StringIO],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    del root_handler
    elsewhere = io.StringIO()  # a log file, or any stream that is not the bar's
    piped = io.StringIO()  # standard output sent to a file or a pipe: no terminal
    monkeypatch.setattr(sys, "stdout", piped)
    others: list[logging.StreamHandler[io.StringIO]] = [logging.StreamHandler(elsewhere),
                                                        logging.StreamHandler(piped)]
    for handler in others:
        logging.getLogger().addHandler(handler)
    try:
        with report_progress("gather", 1, stream=out, terminal=True) as advance:
            assert [h.stream for h in others] == [elsewhere, piped]
            _log_from_a_worker("kept out of the bar")
            advance(1)
    finally:
        for handler in others:
            logging.getLogger().removeHandler(handler)
    assert elsewhere.getvalue() == piped.getvalue() == "kept out of the bar\n"


def test_plain_progress_is_unchanged(out: io.StringIO, root_handler: logging.StreamHandler[io.StringIO]) -> None:
    with report_progress("gather", 4, unit="sources", stream=out) as advance:
        advance(1)
        assert root_handler.stream is out
        _log_from_a_worker("fetch: https://x.example/feed: HTTP 404 Not Found")
        advance(3)
    assert out.getvalue().splitlines() == ["gather: 1/4 sources", "fetch: https://x.example/feed: HTTP 404 Not Found",
                                           "gather: 4/4 sources"]
