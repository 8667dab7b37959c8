"""Story summaries: an offline extractive summarizer, and the protocol an LLM client also meets.

The extractive summarizer splits every text of a story into sentences, drops chrome by rule
(:func:`feedletter.text.boilerplate.is_boilerplate`), scores sentences by centrality in a TF-IDF
similarity graph (TextRank) combined with a position prior, closeness to the title and how many
particulars (names, numbers, dates) a sentence gives, with a penalty for the writer talking to the
reader ("if you live near…"). It then picks the best sentences while skipping any that repeat one
already chosen, in words or in facts: two sites' tellings of the opening share few rare words but
the same names, places and dates — which is how five sites' tellings of a story collapse into one
summary. Output is deterministic for a given input.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import Protocol

import numpy as np

from feedletter.memo import Memo
from feedletter.plugins import SummarizerEntry
from feedletter.stories.fallback import first_paragraph
from feedletter.stories.minhash import words
from feedletter.stories.sentences import (
    LIST_ITEM,
    blocks_and_marks,
    is_chatty,
    summary_sentences,
    title_words,
    wordset,
)
from feedletter.stories.textrank import similarities, textrank
from feedletter.text.whitespace import truncate_words

__all__ = ["SUMMARIZER_VERSION", "ExtractiveSummarizer", "Summarizer", "summaries_of", "summarize"]

# Bump whenever output for the same input may change: the store caches summaries under it.
SUMMARIZER_VERSION = "extractive-7"

STOPWORDS = wordset("""
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has
have having he her here hers herself him himself his how i if in into is it its itself just me more
most my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself said says say told new one two also its it's according
""")


# Several patterns below open with a plain character (class) and check what precedes it with a
# lookbehind placed after it, rather than opening with the lookbehind or \b: the regex engine then
# skips straight to the places where that character occurs instead of trying every position, which
# makes these searches two to three times faster for the same matches.


# Particulars of a sentence: capitalized words (names, places, days, months) and numbers, each not
# preceded by a word character (or, for numbers, by . or ,).
_CAPITALIZED = re.compile(r"[A-Z](?<![\w'’-][A-Z])[\w'’-]*")
_NUMERAL = re.compile(r"\d(?<![\w.,]\d)\d*(?:[.,]\d+)*")
_LEADING = re.compile(r"^[\W_]*")

# Scores closer than this are equal (see _ranked): far above the rounding noise of the matrix
# products (1e-16 to 1e-13), far below the real gaps between scores (the smallest over 1,800
# test stories was 3e-7).
_TIE = 1e-9


class Summarizer(Protocol):
    """Anything that turns a story (a title and its texts) into a short summary.

    ``last_source`` names the summarizer that wrote the last summary: this one, or the one it fell
    back to (a summary from the fallback is not cached under this one's name).
    """

    name: str
    version: str
    last_source: str

    def summarize(self, title: str, texts: Sequence[str], *, sentences: int = 3,
                  max_chars: int = 600) -> str: ...


@dataclass(slots=True)
class _Sentence:
    text: str
    doc: int
    pos: int
    rel: float  # position within its text, 0 = first
    terms: Counter[str]
    facts: frozenset[str] = frozenset()
    chatty: bool = False


# A sentence's capitalized words, lower-cased and without a final 's, and whether the first of them
# opens the sentence.
_Capitalized = tuple[list[str], bool]


def _capitalized(sentence: str) -> _Capitalized:
    """The capitalized words of ``sentence`` (see :data:`_Capitalized`)."""
    found = _CAPITALIZED.findall(sentence)
    if not found:
        return [], False
    # Folded all at once: no word holds a line break.
    low = "\n".join(found).replace("’", "'").lower()
    words = [w[:-2] if w.endswith("'s") else w for w in low.split("\n")] if "'s" in low else low.split("\n")
    if "A" <= sentence[0] <= "Z":  # (most sentences): nothing before it for the lookbehind to see
        return words, True
    # Only the sentence's leading non-word characters can come before its first capitalized word.
    lead = _LEADING.match(sentence)
    return words, _CAPITALIZED.match(sentence, lead.end() if lead else 0) is not None


def _named(capitalized: _Capitalized) -> list[str]:
    """The capitalized words that do not open their sentence."""
    words, opens = capitalized
    return words[1:] if opens else words


def _facts(sentence: str, capitalized: _Capitalized, proper: frozenset[str], digits: bool = True) -> frozenset[str]:
    """Names, places, dates and numbers ``sentence`` states (``capitalized``: its capitalized words;
    ``digits``: False when the text it comes from has none, so it has no numbers).

    A capitalized word opening the sentence counts only when the story also capitalizes it
    elsewhere (``proper``): "Residents met…" names nobody, "Okafor said…" does.
    """
    words, opens = capitalized
    if not words and not digits:
        return frozenset()
    out = {w for w in _named(capitalized) if w not in STOPWORDS}
    if opens and words[0] in proper and words[0] not in STOPWORDS:
        out.add(words[0])
    if digits:
        out.update(n.replace(",", "") for n in _NUMERAL.findall(sentence))
    return frozenset(out)


def _term_of(word: str) -> str:
    """The term a word token counts as, or "" for none."""
    # "Omur's free kick" and "Omur curled" are about the same man.
    bare = word[:-2] if word.endswith("'s") else word
    return bare if bare not in STOPWORDS and len(bare) > 1 else ""


# Looked up, not called: the same words recur in every story.
_term = Memo(_term_of, held=1 << 16).__getitem__


def _terms(text: str) -> Counter[str]:
    return Counter(filter(None, map(_term, words(text))))


class ExtractiveSummarizer:
    """Offline, deterministic summaries made of a story's own sentences."""

    name = "extractive"
    version = SUMMARIZER_VERSION
    last_source = name

    # Weights chosen on bench/data/stories/events.txt and checked on the held-out set there.
    def __init__(self, *, redundancy: float = 0.5, coverage: float = 0.5, min_words: int = 5,
                 max_sentences_per_text: int = 40, position_weight: float = 0.2, title_weight: float = 0.1,
                 lead_weight: float = 0.3, fact_overlap: float | None = 0.5, fact_weight: float = 0.1,
                 chatter_penalty: float = 0.3, min_facts: int = 2, length_weight: float = 0.6) -> None:
        # fact_overlap=None, fact_weight=0, chatter_penalty=0 and min_facts=0 give the previous
        # version's output ("extractive-3"), which the eval prints side by side with this one.
        self.fact_overlap = fact_overlap
        self.fact_weight = fact_weight
        self.chatter_penalty = chatter_penalty
        self.min_facts = min_facts
        self.length_weight = length_weight
        self.redundancy = redundancy
        self.coverage = coverage
        self.lead_weight = lead_weight
        self.min_words = min_words
        self.max_sentences_per_text = max_sentences_per_text
        self.position_weight = position_weight
        self.title_weight = title_weight

    def candidates(self, texts: Sequence[str], title: str = "") -> list[_Sentence]:
        """The sentences worth considering: content, long enough, from the head of each text.

        A sentence that repeats ``title`` loses the title's words, or is dropped when nothing
        that reads as a sentence is left.
        """
        found: list[_Sentence] = []
        kept_texts: list[list[tuple[str, _Capitalized]]] = []
        digits: list[bool] = []  # whether each text has a digit (see Marks)
        limit = self.max_sentences_per_text
        heading = title_words(title)
        for text in texts:
            # Chrome goes line by line first, so that a wrapped sentence is not glued to it.
            # Every sentence is part of a block, or pieces of one joined after their . ! or ? (which
            # no mark spans): what the blocks cannot hold (their marks), no sentence does.
            blocks, marks = blocks_and_marks(text)
            prose = [b for b in blocks if LIST_ITEM.match(b) is None]
            kept = summary_sentences(prose, heading, min_words=self.min_words, marks=marks)
            head = list(islice(kept, limit)) if limit >= 0 else list(kept)[:limit]
            if not head and len(prose) < len(blocks):
                # Only list items say anything (a week's links, a changelog): their items that are
                # whole sentences will do, without their bullets.
                items = [LIST_ITEM.sub("", b, count=1) for b in blocks if LIST_ITEM.match(b) is not None]
                kept = summary_sentences(items, heading, min_words=self.min_words, marks=marks)
                head = list(islice(kept, limit)) if limit >= 0 else list(kept)[:limit]
            kept_texts.append([(s, _capitalized(s)) for s in head])
            digits.append(marks.digits)
        proper = frozenset(w for sents in kept_texts for _, caps in sents for w in _named(caps))
        for d, sents in enumerate(kept_texts):
            for p, (s, caps) in enumerate(sents):
                terms = _terms(s)
                if terms:
                    found.append(_Sentence(s, d, p, p / max(len(sents), 1), terms,
                                           _facts(s, caps, proper, digits[d]), is_chatty(s)))
        return found

    def summarize(self, title: str, texts: Sequence[str], *, sentences: int = 3,
                  max_chars: int = 600) -> str:
        """At most ``sentences`` sentences and ``max_chars`` characters drawn from ``texts``.

        ``texts[0]`` should be the story's lead article: its sentences get a small bonus, so the
        summary reads mostly as one voice, with other sites adding what the lead lacks.
        """
        if sentences <= 0 or max_chars <= 0:
            return ""
        cands = self.candidates(texts, title)
        if not cands:
            return first_paragraph(title, texts, max_chars=max_chars, min_words=self.min_words)
        sim, title_sim, weights, starts = similarities([c.terms for c in cands], _terms(title))
        rank = textrank(sim)
        doc, pos, nfacts, chatty, nterms = np.array(
            [(c.doc, c.pos, len(c.facts), c.chatty, len(c.terms)) for c in cands]).T
        scores = (
            (1 - self.position_weight - self.title_weight) * rank / rank.max()
            + self.position_weight / (1 + 2 * pos)
            + self.title_weight * title_sim
            + np.where(doc == 0, self.lead_weight, 0.0)
            # Particulars make a sentence worth its room; the first few count most.
            + self.fact_weight * nfacts / (nfacts + 3)
            - np.where(chatty != 0, self.chatter_penalty, 0.0)
            + self.length_weight * nterms / (nterms + 10)
        ).tolist()
        order = _ranked(scores, [(c.doc, c.pos) for c in cands])
        # Later sentences must give particulars, unless the story has too few such sentences
        # (an essay without names or numbers still gets a full summary).
        # A single text has no other site's telling to repeat, and its plainer sentences (context,
        # quotes) are often the ones an editor keeps: the rule is for stories told several times.
        min_facts = self.min_facts if len(texts) > 1 and sum(
            len(c.facts) >= self.min_facts for c in cands) >= sentences else 0
        chosen: list[int] = []
        covered: set[str] = set()
        used = 0
        for i in order:
            if len(chosen) >= sentences:
                break
            # Redundant: too like one chosen sentence, or mostly facts the chosen ones already
            # give (another site's wording of the same point).
            if any(sim[i, j] >= self.redundancy for j in chosen):
                continue
            vec = weights[starts[i]:starts[i + 1]]
            weight = sum(vec)
            if covered and sum(v for t, v in zip(cands[i].terms, vec, strict=True)
                               if t in covered) >= self.coverage * weight:
                continue
            if chosen and len(cands[i].facts) < min_facts:
                continue  # a filler line ("Now it is five minutes.") is not worth the room
            if self.fact_overlap is not None and any(
                    _same_facts(cands[i].facts, cands[j].facts, self.fact_overlap) for j in chosen):
                continue
            extra = len(cands[i].text) + (1 if chosen else 0)
            if used + extra > max_chars:
                continue
            chosen.append(i)
            covered.update(cands[i].terms)
            used += extra
        if not chosen:
            return truncate_words(cands[order[0]].text, max_chars)
        # Read like an article: the best text's sentences in their order, then the others.
        first_doc = cands[chosen[0]].doc
        chosen.sort(key=lambda i: (cands[i].doc != first_doc, cands[i].rel, cands[i].doc))
        return " ".join(cands[i].text for i in chosen)


def _ranked(scores: list[float], tiebreak: Sequence[tuple[int, int]]) -> list[int]:
    """Indices by score, highest first; equal scores in ``tiebreak`` order.

    Scores less than ``_TIE`` apart count as equal. Ties are real: two tellings of one fact that
    share the same words with the rest and have as many words of their own sit alike in the
    similarity graph. Their computed scores then differ at most in the last bits, by rounding in
    whatever order the sums happened to run, and that must not decide which one leads.
    """
    order: list[int] = []
    group: list[int] = []  # consecutive scores, each less than _TIE below the one before
    for i in sorted(range(len(scores)), key=scores.__getitem__, reverse=True):
        if group and scores[group[-1]] - scores[i] >= _TIE:
            order += sorted(group, key=tiebreak.__getitem__)
            group = []
        group.append(i)
    return order + sorted(group, key=tiebreak.__getitem__)


def _same_facts(a: frozenset[str], b: frozenset[str], share: float) -> bool:
    """Whether two sentences state the same fact: at least two particulars in common, making up
    ``share`` of the sparser sentence's particulars."""
    common = len(a & b)
    return common >= 2 and common >= share * min(len(a), len(b))


_DEFAULT = ExtractiveSummarizer()


def summarize(title: str, texts: Sequence[str], *, sentences: int = 3, max_chars: int = 600) -> str:
    """Summarize a story (lead article's text first) with the default extractive summarizer."""
    return _DEFAULT.summarize(title, texts, sentences=sentences, max_chars=max_chars)


def summaries_of(summarizer: Summarizer, work: Sequence[tuple[str, list[str]]], sentences: int,
                 max_chars: int, until: Callable[[], bool] | None = None) -> list[str]:
    """The summary of each (title, texts): a worker process's call. With ``until``, it stops once
    ``until()`` is true and gives the summaries of the first ones, made by then.

    Defined here, beside the summarizer, so that a worker loads nothing else for it (the summarize
    stage's module brings SQLAlchemy and the store, a tenth of a second more for each worker).
    """
    out = []
    for title, texts in work:
        if until is not None and until():
            break
        out.append(summarizer.summarize(title, texts, sentences=sentences, max_chars=max_chars))
    return out


# Nothing to configure: the same summarizer for every config.
SUMMARIZER = SummarizerEntry("extractive", None, lambda config: ExtractiveSummarizer())
