"""Stored articles read back as :class:`~feedletter.models.Article`, story by story."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from feedletter.models import Article
from feedletter.schema import articles
from feedletter.store import Store, now, utc


def article_of(row: sa.RowMapping, *, html: bool = True) -> Article:
    """``row`` as an Article; ``html`` False when the query left the HTML out."""
    return Article(id=row["id"], source=row["source"], key=row["key"], url=row["url"], title=row["title"],
                   published=utc(row["published"]) or now(), text=row["text"], html=row["html"] if html else "",
                   author=row["author"], content_hash=row["content_hash"],
                   duplicate_of=row["duplicate_of"], story_id=row["story_id"], image=row.get("image"),
                   image_alt=row.get("image_alt") or "")


def story_articles(store: Store, story_ids: Sequence[int]) -> dict[int, list[Article]]:
    return articles_of_stories(store, story_ids, list(articles.c))


def articles_of_stories(store: Store, story_ids: Sequence[int], columns: Sequence[sa.Column[Any]]
                    ) -> dict[int, list[Article]]:
    out: dict[int, list[Article]] = defaultdict(list)
    if not story_ids:
        return out
    html = any(c.name == "html" for c in columns)
    with store.begin() as conn:
        for row in conn.execute(sa.select(*columns).where(articles.c.story_id.in_(story_ids))
                                .order_by(articles.c.published, articles.c.id)).mappings():
            out[row["story_id"]].append(article_of(row, html=html))
    return out
