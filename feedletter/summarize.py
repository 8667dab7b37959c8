"""Story summaries: an offline extractive summarizer, and the protocol an LLM client also meets.

The extractive summarizer splits every text of a story into sentences, drops chrome by rule
(:func:`feedletter.boilerplate.is_boilerplate`), scores sentences by centrality in a TF-IDF
similarity graph (TextRank) combined with a position prior, closeness to the title and how many
particulars (names, numbers, dates) a sentence gives, with a penalty for the writer talking to the
reader ("if you live near…"). It then picks the best sentences while skipping any that repeat one
already chosen, in words or in facts: two sites' tellings of the opening share few rare words but
the same names, places and dates — which is how five sites' tellings of a story collapse into one
summary. Output is deterministic for a given input.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from feedletter.boilerplate import is_boilerplate
from feedletter.dedupe import words

__all__ = ["SUMMARIZER_VERSION", "ExtractiveSummarizer", "Summarizer", "split_sentences", "summarize",
           "truncate_words"]

def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Bump whenever output for the same input may change: the store caches summaries under it.
SUMMARIZER_VERSION = "extractive-4"

STOPWORDS = _wordset("""
a about above after again against all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further had has
have having he her here hers herself him himself his how i if in into is it its itself just me more
most my myself no nor not now of off on once only or other our ours ourselves out over own same she
should so some such than that the their theirs them themselves then there these they this those
through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself said says say told new one two also its it's according
""")

_ABBREVIATIONS = _wordset("""
mr mrs ms dr prof sr jr st mt vs etc inc ltd co corp gov sen rep gen col lt sgt capt no fig approx
dept est jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun u.s u.k e.g i.e
a.m p.m ph.d
""")

# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) before whitespace and a
# likely sentence start; whether the dot really ends a sentence is decided in split_sentences.
_BOUNDARY = re.compile(r"(?<=[.!?])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")
_LAST_TOKEN = re.compile(r"(\S+)$")
_TERMINAL = (".", "!", "?", ":", "\"", "”", "’", ")")
_WRAP_MIN = 40

# Particulars of a sentence: capitalized words (names, places, days, months) and numbers.
_CAPITALIZED = re.compile(r"(?<![\w'’-])[A-Z][\w'’-]*")
_NUMERAL = re.compile(r"(?<![\w.,])\d+(?:[.,]\d+)*")
_LEADING = re.compile(r"^[\W_]*")
# Speech inside quotes belongs to a source, not to the writer's voice.
_QUOTED = re.compile(r"[\"“][^\"“”]*[\"”]")
# The writer addressing the reader or speaking as "we": blog chatter, not reporting. Lower-case
# "us" only, so that "the US" is not taken for it.
_CHATTER = re.compile(r"\b(?:[Yy]ou(?:'(?:re|ll|ve|d))?|[Yy]our(?:s|self)?|[Ww]e(?:'(?:re|ll|ve|d))?|us|"
                      r"[Oo]urs?|[Ll]et's)\b|[?!]\s*$|^(?:Good (?:morning|evening)|Hello|Hi)\b")


class Summarizer(Protocol):
    """Anything that turns a story (a title and its texts) into a short summary."""

    name: str
    version: str

    def summarize(self, title: str, texts: Sequence[str], *, sentences: int = 3,
                  max_chars: int = 600) -> str: ...


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; abbreviations, initials and decimals do not end a sentence.

    Lines are kept apart (a heading or a chrome line is not part of the next sentence) except
    where a long line stops mid-sentence, which is hard wrapping.
    """
    out: list[str] = []
    for block in _blocks(text):
        start = 0
        pending = ""
        for m in _BOUNDARY.finditer(block):
            piece = block[start:m.start()]
            start = m.end()
            if _ends_with_abbreviation(piece):
                pending += piece + " "
                continue
            out.append(pending + piece)
            pending = ""
        out.append(pending + block[start:])
    return [s.strip() for s in out if s.strip()]


def _blocks(text: str, *, drop_boilerplate: bool = False) -> list[str]:
    blocks: list[str] = []
    joining = False
    for raw in text.splitlines():
        line = " ".join(raw.split())
        if not line or (drop_boilerplate and is_boilerplate(line)):
            joining = joining and bool(line)
            continue
        if joining:
            blocks[-1] += " " + line
        else:
            blocks.append(line)
        joining = len(line) >= _WRAP_MIN and not line.endswith(_TERMINAL)
    return blocks


