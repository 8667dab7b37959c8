"""Choose and order the stories of a newsletter's next issue.

A story is a candidate when it has been summarized and this newsletter has never carried it (a
post whose title says it all, a link post, has an empty summary and is shown by its title). It is kept
when it passes every filter of the newsletter's ``select``:

- ``since``: ``last_issue`` (stories grouped after the previous issue went out; everything for
  the first issue), ``24h`` / ``7d`` (the lead article published within that period) or ``all``;
- ``sources`` / ``tags``: one of the sources that carried it is listed / has one of the tags;
- ``include`` / ``exclude``: patterns searched, case-insensitively, in the title, the summary and
  the articles' text. A plain word or phrase matches whole words only (``ad`` does not match
  "read"); anything else is a regular expression (``sponsor\\w*``, ``ketamine|depression``);
- ``min_quality``: the summary's quality score (:func:`summary_quality`) is at least this.

Kept stories on one subject (:func:`feedletter.stories.cluster.subjects`: other events of one kind, told by
other sites) make one entry: the best of them leads, the others are listed under it as "More on
this". Entries are ranked by :func:`entry_score` (relevance: how many sites tell the story and its
subject, the source's priority; novelty: how fresh it is); pinned stories (carried by a
``pin_sources`` source, or with a ``pin_keywords`` pattern in the title) come first. An issue takes
at most ``max_per_source`` entries led by one source while other sources have entries to offer;
only when they run out do the remaining places go to the best leftovers, a source at a time. Equal
scores go to the source with fewer entries so far, then to the fuller summary: never to the
newest story alone, which let one busy blog fill an issue.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import sqlalchemy as sa

from feedletter.config import Config
from feedletter.config_newsletters import Newsletter
from feedletter.models import Coverage, Document, Story
from feedletter.patterns import matches_any
from feedletter.schema import articles, issue_stories, issues, stories
from feedletter.store import Store, now, rows_in_chunks, utc
from feedletter.stories.cluster import subjects
from feedletter.stories.features import feature_counts, parse_features
from feedletter.stories.reading import story_articles
from feedletter.stories.sentences import split_sentences
from feedletter.stories.stages import load_stories

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
    """``2 × sources covering it + 1 / (1 + age in days) + the lead source's priority``.

    Sources are counted once: a source's own update of a story is not a second site telling it.
    """
    age_days = max(0.0, (at - story.published).total_seconds() / 86400)
    sources = {story.source, *(a.source for a in story.also)}
    return 2 * len(sources) + 1 / (1 + age_days) + priority.get(story.source, 0)


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
    query = (sa.select(stories.c.id).where((stories.c.summary != "") | (stories.c.summary_hash != ""))
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


# Candidates read for subjects: the best this many, by score. Grouping is quadratic in the worst
# case, and a story ranked below them would not make the issue, nor its "More on this" list count.
SUBJECT_CANDIDATES = 400
# "More on this" links under one entry.
MORE_LIMIT = 5


def entry_score(story: Story, subject: Sequence[Story], *, at: datetime, priority: Mapping[str, int]) -> float:
    """:func:`story_score`, plus one for each other site (at most three) that wrote on its subject,
    less one when its summary has no complete sentence (a title alone tells a reader little)."""
    own = {story.source, *(a.source for a in story.also)}
    others = {s.source for s in subject} - own
    bare = summary_quality(story.summary) == 0
    return story_score(story, at=at, priority=priority) + min(3, len(others)) - bare


def rank(chosen: Sequence[Story], newsletter: Newsletter, *, at: datetime,
         priority: Mapping[str, int]) -> list[Story]:
    """Pinned first, then by score; equal scores by the fuller summary, then the older id."""
    def key(story: Story) -> tuple[bool, float, int, int]:
        return (not is_pinned(story, newsletter), -story_score(story, at=at, priority=priority),
                -summary_quality(story.summary), story.id)
    return sorted(chosen, key=key)


# Two stories of one subject under one entry share at least this many content words, and this
# share of the shorter one's: a subject found between short posts on one common word ("source",
# "story") is chance, not a subject.
MIN_SHARED_WORDS = 3
MIN_SHARED_SHARE = 0.3


def _shares_enough(words: Mapping[int, frozenset[str]], group: Sequence[Story], story: Story) -> bool:
    if not group or not words.get(story.id):
        return True  # a new group, or no words to check (the caller gave none)
    mine, lead = words[story.id], words.get(group[0].id, frozenset())
    shared = len(mine & lead)
    return shared >= MIN_SHARED_WORDS and shared >= MIN_SHARED_SHARE * min(len(mine), len(lead) or 1)


def arrange(chosen: Sequence[Story], subject_of: Sequence[int], newsletter: Newsletter, *, at: datetime,
            priority: Mapping[str, int], story_words: Sequence[frozenset[str]] | None = None) -> list[Story]:
    """The issue's entries, best first: one per subject, at most ``max_per_source`` per lead source
    while others have entries to give. ``subject_of[i]`` names ``chosen[i]``'s subject;
    ``story_words[i]``, its content words, confirms that it shares enough with the subject's lead."""
    subject = {s.id: k for s, k in zip(chosen, subject_of, strict=True)}
    words = {s.id: w for s, w in zip(chosen, story_words or [frozenset()] * len(chosen), strict=True)}
    members: dict[tuple[int, int], list[Story]] = {}
    for story in rank(chosen, newsletter, at=at, priority=priority):
        # A subject is told by several sites: a site's second story on it is an entry of its own
        # (under the per-source cap), so that one blog's posts never hide behind each other.
        k = 0
        while any(s.source == story.source for s in members.get((subject[story.id], k), ())) or \
                not _shares_enough(words, members.get((subject[story.id], k), ()), story):
            k += 1
        members.setdefault((subject[story.id], k), []).append(story)
    entries: list[tuple[bool, float, int, Story]] = []
    for group in members.values():
        lead, rest = group[0], group[1:]  # ranked: the subject's best story leads it
        more = tuple(Coverage(source=s.source, title=s.title, url=s.url, story_id=s.id) for s in rest[:MORE_LIMIT])
        entries.append((is_pinned(lead, newsletter), entry_score(lead, rest, at=at, priority=priority),
                        summary_quality(lead.summary), replace(lead, more=more)))
    cap = newsletter.select.max_per_source or len(entries)
    taken: list[Story] = []
    per_source: dict[str, int] = {}
    waiting = entries
    while waiting and len(taken) < newsletter.select.max_stories:
        under_cap = [e for e in waiting if per_source.get(e[3].source, 0) < cap]
        pool = under_cap or waiting  # every source at its cap: the best leftovers, a source at a time
        # Pinned first, then score; equal scores to the source with fewer entries, the fuller summary.
        best = min(pool, key=lambda e: (not e[0], -round(e[1], 9), per_source.get(e[3].source, 0), -e[2],
                                        e[3].id))
        waiting = [e for e in waiting if e is not best]
        taken.append(best[3])
        per_source[best[3].source] = per_source.get(best[3].source, 0) + 1
    return taken


