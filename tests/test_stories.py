"""The stories stage's fast paths against the plain ones: worker processes, pipelined batches and the
rewritten summary and feature tests must change nothing that grouping and summarizing produce."""

from __future__ import annotations

import random
import re
import subprocess
import sys
import unicodedata
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from feedletter.models import Document
from feedletter.schema import articles
from feedletter.schema import stories as stories_table
from feedletter.schema import summaries as summaries_table
from feedletter.store import Store
from feedletter.stories import cluster, features, minhash, sentences, summaries, summarize
from feedletter.stories import stages as stories
from feedletter.text.boilerplate import is_boilerplate
from feedletter.workers import CpuPool

_EVENTS = [
    ("Harbour Board approves the Kestrel Quay ferry terminal after a 7-2 vote on Tuesday. Chair Imogen "
     "Varga said building starts in 2027 at a cost of $48m. Residents had asked for a second hearing."),
    ("Bakers of Wexley Fen gather for the 31st pie contest on Saturday. Last year's winner, Tomas Oyelaran, "
     "returns with a rhubarb entry. The judges will taste 140 pies before noon."),
    ("The Marlow Rovers beat Ashby Town 3-1 at Fenwick Park. Striker Dana Kowalczyk scored twice in the "
     "second half. Rovers now lead the Southern League by four points."),
    ("Engineers reopened the Brack Hill tunnel after a 9-day closure. Repairs to the drainage cost £2.4m, "
     "said transport chief Elena Ruiz. Trains run at 80 km/h until Friday."),
]
_CHROME = ["Share this article", "Subscribe to our newsletter", "Your email address will not be published.",
           "© 2026 Daily Post. All rights reserved."]


_VOCABULARY = ["residents", "council", "morning", "report", "weather", "market", "bridge", "station", "river",
               "school", "garden", "library", "museum", "festival", "harbour", "coast", "valley", "hospital",
               "road", "traffic", "village"]


def _corpus(seed: int) -> list[tuple[str, str, str, int]]:
    """Articles as (key, title, text, hour): tellings of a few events by several sites in their own
    words, syndicated copies, unrelated posts, chrome lines."""
    rnd = random.Random(seed)
    out = []
    for n in range(48):
        event = _EVENTS[n % len(_EVENTS)]
        sentences = event.split(". ")
        told = rnd.sample(sentences, 2) if n < 40 else []
        prose = " ".join(" ".join(rnd.choice(_VOCABULARY) for _ in range(rnd.randint(6, 12))).capitalize() + "."
                         for _ in range(rnd.randint(3, 6)))
        text = ". ".join(s.rstrip(".") for s in told) + (". " if told else "") + prose
        if n % 3 == 0:
            text += "\n" + rnd.choice(_CHROME)
        site = f"site{n % 7}"
        title = (told[0] if told else prose)[:50]
        out.append((f"{site}/{n}", title, text, n))
        if n % 5 == 0:  # a syndicated copy on another site
            out.append((f"copy{n % 3}/{n}", title, "Shared from a partner.\n" + text, n + 1))
    return out


def _fill(path: Path, seed: int) -> Store:
    store = Store.open(f"sqlite:///{path}")
    with store.begin() as conn:
        for key, title, text, hours in _corpus(seed):
            stamp = datetime(2026, 3, 2, 8, tzinfo=UTC) + timedelta(hours=hours)
            conn.execute(articles.insert().values(key=key, source=key.split("/")[0], url=f"https://{key}",
                                                  canonical=f"https://{key}", title=title, published=stamp,
                                                  fetched=stamp, text=text))
    return store


def _outcome(store: Store) -> dict[str, Any]:
    with store.begin() as conn:
        rows = conn.execute(sa.select(articles.c.key, articles.c.story_id, articles.c.duplicate_of,
                                      articles.c.features, articles.c.signature, articles.c.clustered)
                            .order_by(articles.c.id)).all()
        told = conn.execute(sa.select(stories_table.c.id, stories_table.c.lead_id, stories_table.c.summary,
                                      stories_table.c.summary_hash).order_by(stories_table.c.id)).all()
    return {"articles": [tuple(r) for r in rows], "stories": [tuple(r) for r in told]}


