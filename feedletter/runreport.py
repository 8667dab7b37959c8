"""What a run says to a person: its report and one summary line of it, and warnings grouped by cause.

The gather and digest runs (``feedletter.runs``) return a :class:`GatherReport` or a
:class:`DigestReport`: stored with the run, printed as JSON for scripts (``to_json``), and said to a
terminal in one line (``line``). A gather where 28 article pages sit on a host that no longer
exists logs 28 warnings: :class:`WarningGroups` turns them into one line, ``28 article pages not
fetched: host not found (e.g. …) — see `feedletter sources status```. Stages name the cause of what
they log with ``extra={"cause": cause_of(error), "kind": "source"}``.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DigestReport", "GatherReport", "Paused", "WarningGroups", "cause_of", "handlers_in_use"]

SEP = " · "


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``1 story``, ``1,234 stories``: a count and its noun, singular for one."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def _seconds(value: float) -> str:
    if value < 60:
        return f"{value:.1f} s"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes} min {seconds} s"


@dataclass(frozen=True)
class GatherReport:
    """What one gather run did: how its sources fared, which entries it stored and why it left the
    others, and the stories it made and summarized."""

    sources: int = 0
    fetched: int = 0
    not_modified: int = 0
    errors: int = 0
    skipped: int = 0
    new: int = 0
    seen: int = 0
    repeated: int = 0
    carried: int = 0
    removed: int = 0
    filtered: int = 0
    near_duplicates: int = 0  # stored, and marked by the grouping as a copy of another feed's article
    extracted: int = 0
    extract_errors: int = 0
    stories_new: int = 0
    stories_joined: int = 0  # articles that joined a story already there, or one started earlier in the run
    summarized: int = 0
    summaries_cached: int = 0
    seconds: float = 0.0
    stage_seconds: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The report as ``feedletter gather --json`` prints it and the store keeps it with the run."""
        return dataclasses.asdict(self)

    def line(self) -> str:
        """``gather: 500 sources: 480 ok, 15 not modified, 5 failed · 1,234 new articles · skipped 300
        seen, 2 repeated · 700 new stories, 112 articles joined stories · 9.4 s``.

        Zero counts are left out, except the sources fetched and the new articles.
        """
        states = [f"{self.fetched:,} ok"]
        states += [f"{n:,} {label}" for n, label in
                   ((self.not_modified, "not modified"), (self.errors, "failed"), (self.skipped, "skipped")) if n]
        parts = [f"gather: {counted(self.sources, 'source')}: {', '.join(states)}" if self.sources
                 else "gather: no sources"]
        new = counted(self.new, "new article")
        if self.near_duplicates:
            new += f" ({self.near_duplicates:,} near-duplicate)"
        parts.append(new)
        skipped = [f"{n:,} {why}" for why, n in (("seen", self.seen), ("repeated", self.repeated),
                                                 ("carried", self.carried), ("removed", self.removed),
                                                 ("filtered", self.filtered)) if n]
        if skipped:
            parts.append("skipped " + ", ".join(skipped))
        if self.extracted or self.extract_errors:
            parts.append(counted(self.extracted, "page") + " extracted"
                         + (f", {self.extract_errors:,} failed" if self.extract_errors else ""))
        stories = [counted(self.stories_new, "new story", "new stories")]
        if self.stories_joined:
            stories.append(f"{counted(self.stories_joined, 'article')} joined stories")
        parts.append(", ".join(stories))
        if self.summarized:
            parts.append(counted(self.summarized, "summary", "summaries")
                         + (f" ({self.summaries_cached:,} cached)" if self.summaries_cached else ""))
        parts.append(_seconds(self.seconds))
        return SEP.join(parts)


@dataclass(frozen=True)
class Paused:
    """An issue whose delivery stopped because the provider was unreachable: its messages stay
    queued and the next digest run resumes it."""

    issue: int  # the issue's number
    reason: str  # "SMTP unreachable (connection refused) after 3 tries"
    sent: int  # of the issue, so far
    recipients: int


