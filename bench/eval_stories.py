"""Evaluate dedupe, clustering and summaries on data this project builds itself (issue 5).

Run from the repository root: ``python bench/eval_stories.py [--quick] [--seed N]``.

* Duplicates: generated articles plus syndicated copies with edits (new header/footer lines, a
  reworded sentence, a replaced paragraph), mixed with the hand-written set, whose same-story
  articles are different wordings and must not count as copies. Pairwise precision/recall.
* Clusters: the hand-written events in ``bench/data/stories/events.txt`` (several topics, events
  of one topic close in time). Pairwise precision/recall.
* Summaries: ROUGE-1/2 F1 against the hand-written reference summaries, for the extractive
  summarizer beside its previous version and two baselines (Lead-3 of the lead article, a TF-IDF
  centroid summarizer); on the tuning and held-out sets, and on ``chatty.txt``, whose events are
  each told by two reports and a blog talking to its readers.
* Repetition: in each summary, the largest share of particulars (capitalized names, places,
  days, months, and numbers) two of its sentences have in common, over the sparser of the two;
  its mean, and the share of summaries with a pair sharing two or more particulars at >= 0.5
  (two sentences stating the same fact). Also the share of summaries with a sentence where the
  writer talks to the reader ("you", "we", questions), outside quotes.
* Boilerplate leakage: the same, with every text salted with chrome lines; share of summaries
  that contain any of those lines.
* Scaling: near-duplicates + clustering over 10k/30k/100k generated articles, times and the
  growth exponent (least-squares slope of log time over log size).
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import combinations
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feedletter.models import Document  # noqa: E402
from feedletter.stories.cluster import cluster_documents, pick_lead  # noqa: E402
from feedletter.stories.dedupe import near_duplicates  # noqa: E402
from feedletter.stories.minhash import words  # noqa: E402
from feedletter.stories.sentences import split_sentences  # noqa: E402
from feedletter.stories.summarize import STOPWORDS, SUMMARIZER_VERSION, ExtractiveSummarizer, summarize  # noqa: E402
from feedletter.text.boilerplate import is_boilerplate  # noqa: E402
from feedletter.text.whitespace import truncate_words  # noqa: E402

DATA = ROOT / "bench" / "data" / "stories"
T0 = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)

# Chrome used to salt texts for the leakage figure; kept apart from the unit tests' table.
SALT = [
    "Home › World › Latest", "Posted by editor | 7 Comments", "Share this article",
    "Photo: Staff photographer", "Subscribe to our daily briefing", "Read more: our coverage",
    "Leave a Reply", "Your email address will not be published. Required fields are marked *",
    "Related Posts", "Advertisement", "© 2026 Example Media Ltd. All rights reserved.",
    "Call us today on 555-201-3344 to book a free consultation at 18 Mill Street, Suite 3.",
    "We use cookies to give you the best experience on our website.", "Back to top",
]


@dataclass(frozen=True)
class Event:
    id: str
    topic: str
    reference: str
    docs: tuple[Document, ...]


def load_events(path: Path) -> list[Event]:
    events: list[Event] = []
    head: dict[str, str] = {}
    docs: list[Document] = []
    article: dict[str, str] | None = None
    body: list[str] = []

    def close_article() -> None:
        nonlocal article, body
        if article is not None:
            docs.append(Document(article["id"], article["title"], "\n".join(body).strip(),
                                 url=f"https://{article['source']}.example/{article['id']}",
                                 source=article["source"],
                                 published=datetime.fromisoformat(article["published"])))
        article, body = None, []

    def close_event() -> None:
        nonlocal docs
        close_article()
        if head:
            events.append(Event(head["event"], head["topic"], head["reference"], tuple(docs)))
        docs = []

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            continue
        if line.startswith("=== "):
            close_event()
            head = _fields(line[4:])
        elif line.startswith("reference: "):
            head["reference"] = line[len("reference: "):]
        elif line.startswith("--- "):
            close_article()
            article = _fields(line[4:])
        elif article is not None:
            body.append(line)
    close_event()
    return events


def _fields(line: str) -> dict[str, str]:
    return {k.strip(): v.strip() for k, v in (p.split(":", 1) for p in line.split(" | "))}


# --- pairwise precision / recall -------------------------------------------------------------

def pairs_of(groups: Iterable[Iterable[str]]) -> set[frozenset[str]]:
    return {frozenset(p) for g in groups for p in combinations(sorted(g), 2)}


def precision_recall(predicted: set[frozenset[str]], truth: set[frozenset[str]]) -> tuple[float, float]:
    hit = len(predicted & truth)
    return (hit / len(predicted) if predicted else 1.0, hit / len(truth) if truth else 1.0)


# --- ROUGE -----------------------------------------------------------------------------------

def _ngrams(text: str, n: int) -> Counter[tuple[str, ...]]:
    toks = words(text)
    return Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


def rouge_f1(candidate: str, reference: str, n: int) -> float:
    c, r = _ngrams(candidate, n), _ngrams(reference, n)
    overlap = sum((c & r).values())
    if not overlap:
        return 0.0
    p, rec = overlap / sum(c.values()), overlap / sum(r.values())
    return 2 * p * rec / (p + rec)


# --- baselines -------------------------------------------------------------------------------

def lead3(title: str, texts: Sequence[str], docs: Sequence[Document], max_chars: int) -> str:
    lead = pick_lead(list(docs))
    return _fit(split_sentences(lead.text)[:3], max_chars)


def centroid(title: str, texts: Sequence[str], docs: Sequence[Document], max_chars: int) -> str:
    sents = [s for t in texts for s in split_sentences(t)]
    bags = [Counter(w for w in words(s) if w not in STOPWORDS) for s in sents]
    df = Counter(w for b in bags for w in b)
    idf = {w: math.log(1 + len(bags) / k) for w, k in df.items()}
    vecs = [{w: k * idf[w] for w, k in b.items()} for b in bags]
    center: Counter[str] = Counter()
    for v in vecs:
        center.update(v)

    def cos(a: dict[str, float], b: dict[str, float]) -> float:
        dot = sum(x * b.get(w, 0.0) for w, x in a.items())
        na, nb = math.sqrt(sum(x * x for x in a.values())), math.sqrt(sum(x * x for x in b.values()))
        return dot / (na * nb) if na and nb else 0.0

    order = sorted(range(len(sents)), key=lambda i: -cos(vecs[i], dict(center)))
    picked: list[int] = []
    for i in order:
        if len(picked) == 3:
            break
        if all(cos(vecs[i], vecs[j]) < 0.5 for j in picked):
            picked.append(i)
    return _fit([sents[i] for i in sorted(picked)], max_chars)


def extractive(title: str, texts: Sequence[str], docs: Sequence[Document], max_chars: int) -> str:
    return summarize(title, texts, sentences=3, max_chars=max_chars)


# The previous version ("extractive-3"): no fact redundancy, no particulars bonus, no chatter penalty.
_PREVIOUS = ExtractiveSummarizer(fact_overlap=None, fact_weight=0.0, chatter_penalty=0.0, min_facts=0)


def extractive_previous(title: str, texts: Sequence[str], docs: Sequence[Document], max_chars: int) -> str:
    return _PREVIOUS.summarize(title, texts, sentences=3, max_chars=max_chars)


# --- repetition and chatter ------------------------------------------------------------------

_CAPS = re.compile(r"(?<![\w'’-])[A-Z][\w'’-]*")
_DIGITS = re.compile(r"\d+(?:[.,]\d+)*")
_TALK = re.compile(r"\b(?:[Yy]ou|[Yy]our|[Ww]e|us|[Oo]ur)\b|[?!]$")


def particulars(sentence: str) -> set[str]:
    """Capitalized words past the sentence's first word, and numbers: what a sentence pins down."""
    caps = [m for m in _CAPS.finditer(sentence) if m.start() > 1]
    found = {m.group(0).lower().removesuffix("'s").removesuffix("’s") for m in caps}
    return {w for w in found if w not in STOPWORDS} | {n.replace(",", "") for n in _DIGITS.findall(sentence)}


