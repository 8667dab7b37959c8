"""Stories in the store: group new articles into stories, summarize them, read them back.

The grouping itself (near-duplicates, same-story clusters) is :mod:`feedletter.stories.cluster`'s; this
module feeds it the new articles together with the recent ones they may join, and records the
outcome: a near-identical copy points at its original, and every article belongs to one story.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from feedletter.config import Config
from feedletter.ingest.identity import canonical_url
from feedletter.models import Article, Coverage, Document, Story
from feedletter.plugins import SUMMARIZERS
from feedletter.schema import articles, carriers, stories
from feedletter.store import Store, now, rows_in_chunks
from feedletter.stories.cluster import SAME_STORY, cluster_documents, pick_lead
from feedletter.stories.dedupe import near_duplicates
from feedletter.stories.features import (
    feature_counts,
    features_json,
    features_json_of_counts,
    parse_features,
    parse_many_features,
)
from feedletter.stories.minhash import document_signature, pack_signature, unpack_signature
from feedletter.stories.reading import article_of, story_articles
from feedletter.stories.summaries import Drafts, summarize_stories
from feedletter.stories.summarize import Summarizer
from feedletter.stories.work import UNGROUPED, GroupCounts
from feedletter.workers import CpuPool, Job, give_back_memory, paused_gc, processes_for

DEFAULT_WINDOW = timedelta(days=7)
# Articles whose features are computed in worker processes, a chunk per call, when this many lack them.
_FEATURES_IN_WORKERS = 2000
_FEATURES_CHUNK = 250


# What grouping reads: everything but the HTML, which it never looks at (a third of the bytes).
_GROUPING = [c for c in articles.c if c.name != "html"]


class _Features:
    """Documents' features, computed in worker processes when there are many, while the caller goes on.

    :meth:`result` gives each document's features as stored (JSON) and as counts.
    """

    def __init__(self, docs: Sequence[Document], cpu: CpuPool | None) -> None:
        self.docs = docs
        self.chunks: list[tuple[Sequence[Document], Job[list[tuple[str, dict[str, int]]]]]] = []
        if cpu is not None:
            for start in range(0, len(docs), _FEATURES_CHUNK):
                chunk = docs[start:start + _FEATURES_CHUNK]
                self.chunks.append((chunk, cpu.submit(_features_of, [(d.title, d.text) for d in chunk])))

    def result(self) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
        stored: dict[str, str] = {}
        counts: dict[str, dict[str, int]] = {}
        if not self.chunks:
            for d in self.docs:
                stored[d.id] = value = features_json(d.title, d.text)
                counts[d.id] = parse_features(value) or {}
        for chunk, job in self.chunks:
            for d, (value, found) in zip(chunk, job.result(), strict=True):
                stored[d.id], counts[d.id] = value, found
        return stored, counts


def _features_of(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, dict[str, int]]]:
    """In a worker: each (title, text)'s features as stored (:func:`features_json`) and as counts
    (sent along: cheaper to unpickle than the JSON is to read)."""
    out = []
    for title, text in pairs:
        # The same word in many documents is one string: pickled once per chunk, and held once in
        # the caller (10k documents' counts took 60 MB there).
        found = {sys.intern(k): n for k, n in feature_counts(title, text).items()}
        out.append((features_json_of_counts(found), found))
    return out


def group_articles(store: Store, *, window: timedelta = DEFAULT_WINDOW,
                   priority: dict[str, int] | None = None, near_duplicate: float = 0.7,
                   same_story: float = SAME_STORY, processes: int = 0,
                   drafts: Drafts | None = None) -> GroupCounts:
    """Give every not-yet-grouped article a story: an existing one it joins, or a new one.

    Each text is hashed and read for features once: both are stored with the article and handed
    back to the clustering on later runs. The outcome is written in a few bulk statements, not one
    per article. ``processes`` > 1 lets many articles' features be computed in worker processes.
    With ``drafts``, the new articles' summaries as stories of their own are made ahead meanwhile,
    and come back in the counts (``drafts``) for the summarize stage.
    """
    counts = GroupCounts()
    try:
        # Articles, their features and signatures, all alive to the end and free of cycles: the
        # collector would only walk them again and again.
        with paused_gc():
            return _group_articles(store, counts, window, priority, near_duplicate, same_story, processes, drafts)
    finally:
        if drafts is not None:
            counts.drafts = drafts.finish()
        give_back_memory()  # what the texts, signatures and features of 10k articles took


def _group_articles(store: Store, counts: GroupCounts, window: timedelta, priority: dict[str, int] | None,
                    near_duplicate: float, same_story: float, processes: int, drafts: Drafts | None) -> GroupCounts:
    signatures: dict[str, Sequence[int]] = {}
    featured: set[str] = set()  # articles whose features are stored (read, not kept: a tenth of the memory)
    parsed: dict[str, dict[str, int]] = {}
    as_stored: list[tuple[str, str]] = []  # (id, features as stored), parsed once both reads are done

    def read(query: sa.Select[Any], conn: sa.Connection,
             each: Callable[[Article], None] | None = None) -> list[Article]:
        out = []
        for row in conn.execute(query).mappings():
            out.append(article_of(row, html=False))
            if each is not None:
                each(out[-1])
            sig = unpack_signature(row["signature"])
            if sig is not None:
                signatures[str(row["id"])] = sig
            if row["features"] is not None:
                as_stored.append((str(row["id"]), row["features"]))
        return out

    with store.begin() as conn:
        # The new articles' summaries are drafted as they are read (see Drafts).
        fresh = read(sa.select(*_GROUPING).where(UNGROUPED).order_by(articles.c.published, articles.c.id), conn,
                     None if drafts is None else lambda a: drafts.add(a.title, a.text))
        if drafts is not None:
            drafts.added()
        if not fresh:
            return counts
        start = min(a.published for a in fresh) - window
        known = read(sa.select(*_GROUPING).where(articles.c.clustered, articles.c.published >= start), conn)
    # Features stored by an older feedletter (a plain list) count as missing: they are computed
    # again and rewritten once.
    for (id_, _), value in zip(as_stored, parse_many_features([v for _, v in as_stored]), strict=True):
        if value is not None:
            featured.add(id_)
            parsed[id_] = value
    as_stored.clear()  # the strings, parsed now
    everyone = {a.id: a for a in [*known, *fresh]}
    docs = [a.as_document() for a in everyone.values()]
    unfeatured = [d for d in docs if d.id not in featured]
    # Features are the costly part: with workers, they are computed there while this process finds
    # the near-duplicates.
    parallel = processes > 1 and len(unfeatured) >= _FEATURES_IN_WORKERS
    # A chunk per hand-over (not the pool's default of several): a worker then holds one chunk's
    # texts and counts at a time, not 2,000 documents' (25 MB more per worker).
    with CpuPool(processes if parallel else 0, after=0, preload=["feedletter.stories.cluster"], batch=1) as cpu:
        computing = _Features(unfeatured, cpu if parallel else None)
        unsigned = [doc for doc in docs if doc.id not in signatures]
        for doc in unsigned:
            signatures[doc.id] = document_signature(doc)
        dups = near_duplicates(docs, threshold=near_duplicate, signatures=signatures)
        missing, counted = computing.result()
    parsed.update(counted)
    assignments = cluster_documents(docs, window=window, threshold=same_story,
                                    duplicate_threshold=near_duplicate, priority=priority,
                                    signatures=signatures, known_features=parsed, duplicates=dups)
    members: dict[str, list[int]] = defaultdict(list)
    for assignment in assignments:
        members[assignment.cluster].append(int(assignment.id))
    duplicate_of = {int(a.id): int(a.duplicate_of) for a in assignments if a.duplicate_of}
    label = {int(a.id): a.cluster for a in assignments}

    story_of_label: dict[str, int] = {}
    for name, ids in members.items():
        # A cluster holding an already-grouped article keeps that article's story.
        existing = [everyone[i].story_id for i in ids if everyone[i].story_id is not None]
        if existing:
            story_of_label[name] = existing[0]  # type: ignore[assignment]
    new_labels: dict[str, None] = {}  # clusters that need a story, in the order of their first article
    resummarize: set[int] = set()
    for article in fresh:
        name = label[article.id]
        if name not in story_of_label and name not in new_labels:
            new_labels[name] = None
            continue
        counts.joined += 1  # a known story, or one an earlier article of this batch started
        if name in story_of_label and article.id not in duplicate_of:
            # A new telling of a known story (a near-identical copy adds no text): summarize again.
            resummarize.add(story_of_label[name])
    counts.new_stories = len(new_labels)
    stamp = now()
    with store.begin() as conn:
        leads = []
        for name in new_labels:
            group = [everyone[i] for i in members[name] if everyone[i].story_id is None]
            leads.append({"lead_id": int(pick_lead([a.as_document() for a in group], priority or {}).id),
                          "created": stamp})
        if leads:
            rows = conn.execute(stories.insert().returning(stories.c.id, sort_by_parameter_order=True), leads)
            story_of_label.update(zip(new_labels, (int(r[0]) for r in rows), strict=True))
        for chunk in rows_in_chunks(sorted(resummarize)):
            conn.execute(stories.update().where(stories.c.id.in_(chunk)).values(summary_hash=""))
        grouped: list[dict[str, Any]] = []  # fresh articles whose signature and features are stored already
        completed: list[dict[str, Any]] = []  # fresh articles whose signature or features were made here
        copies = []
        made = set(missing) | {d.id for d in unsigned}
        for article in fresh:
            original = duplicate_of.get(article.id)
            counts.near_duplicates += original is not None
            key = str(article.id)
            row = {"_id": article.id, "_story": story_of_label[label[article.id]]}
            if key in made:
                stored = missing[key] if key in missing else features_json_of_counts(parsed[key])
                completed.append({**row, "_sig": pack_signature(signatures[key]), "_features": stored})
            else:
                grouped.append(row)
            if original != article.duplicate_of:
                copies.append({"_id": article.id, "_dup": original})
        # Only the columns that change: the stored features are not written again.
        if grouped:
            conn.execute(articles.update().where(articles.c.id == sa.bindparam("_id")).values(
                clustered=True, story_id=sa.bindparam("_story")), grouped)
        if completed:
            conn.execute(articles.update().where(articles.c.id == sa.bindparam("_id")).values(
                clustered=True, story_id=sa.bindparam("_story"), signature=sa.bindparam("_sig"),
                features=sa.bindparam("_features")), completed)
        # Apart, and only where it changes (copies; a new article has none): with foreign keys
        # checked, setting the column cost SQLite as much as the rest of the row (0.2 s at 10k).
        if copies:
            conn.execute(articles.update().where(articles.c.id == sa.bindparam("_id")).values(
                duplicate_of=sa.bindparam("_dup")), copies)
        # Known articles from a store older than the features column, or than the signature's
        # hashing, catch up once.
        fresh_ids = {str(a.id) for a in fresh}
        late = [{"_id": int(k), "_features": v} for k, v in missing.items() if k not in fresh_ids]
        if late:
            conn.execute(articles.update().where(articles.c.id == sa.bindparam("_id")).values(
                features=sa.bindparam("_features")), late)
        resigned = [{"_id": int(d.id), "_sig": pack_signature(signatures[d.id])}
                    for d in unsigned if d.id not in fresh_ids]
        if resigned:
            conn.execute(articles.update().where(articles.c.id == sa.bindparam("_id")).values(
                signature=sa.bindparam("_sig")), resigned)
        counts.articles = len(fresh)
    return counts


def summarizer_for(config: Config) -> Summarizer:
    """The summarizer the config names (see feedletter.plugins); the LLM one falls back to the extractive one."""
    return SUMMARIZERS.get(config.stories.summarizer).factory(config)


def drafts_for(config: Config) -> Drafts:
    """Drafts of the new articles' summaries with the config's summarizer and limits (see
    :class:`~feedletter.stories.summaries.Drafts`)."""
    s = config.stories
    return Drafts(summarizer_for(config), sentences=s.summary_sentences, max_chars=s.summary_chars,
                  processes=processes_for(config.gather.processes))


def group(config: Config, store: Store, drafts: Drafts | None = None) -> GroupCounts:
    """The group stage with the config's window, thresholds and source priorities; drafting the new
    articles' summaries meanwhile, in ``drafts`` (begun by the store stage) or in drafts of its own."""
    s = config.stories
    processes = processes_for(config.gather.processes)
    drafts = drafts_for(config) if drafts is None else drafts
    return group_articles(store, window=timedelta(days=s.window_days),
                          priority={src.name: src.priority for src in config.sources},
                          near_duplicate=s.near_duplicate, same_story=s.same_story, processes=processes,
                          drafts=drafts)


