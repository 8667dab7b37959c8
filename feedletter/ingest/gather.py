"""The gather stages as plain functions: fetch and parse, store, extract, group, summarize.

Each function is one stage of the gather flow and works on a whole batch (all sources, all new
articles) with the library's own pool; the flow wraps each as a single Prefect task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import sqlalchemy as sa

from feedletter.config import Config, Source
from feedletter.errors import FeedletterError, FetchError, ParseError
from feedletter.ingest.entries import EntryRules, Prepared, extract_page, prepare_feed
from feedletter.ingest.fetch import Fetcher
from feedletter.ingest.health import (
    EntryCounts,
    SourceState,
    load_states,
    record_counts,
    record_failure,
    record_successes,
    record_validators,
)
from feedletter.ingest.identity import canonical_url, content_hash, tombstone_of_url
from feedletter.models import ParsedFeed
from feedletter.runreport import cause_of
from feedletter.store import Store, articles, carriers, insert_rows, now, pages, rows_in_chunks, select_in, tombstones
from feedletter.stories.dedupe import paused_gc
from feedletter.workers import CpuPool, give_back_memory, processes_for

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


@dataclass
class StoreCounts:
    """What the store step did with a run's entries: the new articles' ids, and every other entry
    counted once under the reason it was not stored (see :class:`EntryCounts`), in all and per source."""

    new_ids: list[int] = field(default_factory=list)
    total: EntryCounts = field(default_factory=EntryCounts)
    per_source: dict[str, EntryCounts] = field(default_factory=dict)

    @property
    def duplicates(self) -> int:
        return self.total.duplicates

    @property
    def filtered(self) -> int:
        return self.total.filtered


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
    with CpuPool(processes, after=PROCESSES_AFTER, preload=["feedletter.ingest.entries"]) as cpu:
        threads = fetcher.threads_for([states[s.name].url for s in wanted], config.gather.concurrency)
        outcomes = [outcome() for outcome in fetcher.map(one, wanted, workers=threads)]
    results = [o[0] for o in outcomes]
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


def _lookup(conn: sa.Connection, column: sa.Column[str], values: set[str],
            *extra: sa.Column[Any]) -> dict[str, sa.Row[Any]]:
    return {row[0]: row for row in select_in(conn, column, values, *extra)}


def store_entries(config: Config, store: Store, results: Sequence[SourceResult]) -> StoreCounts:
    """Store new entries; every other entry is counted with the reason it was not stored.

    Within a feed an entry is its key (its GUID as given, else its link): entries with keys of
    their own are stored, whatever their URLs. Across feeds the canonical URL (or the key) says
    "same article", and the later feed only becomes a carrier of it.

    A handful of bulk statements per run, whatever the number of entries: keys are looked up in
    chunks, and only the entries not stored under their key are looked up further (tombstones, an
    older feedletter's key, canonical URLs); new articles are inserted in one executemany.
    """
    try:
        with paused_gc():  # 10k rows of dicts that all stay alive: the collector would rescan them twice
            return _store_entries(store, results)
    finally:
        give_back_memory()


# Where a key or URL met earlier in the run points: (source, index into fresh or article id, stored?).
_Earlier = tuple[str, int, bool]


def _store_entries(store: Store, results: Sequence[SourceResult]) -> StoreCounts:
    stamp = now()
    todo = [(r.source, p) for r in results for p in r.entries]
    per_source = {r.source: EntryCounts(filtered=r.filtered) for r in results if r.feed is not None}
    with store.begin() as conn:
        by_key = {r[0]: (int(r[1]), r[2]) for r in select_in(conn, articles.c.key, {p.key for _, p in todo},
                                                             articles.c.id, articles.c.source)}
        # The rest is looked up only for entries not stored under their key: after the first run of a
        # feed, a few new ones.
        misses = [i for i, (_, p) in enumerate(todo) if p.key not in by_key]
        # A removed article leaves tombstones under its key and its canonical URL: neither comes back.
        # Its key may be of the older form, which then stands for every post it stood for then.
        dead = _tombstoned(conn, {k for i in misses for k in _tombstone_keys(todo[i][1])})
        claims = _legacy_claims(conn, todo, misses)
        by_url = _ByUrl(conn, todo, misses)
        pending: dict[str, _Earlier] = {}  # entries' keys met earlier in this run
        pending_url: dict[str, _Earlier] = {}  # canonical URLs of new articles of this run
        fresh: list[dict[str, Any]] = []
        fresh_carriers: list[tuple[int, str, str]] = []  # fresh index, source, url
        foreign: list[tuple[int, str, str]] = []  # a stored article of another source: id, source, url
        rekeyed: list[dict[str, Any]] = []
        for i, (name, p) in enumerate(todo):
            tally = per_source[name]
            hit = by_key.get(p.key)
            if hit is not None:
                if hit[1] == name:
                    tally.seen += 1
                else:
                    foreign.append((hit[0], name, p.url))
                continue
            earlier = pending.get(p.key)
            if earlier is None and p.canonical and not p.shared_url:
                earlier = pending_url.get(p.canonical)
            if earlier is not None:
                if earlier[0] == name:
                    tally.repeated += 1
                elif earlier[2]:
                    foreign.append((earlier[1], name, p.url))
                else:
                    fresh_carriers.append((earlier[1], name, p.url))
                    tally.carried += 1
                continue
            if not dead.isdisjoint(_tombstone_keys(p)):
                tally.removed += 1
                continue
            claim = claims.get(i)
            if claim is None and p.canonical and not p.shared_url:
                claim = by_url.get(name, p)
            if claim is not None:
                article, owner = claim
                if owner == name:
                    tally.seen += 1
                    if i in claims:
                        # Stored under the older key form: it takes its key of now, so that the next run
                        # finds it by key, and the other posts the old key stood for stay apart from it.
                        rekeyed.append({"_id": article, "_key": p.key, "_canonical": p.canonical})
                else:
                    foreign.append((article, name, p.url))
                pending[p.key] = (name, article, True)
                continue
            pending[p.key] = (name, len(fresh), False)
            if p.canonical and not p.shared_url:
                pending_url.setdefault(p.canonical, (name, len(fresh), False))
            fresh_carriers.append((len(fresh), name, p.url))
            fresh.append({"key": p.key, "canonical": p.canonical, "source": name, "url": p.url,
                          "title": p.title, "author": p.author, "published": p.published or stamp,
                          "fetched": stamp, "html": p.html, "text": p.text,
                          "content_hash": p.content_hash, "needs_text": p.needs_text,
                          "signature": p.signature, "features": p.features})
            tally.new += 1
        if rekeyed:
            conn.execute(articles.update().where(articles.c.id == sa.bindparam("_id")).values(
                key=sa.bindparam("_key"), canonical=sa.bindparam("_canonical")), rekeyed)
        ids: list[int] = []
        if fresh:
            # A plain executemany, then the new ids by key: RETURNING with the rows' order kept makes
            # SQLAlchemy send SQLite one INSERT per row (10k statements, 1.2 s of a 2.3 s store step).
            insert_rows(conn, articles, fresh)
            new_ids = _lookup(conn, articles.c.key, {row["key"] for row in fresh}, articles.c.id)
            ids = [int(new_ids[row["key"]][1]) for row in fresh]
        known = _carried_before(conn, foreign)
        for article, name, _ in foreign:
            if (article, name) in known:
                per_source[name].seen += 1
            else:
                per_source[name].carried += 1
        # A new article has no carriers yet: only the stored ones' were looked up.
        pairs = {**{(a, s): url for a, s, url in reversed(foreign)},
                 **{(ids[i], s): url for i, s, url in fresh_carriers}}
        insert_rows(conn, carriers, [{"article_id": a, "source": s, "url": url, "seen": stamp}
                                     for (a, s), url in pairs.items() if (a, s) not in known])
        counts = StoreCounts(new_ids=ids, per_source=per_source)
        for tally in per_source.values():
            counts.total.add(tally)
        record_counts(conn, per_source)
        # In the same transaction as the entries: a run killed before this commit stored nothing,
        # and the next run's conditional GET still gets the full feed.
        record_validators(conn, [(r.source, r.fetched) for r in results if r.status == "ok"])
    return counts


def _tombstoned(conn: sa.Connection, keys: set[str]) -> set[str]:
    """Which of ``keys`` a tombstone holds.

    Staff remove a handful of articles, while a first run asks about two or three keys per entry:
    a small table is read whole in one statement rather than matched 500 keys at a time.
    """
    if not keys:
        return set()
    if conn.execute(sa.select(sa.func.count()).select_from(tombstones)).scalar_one() <= len(keys):
        return {key for (key,) in conn.execute(sa.select(tombstones.c.key))} & keys
    return set(_lookup(conn, tombstones.c.key, keys))


def _tombstone_keys(p: Prepared) -> tuple[str, ...]:
    url = (tombstone_of_url(p.canonical),) if p.canonical else ()
    return (p.key, p.legacy_key, *url) if p.legacy_key else (p.key, *url)


def _legacy_claims(conn: sa.Connection, todo: Sequence[tuple[str, Prepared]],
                   misses: Sequence[int]) -> dict[int, tuple[int, str]]:
    """Entries (by index into todo) that are an article stored under the older key form: ``(id, source)``.

    That form dropped fragments, so one stored article may stand for several entries of today
    (Scripting News: a page a day, a fragment per post): it is the one whose link has the stored
    link's fragment, the one with its title first. The others are new. Another feed's article
    under the older key is the same article, as it was then: the entry carries it.
    """
    wanted = {todo[i][1].legacy_key for i in misses if todo[i][1].legacy_key}
    if not wanted:
        return {}
    rows = {r[0]: (int(r[1]), r[2], r[3], r[4]) for r in select_in(
        conn, articles.c.key, wanted, articles.c.id, articles.c.source, articles.c.url, articles.c.title)}
    claims: dict[int, tuple[int, str]] = {}
    best: dict[int, tuple[bool, int]] = {}  # article id -> (title differs, index into todo)
    for i in misses:
        name, p = todo[i]
        row = rows.get(p.legacy_key) if p.legacy_key else None
        if row is None or row[2].partition("#")[2] != p.url.partition("#")[2]:
            continue
        if row[1] != name:
            claims[i] = (row[0], row[1])
            continue
        rank = (row[3] != p.title, i)
        if row[0] not in best or rank < best[row[0]]:
            best[row[0]] = rank
    claims.update((i, (article, todo[i][0])) for article, (_, i) in best.items())
    return claims


class _ByUrl:
    """Stored articles by canonical URL, for the entries not stored under their key.

    A stored article of the entry's own feed with its URL and its title is the entry under a GUID
    the publisher changed since; with another title it is another post (feeds that link every entry
    to their home page). An article of another feed with the URL is the same article.
    """

    def __init__(self, conn: sa.Connection, todo: Sequence[tuple[str, Prepared]], misses: Sequence[int]) -> None:
        wanted = {todo[i][1].canonical for i in misses if todo[i][1].canonical and not todo[i][1].shared_url}
        self.titled: dict[tuple[str, str, str], int] = {}
        self.first: dict[str, dict[str, int]] = {}
        for canonical, source, article, title in select_in(conn, articles.c.canonical, wanted, articles.c.source,
                                                            articles.c.id, articles.c.title):
            self.titled.setdefault((canonical, source, title), int(article))
            self.first.setdefault(canonical, {}).setdefault(source, int(article))

    def get(self, name: str, p: Prepared) -> tuple[int, str] | None:
        own = self.titled.get((p.canonical, name, p.title))
        if own is not None:
            return own, name
        for source, article in self.first.get(p.canonical, {}).items():
            if source != name:
                return article, source
        return None


def _carried_before(conn: sa.Connection, foreign: Sequence[tuple[int, str, str]]) -> set[tuple[int, str]]:
    """Which of these (article, source) pairs a carrier records already."""
    have: set[tuple[int, str]] = set()
    for chunk in rows_in_chunks(sorted({a for a, _, _ in foreign})):
        have.update((int(r[0]), r[1]) for r in conn.execute(
            sa.select(carriers.c.article_id, carriers.c.source).where(carriers.c.article_id.in_(chunk))))
    return have


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
    with CpuPool(processes, after=PROCESSES_AFTER, preload=["feedletter.ingest.entries", "trafilatura"]) as cpu:
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
                log.warning("%s", error, extra={"cause": cause_of(error), "kind": "article page"})
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
    "extract_articles",
    "extract_page",
    "fetch_sources",
    "make_fetcher",
    "prepare_feed",
    "store_entries",
]
