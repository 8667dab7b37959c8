"""Whether the story stages have anything to do, asked without loading them.

Grouping and summarizing load numpy and the clustering code (about an eighth of a second); a run
in which nothing new came needs neither, and the two questions here tell it so. The stages select
their work with the same conditions.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from feedletter.schema import articles, stories
from feedletter.store import Store

__all__ = ["UNGROUPED", "UNSUMMARIZED", "GroupCounts", "has_ungrouped", "has_unsummarized"]

# Articles the group stage takes: not grouped yet, with their text (a teaser waits for its page).
UNGROUPED = sa.and_(sa.not_(articles.c.clustered), sa.not_(articles.c.needs_text))
# Stories the summarize stage takes: new ones, and those that gained a telling since.
UNSUMMARIZED = stories.c.summary_hash == ""


@dataclass
class GroupCounts:
    articles: int = 0
    near_duplicates: int = 0
    new_stories: int = 0
    joined: int = 0
    # Summaries made ahead while grouping (see feedletter.stories.summaries.Drafts), by digest: for
    # the summarize stage, not a count.
    drafts: dict[str, str] = field(default_factory=dict, repr=False, compare=False)


def has_ungrouped(store: Store) -> bool:
    with store.begin() as conn:
        return conn.execute(sa.select(articles.c.id).where(UNGROUPED).limit(1)).first() is not None


def has_stories(store: Store) -> bool:
    with store.begin() as conn:
        return conn.execute(sa.select(stories.c.id).limit(1)).first() is not None


def has_unsummarized(store: Store) -> bool:
    with store.begin() as conn:
        return conn.execute(sa.select(stories.c.id).where(UNSUMMARIZED).limit(1)).first() is not None