def _ends_with_abbreviation(piece: str) -> bool:
    m = _LAST_TOKEN.search(piece)
    if not m:
        return False
    token = m.group(1).rstrip(".").lstrip("(\"'“‘").lower()
    if piece.endswith(("!", "?")):
        return False
    # A lone capital ("J. R. R. Tolkien") is an initial, not a sentence end.
    return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha())


def truncate_words(text: str, max_chars: int) -> str:
    """``text`` cut to at most ``max_chars`` characters at a word boundary, with an ellipsis."""
    if len(text) <= max_chars:
        return text
    if max_chars <= 1:
        return ""
    cut = text[:max_chars - 1]
    if " " in cut and not text[max_chars - 1].isspace():
        cut = cut[:cut.rfind(" ")]
    return cut.rstrip(" ,;:-–—") + "…"


@dataclass(frozen=True)
class _Sentence:
    text: str
    doc: int
    pos: int
    rel: float  # position within its text, 0 = first
    terms: Counter[str]
    facts: frozenset[str] = frozenset()
    chatty: bool = False


def _capitalized(sentence: str) -> list[tuple[str, bool]]:
    """Capitalized words of ``sentence``, lower-cased, each with whether it opens the sentence."""
    lead = _LEADING.match(sentence)
    start = lead.end() if lead else 0
    out = []
    for m in _CAPITALIZED.finditer(sentence):
        w = m.group(0).replace("’", "'").lower()
        out.append((w[:-2] if w.endswith("'s") else w, m.start() == start))
    return out


def _facts(sentence: str, proper: frozenset[str]) -> frozenset[str]:
    """Names, places, dates and numbers ``sentence`` states.

    A capitalized word opening the sentence counts only when the story also capitalizes it
    elsewhere (``proper``): "Residents met…" names nobody, "Okafor said…" does.
    """
    out = {w for w, first in _capitalized(sentence) if (not first or w in proper) and w not in STOPWORDS}
    out.update(n.replace(",", "") for n in _NUMERAL.findall(sentence))
    return frozenset(out)


def _is_chatty(sentence: str) -> bool:
    return bool(_CHATTER.search(_QUOTED.sub("", sentence)))


def _terms(text: str) -> Counter[str]:
    # "Omur's free kick" and "Omur curled" are about the same man.
    bare = (w[:-2] if w.endswith("'s") else w for w in words(text))
    return Counter(w for w in bare if w not in STOPWORDS and len(w) > 1)


