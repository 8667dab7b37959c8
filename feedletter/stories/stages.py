"""Stories in the store: group new articles into stories, summarize them, read them back.

The grouping itself (near-duplicates, same-story clusters) is :mod:`feedletter.stories.cluster`'s; this
module feeds it the new articles together with the recent ones they may join, and records the
outcome: a near-identical copy points at its original, and every article belongs to one story.
"""

from __future__ import annotations

import sys
from collections import defaultdict, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from feedletter.config import Config
from feedletter.ingest.identity import canonical_url, content_hash
from feedletter.models import Article, Coverage, Document, Story
from feedletter.plugins import SUMMARIZERS
from feedletter.store import Store, articles, carriers, now, rows_in_chunks, stories, summaries, utc
from feedletter.stories.cluster import SAME_STORY, cluster_documents, pick_lead
from feedletter.stories.dedupe import near_duplicates
from feedletter.stories.features import feature_counts, features_json, features_json_of_counts, parse_features
from feedletter.stories.minhash import document_signature, pack_signature, unpack_signature
from feedletter.stories.summarize import ExtractiveSummarizer, Summarizer
from feedletter.workers import CpuPool, Job, give_back_memory, processes_for

DEFAULT_WINDOW = timedelta(days=7)
_SUMMARY_BATCH = 500
# Articles whose features are computed in worker processes, a chunk per call, when this many lack them.
_FEATURES_IN_WORKERS = 2000
_FEATURES_CHUNK = 250


@dataclass
class GroupCounts:
    articles: int = 0
    near_duplicates: int = 0
    new_stories: int = 0
    joined: int = 0


def _article(row: sa.RowMapping, *, html: bool = True) -> Article:
    """``row`` as an Article; ``html`` False when the query left the HTML out."""
    return Article(id=row["id"], source=row["source"], key=row["key"], url=row["url"], title=row["title"],
                   published=utc(row["published"]) or now(), text=row["text"], html=row["html"] if html else "",
                   author=row["author"], content_hash=row["content_hash"],
                   duplicate_of=row["duplicate_of"], story_id=row["story_id"], image=row.get("image"),
                   image_alt=row.get("image_alt") or "")


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
                   same_story: float = SAME_STORY, processes: int = 0) -> GroupCounts:
    """Give every not-yet-grouped article a story: an existing one it joins, or a new one.

    Each text is hashed and read for features once: both are stored with the article and handed
    back to the clustering on later runs. The outcome is written in a few bulk statements, not one
    per article. ``processes`` > 1 lets many articles' features be computed in worker processes.
    """
    try:
        return _group_articles(store, window, priority, near_duplicate, same_story, processes)
    finally:
        give_back_memory()  # what the texts, signatures and features of 10k articles took


def _group_articles(store: Store, window: timedelta, priority: dict[str, int] | None, near_duplicate: float,
                    same_story: float, processes: int) -> GroupCounts:
    counts = GroupCounts()
    signatures: dict[str, tuple[int, ...]] = {}
    stored_features: dict[str, str] = {}
    parsed: dict[str, dict[str, int]] = {}
    words: dict[str, str] = {}  # the features' keys met so far

    def read(query: sa.Select[Any], conn: sa.Connection) -> list[Article]:
        out = []
        for row in conn.execute(query).mappings():
            out.append(_article(row, html=False))
            sig = unpack_signature(row["signature"])
            if sig is not None:
                signatures[str(row["id"])] = sig
            # Features stored by an older feedletter (a plain list) count as missing: they are
            # computed again and rewritten once.
            known = parse_features(row["features"]) if row["features"] is not None else None
            if known is not None:
                stored_features[str(row["id"])] = row["features"]
                # Each word once, not once per document (10k documents' counts: 61 MB, then 16).
                parsed[str(row["id"])] = {words.setdefault(k, k): n for k, n in known.items()}
        return out

    with store.begin() as conn:
        fresh = read(sa.select(*_GROUPING).where(sa.not_(articles.c.clustered), sa.not_(articles.c.needs_text))
                     .order_by(articles.c.published, articles.c.id), conn)
        if not fresh:
            return counts
        start = min(a.published for a in fresh) - window
        known = read(sa.select(*_GROUPING).where(articles.c.clustered, articles.c.published >= start), conn)
    everyone = {a.id: a for a in [*known, *fresh]}
    docs = [a.as_document() for a in everyone.values()]
    unfeatured = [d for d in docs if d.id not in stored_features]
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
    stored_features.update(missing)
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
        updates = []
        copies = []
        for article in fresh:
            original = duplicate_of.get(article.id)
            counts.near_duplicates += original is not None
            updates.append({"_id": article.id, "_story": story_of_label[label[article.id]],
                            "_sig": pack_signature(signatures[str(article.id)]),
                            "_features": stored_features[str(article.id)]})
            if original != article.duplicate_of:
                copies.append({"_id": article.id, "_dup": original})
        conn.execute(articles.update().where(articles.c.id == sa.bindparam("_id")).values(
            clustered=True, story_id=sa.bindparam("_story"), signature=sa.bindparam("_sig"),
            features=sa.bindparam("_features")), updates)
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


