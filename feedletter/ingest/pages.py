"""The extract stage: full text for teaser articles, fetched once per page URL and kept by URL."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from feedletter.config import Config
from feedletter.errors import FeedletterError
from feedletter.ingest.fetch import Fetcher, private_allowed
from feedletter.ingest.identity import canonical_url, content_hash
from feedletter.ingest.storing import lookup
from feedletter.runreport import cause_of
from feedletter.schema import articles, pages
from feedletter.store import Store, now, rows_in_chunks
from feedletter.workers import PROCESSES_AFTER, CpuPool, processes_for

if TYPE_CHECKING:
    from feedletter.ingest.entries import Page

log = logging.getLogger(__name__)


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
    # Imported here: the parse and extract code (and numpy behind it) is only needed when pages come.
    from feedletter.ingest.entries import extract_page
    by_name = {s.name: s for s in config.sources}
    titles = {row.id: row.title for row in todo}
    canonical = {row.id: canonical_url(row.url) for row in todo}
    cached = cached_pages(store, set(canonical.values()))

    def one(row: sa.Row[tuple[int, str, str, str]]) -> tuple[int, Page | str, bool]:
        hit = cached.get(canonical[row.id])
        if hit is not None:
            return row.id, hit, True
        source = by_name.get(row.source)
        private = private_allowed(config, source) if source else config.allow_private
        try:
            page = fetcher.get(row.url, accept="text/html,application/xhtml+xml", allow_private=private)
        except FeedletterError as exc:
            return row.id, str(exc), False
        return row.id, cpu.run(extract_page, page.body or b"", page.url), False

    processes = processes_for(config.gather.processes)
    # Extraction needs trafilatura, which parsing feeds does not: the fork server loads it here only.
    with CpuPool(processes, after=PROCESSES_AFTER, preload=["feedletter.ingest.entries", "trafilatura"]) as cpu:
        threads = fetcher.threads_for([row.url for row in todo], config.gather.concurrency)
        outcomes = list(fetcher.map(one, todo, workers=threads))
    for chunk in rows_in_chunks(outcomes, _EXTRACT_BATCH):
        saved: dict[str, Page] = {}
        updates: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        for article_id, found, was_cached in chunk:
            if isinstance(found, str):
                error = found
                counts.failed += 1
                counts.errors.append(error)
                log.warning("%s", error, extra={"cause": cause_of(error), "kind": "article page"})
                # Keep the teaser; trying again every run would hammer a broken page.
                failed.append({"_id": article_id})
                continue
            if not was_cached:
                saved.setdefault(canonical[article_id], found)
            updates.append({"_id": article_id, "_html": found.html, "_text": found.text, "_image": found.image,
                            "_hash": content_hash(titles[article_id], found.text)})
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
                    content_hash=sa.bindparam("_hash"), signature=None, features=None,
                    # The feed's own picture stays; the page's fills in where the feed gave none.
                    image=sa.func.coalesce(articles.c.image, sa.bindparam("_image"))), updates)
            _save_pages(conn, saved)
    return counts


_EXTRACT_BATCH = 500


def cached_pages(store: Store, urls: set[str]) -> dict[str, Page]:
    """Pages extracted before, by canonical URL."""
    from feedletter.ingest.entries import Page

    with store.begin() as conn:
        return {r[0]: Page(r[1], r[2], r[3])
                for r in lookup(conn, pages.c.url, urls, pages.c.html, pages.c.text, pages.c.image).values()}


def _save_pages(conn: sa.Connection, found: dict[str, Page]) -> None:
    if not found:
        return
    stamp = now()
    for chunk in rows_in_chunks(sorted(found)):
        conn.execute(pages.delete().where(pages.c.url.in_(chunk)))
    conn.execute(pages.insert(), [{"url": url, "fetched": stamp, "html": page.html, "text": page.text,
                                   "image": page.image} for url, page in found.items()])