def repetition(summary: str) -> tuple[float, bool]:
    """The largest particulars overlap of two sentences, and whether two state the same fact."""
    facts = [particulars(s) for s in split_sentences(summary)]
    worst, same = 0.0, False
    for a, b in combinations(facts, 2):
        if a and b:
            common = len(a & b)
            share = common / min(len(a), len(b))
            worst = max(worst, share)
            same = same or (common >= 2 and share >= 0.5)
    return worst, same


def chatty(summary: str) -> bool:
    return any(_TALK.search(re.sub(r"[\"“][^\"“”]*[\"”]", "", s)) for s in split_sentences(summary))


def _fit(sents: Sequence[str], max_chars: int) -> str:
    out = ""
    for s in sents:
        nxt = f"{out} {s}".strip()
        if len(nxt) > max_chars:
            return out or truncate_words(s, max_chars)
        out = nxt
    return out


def salt(text: str, rng: random.Random) -> str:
    lines = text.splitlines()
    for _ in range(4):
        lines.insert(rng.randint(0, len(lines)), rng.choice(SALT))
    return "\n".join([rng.choice(SALT), *lines, rng.choice(SALT)])


# --- generated corpus ------------------------------------------------------------------------

_SYLLABLES = ["ka", "lo", "mi", "ra", "ten", "vo", "sel", "dar", "ni", "bru", "po", "gest", "an", "ul", "ric",
              "te", "sha", "mor", "fen", "quil", "ba", "dro", "ish", "vek"]


