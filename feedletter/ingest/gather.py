"""The gather stages as plain functions: fetch and parse, store, extract, group, summarize.

Each function is one stage of the gather flow and works on a whole batch (all sources, all new
articles) with the library's own pool; the flow wraps each as a single Prefect task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from feedletter.config import Config, Source
from feedletter.errors import FeedletterError, FetchError, ParseError
from feedletter.ingest.fetch import Fetcher, make_fetcher, private_allowed
from feedletter.ingest.health import (
    SourceState,
    load_states,
    record_failure,
    record_successes,
)
from feedletter.ingest.pages import ExtractCounts, extract_articles
from feedletter.ingest.rules import EntryRules
from feedletter.ingest.storing import StoreCounts, store_entries
from feedletter.models import ParsedFeed
from feedletter.runreport import cause_of
from feedletter.store import Store, now, sqlite_file
from feedletter.workers import PROCESSES_AFTER, CpuPool, give_back_memory, processes_for, start_fork_server

if TYPE_CHECKING:
    from feedletter.ingest.entries import Prepared

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceResult:
    """What fetching one source gave: a parsed feed, a 304, a skip or an error."""

    source: str
    status: str  # ok | not_modified | skipped | error
    feed: ParsedFeed | None = None
    error: str | None = None
    seconds: float = 0.0
    entries: tuple[Prepared, ...] = ()  # the feed's entries that passed include/exclude
    filtered: int = 0
    # The 200 that brought ``entries``: its validators are stored with them (see record_validators).
    fetched: object = field(default=None, compare=False, repr=False)


# A source's result, its health record, and what to record: the FetchResult or the error.
_Outcome = tuple[SourceResult, SourceState, object]

_FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, "
                "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")


# What the parse workers' fork server loads before forking them: the parsing half of gathering only.
PARSE_PRELOAD = ["feedletter.ingest.entries"]


def start_parsing_early(config: Config, only: Sequence[str] = ()) -> bool:
    """At the first gather into a new store, start the parse workers' fork server as the command
    starts; True if it did.

    A SQLite store whose file does not exist yet has no validators to send, so every enabled source
    answers in full, and with :data:`PROCESSES_AFTER` or more of them :func:`fetch_sources` starts
    its parse workers at once. Begun here, the fork server's imports run on a core that is idle
    while the command opens the store, and the workers are ready for the first feeds (on the farm
    the first run was 0.06-0.17 s shorter). Any other store, and a run of few sources, start
    nothing here: an hourly run whose feeds answer "not modified" needs no process at all.
    """
    path = sqlite_file(config.store_url())
    if processes_for(config.gather.processes) < 2 or path is None:
        return False
    try:
        if path.exists():
            return False
    except OSError:  # a folder it may not read: opening the store will say so, not this
        return False
    if len(wanted_sources(config, only)) < PROCESSES_AFTER:
        return False
    start_fork_server(PARSE_PRELOAD)
    return True


def wanted_sources(config: Config, only: Sequence[str] = ()) -> list[Source]:
    """The sources a gather of ``only`` (all, when empty) takes: those enabled in the config."""
    return [s for s in config.sources if s.enabled and (not only or s.name in only)]


def answers_in_full(state: SourceState) -> bool:
    """Whether a source's feed comes back whole, to be parsed: there is no validator to send
    (never fetched, or its server gives none), so it cannot answer "not modified"."""
    return not state.etag and not state.last_modified


def fetch_sources(config: Config, store: Store, fetcher: Fetcher, *,
                  only: Sequence[str] = (), force: bool = False,
                  progress: Callable[[int], None] | None = None) -> list[SourceResult]:
    """Fetch, parse and prepare every due source; record each one's health. One failure stops nothing.

    Parsing, sanitizing and hashing run beside other sources' downloads — in worker processes once
    enough feeds come (``gather.processes``) — so the store step after it is only bulk SQL
    (measured: bench/bench_gather.py). ``progress(1)`` is called (from worker threads) as each
    source is done.
    """
    wanted = wanted_sources(config, only)
    unknown = set(only) - {s.name for s in config.sources}
    if unknown:
        raise FeedletterError("gather", f"unknown source(s): {', '.join(sorted(unknown))}")
    states = load_states(store, wanted)
    current = now()

    tracking = tuple(config.gather.tracking_params)
    rules = {s.name: EntryRules.of(s, config.gather.max_entries) for s in wanted}

    def waiting(state: SourceState) -> bool:
        return not force and (state.disabled or (state.next_fetch is not None and state.next_fetch > current))

    def settled(outcome: _Outcome) -> Callable[[], _Outcome]:
        if progress:
            progress(1)
        return lambda: outcome

    def one(source: Source) -> Callable[[], _Outcome]:
        """Fetch ``source`` and hand its body to be parsed; what it returns gives the outcome, parsed."""
        state = states[source.name]
        if waiting(state):
            why = "disabled after repeated failures" if state.disabled else "backing off"
            return settled((SourceResult(source.name, "skipped", error=why), state, None))
        try:
            result = fetcher.get(state.url, etag=state.etag, last_modified=state.last_modified,
                                 allow_private=private_allowed(config, source), accept=_FEED_ACCEPT)
        except FeedletterError as exc:
            return settled((SourceResult(source.name, "error", error=str(exc)), state, exc))
        if result.not_modified or result.body is None:
            return settled((SourceResult(source.name, "not_modified", seconds=result.seconds), state, result))
        # Imported here: parsing (feedparser, numpy) is only needed when a feed answers with a
        # body, which most runs' feeds do not (304).
        from feedletter.ingest.entries import prepare_feed

        # The fetch thread goes on to the next feed while this one is parsed.
        job = cpu.submit(prepare_feed, result.body, result.url, result.content_type, rules[source.name],
                         tracking, current)
        if progress:
            job.add_done_callback(lambda _: progress(1))

        def parsed() -> _Outcome:
            digested = job.result()
            if isinstance(digested, str):
                return SourceResult(source.name, "error", error=digested), state, ParseError(source.name, digested)
            feed, entries, filtered = digested
            # Its validators are kept, not its body: the run's 500 feeds held 31 MB to the end.
            fetched = replace(result, body=None)
            return SourceResult(source.name, "ok", feed=feed, seconds=result.seconds, entries=entries,
                                filtered=filtered, fetched=fetched), state, fetched

        return parsed

    processes = processes_for(config.gather.processes)
    with CpuPool(processes, after=PROCESSES_AFTER, preload=PARSE_PRELOAD) as cpu:
        if sum(not waiting(states[s.name]) and answers_in_full(states[s.name]) for s in wanted) >= PROCESSES_AFTER:
            # Enough feeds will surely be parsed (a first run): the workers start now, beside the
            # first downloads, not after the first few parses (on the farm, 0.45 s sooner).
            cpu.start()
        threads = fetcher.threads_for([states[s.name].url for s in wanted], config.gather.concurrency)
        outcomes = [outcome() for outcome in fetcher.map(one, wanted, workers=threads)]
    results = [o[0] for o in outcomes]
    for r in results:
        if r.feed is not None and r.feed.capped:
            log.warning("%s: kept the newest %d entries, left out %d older (gather.max_entries)", r.source,
                        len(r.entries) + r.filtered, r.feed.capped,
                        extra={"cause": "more entries than gather.max_entries", "kind": "source"})
        if r.feed is not None and r.feed.dropped_links:
            log.warning("%s: %d item links dropped: not http(s)", r.source, r.feed.dropped_links,
                        extra={"cause": "item links not http(s)", "kind": "source"})
    with store.begin() as conn:
        successes = []
        for result, state, detail in outcomes:
            if result.status == "error":
                assert isinstance(detail, FeedletterError)
                retry_after = detail.retry_after if isinstance(detail, FetchError) else None
                record_failure(conn, state, result.error or "", config.gather.max_failures,
                               retry_after=retry_after)
                log.warning("%s", result.error, extra={"cause": cause_of(detail), "kind": "source"})
            elif result.status != "skipped":
                successes.append((state, detail, result.seconds))
        record_successes(conn, successes, validators=False)
    del outcomes, successes
    give_back_memory()  # the feeds' bodies, and what parsing them left
    return results


__all__ = [
    "ExtractCounts",
    "SourceResult",
    "StoreCounts",
    "extract_articles",
    "fetch_sources",
    "make_fetcher",
    "start_parsing_early",
    "store_entries",
    "wanted_sources",
]
