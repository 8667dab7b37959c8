"""The store stage: a run's prepared entries become articles, once each.

An entry is new unless its key, an earlier form of its key or a tombstone says it was seen; a
copy of an article another feed already brought is counted as a carrier of it, not stored again.
The whole run's entries are written in a few bulk statements in one transaction, with the feeds'
validators, so a run killed mid-store leaves nothing partial.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from feedletter.config import Config
from feedletter.ingest.health import (
    EntryCounts,
    record_counts,
    record_validators,
)
from feedletter.ingest.identity import tombstone_of_url
from feedletter.schema import articles, carriers, tombstones
from feedletter.store import Store, insert_rows, now, rows_in_chunks, select_in
from feedletter.workers import give_back_memory, paused_gc

if TYPE_CHECKING:
    from feedletter.ingest.entries import Prepared
    from feedletter.ingest.gather import SourceResult  # the fetch stage's results, which this stage stores


# Where a key or URL met earlier in the run points: (source, index into fresh or article id, stored?).
_Earlier = tuple[str, int, bool]


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


def lookup(conn: sa.Connection, column: sa.Column[str], values: set[str],
            *extra: sa.Column[Any]) -> dict[str, sa.Row[Any]]:
    return {row[0]: row for row in select_in(conn, column, values, *extra)}


# Given the new articles' (title, text) as they are about to be written.
NewArticles = Callable[[Sequence[tuple[str, str]]], None]


def store_entries(config: Config, store: Store, results: Sequence[SourceResult], *,
                  told: NewArticles | None = None) -> StoreCounts:
    """Store new entries; every other entry is counted with the reason it was not stored.

    Within a feed an entry is its key (its GUID as given, else its link): entries with keys of
    their own are stored, whatever their URLs. Across feeds the canonical URL (or the key) says
    "same article", and the later feed only becomes a carrier of it.

    A handful of bulk statements per run, whatever the number of entries: keys are looked up in
    chunks, and only the entries not stored under their key are looked up further (tombstones, an
    older feedletter's key, canonical URLs); new articles are inserted in one executemany.

    ``told`` is given each new article's title and text before they are written, except those whose
    text the extract stage will replace (teasers): the summaries' drafts begin there (see runs).
    """
    try:
        with paused_gc():  # 10k rows of dicts that all stay alive: the collector would rescan them twice
            return _store_entries(store, results, told)
    finally:
        give_back_memory()


def _store_entries(store: Store, results: Sequence[SourceResult], told: NewArticles | None) -> StoreCounts:
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
                          "signature": p.signature, "features": p.features, "image": p.image,
                          "image_alt": p.image_alt})
            tally.new += 1
        if rekeyed:
            conn.execute(articles.update().where(articles.c.id == sa.bindparam("_id")).values(
                key=sa.bindparam("_key"), canonical=sa.bindparam("_canonical")), rekeyed)
        ids: list[int] = []
        if fresh and told is not None:
            told([(row["title"], row["text"]) for row in fresh if not row["needs_text"]])
        if fresh:
            # A plain executemany, then the new ids by key: RETURNING with the rows' order kept makes
            # SQLAlchemy send SQLite one INSERT per row (10k statements, 1.2 s of a 2.3 s store step).
            insert_rows(conn, articles, fresh)
            new_ids = lookup(conn, articles.c.key, {row["key"] for row in fresh}, articles.c.id)
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
    return set(lookup(conn, tombstones.c.key, keys))


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