def story_documents(store: Store, ids: Sequence[int]) -> tuple[list[list[Document]], dict[str, dict[str, int]]]:
    """Each story's distinct tellings (copies left out) as documents, in the order of ``ids``, and
    the features grouping stored for them, so that subjects are found without reading texts again."""
    grouped: dict[int, list[Document]] = {}
    stored: dict[str, dict[str, int]] = {}
    c = articles.c
    with store.begin() as conn:
        for chunk in rows_in_chunks(list(ids)):
            rows = conn.execute(sa.select(c.id, c.story_id, c.title, c.text, c.url, c.source, c.published,
                                          c.features)
                                .where(c.story_id.in_(chunk), c.duplicate_of.is_(None))
                                .order_by(c.published, c.id))
            for row in rows:
                doc = Document(str(row.id), row.title, row.text, url=row.url, source=row.source,
                               published=utc(row.published))
                grouped.setdefault(row.story_id, []).append(doc)
                counts = parse_features(row.features) if row.features is not None else None
                if counts is not None:
                    stored[doc.id] = counts
    return [grouped.get(i, []) for i in ids], stored


def select_stories(config: Config, store: Store, newsletter: Newsletter, *,
                   at: datetime | None = None, ids: Sequence[int] | None = None) -> list[Story]:
    """The entries the next issue of ``newsletter`` carries, best first (see the module's doc).

    ``ids``: these stories instead of the new ones, and none left out by the ``select`` filters
    (an issue made again from the stories it carried).
    """
    at = at or now()
    filtered = ids is None
    tags = source_tags(config)
    candidates = load_stories(store, candidate_ids(store, newsletter) if ids is None else ids, tags)
    texts = _texts(store, [s.id for s in candidates]) if filtered and (
        newsletter.select.include or newsletter.select.exclude) else {}
    seen: set[int] = set()
    chosen = []
    for story in candidates:
        if story.id not in seen and (not filtered or keep(story, newsletter, text=texts.get(story.id, ""), at=at,
                                                          tags=tags)):
            seen.add(story.id)
            chosen.append(story)
    priority = {s.name: s.priority for s in config.sources}
    chosen = rank(chosen, newsletter, at=at, priority=priority)[:SUBJECT_CANDIDATES]
    docs, stored = story_documents(store, [s.id for s in chosen])
    subject_of = (subjects(docs, threshold=config.stories.same_subject, known_features=stored)
                  if len(chosen) > 1 else [0] * len(chosen))
    story_words = [frozenset(f for d in group for f in stored.get(d.id) or feature_counts(d.title, d.text)
                             if f.startswith("w:")) for group in docs]
    return arrange(chosen, subject_of, newsletter, at=at, priority=priority, story_words=story_words)
