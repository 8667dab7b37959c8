"""The gather stages as plain functions: fetch and parse, store, extract, group, summarize.

Each function is one stage of the gather flow and works on a whole batch (all sources, all new
articles) with the library's own pool; the flow wraps each as a single Prefect task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from feedletter.config import Config, Source
from feedletter.dedupe import paused_gc
from feedletter.entries import EntryRules, Prepared, digest_feed, extract_page
from feedletter.errors import FeedletterError, FetchError, ParseError
from feedletter.fetch import Fetcher
from feedletter.health import SourceState, load_states, record_counts, record_failure, record_successes
from feedletter.identity import canonical_url, content_hash, tombstone_of_url
from feedletter.models import ParsedFeed
from feedletter.store import Store, articles, carriers, insert_rows, now, pages, rows_in_chunks, select_in, tombstones
from feedletter.workers import CpuPool, processes_for

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


@dataclass
class StoreCounts:
    new_ids: list[int] = field(default_factory=list)
    duplicates: int = 0
    filtered: int = 0
    per_source: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (new, duplicate)


def make_fetcher(config: Config) -> Fetcher:
    g = config.gather
    return Fetcher(timeout=g.timeout, max_bytes=g.max_bytes, user_agent=g.user_agent,
                   per_host=g.per_host, allow_private=config.allow_private)


def _allow_private(config: Config, source: Source) -> bool:
    return config.allow_private if source.allow_private is None else source.allow_private


# A source's result, its health record, and what to record: the FetchResult or the error.
_Outcome = tuple[SourceResult, SourceState, object]

# Feeds parsed in the fetch threads before worker processes start: a run with fewer never starts them.
PROCESSES_AFTER = 16

_FEED_ACCEPT = ("application/rss+xml, application/atom+xml, application/feed+json, "
                "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")


def fetch_sources(config: Config, store: Store, fetcher: Fetcher, *,
                  only: Sequence[str] = (), force: bool = False,
                  progress: Callable[[int], None] | None = None) -> list[SourceResult]:
    """Fetch, parse and prepare every due source; record each one's health. One failure stops nothing.

    Parsing, sanitizing and hashing run beside other sources' downloads — in worker processes once
    enough feeds come (``gather.processes``) — so the store step after it is only bulk SQL
    (measured: bench/bench_gather.py). ``progress(1)`` is called (from worker threads) as each
    source is done.
    """
    wanted = [s for s in config.sources if s.enabled and (not only or s.name in only)]
    unknown = set(only) - {s.name for s in config.sources}
    if unknown:
        raise FeedletterError("gather", f"unknown source(s): {', '.join(sorted(unknown))}")
    states = load_states(store, wanted)
    current = now()

    tracking = tuple(config.gather.tracking_params)
    rules = {s.name: EntryRules.of(s) for s in wanted}

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
                                 allow_private=_allow_private(config, source), accept=_FEED_ACCEPT)
        except FeedletterError as exc:
            return settled((SourceResult(source.name, "error", error=str(exc)), state, exc))
        if result.not_modified or result.body is None:
            return settled((SourceResult(source.name, "not_modified", seconds=result.seconds), state, result))
        # The fetch thread goes on to the next feed while this one is parsed.
        job = cpu.submit(digest_feed, result.body, result.url, result.content_type, rules[source.name], tracking,
                         current)
        if progress:
            job.add_done_callback(lambda _: progress(1))

        def parsed() -> _Outcome:
            digested = job.result()
            if isinstance(digested, str):
                return SourceResult(source.name, "error", error=digested), state, ParseError(source.name, digested)
            feed, entries, filtered = digested
            return SourceResult(source.name, "ok", feed=feed, seconds=result.seconds, entries=entries,
                                filtered=filtered), state, result

        return parsed

    processes = processes_for(config.gather.processes)
    with CpuPool(processes, after=PROCESSES_AFTER, preload=["feedletter.entries"]) as cpu:
        threads = fetcher.threads_for([states[s.name].url for s in wanted], config.gather.concurrency)
        outcomes = [outcome() for outcome in fetcher.map(one, wanted, workers=threads)]
    with store.begin() as conn:
        successes = []
        for result, state, detail in outcomes:
            if result.status == "error":
                assert isinstance(detail, FeedletterError)
                retry_after = detail.retry_after if isinstance(detail, FetchError) else None
                record_failure(conn, state, result.error or "", config.gather.max_failures,
                               retry_after=retry_after)
                log.warning("%s", result.error)
            elif result.status != "skipped":
                successes.append((state, detail, result.seconds))
        record_successes(conn, successes)
    return [o[0] for o in outcomes]


def _lookup(conn: sa.Connection, column: sa.Column[str], values: set[str],
            *extra: sa.Column[Any]) -> dict[str, sa.Row[Any]]:
    return {row[0]: row for row in select_in(conn, column, values, *extra)}


def store_entries(config: Config, store: Store, results: Sequence[SourceResult]) -> StoreCounts:
    """Store new entries; an entry met before (by key or canonical URL) only adds a carrier.

    A handful of bulk statements per run, whatever the number of entries: existing keys, URLs and
    tombstones are looked up in chunks, new articles inserted in one executemany.
    """
    with paused_gc():  # 10k rows of dicts that all stay alive: the collector would rescan them twice
        return _store_entries(store, results)


def _store_entries(store: Store, results: Sequence[SourceResult]) -> StoreCounts:
    counts = StoreCounts()
    stamp = now()
    todo = [(r.source, p) for r in results for p in r.entries]
    counts.filtered = sum(r.filtered for r in results)
    with store.begin() as conn:
        # A removed article leaves tombstones under its key and its canonical URL: neither comes back.
        dead = _lookup(conn, tombstones.c.key, {p.key for _, p in todo}
                       | {tombstone_of_url(p.canonical) for _, p in todo if p.canonical})
        by_key = {k: int(r[1]) for k, r in _lookup(conn, articles.c.key, {p.key for _, p in todo},
                                                   articles.c.id).items()}
        by_canonical = {k: int(r[1]) for k, r in _lookup(
            conn, articles.c.canonical, {p.canonical for _, p in todo if p.canonical}, articles.c.id).items()}
        # Entries of this batch that an earlier entry of the batch already claims: index into fresh.
        pending_key: dict[str, int] = {}
        pending_canonical: dict[str, int] = {}
        fresh: list[dict[str, Any]] = []
        fresh_carriers: list[tuple[int, str, str]] = []  # fresh index, source, url
        old_carriers: list[tuple[int, str, str]] = []  # article id, source, url
        per_source: dict[str, list[int]] = {r.source: [0, 0] for r in results if r.feed is not None}
        for name, p in todo:
            if p.key in dead or (p.canonical and tombstone_of_url(p.canonical) in dead):
                continue
            known = by_key.get(p.key) or (by_canonical.get(p.canonical) if p.canonical else None)
            batch = pending_key.get(p.key)
            if batch is None and p.canonical:
                batch = pending_canonical.get(p.canonical)
            if known is not None or batch is not None:
                if known is not None:
                    old_carriers.append((known, name, p.url))
                else:
                    fresh_carriers.append((batch, name, p.url))  # type: ignore[arg-type]
                per_source[name][1] += 1
                continue
            pending_key[p.key] = len(fresh)
            if p.canonical:
                pending_canonical[p.canonical] = len(fresh)
            fresh_carriers.append((len(fresh), name, p.url))
            fresh.append({"key": p.key, "canonical": p.canonical, "source": name, "url": p.url,
                          "title": p.title, "author": p.author, "published": p.published or stamp,
                          "fetched": stamp, "html": p.html, "text": p.text,
                          "content_hash": p.content_hash, "needs_text": p.needs_text,
                          "signature": p.signature})
            per_source[name][0] += 1
        ids: list[int] = []
        if fresh:
            # A plain executemany, then the new ids by key: RETURNING with the rows' order kept makes
            # SQLAlchemy send SQLite one INSERT per row (10k statements, 1.2 s of a 2.3 s store step).
            insert_rows(conn, articles, fresh)
            new_ids = _lookup(conn, articles.c.key, {row["key"] for row in fresh}, articles.c.id)
            ids = [int(new_ids[row["key"]][1]) for row in fresh]
        # A new article has no carriers yet: only the known ones' are looked up.
        _add_carriers(conn, {(ids[i], name): url for i, name, url in fresh_carriers},
                      {(a, name): url for a, name, url in reversed(old_carriers)}, stamp)
        counts.new_ids = ids
        counts.duplicates = sum(d for _, d in per_source.values())
        counts.per_source = {name: (n, d) for name, (n, d) in per_source.items()}
        record_counts(conn, counts.per_source)
    return counts


def _add_carriers(conn: sa.Connection, fresh: dict[tuple[int, str], str], known: dict[tuple[int, str], str],
                  stamp: datetime) -> None:
    """Record who carries what: ``fresh`` pairs are of articles new in this batch, ``known`` of stored ones."""
    have: set[tuple[int, str]] = set()
    for chunk in rows_in_chunks(sorted({a for a, _ in known})):
        have.update((int(r[0]), r[1]) for r in conn.execute(
            sa.select(carriers.c.article_id, carriers.c.source).where(carriers.c.article_id.in_(chunk))))
    pairs = {**known, **fresh}
    insert_rows(conn, carriers, [{"article_id": a, "source": s, "url": url, "seen": stamp}
                                 for (a, s), url in pairs.items() if (a, s) not in have])


@dataclass
class ExtractCounts:
    extracted: int = 0
    cached: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def extract_articles(config: Config, store: Store, fetcher: Fetcher) -> ExtractCounts:
    """Fetch and extract the full text of teaser articles, once per page URL.

    Pages already extracted are looked up in bulk first; extraction (CPU) runs in worker processes
    when many pages come, like parsing; the outcome is written a chunk of articles per
    transaction, so a stopped run keeps what it extracted.
    """
    counts = ExtractCounts()
    with store.begin() as conn:
        todo = conn.execute(sa.select(articles.c.id, articles.c.url, articles.c.source, articles.c.title)
                            .where(articles.c.needs_text)).all()
    if not todo:
        return counts
    by_name = {s.name: s for s in config.sources}
    titles = {row.id: row.title for row in todo}
    canonical = {row.id: canonical_url(row.url) for row in todo}
    cached = cached_pages(store, set(canonical.values()))

    def one(row: sa.Row[tuple[int, str, str, str]]) -> tuple[int, str, str, str | None, bool]:
        hit = cached.get(canonical[row.id])
        if hit is not None:
            return row.id, hit[0], hit[1], None, True
        source = by_name.get(row.source)
        private = _allow_private(config, source) if source else config.allow_private
        try:
            page = fetcher.get(row.url, accept="text/html,application/xhtml+xml", allow_private=private)
        except FeedletterError as exc:
            return row.id, "", "", str(exc), False
        html, text, error = cpu.run(extract_page, page.body or b"", page.url)
        return row.id, html, text, error, False

    processes = processes_for(config.gather.processes)
    # Extraction needs trafilatura, which parsing feeds does not: the fork server loads it here only.
    with CpuPool(processes, after=PROCESSES_AFTER, preload=["feedletter.entries", "trafilatura"]) as cpu:
        threads = fetcher.threads_for([row.url for row in todo], config.gather.concurrency)
        outcomes = list(fetcher.map(one, todo, workers=threads))
    for chunk in rows_in_chunks(outcomes, _EXTRACT_BATCH):
        saved: dict[str, tuple[str, str]] = {}
        updates: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for article_id, html, text, error, was_cached in chunk:
            if error:
                counts.failed += 1
                counts.errors.append(error)
                log.warning("%s", error)
                # Keep the teaser; trying again every run would hammer a broken page.
                failed.append({"_id": article_id})
                continue
            if not was_cached:
                saved.setdefault(canonical[article_id], (html, text))
            updates.append({"_id": article_id, "_html": html, "_text": text,
                            "_hash": content_hash(titles[article_id], text)})
            counts.cached += was_cached
            counts.extracted += not was_cached
        with store.begin() as conn:
            if failed:
                conn.execute(articles.update().where(articles.c.id == sa.bindparam("_id")).values(
                    needs_text=False), failed)
            if updates:
                # The text changed: grouping hashes it and reads its features afresh.
                conn.execute(articles.update().where(articles.c.id == sa.bindparam("_id")).values(
                    html=sa.bindparam("_html"), text=sa.bindparam("_text"), needs_text=False,
                    content_hash=sa.bindparam("_hash"), signature=None, features=None), updates)
            _save_pages(conn, saved)
    return counts


_EXTRACT_BATCH = 500


def cached_pages(store: Store, urls: set[str]) -> dict[str, tuple[str, str]]:
    """Pages extracted before, by canonical URL: ``(html, text)``."""
    with store.begin() as conn:
        return {r[0]: (r[1], r[2]) for r in _lookup(conn, pages.c.url, urls, pages.c.html, pages.c.text).values()}


def _save_pages(conn: sa.Connection, found: dict[str, tuple[str, str]]) -> None:
    if not found:
        return
    stamp = now()
    for chunk in rows_in_chunks(sorted(found)):
        conn.execute(pages.delete().where(pages.c.url.in_(chunk)))
    conn.execute(pages.insert(), [{"url": url, "fetched": stamp, "html": html, "text": text}
                                  for url, (html, text) in found.items()])


__all__ = [
    "EntryRules",
    "ExtractCounts",
    "Prepared",
    "SourceResult",
    "StoreCounts",
    "digest_feed",
    "extract_articles",
    "extract_page",
    "fetch_sources",
    "make_fetcher",
    "store_entries",
]
