"""The gather stages as plain functions: fetch and parse, store, extract, group, summarize.

Each function is one stage of the gather flow and works on a whole batch (all sources, all new
articles) with the library's own pool; the flow wraps each as a single Prefect task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from feedletter import boilerplate, extract, parse, sanitize
from feedletter.config import Config, Source
from feedletter.errors import FeedletterError, FetchError
from feedletter.fetch import Fetcher
from feedletter.health import SourceState, load_states, record_counts, record_failure, record_success
from feedletter.identity import canonical_url, content_hash
from feedletter.models import Entry, ParsedFeed
from feedletter.selection import matches_any
from feedletter.store import Store, articles, carriers, now, pages, tombstones

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceResult:
    """What fetching one source gave: a parsed feed, a 304, a skip or an error."""

    source: str
    status: str  # ok | not_modified | skipped | error
    feed: ParsedFeed | None = None
    error: str | None = None
    seconds: float = 0.0


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


def fetch_sources(config: Config, store: Store, fetcher: Fetcher, *,
                  only: Sequence[str] = (), force: bool = False,
                  progress: Callable[[int], None] | None = None) -> list[SourceResult]:
    """Fetch and parse every due source; record each one's health. One failure stops nothing.

    ``progress(1)`` is called (from worker threads) as each source is done.
    """
    wanted = [s for s in config.sources if s.enabled and (not only or s.name in only)]
    unknown = set(only) - {s.name for s in config.sources}
    if unknown:
        raise FeedletterError("gather", f"unknown source(s): {', '.join(sorted(unknown))}")
    states = load_states(store, wanted)
    current = now()

    def one(source: Source) -> tuple[SourceResult, SourceState, object]:
        state = states[source.name]
        if not force and (state.disabled or (state.next_fetch and state.next_fetch > current)):
            why = "disabled after repeated failures" if state.disabled else "backing off"
            return SourceResult(source.name, "skipped", error=why), state, None
        try:
            result = fetcher.get(state.url, etag=state.etag, last_modified=state.last_modified,
                                 allow_private=_allow_private(config, source),
                                 accept="application/rss+xml, application/atom+xml, application/feed+json, "
                                        "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5")
            if result.not_modified or result.body is None:
                return SourceResult(source.name, "not_modified", seconds=result.seconds), state, result
            feed = parse.parse_feed(result.body, url=result.url, source=source.name,
                                    content_type=result.content_type, now=current,
                                    extra_tracking=config.gather.tracking_params)
            return SourceResult(source.name, "ok", feed=feed, seconds=result.seconds), state, result
        except FeedletterError as exc:
            return SourceResult(source.name, "error", error=str(exc)), state, exc

    def counted(source: Source) -> tuple[SourceResult, SourceState, object]:
        outcome = one(source)
        if progress:
            progress(1)
        return outcome

    outcomes = list(fetcher.map(counted, wanted, workers=config.gather.concurrency))
    with store.begin() as conn:
        for (result, state, detail), source in zip(outcomes, wanted, strict=True):
            if result.status == "error":
                assert isinstance(detail, FeedletterError)
                retry_after = detail.retry_after if isinstance(detail, FetchError) else None
                record_failure(conn, state, result.error or "", config.gather.max_failures,
                               retry_after=retry_after)
                log.warning("%s", result.error)
            elif result.status != "skipped":
                record_success(conn, state, detail, result.seconds)
            del source
    return [o[0] for o in outcomes]


def _matches(source: Source, entry: Entry) -> bool:
    haystack = f"{entry.title}\n{entry.summary}\n{entry.content}"
    # The same pattern rules as a newsletter's select: plain words match whole words, else a regex.
    if source.include and not matches_any(source.include, haystack):
        return False
    return not matches_any(source.exclude, haystack)


def store_entries(config: Config, store: Store, results: Sequence[SourceResult]) -> StoreCounts:
    """Store new entries, sanitized; an entry met before (by key or canonical URL) only adds a carrier."""
    counts = StoreCounts()
    stamp = now()
    tracking = config.gather.tracking_params
    with store.begin() as conn:
        for result in results:
            if result.feed is None:
                continue
            source = config.source(result.source)
            new = dup = 0
            for entry in result.feed.entries:
                if not _matches(source, entry):
                    counts.filtered += 1
                    continue
                canonical = canonical_url(entry.link, tracking) if entry.link else ""
                if conn.execute(sa.select(tombstones.c.key).where(tombstones.c.key == entry.key)).first():
                    continue
                clause = articles.c.key == entry.key
                if canonical:
                    clause = sa.or_(clause, articles.c.canonical == canonical)
                found = conn.execute(sa.select(articles.c.id).where(clause).limit(1)).first()
                if found is not None:
                    _add_carrier(conn, found.id, source.name, entry.link, stamp)
                    dup += 1
                    continue
                body = entry.content or entry.summary
                html = sanitize.sanitize_html(body, base_url=entry.link or result.feed.link)
                text = boilerplate.strip_boilerplate(sanitize.html_to_text(html))
                teaser = source.full_text == "always" or (
                    source.full_text == "auto" and extract.is_teaser(entry.summary, entry.content))
                row = conn.execute(articles.insert().values(
                    key=entry.key, canonical=canonical, source=source.name, url=entry.link,
                    title=entry.title or "(untitled)", author=entry.author,
                    published=entry.published or stamp, fetched=stamp, html=html, text=text,
                    content_hash=content_hash(entry.title, text), needs_text=teaser and bool(entry.link)))
                article_id = int(row.inserted_primary_key[0])  # type: ignore[index]
                _add_carrier(conn, article_id, source.name, entry.link, stamp)
                counts.new_ids.append(article_id)
                new += 1
            counts.duplicates += dup
            counts.per_source[source.name] = (new, dup)
    record_counts(store, counts.per_source)
    return counts


def _add_carrier(conn: sa.Connection, article_id: int, source: str, url: str, stamp: datetime) -> None:
    exists = conn.execute(sa.select(carriers.c.article_id).where(
        carriers.c.article_id == article_id, carriers.c.source == source)).first()
    if exists is None:
        conn.execute(carriers.insert().values(article_id=article_id, source=source, url=url, seen=stamp))


@dataclass
class ExtractCounts:
    extracted: int = 0
    cached: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def extract_articles(config: Config, store: Store, fetcher: Fetcher) -> ExtractCounts:
    """Fetch and extract the full text of teaser articles, once per page URL."""
    counts = ExtractCounts()
    with store.begin() as conn:
        todo = conn.execute(sa.select(articles.c.id, articles.c.url, articles.c.source, articles.c.title)
                            .where(articles.c.needs_text)).all()
    if not todo:
        return counts
    by_name = {s.name: s for s in config.sources}

    def one(row: sa.Row[tuple[int, str, str, str]]) -> tuple[int, str, str, str | None, bool]:
        url = row.url
        hit = cached_page(store, canonical_url(url))
        if hit is not None:
            return row.id, hit[0], hit[1], None, True
        source = by_name.get(row.source)
        private = _allow_private(config, source) if source else config.allow_private
        try:
            page = fetcher.get(url, accept="text/html,application/xhtml+xml", allow_private=private)
            found = extract.extract(page.body or b"", url=page.url)
        except FeedletterError as exc:
            return row.id, "", "", str(exc), False
        html = sanitize.sanitize_html(found.html, base_url=page.url) if found.html else ""
        text = boilerplate.strip_boilerplate(found.text)
        save_page(store, canonical_url(url), html, text)
        return row.id, html, text, None, False

    for article_id, html, text, error, cached in fetcher.map(one, todo, workers=config.gather.concurrency):
        with store.begin() as conn:
            if error:
                counts.failed += 1
                counts.errors.append(error)
                log.warning("%s", error)
                # Keep the teaser; trying again every run would hammer a broken page.
                conn.execute(articles.update().where(articles.c.id == article_id).values(needs_text=False))
                continue
            title = conn.execute(sa.select(articles.c.title).where(articles.c.id == article_id)).scalar_one()
            conn.execute(articles.update().where(articles.c.id == article_id).values(
                html=html, text=text, needs_text=False, content_hash=content_hash(title, text)))
        counts.cached += cached
        counts.extracted += not cached
    return counts


def cached_page(store: Store, url: str) -> tuple[str, str] | None:
    with store.begin() as conn:
        row = conn.execute(sa.select(pages.c.html, pages.c.text).where(pages.c.url == url)).first()
    return None if row is None else (row.html, row.text)


def save_page(store: Store, url: str, html: str, text: str) -> None:
    with store.begin() as conn:
        conn.execute(pages.delete().where(pages.c.url == url))
        conn.execute(pages.insert().values(url=url, fetched=now(), html=html, text=text))


__all__ = [
    "ExtractCounts",
    "SourceResult",
    "StoreCounts",
    "extract_articles",
    "fetch_sources",
    "make_fetcher",
    "store_entries",
]