@dataclass(frozen=True)
class DigestReport:
    """What one digest run of a newsletter did: the issue it made (or why none), and the messages
    sent, those of an earlier issue it finished sending included."""

    newsletter: str
    issue: int | None = None
    sent: int = 0
    failed: int = 0
    skipped: str | None = None  # why no issue was made
    subject: str | None = None
    stories: int | None = None
    published_files: int | None = None
    outbox: Mapping[str, int] | None = None  # the issue's messages by state
    error: str | None = None  # the run failed: what went wrong
    paused: Paused | None = None  # the run stopped sending: the provider was unreachable

    def to_json(self) -> dict[str, Any]:
        """The report as ``feedletter digest --json`` prints it: what is unset is left out."""
        out: dict[str, Any] = {"newsletter": self.newsletter, "issue": self.issue, "sent": self.sent,
                               "failed": self.failed}
        for key in ("skipped", "subject", "stories", "published_files", "outbox", "error"):
            value = getattr(self, key)
            if value is not None:
                out[key] = dict(value) if key == "outbox" else value
        if self.paused is not None:
            out["paused"] = dataclasses.asdict(self.paused)
        return out

    def line(self) -> str:
        """``digest weekly: issue 12 “Subject” · 8 stories · 1,234 sent, 2 failed · 5 files published``,
        or ``digest weekly: nothing sent (no new stories)`` when the run made no issue, or
        ``digest weekly: issue 3 paused: SMTP unreachable (connection refused) after 3 tries; 0/2,000
        sent; the next run resumes it`` when the provider could not be reached."""
        name = self.newsletter or "?"
        if self.paused is not None:
            p = self.paused
            return (f"digest {name}: issue {p.issue} paused: {p.reason}; {p.sent:,}/{p.recipients:,} sent; "
                    "the next run resumes it")
        delivered = f"{self.sent:,} sent" + (f", {self.failed:,} failed" if self.failed else "")
        if self.issue is None:
            head = f"digest {name}: no new issue"
            if self.skipped:
                head += f" ({self.skipped})"
            parts = [head]
            if self.sent or self.failed:
                parts.append(f"earlier issue finished: {delivered}")
            elif self.skipped:
                parts = [f"digest {name}: nothing sent ({self.skipped})"]
        else:
            subject = f" “{self.subject}”" if self.subject else ""
            parts = [f"digest {name}: issue {self.issue}{subject}"]
            if self.stories is not None:
                parts.append(counted(self.stories, "story", "stories"))
            parts.append(delivered)
            if self.published_files:
                parts.append(counted(self.published_files, "file") + " published")
        if self.error:
            parts.append(f"failed: {self.error}")
        return SEP.join(parts)


# --- causes -----------------------------------------------------------------------------------------

# A message of the error tree is "stage: thing: problem" (errors.FeedletterError).
_STAGES = ("fetch", "parse", "extract", "feedletter", "store", "config", "render", "deliver", "syndicate")
_PREFIX = re.compile(rf"^(?:{'|'.join(_STAGES)}): ")
_HTTP = re.compile(r"\bHTTP (\d{3})\b")

# (pattern on the problem, lowercased) -> cause, first match wins. The messages are those of
# ingest/fetch.py (FetchError), ingest/parse/ (ParseError), ingest/extract.py (ExtractError) and of
# the OSErrors that fetch.py passes on: "connection failed: [Errno 111] ...".
_CAUSES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), c) for p, c in (
    (r"temporary failure in name resolution|\[errno -3\]", "DNS lookup failed"),
    (r"cannot resolve|name or service not known|nodename nor servname|no address associated|"
     r"\[errno -[25]\]|getaddrinfo failed", "host not found"),
    (r"non-public address", "blocked private address"),
    (r"certificate", "TLS certificate problem"),
    (r"\[ssl|ssl:|tls", "TLS error"),
    (r"timed out|timeout", "timed out"),
    (r"connection refused", "connection refused"),
    (r"connection reset|remote end closed|remotedisconnected|broken pipe|reading body failed",
     "connection dropped"),
    (r"network is unreachable|no route to host|host is unreachable", "host unreachable"),
    (r"without location", "redirect without Location"),
    (r"more than \d+ redirects", "redirect loop"),
    (r"exceeds the .*cap", "too large"),
    (r"content-encoding|is not valid (?:gzip|deflate|x-gzip)", "bad compression"),
    (r"only http and https|url has no host|bad host or port|cannot send the request", "bad URL"),
    (r"^not a feed", "not a feed"),
    (r"^malformed", "malformed feed"),
    (r"^empty document", "empty feed"),
    (r"^empty page", "empty page"),
    (r"^not an html document", "not HTML"),
    (r"^no main content", "no main content"),
))