@pytest.mark.slow
def test_worker_processes_group_and_summarize_as_this_process_does(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    plain = _fill(tmp_path / "plain.db", 7)
    grouped = stories.group_articles(plain, processes=0)
    summarized = summaries.summarize_stories(plain, summarize.ExtractiveSummarizer(), processes=0)
    expected = _outcome(plain)
    plain.close()

    # Every threshold down, so that a small store takes the worker paths, in several chunks and
    # pipelined batches (a batch read while the one before it is summarized).
    monkeypatch.setattr(stories, "_FEATURES_IN_WORKERS", 1)
    monkeypatch.setattr(stories, "_FEATURES_CHUNK", 4)
    monkeypatch.setattr(summaries, "_SUMMARIES_IN_WORKERS", 1)
    monkeypatch.setattr(summaries, "_SUMMARY_CHUNK", 2)
    monkeypatch.setattr(summaries, "_SUMMARY_BATCH", 5)
    started: list[bool] = []

    class ReadyPool(CpuPool):
        """A pool whose workers are up before the first call: else a small run is all done inline."""

        def __init__(self, processes: int, **options: Any) -> None:
            super().__init__(processes, **options)
            if processes > 1:
                self.run(int)
                started.append(self.wait_ready(60))

    monkeypatch.setattr(stories, "CpuPool", ReadyPool)
    monkeypatch.setattr(summaries, "CpuPool", ReadyPool)
    fast = _fill(tmp_path / "fast.db", 7)
    assert stories.group_articles(fast, processes=2) == grouped
    assert summaries.summarize_stories(fast, summarize.ExtractiveSummarizer(), processes=2) == summarized
    assert _outcome(fast) == expected
    assert grouped.near_duplicates and grouped.joined > grouped.near_duplicates  # copies and tellings
    assert summarized[0] == grouped.new_stories
    assert started == [True, True]  # features, then summaries, in worker processes
    fast.close()


class _PatientDrafts(summaries.Drafts):
    """Drafts that are all made before grouping ends: a small store groups faster than workers start."""

    def finish(self) -> dict[str, str]:
        if self._pool is not None:
            assert self._pool.wait(60)
        return super().finish()


@pytest.mark.slow
@pytest.mark.parametrize("patient", [True, False])
def test_summaries_drafted_while_grouping_are_the_ones_summarizing_makes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, patient: bool) -> None:
    plain = _fill(tmp_path / "plain.db", 5)
    stories.group_articles(plain)
    counts = summaries.summarize_stories(plain, summarize.ExtractiveSummarizer())
    expected = _outcome(plain)
    plain.close()

    monkeypatch.setattr(summaries, "_SUMMARIES_IN_WORKERS", 1)
    monkeypatch.setattr(summaries, "_DRAFT_CHUNK", 3)
    drafting = (_PatientDrafts if patient else summaries.Drafts)(
        summarize.ExtractiveSummarizer(), sentences=3, max_chars=600, processes=2)
    ahead = _fill(tmp_path / "ahead.db", 5)
    grouped = stories.group_articles(ahead, drafts=drafting)
    # Taken drafts count as made, as they were, in this run: the same counts, the same summaries.
    assert summaries.summarize_stories(ahead, summarize.ExtractiveSummarizer(), drafts=grouped.drafts) == counts
    assert _outcome(ahead) == expected
    if patient:  # every new article drafted; those of stories of one text were taken, the copies' were not
        assert len(grouped.drafts) == grouped.articles
        with ahead.begin() as conn:
            made = set(conn.execute(sa.select(summaries_table.c.content_hash)).scalars())
        assert 0 < len(made & set(grouped.drafts)) < len(grouped.drafts)
    ahead.close()


def test_pipelined_batches_summarize_as_one_batch_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = _fill(tmp_path / "whole.db", 3)
    stories.group_articles(whole)
    counts = summaries.summarize_stories(whole, summarize.ExtractiveSummarizer())
    expected = _outcome(whole)
    whole.close()
    monkeypatch.setattr(summaries, "_SUMMARY_BATCH", 3)
    batched = _fill(tmp_path / "batched.db", 3)
    stories.group_articles(batched)
    assert summaries.summarize_stories(batched, summarize.ExtractiveSummarizer()) == counts
    assert _outcome(batched) == expected
    # A second pass finds nothing to do; marked again, everything comes from the cache.
    assert summaries.summarize_stories(batched, summarize.ExtractiveSummarizer()) == (0, 0)
    with batched.begin() as conn:
        conn.execute(stories_table.update().values(summary_hash=""))
    assert summaries.summarize_stories(batched, summarize.ExtractiveSummarizer()) == (0, counts[0])
    assert _outcome(batched) == expected
    batched.close()