def _name(rng: random.Random) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize()


class Generator:
    """Articles in topics; stories with their own names and numbers; tellings in varied words."""

    def __init__(self, seed: int, topics: int = 40) -> None:
        self.rng = random.Random(seed)
        common = [f"{a}{b}" for a in ("re", "con", "pro", "de", "in", "ex", "sub", "per") for b in
                  ("port", "tain", "duce", "mand", "vert", "sist", "tend", "form", "press", "gress", "clude",
                   "fer", "struct", "ject", "pose", "cept", "sume", "pute", "scribe", "spect")]
        self.common = common + ["the", "a", "of", "to", "and", "in", "on", "for", "with", "said", "was"] * 6
        self.heavy: dict[str, bool] = {}
        self.about: dict[str, str] = {}
        self.topics = [([f"{_name(self.rng).lower()}{k}" for k in range(40)],
                        [_name(self.rng) for _ in range(3)]) for _ in range(topics)]

    def story(self, n_articles: int, when: datetime) -> list[tuple[str, str, datetime]]:
        rng = self.rng
        vocab, topic_names = rng.choice(self.topics)
        names = [f"{_name(rng)} {_name(rng)}" for _ in range(3)] + [_name(rng) for _ in range(2)]
        numbers = [str(rng.randint(2, 9999)), f"{rng.randint(0, 5)}-{rng.randint(0, 5)}",
                   f"{rng.randint(1, 99)}.{rng.randint(1, 9)}%"]
        out = []
        for _ in range(n_articles):
            facts = rng.sample(names, 4) + rng.sample(numbers, 2) + rng.sample(topic_names, 2)
            sentences = []
            for _ in range(rng.randint(6, 12)):
                ws = [rng.choice(self.common if rng.random() < 0.6 else vocab)
                      for _ in range(rng.randint(8, 16))]
                if facts and rng.random() < 0.7:
                    ws.insert(rng.randint(0, len(ws)), facts.pop())
                sentences.append(" ".join(ws).capitalize() + ".")
            text = " ".join(sentences + facts)
            out.append((f"{names[0]} {rng.choice(vocab)}", text, when + timedelta(hours=rng.uniform(0, 36))))
        return out

    def _signed(self, text: str, site: str) -> str:
        # Many posts of a site end with the same "about us" paragraph: shared text that does not
        # make two different posts copies of each other.
        if site not in self.about:
            self.about[site] = " ".join(self.rng.choice(self.common) for _ in range(40)).capitalize() + "."
        return f"{text}\n{self.about[site]}" if self.rng.random() < 0.3 else text

    def corpus(self, n: int, *, copy_share: float = 0.15,
               days: int = 60) -> tuple[list[Document], dict[str, str], dict[str, str]]:
        """``n`` documents; also each doc's story and, for copies, the id of the copied doc."""
        rng = self.rng
        docs: list[Document] = []
        story_of: dict[str, str] = {}
        copy_of: dict[str, str] = {}
        s = 0
        while len(docs) < n:
            when = T0 + timedelta(days=rng.uniform(0, days))
            for title, text, at in self.story(rng.choice([1, 1, 2, 3, 4, 5]), when):
                site = f"site{rng.randint(1, 50)}"
                doc = Document(str(len(docs)), title, self._signed(text, site), source=site, published=at)
                docs.append(doc)
                story_of[doc.id] = f"s{s}"
                if rng.random() < copy_share and len(docs) < n:
                    heavy = rng.random() < 0.5
                    site = f"site{rng.randint(1, 50)}"
                    edited = self._signed(edit_copy(text, rng, heavy=heavy), site)
                    copy = Document(str(len(docs)), doc.title, edited, source=site,
                                    published=at + timedelta(hours=3))
                    docs.append(copy)
                    story_of[copy.id] = f"s{s}"
                    copy_of[copy.id] = doc.id
                    self.heavy[copy.id] = heavy
            s += 1
        return docs[:n], story_of, copy_of