def story_articles(store: Store, story_ids: Sequence[int]) -> dict[int, list[Article]]:
    return _story_articles(store, story_ids, list(articles.c))


def _story_articles(store: Store, story_ids: Sequence[int], columns: Sequence[sa.Column[Any]]
                    ) -> dict[int, list[Article]]:
    out: dict[int, list[Article]] = defaultdict(list)
    if not story_ids:
        return out
    html = any(c.name == "html" for c in columns)
    with store.begin() as conn:
        for row in conn.execute(sa.select(*columns).where(articles.c.story_id.in_(story_ids))
                                .order_by(articles.c.published, articles.c.id)).mappings():
            out[row["story_id"]].append(_article(row, html=html))
    return out


def summarizer_for(config: Config) -> Summarizer:
    """The summarizer the config names (see feedletter.plugins); the LLM one falls back to the extractive one."""
    return SUMMARIZERS.get(config.stories.summarizer).factory(config)


def group(config: Config, store: Store) -> GroupCounts:
    """The group stage with the config's window, thresholds and source priorities."""
    s = config.stories
    processes = processes_for(config.gather.processes)
    return group_articles(store, window=timedelta(days=s.window_days),
                          priority={src.name: src.priority for src in config.sources},
                          near_duplicate=s.near_duplicate, same_story=s.same_story, processes=processes)


def summarize(config: Config, store: Store) -> tuple[int, int]:
    """The summarize stage with the config's summarizer and length limits."""
    s = config.stories
    return summarize_stories(store, summarizer_for(config), sentences=s.summary_sentences,
                             max_chars=s.summary_chars, processes=processes_for(config.gather.processes))


# What summarizing reads of a story's articles: no HTML, signature or features.
_SUMMARIZING = [c for c in articles.c if c.name not in ("html", "signature", "features")]
# Stories summarized in worker processes (extractive summarizer only), a chunk per call, when this
# many need a summary.
_SUMMARIES_IN_WORKERS = 400
_SUMMARY_CHUNK = 25


@dataclass
class _SummaryBatch:
    """One batch of stories on its way: what each needs, and the summaries being made for it."""

    todo: list[tuple[int, Article, list[str], str]]  # story id, lead, texts (lead first), digest
    known: dict[str, str]  # summaries found in the cache, by digest
    make: list[int]  # positions in todo whose summary this batch makes (the first of each digest)
    jobs: list[Job[list[str]]]  # in worker processes: the summaries of ``make``, a chunk per job


def summarize_stories(store: Store, summarizer: Summarizer, *, sentences: int = 3,
                      max_chars: int = 600, processes: int = 0) -> tuple[int, int]:
    """Summarize the stories that are new or gained articles; return (summarized, served from cache).

    Only stories marked for it (an empty ``summary_hash``) are read, so the cost follows what changed,
    not the size of the store. With ``processes`` > 1 and many stories, the extractive summarizer
    (pure CPU) runs in worker processes while this one reads and writes the batches around them;
    the summaries and counts are the same.
    """
    with store.begin() as conn:
        rows = conn.execute(sa.select(stories.c.id, stories.c.lead_id).where(stories.c.summary_hash == "")).all()
    if processes > 1 and isinstance(summarizer, ExtractiveSummarizer) and len(rows) >= _SUMMARIES_IN_WORKERS:
        with CpuPool(processes, after=0, preload=["feedletter.stories.summarize"]) as cpu:
            return _summarize_batches(store, summarizer, rows, sentences, max_chars, cpu)
    return _summarize_batches(store, summarizer, rows, sentences, max_chars, None)