def test_given_near_duplicates_cluster_as_found_ones() -> None:
    docs = [Document(id=str(k), title=title, text=text, source=key.split("/")[0],
                     published=datetime(2026, 3, 2, tzinfo=UTC) + timedelta(hours=hours))
            for k, (key, title, text, hours) in enumerate(_corpus(5))]
    found = cluster.cluster_documents(docs)
    dups = cluster.near_duplicates(docs)
    assert dups
    assert cluster.cluster_documents(docs, duplicates=dups) == found


_SAMPLES = [
    "The probe passed 11,000 km above the clouds.", "x = 1; y = 2 is the setup.", "function() { return; }",
    "Run it with $ make test now.", "The id was 0123456789abcdef in the log.", "id 0123456789abcdeF here.",
    "See https://example.com/path for more.", "a//b and c// d are paths.", "Call foo(); then bar().",
    "deadbeefdeadbeef", "deadbeefdeadbeef1", "x_deadbeefdeadbeef", "é0123456789abcdef", "He said \"yes.\"",
    "It ended...", "It ended?!", "(It ended.)", "Wait..!", "Done.\n", "Done\n", ".", "", "Share this article",
    "Your email  address will not be published.", "Home › News › Science", "Call 555-123-4567 today.",
    "Visit us at 12 Market Street, Suite 4.", "© 2026 Daily Post", "Click here to read the full story.",
]


def test_rewritten_sentence_tests_agree_with_the_plain_ones() -> None:
    rnd = random.Random(11)
    alphabet = list("abcdef0123456789 .!?\"'”’)]{}=/$();:xyzABC\n\t-_é©")
    samples = _SAMPLES + ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40))) for _ in range(20000)]
    for s in samples:
        assert sentences._complete(s) == (sentences._COMPLETE.search(s) is not None), s
        assert sentences.is_code(s, s.split()) == (sentences._CODE.search(s) is not None), s
        assert sentences.is_code(s, s.split(), sentences.Marks.of(s)) == (sentences._CODE.search(s) is not None), s
        folded = " ".join(s.split())  # what _chrome is given: a line or a sentence, folded
        assert sentences._chrome(folded, sentences.ANY) == is_boilerplate(s), s
        assert sentences._chrome(folded, sentences.Marks.of(folded)) == is_boilerplate(s), s


# Words and marks that chrome, ads and code are made of, and the punctuation sentences split at.
_PIECES = ["Share this", "post", "read", "more", "Click here", "to read the full story", "comment", "Leave a Reply",
           "follow us on", "appeared first on", "[…]", "[...]", "Call", "555-123-4567", "12 Market Street", "Suite 4",
           "today", "clinic", "Home", "›", "News", "by admin", "0 comments", "©", "2026", "cookies", "email",
           "address", "999-999-9999", "000-000-0000", "9 Elm Street", "x = 1", "{", "}", "$", "//", "foo();",
           "deadbeefdeadbeef", "Mr.", "U.S.", "Dr", "J.", "said", "the", "council", "voted", "on", "Tuesday",
           "Okafor", "residents", "were", "told", ".", ".", "!", "?", "\"", "”", ")", "(", ":", "…", "-", "\n", "\n",
           "\n\n", "1.", "•"]
_ENDS = [".", ".", ".", "!", "?", ".”", ".)", "…", "", "\n"]