def edit_copy(text: str, rng: random.Random, *, heavy: bool) -> str:
    """A syndicated copy: a header and a footer line and one sentence replaced (light edits);
    heavy edits also reword a quarter of another sentence and replace a second sentence."""
    sents = split_sentences(text)
    sents[rng.randrange(len(sents))] = "This paragraph was rewritten by the syndicating site entirely anew."
    if heavy:
        i = rng.randrange(len(sents))
        ws = sents[i].split()
        for _ in range(max(1, len(ws) // 4)):
            ws[rng.randrange(len(ws))] = rng.choice(["new", "changed", "edited", "updated"])
        sents[i] = " ".join(ws)
        sents[rng.randrange(len(sents))] = "Our correspondent adds that the details may still change today."
    header = rng.choice(["Originally published by our partners.", "Syndicated from a partner site."])
    return "\n".join([header, " ".join(sents), rng.choice(SALT)])


# --- the evaluation --------------------------------------------------------------------------

Summarizer = Callable[[str, Sequence[str], Sequence[Document], int], str]
SUMMARIZERS: dict[str, Summarizer] = {SUMMARIZER_VERSION: extractive, "extractive-3 (before)": extractive_previous,
                                       "lead-3": lead3, "tfidf-centroid": centroid}


def eval_duplicates(events: list[Event], gen: Generator, n: int) -> None:
    docs, _, copy_of = gen.corpus(n)
    hand = [d for e in events for d in e.docs]
    truth = pairs_of(_families(copy_of))
    print(f"duplicates  {len(docs)} generated articles with {len(copy_of)} edited copies, 30% ending in "
          f"their site's shared 'about' paragraph, plus {len(hand)} hand-written (same-story rewrites "
          f"must not count)")
    for threshold in (0.8, 0.7, 0.6):
        found = near_duplicates(docs + hand, threshold=threshold)
        predicted = pairs_of(_families(found))
        p, r = precision_recall(predicted, truth)
        recall = {kind: sum(1 for c, o in copy_of.items() if gen.heavy[c] == heavy and found.get(c) == o)
                  / max(1, sum(1 for c in copy_of if gen.heavy[c] == heavy))
                  for kind, heavy in (("light", False), ("heavy", True))}
        false_hand = sum(1 for k in found if not k.isdigit())
        print(f"            threshold {threshold}: pairwise precision {p:.3f} recall {r:.3f}  "
              f"(copies found: light edits {recall['light']:.3f}, heavy edits {recall['heavy']:.3f}; "
              f"hand-written called copies: {false_hand})")


def _families(copy_to_original: dict[str, str]) -> list[set[str]]:
    fam: dict[str, set[str]] = {}
    for copy, original in copy_to_original.items():
        fam.setdefault(original, {original}).add(copy)
    return list(fam.values())


def eval_clusters(events: list[Event], label: str) -> None:
    docs = [d for e in events for d in e.docs]
    truth = pairs_of([d.id for d in e.docs] for e in events)
    out = cluster_documents(docs)
    by: dict[str, list[str]] = {}
    for a in out:
        by.setdefault(a.cluster, []).append(a.id)
    p, r = precision_recall(pairs_of(by.values()), truth)
    print(f"clusters    {label}: {len(events)} events, {len(docs)} articles -> {len(by)} clusters: "
          f"pairwise precision {p:.3f}  recall {r:.3f}")
    event_of = {d.id: e.id for e in events for d in e.docs}
    for members in by.values():
        labels = {event_of[m] for m in members}
        if len(labels) > 1:
            print(f"            merged: {sorted(labels)}")


def eval_summaries(events: list[Event], max_chars: int, seed: int, label: str) -> None:
    print(f"summaries   {label}: {len(events)} events, {sum(len(e.docs) for e in events)} articles, "
          f"references written for this project, 3 sentences / {max_chars} chars")
    print(f"            {'summarizer':<22} {'ROUGE-1 F1':>10} {'ROUGE-2 F1':>10} {'leakage (salted)':>17} "
          f"{'max fact overlap':>16} {'same fact twice':>15} {'talks to reader':>15}")
    rng = random.Random(seed)
    salted = {e.id: [salt(d.text, rng) for d in e.docs] for e in events}
    salted_lines = [" ".join(s.split()) for s in SALT]
    for name, fn in SUMMARIZERS.items():
        r1 = r2 = overlap = 0.0
        leaks = repeats = talks = 0
        for e in events:
            # The lead's text first, as the pipeline passes it.
            lead = pick_lead(list(e.docs))
            ordered = sorted(range(len(e.docs)), key=lambda k: e.docs[k].id != lead.id)
            docs = [e.docs[k] for k in ordered]
            out = fn(lead.title, [d.text for d in docs], docs, max_chars)
            r1 += rouge_f1(out, e.reference, 1)
            r2 += rouge_f1(out, e.reference, 2)
            worst, same = repetition(out)
            overlap += worst
            repeats += same
            talks += chatty(out)
            dirty_docs = [Document(e.docs[k].id, e.docs[k].title, salted[e.id][k], source=e.docs[k].source,
                                   published=e.docs[k].published) for k in ordered]
            dirty = fn(lead.title, [d.text for d in dirty_docs], dirty_docs, max_chars)
            leaks += any(line in dirty for line in salted_lines)
        k = len(events)
        print(f"            {name:<22} {r1 / k:>10.3f} {r2 / k:>10.3f} {leaks / k:>16.1%} {overlap / k:>17.3f} "
              f"{repeats / k:>15.1%} {talks / k:>15.1%}")


def eval_real_snippets(corpus: Path) -> None:
    """The boilerplate rules on real pages' annotated snippets (evaluation only, never fixtures)."""
    notes = corpus / "extraction" / "trafilatura-eval-en" / "annotations.json"
    if not notes.is_file():
        print("real snippets skipped: corpus absent")
        return
    pages = json.loads(notes.read_text(encoding="utf-8")).values()
    content = [t for p in pages for t in p.get("with", []) if isinstance(t, str) and t.strip()]
    chrome = [t for p in pages for t in p.get("without", []) if isinstance(t, str) and t.strip()]
    wrong = [t for t in content if is_boilerplate(t)]
    caught = sum(1 for t in chrome if is_boilerplate(t))
    print(f"real snippets ({len(pages)} annotated pages of ../shared/corpus): content snippets flagged as "
          f"boilerplate {len(wrong)}/{len(content)}; chrome snippets flagged {caught}/{len(chrome)} "
          f"(snippets are fragments of lines, so the second figure understates line-level recall)")
    for t in wrong[:5]:
        print(f"            wrongly flagged: {t[:80]!r}")


def eval_scaling(sizes: Sequence[int], seed: int) -> None:
    print("scaling     near-duplicates + clustering over generated articles (wall time; CPU time in brackets,"
          " which other jobs on a shared machine do not inflate)")
    walls, cpus = [], []
    for n in sizes:
        docs, story_of, _ = Generator(seed).corpus(n)
        wall, cpu = time.perf_counter(), time.process_time()
        near_duplicates(docs)
        t_dup, c_dup = time.perf_counter() - wall, time.process_time() - cpu
        wall, cpu = time.perf_counter(), time.process_time()
        out = cluster_documents(docs)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
        by: dict[str, list[str]] = {}
        for a in out:
            by.setdefault(a.cluster, []).append(a.id)
        truth: dict[str, list[str]] = {}
        for i, s in story_of.items():
            truth.setdefault(s, []).append(i)
        p, r = precision_recall(pairs_of(by.values()), pairs_of(truth.values()))
        print(f"            n={n:>7}  near-dup {t_dup:5.1f} s ({c_dup:5.1f})  cluster incl. near-dup "
              f"{walls[-1]:5.1f} s ({cpus[-1]:5.1f})  story pairs P {p:.3f} R {r:.3f}")
    if len(sizes) >= 2:
        print(f"            growth exponent {_slope(sizes, walls):.2f} wall, {_slope(sizes, cpus):.2f} CPU "
              f"(target <= 1.2); {sizes[-1]} articles in {walls[-1]:.1f} s wall, {cpus[-1]:.1f} s CPU "
              f"(target < 60 s)")


def _slope(sizes: Sequence[int], times: Sequence[float]) -> float:
    """Least-squares slope of log time over log size: the growth exponent."""
    xs, ys = [math.log(n) for n in sizes], [math.log(max(t, 1e-6)) for t in times]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="small generated corpora, for a fast check")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--max-chars", type=int, default=400)
    args = ap.parse_args(argv)
    events = load_events(DATA / "events.txt")
    holdout = load_events(DATA / "holdout.txt")
    eval_duplicates(events + holdout, Generator(args.seed), 2000 if args.quick else 10000)
    for label, group in (("tuning set", events), ("held-out set", holdout),
                         ("both together", events + holdout)):
        eval_clusters(group, label)
    # Three tellings per event, one a blog talking to its readers: written to exercise repetition
    # and chatter, which the two sets above hardly contain. Not used for tuning.
    chatty = load_events(DATA / "chatty.txt")
    for label, group in (("tuning set", events), ("held-out set", holdout), ("chatty-blog set", chatty)):
        eval_summaries(group, args.max_chars, args.seed, label)
    eval_real_snippets(ROOT.parent / "shared" / "corpus")
    eval_scaling((2000, 5000, 10000) if args.quick else (10000, 30000, 100000), args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