# Causes that mean a page came but held no article: said "not extracted" rather than "not fetched".
EXTRACT_CAUSES = frozenset({"empty page", "not HTML", "no main content"})


def _split(message: str) -> tuple[str, str]:
    """``(thing, problem)`` of an error tree message; ``("", message)`` for any other text.

    A message wrapped in another (gather's ParseError of a source holds the parser's whole message,
    ``parse: https://x/feed: not a feed``) gives the innermost thing and problem.
    """
    thing, problem = "", message
    while _PREFIX.match(problem):
        rest = _PREFIX.sub("", problem, count=1)
        inner, found, after = rest.partition(": ")
        if not found:
            return thing, rest
        thing, problem = inner, after
    return thing, problem


def cause_of(error: BaseException | str) -> str:
    """A short cause of a fetch, parse or extract failure that is the same for every source with it.

    ``host not found``, ``DNS lookup failed`` (the resolver did not answer: often no network at
    all), ``connection refused``, ``connection dropped``, ``host unreachable``, ``timed out``,
    ``TLS certificate problem``, ``TLS error``, ``HTTP 404`` (the exact status, 5xx included: a
    run sees a few of them, and 503 "come back later" is not 500 "broken"), ``redirect loop``,
    ``redirect without Location``, ``too large``, ``bad compression``, ``bad URL``,
    ``blocked private address``, ``not a feed``, ``malformed feed``, ``empty feed``,
    ``empty page``, ``not HTML``, ``no main content``. Anything else gives the problem's first
    clause (``connection failed``), without the URL or source it names.
    """
    status = getattr(error, "status", None)
    problem = getattr(error, "problem", None)
    if not isinstance(problem, str):
        problem = str(error) or type(error).__name__
    problem = _split(problem)[1]
    low = problem.lower()
    if isinstance(status, int) and 400 <= status <= 599:
        return f"HTTP {status}"
    found = _HTTP.search(problem)
    if found and "without location" not in low:
        return f"HTTP {found.group(1)}"
    for pattern, cause in _CAUSES:
        if pattern.search(low):
            return cause
    first = re.split(r":|\(|;|\s-\s", problem, maxsplit=1)[0].strip()
    return (first[:60].rstrip() + "…" if len(first) > 60 else first) or "unknown error"


# --- warnings grouped by cause ----------------------------------------------------------------------

EXAMPLES = 3  # things named per grouped line; the count always covers them all
HINT = " — see `feedletter sources status`"
_PLURAL = {"source": "sources", "article page": "article pages"}


@dataclass
class _Group:
    count: int = 0
    first: str = ""  # the first record's message, shown alone when it stays the only one
    examples: list[str] = field(default_factory=list)
    more: set[str] = field(default_factory=set)  # further distinct things, counted not kept beyond a cap


_MORE_CAP = 10_000  # distinct things remembered past the examples: enough to count "and N more"


def _short(thing: str) -> str:
    thing = re.sub(r"^https?://", "", thing)
    return thing if len(thing) <= 50 else thing[:49] + "…"