def test_what_a_whole_text_cannot_hold_is_never_searched_for_in_its_sentences(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks and sentences picked with their text's marks are those picked with every test made in full."""
    rnd = random.Random(13)
    def sentence() -> str:
        return " ".join(rnd.choice(_PIECES) for _ in range(rnd.randint(2, 12))) + rnd.choice(_ENDS)

    texts = [" ".join(sentence() for _ in range(rnd.randint(1, 8))) for _ in range(3000)]
    headings = [sentences.title_words(" ".join(rnd.choice(_PIECES) for _ in range(rnd.randint(0, 4))))
                for _ in texts]

    def picked() -> list[tuple[list[str], list[str], list[str]]]:
        out = []
        for text, heading in zip(texts, headings, strict=True):
            blocks = sentences.text_blocks(text.splitlines(), drop_boilerplate=True)
            marks = sentences.Marks.of("\n".join(blocks))
            out.append((blocks, *(list(sentences.summary_sentences(blocks, heading, min_words=n, marks=marks))
                                  for n in (1, 5))))
        return out

    marked = picked()
    # Most of what the pieces make is chrome or no sentence at all: each such decision is compared too.
    assert sum(bool(b) for b, _, _ in marked) > 1500 and sum(len(s) for _, s, _ in marked) > 1000
    monkeypatch.setattr(sentences.Marks, "of", classmethod(lambda cls, text: sentences.ANY))
    assert picked() == marked


def test_the_fast_word_search_finds_the_words_the_lookbehind_finds() -> None:
    rnd = random.Random(12)
    alphabet = list("abcdefghz") * 5 + list("'’-_0é .,\n\tAZ")
    samples = ["abc_defg hello-world don't 1abcd abcd1 éabcd abcdé x'abcd -abcd abcd- ab'cd’ef ’abcd"]
    samples += ["".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 40))) for _ in range(20000)]
    for s in samples:
        assert features._WORD_FAST_RE.findall(s) == features._WORD_RE.findall(s), s


_TRICKY = ["US", "Us", "you're", "your's", "yourselves", "ourselves", "Lets", "let’s", "we'd", "_we", "9us", "bus",
           "Weston", "-you", "you-", "O'Hara's", "Okafor’s", "JAMES'S", "İstanbul", "Ærø's", "McDonald's", "x's's"]


def _sentence(rng: random.Random, words: list[str]) -> str:
    body = " ".join(rng.choice(words) for _ in range(rng.randint(1, 8)))
    return rng.choice(["", "(", '"', "'", "— "]) + body + rng.choice(["", ".", "?", ")", "!"])


def test_the_chat_word_search_finds_what_a_plain_whole_word_search_finds() -> None:
    plain = re.compile(r"\b(?:" + "|".join(map(re.escape, sentences._CHAT_WORDS)) + r")\b")
    rng = random.Random(3)
    words = [*sentences._CHAT_WORDS, *_TRICKY, *_VOCABULARY]
    for _ in range(5000):
        s = _sentence(rng, words)
        assert (sentences._CHAT_WORD.search(s) is None) == (plain.search(s) is None), s


def test_capitalized_words_fold_as_they_did_one_at_a_time() -> None:
    def one_at_a_time(sentence: str) -> list[tuple[str, bool]]:
        lead = summarize._LEADING.match(sentence)
        start = lead.end() if lead else 0
        out = []
        for m in summarize._CAPITALIZED.finditer(sentence):
            w = m.group(0).replace("’", "'").lower()
            out.append((w[:-2] if w.endswith("'s") else w, m.start() == start))
        return out

    rng = random.Random(4)
    words = [*_TRICKY, *(w.capitalize() for w in _VOCABULARY), *_VOCABULARY]
    for _ in range(5000):
        s = _sentence(rng, words)
        expected = one_at_a_time(s)
        found, opens = summarize._capitalized(s)
        assert found == [w for w, _ in expected], s
        assert opens == any(first for _, first in expected) and not any(first for _, first in expected[1:]), s


def test_stored_features_parsed_together_are_those_parsed_one_by_one_with_each_word_held_once() -> None:
    stored = [features.features_json(title, text) for title, text in
              [("Ferry terminal approved", _EVENTS[0]), ("Pie contest", _EVENTS[1]), ("Tunnel reopens", _EVENTS[3]),
               ("Kestrel Quay vote", _EVENTS[0] + " " + _EVENTS[3])]]
    stored.append('["e:kestrel", "w:ferry"]')  # the first stored format: a list, computed again
    values = features.parse_many_features(stored)
    assert values == [features.parse_features(value) for value in stored] and values[-1] is None
    first, last = values[0], values[3]
    assert first is not None and last is not None
    shared = set(first) & set(last)
    assert "e:kestrel" in shared
    assert all({k: k for k in first}[w] is {k: k for k in last}[w] for w in shared)
    with pytest.raises(ValueError):  # a damaged value that reads as two is not taken for two documents
        features.parse_many_features(['{"w:ferry": 1}], [{"w:quay": 2}', '{"w:pie": 1}'])


def _plain_text(rng: random.Random) -> str:
    return " ".join(" ".join(rng.sample(_VOCABULARY, 9)).capitalize() + "." for _ in range(4))


