"""Evaluate the extractive summarizer on real text (issue 15, point 6).

Two checks, both on ../shared/corpus (evaluation data only; nothing of it goes into the repo):

* ROUGE on summaries/bbc-dev.jsonl: 3-sentence summaries of each article against its extractive
  reference, ROUGE-1 and ROUGE-2 F1, recall and precision, for the summarizer beside two baselines
  written here, independently of feedletter: Lead-3 (the first three sentences) and TextRank-3
  (TF-IDF cosine graph of the sentences, PageRank, the top three in article order). The references
  are long extracts (~45% of the article), so recall is capped and precision says more than usual.
  Figures are printed for the whole set and for two halves split by a hash of the id, so that a
  weight tuned on the whole can be seen to hold on each half. Also the summarizer's ms per story.
* Chrome on feeds/: every entry of the real feeds, turned into text as the pipeline does
  (sanitize_html, html_to_text, strip_boilerplate), is summarized with its title; summaries that
  hold chrome by the patterns below (calls to action, share prompts, bylines, crumbs, credits,
  phone numbers, the title repeated, a heading glued to a sentence, list fragments) are counted.

    python bench/eval_summaries.py [--corpus ../shared/corpus] [-v]
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feedletter.errors import ParseError  # noqa: E402
from feedletter.ingest.parse.feeds import parse_feed  # noqa: E402
from feedletter.stories.summarize import SUMMARIZER_VERSION, summarize  # noqa: E402
from feedletter.text.boilerplate import strip_boilerplate  # noqa: E402
from feedletter.text.sanitize import html_to_text, sanitize_html  # noqa: E402

NOW = datetime(2030, 1, 1, tzinfo=UTC)
SENTENCES = 3

# --- sentences and ROUGE, written for this script (not feedletter's splitter) --------------------

_SPLIT = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_TOKEN = re.compile(r"[a-z0-9]+")


def sentences_of(text: str) -> list[str]:
    out: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        out += [s.strip() for s in _SPLIT.split(para) if s.strip()]
    return out


def _ngrams(text: str, n: int) -> Counter[tuple[str, ...]]:
    toks = _TOKEN.findall(text.lower())
    return Counter(tuple(toks[i:i + n]) for i in range(len(toks) - n + 1))


def rouge(candidate: str, reference: str, n: int) -> tuple[float, float, float]:
    """(F1, recall, precision) of n-grams, counts clipped."""
    c, r = _ngrams(candidate, n), _ngrams(reference, n)
    hit = sum((c & r).values())
    if not hit:
        return 0.0, 0.0, 0.0
    p, rec = hit / sum(c.values()), hit / sum(r.values())
    return 2 * p * rec / (p + rec), rec, p


# --- baselines ---------------------------------------------------------------------------------

def lead3(title: str, text: str) -> str:
    return " ".join(sentences_of(text)[:SENTENCES])


def textrank3(title: str, text: str) -> str:
    sents = sentences_of(text)
    if len(sents) <= SENTENCES:
        return " ".join(sents)
    bags = [Counter(_TOKEN.findall(s.lower())) for s in sents]
    vocab = {w: k for k, w in enumerate(sorted({w for b in bags for w in b}))}
    tf = np.zeros((len(sents), len(vocab)))
    for i, b in enumerate(bags):
        for w, k in b.items():
            tf[i, vocab[w]] = k
    df = (tf > 0).sum(axis=0)
    vec = tf * (np.log(len(sents) / df) + 1)
    norm = np.linalg.norm(vec, axis=1, keepdims=True)
    vec = vec / np.where(norm == 0, 1, norm)
    sim = vec @ vec.T
    np.fill_diagonal(sim, 0)
    out = sim.sum(axis=1, keepdims=True)
    trans = np.where(out > 0, sim / np.where(out == 0, 1, out), 1 / len(sents))
    rank = np.full(len(sents), 1 / len(sents))
    for _ in range(50):
        rank = 0.15 / len(sents) + 0.85 * rank @ trans
    top = sorted(sorted(range(len(sents)), key=lambda i: (-rank[i], i))[:SENTENCES])
    return " ".join(sents[i] for i in top)


def ours(title: str, text: str) -> str:
    # No character limit: the same three sentences as the baselines, whatever their length.
    return summarize(title, [text], sentences=SENTENCES, max_chars=100_000)


def ours_600(title: str, text: str) -> str:
    return summarize(title, [text], sentences=SENTENCES, max_chars=600)  # the digest's default


METHODS: dict[str, Callable[[str, str], str]] = {
    f"feedletter {SUMMARIZER_VERSION}": ours, "  same, 600 chars": ours_600,
    "TextRank-3": textrank3, "Lead-3": lead3}


def _half(doc_id: str) -> str:
    return "A" if hashlib.sha1(doc_id.encode()).digest()[0] % 2 == 0 else "B"


def eval_rouge(path: Path) -> None:
    docs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    scores: dict[str, list[tuple[str, tuple[float, ...]]]] = {}
    for name, fn in METHODS.items():
        rows = []
        for d in docs:
            out = fn(d["title"], d["text"])
            r1, r2 = rouge(out, d["reference"], 1), rouge(out, d["reference"], 2)
            rows.append((_half(d["id"]), (*r1, *r2, len(sentences_of(out)))))
        scores[name] = rows
    print(f"ROUGE on {path.name}: {len(docs)} articles, {SENTENCES}-sentence summaries "
          f"(F1 / recall / precision; halves by sha1(id): A={sum(_half(d['id']) == 'A' for d in docs)})")
    print(f"{'':24} {'R1 F':>6} {'R1 R':>6} {'R1 P':>6} {'R2 F':>6} {'R2 R':>6} {'R2 P':>6} {'sents':>5}"
          f"   {'A: R1 F':>7} {'R2 F':>6}   {'B: R1 F':>7} {'R2 F':>6}")
    for name, rows in scores.items():
        def mean(k: int, half: str | None = None, rows: list[tuple[str, tuple[float, ...]]] = rows) -> float:
            vals = [v[k] for h, v in rows if half is None or h == half]
            return sum(vals) / len(vals)
        print(f"{name:24} " + " ".join(f"{mean(k):6.4f}" for k in range(6)) + f" {mean(6):5.2f}"
              f"   {mean(0, 'A'):7.4f} {mean(3, 'A'):6.4f}   {mean(0, 'B'):7.4f} {mean(3, 'B'):6.4f}")
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for d in docs:
            ours_600(d["title"], d["text"])
        best = min(best, time.perf_counter() - t0)
    print(f"summarizer time: {1000 * best / len(docs):.2f} ms/story (best of 3 runs over the set, 600 chars)")


# --- chrome in summaries of real feed entries ---------------------------------------------------

_I = re.IGNORECASE
CHROME: dict[str, re.Pattern[str]] = {
    "call to action": re.compile(r"click here|continue reading|\bread (?:more|the (?:full|whole|rest)|on\b)|"
                                 r"to read this (?:article|story|post)|appeared first on|"
                                 r"\[(?:…|\.\.\.)\]|view (?:the )?(?:full|original) (?:article|post)", _I),
    "share/follow/subscribe": re.compile(r"\bshare (?:this (?:post|article|story|page)\b|this:|on (?:facebook|"
                                         r"twitter|linkedin|x)\b|via\b)|\bfollow (?:us|me)\b|\bsubscribe (?:to|for|now|"
                                         r"today)\b|\b(?:like|find) us on\b|sign up for (?:our|the) newsletter", _I),
    "comments": re.compile(r"\b\d+\s+comments?\b|\bleave a (?:reply|comment)\b|\bno comments\b|"
                           r"\bcomments? (?:are )?closed\b", _I),
    "byline": re.compile(r"\bby (?:admin|administrator|staff|editor)\b|"
                         r"(?:^|[.!?] )(?:posted|written|filed) (?:by|in|under|on)\b", _I),
    "crumb": re.compile(r"\bHome\s*[›»>/|]|\bHome\s+(?:News|Blog|World|Business|Health|Sport|Tech)\b"),
    "image credit": re.compile(r"\b(?:photo|image|picture)s?\s*(?:credit\s*)?(?::|courtesy|by\b|via\b)|"
                               r"\bcredit\s*:|getty images", _I),
    "phone number": re.compile(r"(?<!\d)(?:\+?\d{1,3}[\s.-])?\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}(?!\d)"),
    "list fragment": re.compile(r"(?:^|(?<=[.!?:]) )(?:[-•*]|\d+[.)]) |:$|:\s+(?:Option|Step|Part|Tip)\s+\d+\s*:|"
                                r"\b(?:Option|Step|Part|Tip)\s+\d+\s*:"),
}
_WORD = re.compile(r"[\w'’-]+|[^\w\s]")
_MINOR = frozenset(["a", "an", "and", "as", "at", "but", "by", "for", "in", "of", "on", "or", "the", "to", "with",
                    "vs", "your", "our", "its", "from", "into"])
# Words that open a sentence after a glued heading, and are rarely the next word of a name.
_OPENERS = frozenset(["the", "this", "that", "these", "those", "it", "its", "a", "an", "if", "when", "while", "after",
                      "before", "we", "you", "our", "your", "they", "their", "he", "she", "his", "her", "there",
                      "here", "many", "most", "some", "however", "although", "i", "i'm", "i’m", "i've", "i’ve"])


def _norm_words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def title_repeated(title: str, summary: str) -> bool:
    t = _norm_words(title)
    return len(t) >= 3 and _norm_words(summary)[:len(t)] == t


def heading_glued(summary: str) -> bool:
    """A run of >= 4 Title-Case words (minor words allowed inside) opening a sentence, then, with no
    punctuation between, a word that usually opens a sentence ("The", "It", "We"…) followed by a
    lower-case word: "Effective for Treatment-Resistant Conditions The drug is…"."""
    toks = _WORD.findall(summary)
    for i in range(len(toks)):
        if i > 0 and toks[i - 1] not in (".", "!", "?", "”", "\"", ")"):
            continue  # a heading is glued to what follows it, so it opens a sentence
        caps = 0
        j = i
        while j + 1 < len(toks) and (toks[j][:1].isupper() or (caps and toks[j].lower() in _MINOR)):
            if caps >= 4 and toks[j].lower() in _OPENERS and toks[j][:1].isupper() and toks[j + 1][:1].islower() \
                    and toks[j - 1].lower() not in _MINOR:
                return True
            caps += toks[j][:1].isupper()
            j += 1
    return False


def line_glued(summary: str, text: str) -> bool:
    """A line of the source without end punctuation (a heading, a caption, a list label) that the
    summary runs on into the next line's words, with only a space between: the precise test, as
    it knows where the lines were."""
    lines = [" ".join(line.split()) for line in text.splitlines()]
    lines = [line for line in lines if line]
    for line, nxt in itertools.pairwise(lines):
        if line[-1] in ".!?\"”’):;," or len(line.split()) > 12 or nxt[0].islower():
            continue  # a sentence, a label, or a hard-wrapped line that the next one continues
        if f"{line} {' '.join(nxt.split()[:3])}" in summary:
            return True
    return False


@dataclass
class Found:
    entries: int = 0
    summarized: int = 0
    dirty: int = 0


def eval_chrome(feeds: Path, verbose: bool) -> None:
    manifest = json.loads((feeds / "manifest.json").read_text(encoding="utf-8"))
    found = Found()
    kinds: Counter[str] = Counter()
    examples: list[tuple[str, str, str, str]] = []
    for item in manifest:
        path = feeds / item["file"]
        try:
            feed = parse_feed(path.read_bytes(), url="https://corpus.invalid/" + path.name, source="corpus", now=NOW)
        except ParseError:
            continue
        for entry in feed.entries:
            found.entries += 1
            html = sanitize_html(entry.content or entry.summary, base_url=entry.link or feed.link)
            text = strip_boilerplate(html_to_text(html))
            out = summarize(entry.title, [text])
            if not out:
                continue
            found.summarized += 1
            hits = [k for k, rx in CHROME.items() if rx.search(out)]
            if title_repeated(entry.title, out):
                hits.append("title repeated")
            if heading_glued(out) or line_glued(out, text):
                hits.append("heading glued")
            if hits:
                found.dirty += 1
                kinds.update(hits)
                examples.append((item["file"], entry.title, ", ".join(hits), out))
    print(f"\nChrome in summaries of real feed entries ({feeds}): {found.entries} entries, "
          f"{found.summarized} summarized, {found.dirty} with chrome")
    for kind, n in kinds.most_common():
        print(f"  {kind:24} {n}")
    if verbose:
        for file, title, hits, out in examples:
            print(f"\n  [{hits}] {file}: {title!r}\n    {out}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus")
    ap.add_argument("-v", "--verbose", action="store_true", help="print the summaries found with chrome")
    args = ap.parse_args(argv)
    bbc = args.corpus / "summaries" / "bbc-dev.jsonl"
    feeds = args.corpus / "feeds"
    if not bbc.exists() and not (feeds / "manifest.json").exists():
        print(f"skipped: no corpus at {args.corpus} (it lives outside the repository; see --corpus)")
        return 0
    if bbc.exists():
        eval_rouge(bbc)
    else:
        print(f"skipped ROUGE: {bbc} not found")
    if (feeds / "manifest.json").exists():
        eval_chrome(feeds, args.verbose)
    else:
        print(f"skipped chrome check: {feeds / 'manifest.json'} not found")
    return 0


if __name__ == "__main__":
    sys.exit(main())