class WarningGroups(logging.Handler):
    """Collects WARNING and worse while attached, grouped by cause, for a few lines at the end of a run.

    A record's cause is its ``cause`` attribute and the kind of thing that failed its ``kind``
    (``"source"``, ``"article page"``), as given with ``log.warning(..., extra={"cause": ...,
    "kind": ...})``; records without a cause group by their exact message. Memory stays small
    whatever the number of records: a count, the first message and a few examples per cause.
    """

    def __init__(self, level: int = logging.WARNING) -> None:
        super().__init__(level)
        self._groups: dict[tuple[str, str, str], _Group] = {}

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a record whose arguments do not fit its format: logging's own way
            self.handleError(record)
            return
        cause = record.__dict__.get("cause")
        kind = str(record.__dict__.get("kind") or "")
        key = ("cause", kind, str(cause)) if cause else ("message", "", message)
        group = self._groups.get(key)
        if group is None:
            group = self._groups[key] = _Group(first=message)
        group.count += 1
        if cause:
            thing = _short(_split(message)[0] or message)
            if thing in group.examples or thing in group.more:
                return
            if len(group.examples) < EXAMPLES:
                group.examples.append(thing)
            elif len(group.more) < _MORE_CAP:
                group.more.add(thing)

    def counts(self) -> dict[tuple[str, str], int]:
        """Records per ``(kind, cause)``, most frequent first; ``("", message)`` for records without a cause."""
        return {(kind, what): g.count for (_, kind, what), g in self._ordered()}

    def _ordered(self) -> list[tuple[tuple[str, str, str], _Group]]:
        self.acquire()  # emit runs under the same lock, from whichever thread logged
        try:
            items = list(self._groups.items())
        finally:
            self.release()
        # sorted() is stable: equal counts keep the order their causes first came in.
        return sorted(items, key=lambda item: -item[1].count)

    def lines(self) -> list[str]:
        """One line per cause, most frequent first."""
        out = []
        for (how, kind, what), group in self._ordered():
            if group.count == 1:
                out.append(group.first)
            elif how == "message":
                out.append(f"{group.first} ({group.count:,} times)")
            else:
                out.append(self._line(kind, what, group))
        return out

    @staticmethod
    def _line(kind: str, cause: str, group: _Group) -> str:
        if kind:
            verb = "failed" if kind == "source" else (
                "not extracted" if cause in EXTRACT_CAUSES else "not fetched")
            head = f"{group.count:,} {_PLURAL.get(kind, kind + 's')} {verb}: {cause}"
        else:
            head = f"{group.count:,} warnings: {cause}"
        names = ", ".join(group.examples)
        if group.more:
            names += f" and {len(group.more):,}{'+' if len(group.more) >= _MORE_CAP else ''} more"
        return head + (f" (e.g. {names})" if names else "") + (HINT if kind else "")

    @contextmanager
    def attached(self, logger: str = "", *, quiet: bool = False) -> Iterator[WarningGroups]:
        """Collect what ``logger`` (default: the root logger, which every logger passes records to)
        and its children log, for the ``with`` block.

        ``quiet``: records that have a cause are kept from the console for the block (from every
        ``StreamHandler`` that is not a ``FileHandler``, Prefect's console handler included), since
        :meth:`lines` tells them after the run; log files and Prefect's API handler still get them.
        """
        target = logging.getLogger(logger)
        hidden = [h for h in handlers_in_use() if _is_console(h) and h is not self] if quiet else []
        for handler in hidden:
            handler.addFilter(_without_cause)
        target.addHandler(self)
        try:
            yield self
        finally:
            target.removeHandler(self)
            for handler in hidden:
                handler.removeFilter(_without_cause)


def handlers_in_use() -> list[logging.Handler]:
    """Every handler of the root logger and of every logger made so far, each once."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in list(logging.Logger.manager.loggerDict.values()) if isinstance(lg, logging.Logger)]
    seen: dict[int, logging.Handler] = {}
    for lg in loggers:
        for handler in list(lg.handlers):
            seen.setdefault(id(handler), handler)
    return list(seen.values())


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


def _without_cause(record: logging.LogRecord) -> bool:
    return not record.__dict__.get("cause")