def _hourly_stories(path: Path, count: int, *, seed: int) -> Store:
    """A store of ``count`` articles of one site, an hour apart, grouped: a story each."""
    rng = random.Random(seed)
    store = Store.open(f"sqlite:///{path}")
    with store.begin() as conn:
        for k in range(count):
            stamp = datetime(2026, 3, 2, 8, tzinfo=UTC) + timedelta(hours=k)
            conn.execute(articles.insert().values(key=f"site/{k}", source="site", url=f"https://site/{k}",
                                                  canonical=f"https://site/{k}", title=f"Story {k}",
                                                  published=stamp, fetched=stamp, text=_plain_text(rng)))
    assert stories.group_articles(store).new_stories == count
    return store


def test_the_newest_stories_are_summarized_first(tmp_path: Path) -> None:
    """What the next issue most likely shows comes first: a stopped (slow, LLM) run has summarized it."""
    store = _hourly_stories(tmp_path / 'order.db', 6, seed=8)
    with store.begin() as conn:
        lead_titles = dict(conn.execute(sa.select(stories_table.c.id, articles.c.title)
                                        .join(articles, articles.c.id == stories_table.c.lead_id)).all())
    asked: list[str] = []

    class Recording(summarize.ExtractiveSummarizer):
        def summarize(self, title: str, texts: Any, *, sentences: int = 3, max_chars: int = 600) -> str:
            asked.append(title)
            return super().summarize(title, texts, sentences=sentences, max_chars=max_chars)

    assert summaries.summarize_stories(store, Recording()) == (6, 0)
    newest_first = [lead_titles[k] for k in sorted(lead_titles, reverse=True)]
    assert asked == newest_first == [f"Story {k}" for k in range(5, -1, -1)]
    store.close()


def test_a_memo_works_each_value_out_once_and_starts_afresh_when_full() -> None:
    from feedletter.memo import Memo

    made: list[int] = []
    memo = Memo(lambda k: made.append(k) or k * k, held=3)
    assert [memo[k] for k in (2, 3, 2, 4, 3)] == [4, 9, 4, 16, 9] and made == [2, 3, 4]
    assert memo[5] == 25 and len(memo) == 1  # a fourth key: the table started afresh


def test_summary_digest_tells_apart_texts_that_differ_only_in_line_breaks() -> None:
    # The summarizer reads a text line by line: on its own line, "Leave a Reply" is chrome and goes;
    # glued to the next sentence, it spoils that sentence. The two summaries differ, so must their
    # cache keys (a digest of the whitespace-folded texts served one text's summary for the other).
    apart = ("Leave a Reply\nThe city council approved the new river bridge on Monday after a long debate "
             "among its members.\nWork starts in May and should end within two years, the mayor said.")
    glued = apart.replace("Leave a Reply\n", "Leave a Reply ")
    assert " ".join(apart.split()) == " ".join(glued.split())
    assert summarize.summarize("Bridge approved", [apart]) != summarize.summarize("Bridge approved", [glued])
    assert (summaries.summary_digest("Bridge approved", [apart], 3, 600)
            != summaries.summary_digest("Bridge approved", [glued], 3, 600))


def test_summary_digest_is_stable_and_keeps_parts_apart() -> None:
    digest = summaries.summary_digest("T", ["one", "two"], 3, 600)
    assert digest == summaries.summary_digest("T", ["one", "two"], 3, 600)
    assert len(digest) == 32
    # Parts cannot run into each other, nor limits pass for text.
    assert digest != summaries.summary_digest("T", ["one\x1ftwo"], 3, 600)
    assert digest != summaries.summary_digest("T", ["onetwo"], 3, 600)
    assert digest != summaries.summary_digest("T", ["one", "two"], 2, 600)
    assert digest != summaries.summary_digest("T", ["one", "two"], 3, 300)
    assert digest != summaries.summary_digest("T", ["one", "two3"], 0, 600)


