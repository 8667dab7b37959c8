"""Whether the story stages have anything to do, asked without loading them; their drafts, begun early.

Grouping and summarizing load numpy and the clustering code (about an eighth of a second); a run
in which nothing new came needs neither, and the two questions here tell it so. The stages select
their work with the same conditions. :class:`Drafting` begins the summarize stage's drafts in the
store stage, once there are new articles to draft.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import sqlalchemy as sa

from feedletter.schema import articles, stories
from feedletter.store import Store

if TYPE_CHECKING:
    from feedletter.stories.summaries import Drafts

__all__ = ["UNGROUPED", "UNSUMMARIZED", "Drafting", "GroupCounts", "has_ungrouped", "has_unsummarized"]

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


class Drafting:
    """The new articles' summaries, drafted from the store stage on, on the CPU it leaves idle.

    The store stage hands over what it is about to write (:meth:`told`); the group stage goes on
    with the same :class:`~feedletter.stories.summaries.Drafts` and finishes them. A run that ends
    before grouping closes them (:meth:`close`), so that no worker process is left running.
    ``begin`` makes the drafts (loading the summarizer) once there are new articles.
    """

    def __init__(self, begin: Callable[[], Drafts]) -> None:
        self.begin = begin
        self.drafts: Drafts | None = None

    def told(self, new: Sequence[tuple[str, str]]) -> None:
        if not new:
            return
        if self.drafts is None:
            self.drafts = self.begin()
        for title, text in new:
            self.drafts.add(title, text)
        self.drafts.added()

    def close(self) -> None:
        if self.drafts is not None:
            self.drafts.finish()
