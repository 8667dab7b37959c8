"""The summarize stage: a summary for each story that is new or gained articles, made once per text.

Summaries are cached by a hash of what they were made from, so an unchanged story costs a lookup.
Stories go in batches, each read and written in a few bulk statements; with many stories the
extractive summarizer runs in worker processes while this one reads and writes around them.

Most new articles become stories of their own, whose summary is the article's alone: while the
store and group stages work in their own process, :class:`Drafts` makes those summaries ahead on
the CPU they leave idle, and the summarize stage takes each one that turned out to be needed.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from feedletter.models import Article
from feedletter.schema import articles, stories, summaries
from feedletter.spare import SparePool, stopping
from feedletter.store import Store, now, rows_in_chunks
from feedletter.stories.reading import articles_of_stories
from feedletter.stories.summarize import ExtractiveSummarizer, Summarizer, summaries_of
from feedletter.stories.work import UNSUMMARIZED
from feedletter.workers import CpuPool, Job, paused_gc

_SUMMARY_BATCH = 500


# What summarizing reads of a story's articles: no HTML, signature or features.
_SUMMARIZING = [c for c in articles.c if c.name not in ("html", "signature", "features")]


# Stories summarized in worker processes (extractive summarizer only), a chunk per call, when this
# many need a summary.
_SUMMARIES_IN_WORKERS = 400


_SUMMARY_CHUNK = 25


def summary_digest(title: str, texts: Sequence[str], sentences: int, max_chars: int) -> str:
    """What a story's summary is cached under: a hash of its lead's title, its texts and the limits.

    The texts are hashed as they are, line breaks and all: the summarizer reads a text line by line
    (a line of chrome goes whole), so two texts that differ only in their whitespace may be
    summarized differently. Each part is preceded by its length, so no two lists of parts hash
    alike. (Folding each text's whitespace first, as an earlier digest did, took a fifth of the
    summarize stage's own CPU time at 8k stories.)
    """
    parts = (title, *texts, str(sentences), str(max_chars))
    digest = hashlib.sha256(_DIGEST_FORMAT)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass")
        digest.update(b"%d:" % len(data))
        digest.update(data)
    return digest.hexdigest()[:32]


# Changed with the way summary_digest hashes: summaries cached under an older digest are not matched.
_DIGEST_FORMAT = b"summary-digest-2\n"


# Articles a draft call summarizes: a call stops between two of them when drafting ends, so it
# may be long; long enough that the two calls queued for the worker last while the caller holds
# the interpreter in a long C call (with 16, the worker ran dry several times a run).
_DRAFT_CHUNK = 100
# Articles read before they are handed over, many calls at once: a call handed over on its own
# wakes the pool's threads each time, which cost the reading process a fifth more CPU.
_DRAFT_HANDOVER = 400


class Drafts:
    """Summaries of new articles as stories of their own, made ahead in spare worker processes.

    :meth:`add` hands each article over as the caller meets it (the store stage as it writes new
    articles, the group stage as it reads them), to low-priority worker processes (one fewer than
    ``processes``: the caller keeps a CPU for its own work); :meth:`finish` drops
    what has not begun and gives the summaries made, by :func:`summary_digest`. A draft is the
    summary the summarize stage makes for a story of that one article, so taking it changes
    nothing but when it was made; an article that joins a bigger story wastes its draft. Only the
    extractive summarizer drafts (an LLM's calls cost money), and only when the summarize stage
    itself would use worker processes: from the :data:`_SUMMARIES_IN_WORKERS`-th article on.
    """

    def __init__(self, summarizer: Summarizer, *, sentences: int, max_chars: int, processes: int) -> None:
        self.summarizer, self.sentences, self.max_chars = summarizer, sentences, max_chars
        self.processes = processes
        self._able = processes > 1 and isinstance(summarizer, ExtractiveSummarizer)
        self._pool: SparePool | None = None
        self._waiting: list[tuple[str, list[str]]] = []
        self._work: list[list[tuple[str, list[str]]]] = []
        self._seen: set[tuple[str, str]] = set()

    def add(self, title: str, text: str) -> None:
        """Draft the summary of an article (its title and text) as a story of its own."""
        if not self._able:
            return
        told = (title, text)
        if told in self._seen:
            # A copy (the same post in several feeds), or an article the store stage handed over
            # before the group stage read it: its summary is being drafted already.
            return
        self._seen.add(told)
        self._waiting.append((title, [text]))
        if self._pool is None and len(self._waiting) >= _SUMMARIES_IN_WORKERS:
            self._pool = SparePool(self.processes - 1, preload=["feedletter.stories.summarize"])
        if self._pool is not None and len(self._waiting) >= _DRAFT_HANDOVER:
            self._hand_over()

    def added(self) -> None:
        """No more articles come for now: hand over the last few."""
        if self._pool is not None and self._waiting:
            self._hand_over()

    def _hand_over(self) -> None:
        assert self._pool is not None
        for start in range(0, len(self._waiting), _DRAFT_CHUNK):
            work = self._waiting[start:start + _DRAFT_CHUNK]
            self._work.append(work)
            self._pool.submit(summaries_of, self.summarizer, work, self.sentences, self.max_chars, stopping)
        self._waiting = []

    def finish(self) -> dict[str, str]:
        """Stop drafting; the summaries made, by digest. Once finished, it gives nothing more."""
        self._able = False
        self._waiting, self._seen = [], set()
        if self._pool is None:
            return {}
        self._pool.stop()
        out: dict[str, str] = {}
        for k, made in self._pool.done().items():
            # A call stopped midway made the first ones of its work.
            for (title, texts), summary in zip(self._work[k], made):  # noqa: B905
                out[summary_digest(title, texts, self.sentences, self.max_chars)] = summary
        self._pool, self._work = None, []
        return out


@dataclass
class _SummaryBatch:
    """One batch of stories on its way: what each needs, and the summaries being made for it."""

    todo: list[tuple[int, Article, list[str], str]]  # story id, lead, texts (lead first), digest
    known: dict[str, str]  # summaries found in the cache, by digest
    make: list[int]  # positions in todo whose summary this batch makes (the first of each digest)
    jobs: list[Job[list[str]]]  # in worker processes: the summaries of ``make``, a chunk per job


def summarize_stories(store: Store, summarizer: Summarizer, *, sentences: int = 3,
                      max_chars: int = 600, processes: int = 0,
                      drafts: Mapping[str, str] | None = None) -> tuple[int, int]:
    """Summarize the stories that are new or gained articles; return (summarized, served from cache).

    Only stories marked for it (an empty ``summary_hash``) are read, so the cost follows what changed,
    not the size of the store. With ``processes`` > 1 and many stories, the extractive summarizer
    (pure CPU) runs in worker processes while this one reads and writes the batches around them;
    the summaries and counts are the same. ``drafts`` are this run's summaries made ahead
    (:class:`Drafts`), by digest: a story whose digest has one takes it as the summary made for it.
    """
    with store.begin() as conn:
        # Newest first: what the next issue most likely shows gets its summary first (a slow LLM's
        # run that is stopped keeps those); and the drafts cover the oldest new articles, so the
        # batches made of drafts come last, read and written while the workers end the others,
        # rather than first, while the workers would wait.
        rows = conn.execute(sa.select(stories.c.id, stories.c.lead_id).where(UNSUMMARIZED)
                            .order_by(stories.c.id.desc())).all()
    # The batches' articles and the extractive summaries form no cycles: the collector need not
    # walk them. (An LLM client's calls may leave cycles behind, and take long: it keeps collecting.)
    with paused_gc() if isinstance(summarizer, ExtractiveSummarizer) else nullcontext():
        if processes > 1 and isinstance(summarizer, ExtractiveSummarizer) and len(rows) >= _SUMMARIES_IN_WORKERS:
            with CpuPool(processes, after=0, preload=["feedletter.stories.summarize"]) as cpu:
                return _summarize_batches(store, summarizer, rows, sentences, max_chars, cpu, drafts or {})
        return _summarize_batches(store, summarizer, rows, sentences, max_chars, None, drafts or {})


def _summarize_batches(store: Store, summarizer: Summarizer, rows: Sequence[sa.Row[Any]], sentences: int,
                       max_chars: int, cpu: CpuPool | None, drafts: Mapping[str, str]) -> tuple[int, int]:
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
                elif digest in drafts:
                    hit = drafts[digest]
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
        grouped = articles_of_stories(store, [r.id for r in chunk_rows], _SUMMARIZING)
        todo: list[tuple[int, Article, list[str], str]] = []
        for row in chunk_rows:
            group = grouped.get(row.id, [])
            lead = next((a for a in group if a.id == row.lead_id), group[0] if group else None)
            if lead is None:
                continue
            others = [a for a in group if a.id != lead.id and a.duplicate_of is None]
            texts = [lead.text, *(a.text for a in others)]  # the lead first: its sentences weigh more
            todo.append((row.id, lead, texts, summary_digest(lead.title, texts, sentences, max_chars)))
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
                if digest not in known and digest not in made and digest not in drafts:
                    made[digest] = None
                    batch.make.append(k)
            for start in range(0, len(batch.make), _SUMMARY_CHUNK):
                work = [(todo[k][1].title, todo[k][2]) for k in batch.make[start:start + _SUMMARY_CHUNK]]
                batch.jobs.append(cpu.submit(summaries_of, summarizer, work, sentences, max_chars))
        if cpu is not None and not batch.jobs and all(
                digest in known or digest in drafts or made.get(digest) is not None for *_, digest in todo):
            # Nothing to wait for (drafts, the cache): written now, while the workers make the
            # batches before it, rather than after them with the workers idle.
            finish(batch)
            continue
        pending.append(batch)
        while len(pending) > 1:
            finish(pending.popleft())
    while pending:
        finish(pending.popleft())
    return done, cached