def _cosine(a: dict[str, float], b: dict[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    dot = sum(v * b[k] for k, v in a.items() if k in b)
    if not dot:
        return 0.0
    na = math.sqrt(sum(v * v for v in a.values()))
    nb = math.sqrt(sum(v * v for v in b.values()))
    return dot / (na * nb)


def _textrank(sim: list[list[float]], damping: float = 0.85, rounds: int = 30) -> list[float]:
    n = len(sim)
    out_weight = [sum(row) for row in sim]
    rank = [1.0 / n] * n
    for _ in range(rounds):
        new = [(1 - damping) / n] * n
        for i in range(n):
            if out_weight[i]:
                share = damping * rank[i] / out_weight[i]
                for j, w in enumerate(sim[i]):
                    if w:
                        new[j] += share * w
            else:
                # A sentence linked to nothing spreads its rank evenly rather than losing it.
                for j in range(n):
                    new[j] += damping * rank[i] / n
        rank = new
    return rank


class ExtractiveSummarizer:
    """Offline, deterministic summaries made of a story's own sentences."""

    name = "extractive"
    version = SUMMARIZER_VERSION

    # Weights chosen on bench/data/stories/events.txt and checked on the held-out set there.
    def __init__(self, *, redundancy: float = 0.5, coverage: float = 0.5, min_words: int = 5,
                 max_sentences_per_text: int = 40, position_weight: float = 0.2, title_weight: float = 0.1,
                 lead_weight: float = 0.3, fact_overlap: float | None = 0.5, fact_weight: float = 0.1,
                 chatter_penalty: float = 0.3, min_facts: int = 2) -> None:
        # fact_overlap=None, fact_weight=0, chatter_penalty=0 and min_facts=0 give the previous
        # version's output ("extractive-3"), which the eval prints side by side with this one.
        self.fact_overlap = fact_overlap
        self.fact_weight = fact_weight
        self.chatter_penalty = chatter_penalty
        self.min_facts = min_facts
        self.redundancy = redundancy
        self.coverage = coverage
        self.lead_weight = lead_weight
        self.min_words = min_words
        self.max_sentences_per_text = max_sentences_per_text
        self.position_weight = position_weight
        self.title_weight = title_weight

    def candidates(self, texts: Sequence[str]) -> list[_Sentence]:
        """The sentences worth considering: content, long enough, from the head of each text."""
        found: list[_Sentence] = []
        kept_texts: list[list[str]] = []
        for text in texts:
            # Chrome goes line by line first, so that a wrapped sentence is not glued to it.
            kept = "\n".join(_blocks(text, drop_boilerplate=True))
            sents = [s for s in split_sentences(kept) if not is_boilerplate(s)]
            kept_texts.append([s for s in sents if len(s.split()) >= self.min_words][:self.max_sentences_per_text])
        proper = frozenset(w for sents in kept_texts for s in sents for w, first in _capitalized(s) if not first)
        for d, sents in enumerate(kept_texts):
            for p, s in enumerate(sents):
                terms = _terms(s)
                if terms:
                    found.append(_Sentence(s, d, p, p / max(len(sents), 1), terms, _facts(s, proper),
                                           _is_chatty(s)))
        return found

    def summarize(self, title: str, texts: Sequence[str], *, sentences: int = 3,
                  max_chars: int = 600) -> str:
        """At most ``sentences`` sentences and ``max_chars`` characters drawn from ``texts``.

        ``texts[0]`` should be the story's lead article: its sentences get a small bonus, so the
        summary reads mostly as one voice, with other sites adding what the lead lacks.
        """
        cands = self.candidates(texts)
        if not cands or sentences <= 0 or max_chars <= 0:
            return ""
        df: Counter[str] = Counter()
        for c in cands:
            df.update(c.terms.keys())
        n = len(cands)
        vecs = [{t: (1 + math.log(k)) * math.log(1 + n / df[t]) for t, k in c.terms.items()} for c in cands]
        title_vec = {t: math.log(1 + n / df.get(t, 1)) for t in _terms(title)}
        sim = [[0.0] * n for _ in range(n)]
        for i in range(n):
            for j in range(i + 1, n):
                s = _cosine(vecs[i], vecs[j])
                if s:
                    sim[i][j] = sim[j][i] = s
        rank = _textrank(sim)
        top = max(rank)
        scores = [
            (1 - self.position_weight - self.title_weight) * rank[i] / top
            + self.position_weight / (1 + 2 * c.pos)
            + self.title_weight * (_cosine(vecs[i], title_vec) if title_vec else 0.0)
            + (self.lead_weight if c.doc == 0 else 0.0)
            # Particulars make a sentence worth its room; the first few count most.
            + self.fact_weight * len(c.facts) / (len(c.facts) + 3)
            - (self.chatter_penalty if c.chatty else 0.0)
            for i, c in enumerate(cands)
        ]
        order = sorted(range(n), key=lambda i: (-scores[i], cands[i].doc, cands[i].pos))
        # Later sentences must give particulars, unless the story has too few such sentences
        # (an essay without names or numbers still gets a full summary).
        min_facts = self.min_facts if sum(len(c.facts) >= self.min_facts for c in cands) >= sentences else 0
        chosen: list[int] = []
        covered: set[str] = set()
        used = 0
        for i in order:
            if len(chosen) >= sentences:
                break
            # Redundant: too like one chosen sentence, or mostly facts the chosen ones already
            # give (another site's wording of the same point).
            if any(sim[i][j] >= self.redundancy for j in chosen):
                continue
            weight = sum(vecs[i].values())
            if covered and sum(v for t, v in vecs[i].items() if t in covered) >= self.coverage * weight:
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
            covered.update(vecs[i])
            used += extra
        if not chosen:
            return truncate_words(cands[order[0]].text, max_chars)
        # Read like an article: the best text's sentences in their order, then the others.
        first_doc = cands[chosen[0]].doc
        chosen.sort(key=lambda i: (cands[i].doc != first_doc, cands[i].rel, cands[i].doc))
        return " ".join(cands[i].text for i in chosen)


def _same_facts(a: frozenset[str], b: frozenset[str], share: float) -> bool:
    """Whether two sentences state the same fact: at least two particulars in common, making up
    ``share`` of the sparser sentence's particulars."""
    common = len(a & b)
    return common >= 2 and common >= share * min(len(a), len(b))


_DEFAULT = ExtractiveSummarizer()


def summarize(title: str, texts: Sequence[str], *, sentences: int = 3, max_chars: int = 600) -> str:
    """Summarize a story (lead article's text first) with the default extractive summarizer."""
    return _DEFAULT.summarize(title, texts, sentences=sentences, max_chars=max_chars)