def test_batches_of_drafts_are_written_while_the_workers_make_the_others(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A batch whose summaries are all drafted waits for no worker: it is written at once, not after
    the workers' batches before it (which left them idle at the end of the stage)."""
    store = _hourly_stories(tmp_path / 'drafts.db', 4, seed=9)
    with store.begin() as conn:
        leads = conn.execute(sa.select(stories_table.c.id, articles.c.title, articles.c.text)
                             .join(articles, articles.c.id == stories_table.c.lead_id)
                             .order_by(stories_table.c.id)).all()
    maker = summarize.ExtractiveSummarizer()
    # The two oldest stories were drafted; the newest two, taken first, go to the workers.
    drafts = {summaries.summary_digest(title, [text], 3, 600): maker.summarize(title, [text])
              for _, title, text in leads[:2]}
    written_before_the_workers_answered: list[set[str]] = []

    class Held:
        def __init__(self, work: list[tuple[str, list[str]]]) -> None:
            self.work = work

        def result(self) -> list[str]:
            with store.begin() as conn:
                written_before_the_workers_answered.append(set(conn.execute(
                    sa.select(stories_table.c.summary).where(stories_table.c.summary != "")).scalars()))
            return summarize.summaries_of(maker, self.work, 3, 600)

    class Workers:
        def submit(self, func: Any, summarizer: Any, work: list[tuple[str, list[str]]], *args: Any) -> Held:
            return Held(work)

    monkeypatch.setattr(summaries, "_SUMMARY_BATCH", 2)
    with store.begin() as conn:
        rows = conn.execute(sa.select(stories_table.c.id, stories_table.c.lead_id)
                            .order_by(stories_table.c.id.desc())).all()
    assert summaries._summarize_batches(store, maker, rows, 3, 600, Workers(), drafts) == (4, 0)  # type: ignore[arg-type]
    assert written_before_the_workers_answered == [set(drafts.values())]
    with store.begin() as conn:
        got = dict(conn.execute(sa.select(stories_table.c.id, stories_table.c.summary)).all())
    assert got == {story_id: maker.summarize(title, [text]) for story_id, title, text in leads}
    store.close()


def test_a_summarizing_worker_loads_no_store_code() -> None:
    """What a worker is sent (the summarizer and its call) loads the summarizer alone: a worker that
    imported the summarize stage's module took a tenth of a second more to answer first."""
    probe = ("import pickle, sys\n"
             "from feedletter.stories.summarize import ExtractiveSummarizer, summaries_of\n"
             "sent = pickle.dumps((summaries_of, ExtractiveSummarizer()))\n"
             "print(sorted(m for m in sys.modules if m == 'sqlalchemy' or m in ('feedletter.store',"
             " 'feedletter.stories.summaries')))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
    assert summaries.summaries_of.__module__ == "feedletter.stories.summarize"


def test_a_draft_call_stopped_midway_gives_its_first_summaries_each_under_its_own_article(
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(11)
    told = [(f"Story {k}", _plain_text(rng)) for k in range(30)]
    maker = summarize.ExtractiveSummarizer()
    steps = iter(range(100))

    def until() -> bool:  # stopped once seven summaries are made
        return next(steps) >= 7

    work = [(title, [text]) for title, text in told]
    assert summarize.summaries_of(maker, work, 3, 600, until) == [maker.summarize(t, x) for t, x in work[:7]]

    class StoppedMidway:  # a spare pool whose calls were each stopped after a few summaries
        def __init__(self, processes: int, preload: Any = ()) -> None:
            self.calls: list[Any] = []

        def submit(self, func: Any, *args: Any) -> int:
            steps = iter(range(100))
            self.calls.append(func(*args[:4], lambda: next(steps) >= 5))  # each stopped after five
            return len(self.calls) - 1

        def stop(self) -> None:
            pass

        def done(self) -> dict[int, Any]:
            return dict(enumerate(self.calls))

    monkeypatch.setattr(summaries, "SparePool", StoppedMidway)
    monkeypatch.setattr(summaries, "_SUMMARIES_IN_WORKERS", 1)
    monkeypatch.setattr(summaries, "_DRAFT_HANDOVER", 10)
    monkeypatch.setattr(summaries, "_DRAFT_CHUNK", 10)
    drafts = summaries.Drafts(maker, sentences=3, max_chars=600, processes=2)
    for title, text in told:
        drafts.add(title, text)
    drafts.added()
    made = drafts.finish()
    # The first five of each call of ten, each under its own article's digest.
    assert made == {summaries.summary_digest(t, [x], 3, 600): maker.summarize(t, [x])
                    for k, (t, x) in enumerate(told) if k % 10 < 5}


def test_grouping_and_summarizing_run_with_the_collector_paused(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Their articles, features and summaries all stay alive and form no cycles: the cyclic
    collector's passes over them (a tenth of a second at 10k articles) would find nothing."""
    import gc

    seen: list[bool] = []
    clustering = stories.cluster_documents

    def watched(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return clustering(*args, **kwargs)

    class Watched(summarize.ExtractiveSummarizer):
        def summarize(self, title: str, texts: Any, *, sentences: int = 3, max_chars: int = 600) -> str:
            seen.append(gc.isenabled())
            return super().summarize(title, texts, sentences=sentences, max_chars=max_chars)

    monkeypatch.setattr(stories, "cluster_documents", watched)
    assert gc.isenabled()
    store = _hourly_stories(tmp_path / "gc.db", 3, seed=3)
    assert summaries.summarize_stories(store, Watched()) == (3, 0)
    assert seen == [False] * 4 and gc.isenabled()
    store.close()


# Whitespace of several kinds, compatibility forms NFKC rewrites (some into a space and a mark),
# marks, a final sigma, a dotted capital I, quotes, digits and the characters words are joined by.
_UNRULY = [" ", " ", "\t", "\n", "\u00a0", "\u2003", "\u3000", "\u2028", "\u0085", "¨", "ﬁ", "½", "Ⅻ", "\u0301",
           "Σ", "ΟΔΟΣ", "İ", "ß", "’", "‘", "'", "-", ".", ",", "_", "é", "4", "2.5", "you", "We", "us", "Okafor",
           "Bank's", "O’Neill’s", "council", "Kelvin\u212a", "(", "\"", "“", "?", "!"]


def _unruly_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(_UNRULY) for _ in range(rng.randint(0, 30))) for _ in range(count)]


def test_ascii_text_normalizes_as_nfkc_would() -> None:
    for text in ["Plain ASCII, 4.5 it's -- well-known\t\x00\x7f", "", "ABC xyz", *_unruly_texts(22, 2000)]:
        expected = unicodedata.normalize("NFKC", text).lower().replace("’", "'").replace("‘", "'")
        assert minhash.normalize(text) == expected, text


def test_a_text_without_digits_states_no_numbers() -> None:
    for text in _unruly_texts(23, 5000):
        if not any(d in text for d in "0123456789"):
            caps = summarize._capitalized(text)
            assert summarize._facts(text, caps, frozenset(caps[0]), digits=False) == summarize._facts(
                text, caps, frozenset(caps[0])), text


def test_the_lines_and_sentences_checked_for_chrome_are_folded_already(monkeypatch: pytest.MonkeyPatch) -> None:
    """_chrome skips folding its line: every line and sentence text_blocks and summary_sentences
    give it comes folded."""
    given: list[str] = []
    check = sentences._chrome
    monkeypatch.setattr(sentences, "_chrome", lambda line, marks: given.append(line) or check(line, marks))
    rnd = random.Random(24)
    pieces = [*_PIECES, *_UNRULY, "[…]", "[...]", "- ", "1. ", "Title words here", "\n\n", ".  ", "  "]
    for _ in range(3000):
        text = "".join(rnd.choice(pieces) + rnd.choice(["", " ", "\n"]) for _ in range(rnd.randint(1, 30)))
        blocks = sentences.text_blocks(text.splitlines(), drop_boilerplate=True)
        items = [sentences.LIST_ITEM.sub("", b, count=1) for b in blocks]
        for group in (blocks, items):
            list(sentences.summary_sentences(group, ["title", "words", "here"], min_words=1))
    assert len(given) > 20000
    assert all(line == " ".join(line.split()) for line in given)


def test_blocks_and_their_marks_are_those_read_apart() -> None:
    """The key-word mark taken from the lines' own search is the one the blocks' text gives,
    wrapped lines joined across a key word ("email" / "address") included."""
    rnd = random.Random(25)
    pieces = [*_PIECES, "Your email", "address will not be published", "all rights", "reserved", "cookie",
              "a long line of prose that wraps here and tells you about your email",
              "a long line of prose that wraps here and goes on without a stop", "plain words", "4", "{x}"]
    texts = ["a long line of prose that wraps here and tells you about your email\naddress will not be published", *(
        "".join(rnd.choice(pieces) + rnd.choice([" ", "\n", "\n\n", ". "]) for _ in range(rnd.randint(1, 12)))
        for _ in range(5000))]
    for text in texts:
        blocks = sentences.text_blocks(text.splitlines(), drop_boilerplate=True)
        assert sentences.blocks_and_marks(text) == (blocks, sentences.Marks.of("\n".join(blocks))), text