def summarize(config: Config, store: Store, drafts: Mapping[str, str] | None = None) -> tuple[int, int]:
    """The summarize stage with the config's summarizer and length limits (``drafts``: see
    :func:`~feedletter.stories.summaries.summarize_stories`)."""
    s = config.stories
    return summarize_stories(store, summarizer_for(config), sentences=s.summary_sentences,
                             max_chars=s.summary_chars, processes=processes_for(config.gather.processes),
                             drafts=drafts)


def load_stories(store: Store, story_ids: Sequence[int], source_tags: dict[str, tuple[str, ...]]) -> list[Story]:
    """Stories with their lead, summary and 'also covered by' links, in the order asked."""
    with store.begin() as conn:
        rows = {r.id: r for r in conn.execute(sa.select(stories).where(stories.c.id.in_(story_ids)))}
        carried = conn.execute(sa.select(carriers.c.article_id, carriers.c.source, carriers.c.url)
                               .join(articles, articles.c.id == carriers.c.article_id)
                               .where(articles.c.story_id.in_(story_ids))).all()
    grouped = story_articles(store, story_ids)
    extra: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for article_id, source, url in carried:
        extra[article_id].append((source, url))
    out = []
    for story_id in story_ids:
        row = rows.get(story_id)
        group = grouped.get(story_id, [])
        if row is None or not group:
            continue
        lead = next((a for a in group if a.id == row.lead_id), group[0])
        # Every page of the story shows once: another site's telling, a copy at another address,
        # a source's own repost or update. A second feed carrying the very same page (a blog's
        # full and its link feed) adds no link: it would lead the reader back where they were.
        also: list[Coverage] = []
        seen = {canonical_url(lead.url)}
        for article in group:
            for source, url in [(article.source, article.url), *extra.get(article.id, [])]:
                page = canonical_url(url)
                if page not in seen:
                    seen.add(page)
                    also.append(Coverage(source=source, title=article.title, url=url))
        pictured = next((a for a in [lead, *group] if a.image), None)
        out.append(Story(id=story_id, title=lead.title, url=lead.url, source=lead.source,
                         published=lead.published, summary=row.summary, also=tuple(also),
                         tags=source_tags.get(lead.source, ()), image=pictured.image if pictured else None,
                         image_alt=pictured.image_alt if pictured else ""))
    return out