def _summarize_batches(store: Store, summarizer: Summarizer, rows: Sequence[sa.Row[Any]], sentences: int,
                       max_chars: int, cpu: CpuPool | None) -> tuple[int, int]:
    """Summarize ``rows`` (story id, lead id) batch by batch; in ``cpu``'s workers when given."""
    done = cached = 0
    # Summaries made in this run, by digest (None while a worker is making it): a later story with
    # the same digest is served from the cache, as it would be from the table once its batch is written.
    made: dict[str, str | None] = {}
    pending: deque[_SummaryBatch] = deque()

    def finish(batch: _SummaryBatch) -> None:
        """Wait for a batch's summaries and write them, with its stories', in one transaction."""
        nonlocal done, cached
        produced: dict[int, str] = {}
        if batch.jobs:
            values = [summary for job in batch.jobs for summary in job.result()]
            produced = dict(zip(batch.make, values, strict=True))
        fresh: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        making = set(batch.make)
        for k, (story_id, lead, texts, digest) in enumerate(batch.todo):
            hit = batch.known.get(digest)
            if hit is None and k not in making and made.get(digest) is not None:
                hit = made[digest]  # made by an earlier story of this run
            if hit is None:
                if k in produced:
                    hit = produced[k]
                else:
                    hit = summarizer.summarize(lead.title, texts, sentences=sentences, max_chars=max_chars)
                # An LLM summarizer that fell back to the extractive one must not cache under its own name.
                if summarizer.last_source == summarizer.name:
                    batch.known[digest] = hit
                    made[digest] = hit
                    fresh.append({"content_hash": digest, "summarizer": summarizer.name,
                                  "version": summarizer.version, "summary": hit, "created": now()})
                done += 1
            else:
                cached += 1
            updates.append({"_id": story_id, "_summary": hit, "_hash": digest})
        with store.begin() as conn:
            if fresh:
                conn.execute(summaries.insert(), fresh)
            if updates:
                conn.execute(stories.update().where(stories.c.id == sa.bindparam("_id")).values(
                    summary=sa.bindparam("_summary"), summary_hash=sa.bindparam("_hash")), updates)

    # Batches of stories, each read and written in a few bulk statements (one transaction per story
    # cost more than the extractive summarizer itself at 8k stories); a batch commits as it ends, so a
    # stopped run keeps what slow (LLM) summaries it made. With workers, the next batch is read and
    # handed out while they make this one's summaries.
    for chunk_rows in rows_in_chunks(rows, _SUMMARY_BATCH):
        grouped = _story_articles(store, [r.id for r in chunk_rows], _SUMMARIZING)
        todo: list[tuple[int, Article, list[str], str]] = []
        for row in chunk_rows:
            group = grouped.get(row.id, [])
            lead = next((a for a in group if a.id == row.lead_id), group[0] if group else None)
            if lead is None:
                continue
            others = [a for a in group if a.id != lead.id and a.duplicate_of is None]
            texts = [lead.text, *(a.text for a in others)]  # the lead first: its sentences weigh more
            todo.append((row.id, lead, texts, content_hash(lead.title, *texts, str(sentences), str(max_chars))))
        known: dict[str, str] = {}
        with store.begin() as conn:
            for chunk in rows_in_chunks(sorted({digest for *_, digest in todo if digest not in made})):
                for digest, summary in conn.execute(sa.select(summaries.c.content_hash, summaries.c.summary).where(
                        summaries.c.content_hash.in_(chunk), summaries.c.summarizer == summarizer.name,
                        summaries.c.version == summarizer.version)):
                    known[digest] = summary
        batch = _SummaryBatch(todo, known, [], [])
        if cpu is not None:
            for k, (_, _, _, digest) in enumerate(todo):
                if digest not in known and digest not in made:
                    made[digest] = None
                    batch.make.append(k)
            for start in range(0, len(batch.make), _SUMMARY_CHUNK):
                work = [(todo[k][1].title, todo[k][2]) for k in batch.make[start:start + _SUMMARY_CHUNK]]
                batch.jobs.append(cpu.submit(_summaries_of, summarizer, work, sentences, max_chars))
        pending.append(batch)
        while len(pending) > 1:
            finish(pending.popleft())
    while pending:
        finish(pending.popleft())
    return done, cached


def _summaries_of(summarizer: Summarizer, work: Sequence[tuple[str, list[str]]], sentences: int,
                  max_chars: int) -> list[str]:
    """In a worker: the summary of each (title, texts)."""
    return [summarizer.summarize(title, texts, sentences=sentences, max_chars=max_chars) for title, texts in work]


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
