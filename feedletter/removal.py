"""Looking at stored articles, and removing one for good: staff take it out, and it never comes back.

A removed article leaves tombstones under its key and its canonical URL, so neither the same feed
entry nor the same page under a tracking-laden link is stored again. Its story loses it: the story
gets a new lead, or disappears when nothing is left and no issue carried it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from feedletter.errors import FeedletterError
from feedletter.ingest.identity import canonical_url, tombstone_of_url
from feedletter.schema import articles, carriers, issue_stories, stories, tombstones
from feedletter.store import Store, now


@dataclass(frozen=True)
class Listed:
    id: int
    source: str
    published: datetime
    title: str
    url: str


def newest_articles(store: Store, *, source: str | None = None, limit: int = 50) -> list[Listed]:
    """The newest stored articles (of one source), newest first."""
    query = sa.select(articles.c.id, articles.c.source, articles.c.published, articles.c.title, articles.c.url) \
        .order_by(articles.c.published.desc(), articles.c.id.desc()).limit(limit)
    if source:
        query = query.where(articles.c.source == source)
    with store.begin() as conn:
        return [Listed(int(r.id), r.source, r.published, r.title, r.url) for r in conn.execute(query)]


@dataclass(frozen=True)
class Removed:
    id: int
    title: str
    url: str
    story_id: int | None


def remove_article(store: Store, ref: str, *, reason: str = "removed") -> Removed:
    """Remove the article with this id or URL; raise FeedletterError when there is none."""
    with store.begin() as conn:
        query = sa.select(articles.c.id, articles.c.key, articles.c.canonical, articles.c.title,
                          articles.c.url, articles.c.story_id)
        if ref.isdigit():
            row = conn.execute(query.where(articles.c.id == int(ref))).first()
        else:
            # Posts told apart by fragment alone are stored with it (feedletter.ingest.entries._tell_apart).
            row = (conn.execute(query.where(articles.c.canonical == canonical_url(ref, keep_fragment=True))).first()
                   or conn.execute(query.where(articles.c.canonical == canonical_url(ref))).first())
        if row is None:
            raise FeedletterError("articles", f"{ref}: no such article")
        stamp = now()
        for key in {row.key, tombstone_of_url(row.canonical)} if row.canonical else {row.key}:
            if conn.execute(sa.select(tombstones.c.key).where(tombstones.c.key == key)).first() is None:
                conn.execute(tombstones.insert().values(key=key, reason=reason, created=stamp))
        conn.execute(articles.update().where(articles.c.duplicate_of == row.id).values(duplicate_of=None))
        conn.execute(carriers.delete().where(carriers.c.article_id == row.id))
        conn.execute(articles.delete().where(articles.c.id == row.id))
        if row.story_id is not None:
            _reshape_story(conn, row.story_id)
    return Removed(row.id, row.title, row.url, row.story_id)


def _reshape_story(conn: sa.Connection, story_id: int) -> None:
    left = conn.execute(sa.select(articles.c.id).where(articles.c.story_id == story_id)
                        .order_by(articles.c.published, articles.c.id)).scalars().all()
    if left:
        lead = conn.execute(sa.select(stories.c.lead_id).where(stories.c.id == story_id)).scalar()
        values: dict[str, object] = {"summary_hash": ""}  # summarize again from what is left
        if lead not in left:
            values["lead_id"] = left[0]
        conn.execute(stories.update().where(stories.c.id == story_id).values(**values))
        return
    used = conn.execute(sa.select(issue_stories.c.story_id).where(issue_stories.c.story_id == story_id)).first()
    if used is None:
        conn.execute(stories.delete().where(stories.c.id == story_id))
