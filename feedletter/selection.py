"""Choose and order the stories of a newsletter's next issue.

A story is a candidate when it has a summary and this newsletter has never carried it. It is kept
when it passes every filter of the newsletter's ``select``:

- ``since``: ``last_issue`` (stories grouped after the previous issue went out; everything for
  the first issue), ``24h`` / ``7d`` (the lead article published within that period) or ``all``;
- ``sources`` / ``tags``: one of the sources that carried it is listed / has one of the tags;
- ``include`` / ``exclude``: patterns searched, case-insensitively, in the title, the summary and
  the articles' text. A plain word or phrase matches whole words only (``ad`` does not match
  "read"); anything else is a regular expression (``sponsor\\w*``, ``ketamine|depression``);
- ``min_quality``: the summary's quality score (:func:`summary_quality`) is at least this.

Kept stories are ranked by :func:`story_score`; pinned stories (carried by a ``pin_sources``
source, or with a ``pin_keywords`` pattern in the title) come first. The first ``max_stories``
make the issue.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa

from feedletter.config import Config, Newsletter
from feedletter.models import Story
from feedletter.patterns import matches_any
from feedletter.store import Store, issue_stories, issues, now, stories, utc
from feedletter.stories import load_stories, story_articles
from feedletter.summarize import split_sentences

_SENTENCE_END = (".", "!", "?", "…", ".\"", ".”", "!”", "?”")
MIN_SENTENCE_WORDS = 4


def summary_quality(summary: str) -> int:
    """Words in the summary's complete sentences.

    A sentence counts when it has at least four words and ends with ``.``, ``!``, ``?`` or ``…``.
    A headline-like fragment or a cut-off teaser scores 0; one plain sentence about 15–25.
    """
    total = 0
    for sentence in split_sentences(summary):
        count = len(sentence.split())
        if count >= MIN_SENTENCE_WORDS and sentence.rstrip().endswith(_SENTENCE_END):
            total += count
    return total


def story_score(story: Story, *, at: datetime, priority: Mapping[str, int]) -> float:
    """``2 × sources covering it + 1 / (1 + age in days) + the lead source's priority``."""
    age_days = max(0.0, (at - story.published).total_seconds() / 86400)
    return 2 * (1 + len(story.also)) + 1 / (1 + age_days) + priority.get(story.source, 0)


def parse_period(since: str) -> timedelta | None:
    match = re.fullmatch(r"(\d+)([hd])", since)
    if not match:
        return None
    amount = int(match.group(1))
    return timedelta(hours=amount) if match.group(2) == "h" else timedelta(days=amount)


def source_tags(config: Config) -> dict[str, tuple[str, ...]]:
    return {s.name: tuple(s.tags) for s in config.sources}


def last_issue(store: Store, newsletter: str) -> tuple[int, datetime] | None:
    with store.begin() as conn:
        row = conn.execute(sa.select(issues.c.number, issues.c.issued).where(issues.c.newsletter == newsletter)
                           .order_by(issues.c.number.desc()).limit(1)).first()
    return None if row is None else (row.number, utc(row.issued))  # type: ignore[return-value]


def candidate_ids(store: Store, newsletter: Newsletter) -> list[int]:
    """Summarized stories this newsletter has not carried, limited by ``since: last_issue``."""
    query = (sa.select(stories.c.id).where(stories.c.summary != "")
             .where(~stories.c.id.in_(sa.select(issue_stories.c.story_id)
                                      .where(issue_stories.c.newsletter == newsletter.name)))
             .order_by(stories.c.id))
    previous = last_issue(store, newsletter.name)
    if newsletter.select.since == "last_issue" and previous is not None:
        query = query.where(stories.c.created > previous[1])
    with store.begin() as conn:
        return [int(r.id) for r in conn.execute(query)]


def _texts(store: Store, ids: Sequence[int]) -> dict[int, str]:
    grouped = story_articles(store, ids)
    return {sid: "\n".join(a.text for a in group if a.duplicate_of is None) for sid, group in grouped.items()}


def keep(story: Story, newsletter: Newsletter, *, text: str, at: datetime,
         tags: Mapping[str, tuple[str, ...]]) -> bool:
    """Whether a candidate passes every filter of the newsletter's ``select``."""
    sel = newsletter.select
    period = parse_period(sel.since)
    if period is not None and story.published < at - period:
        return False
    carriers = {story.source, *(a.source for a in story.also)}
    if sel.sources and not carriers & set(sel.sources):
        return False
    if sel.tags and not {t for name in carriers for t in tags.get(name, ())} & set(sel.tags):
        return False
    haystack = f"{story.title}\n{story.summary}\n{text}"
    if sel.include and not matches_any(sel.include, haystack):
        return False
    if matches_any(sel.exclude, haystack):
        return False
    return summary_quality(story.summary) >= sel.min_quality


def is_pinned(story: Story, newsletter: Newsletter) -> bool:
    sel = newsletter.select
    carriers = {story.source, *(a.source for a in story.also)}
    return bool(carriers & set(sel.pin_sources)) or matches_any(sel.pin_keywords, story.title)


def rank(chosen: Sequence[Story], newsletter: Newsletter, *, at: datetime,
         priority: Mapping[str, int]) -> list[Story]:
    """Pinned first, then by score; ties go to the newer story, then the older id."""
    def key(story: Story) -> tuple[bool, float, float, int]:
        return (not is_pinned(story, newsletter), -story_score(story, at=at, priority=priority),
                -story.published.timestamp(), story.id)
    return sorted(chosen, key=key)


def select_stories(config: Config, store: Store, newsletter: Newsletter, *,
                   at: datetime | None = None) -> list[Story]:
    """The stories the next issue of ``newsletter`` carries, best first."""
    at = at or now()
    ids = candidate_ids(store, newsletter)
    tags = source_tags(config)
    candidates = load_stories(store, ids, tags)
    texts = _texts(store, [s.id for s in candidates]) if newsletter.select.include or \
        newsletter.select.exclude else {}
    seen: set[int] = set()
    chosen = []
    for story in candidates:
        if story.id not in seen and keep(story, newsletter, text=texts.get(story.id, ""), at=at, tags=tags):
            seen.add(story.id)
            chosen.append(story)
    priority = {s.name: s.priority for s in config.sources}
    return rank(chosen, newsletter, at=at, priority=priority)[:newsletter.select.max_stories]
