"""What a document is compared by: counts of its names (``e:``), numbers (``n:``) and content words (``w:``).

Computed once per article (at ingest, in the parse workers) and stored as JSON; grouping and
subjects (:mod:`feedletter.stories.cluster`) weigh them.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence

from feedletter.models import Document
from feedletter.stories.summarize import STOPWORDS

__all__ = ["document_features", "feature_counts", "features", "features_json", "features_json_of_counts",
           "parse_features", "parse_many_features"]

# A run of capitalized words: each word is a name, and so is the run ("Daniel James").
# Both patterns open with a character class and check what precedes it with a lookbehind after
# it, rather than with \b or a lookbehind first: then the regex engine skips ahead to candidate
# characters instead of trying every position (names twice, numbers half again as fast).
_NAME_RE = re.compile(r"[A-Z](?<!\w[A-Z])(?:[\w'’.-]*\w(?:[ \t]+[A-Z][\w'’.-]*\w)*|\b)")

_NUMBER_RE = re.compile(r"[$€£\d](?<![\w.,][$€£\d])(?:(?<=[$€£])\d+|(?<=\d)\d*)(?:[.,:]\d+)*"
                        r"(?:\s?(?:%|percent|bn|m|km|kg))?(?:-\d+)?(?![\w])")


_WORD_RE = re.compile(r"(?<![\w'’-])[a-z][a-z'’-]{3,}(?![\w'’-])")

# The same words, faster: opened by a letter, with the lookbehind after it (see above). Matching
# each run of [\w'’-] whole instead, with the word as a group, took a fifth longer.
_WORD_FAST_RE = re.compile(r"[a-z](?<![\w'’-][a-z])[a-z'’-]{3,}(?![\w'’-])")

# Enough for a long article's body; the rest of a very long page adds cost more than evidence.
_MAX_WORDS = 1000


def feature_counts(title: str, text: str) -> dict[str, int]:
    """How often each comparable particular occurs: names (``e:``), numbers (``n:``), words (``w:``).

    Over the title and the first :data:`_MAX_WORDS` words of the text.
    """
    body = " ".join(text.split()[:_MAX_WORDS])
    return _counts(title + " . " + body)


def _counts(both: str) -> dict[str, int]:
    names: dict[str, int] = {}
    for run, k in Counter(_NAME_RE.findall(both)).items():
        parts = run.replace("’", "'").lower().split()
        if len(parts) == 1:  # most runs are one word: the short way
            p = parts[0]
            p = p[:-2] if p.endswith("'s") else p
            names[p] = names.get(p, 0) + k
            continue
        for p in parts:
            p = p[:-2] if p.endswith("'s") else p
            names[p] = names.get(p, 0) + k
        while parts and parts[0] in STOPWORDS:
            parts.pop(0)  # "The Daniel James" at a sentence start is still Daniel James
        if len(parts) > 1:
            # The whole name too: "Daniel James" is far rarer than "Daniel" or "James" alone.
            whole = " ".join(parts)
            whole = whole[:-2] if whole.endswith("'s") else whole
            names[whole] = names.get(whole, 0) + k
    out = {"e:" + n: k for n, k in names.items() if len(n) > 1 and n not in STOPWORDS}
    for m, k in Counter(_NUMBER_RE.findall(both)).items():
        key = "n:" + m.replace(",", "").replace(" ", "").replace("percent", "%")
        out[key] = out.get(key, 0) + k
    words = Counter(_WORD_FAST_RE.findall(both.lower()))
    for w in STOPWORDS.intersection(words):
        del words[w]
    # The kinds' prefixes keep keys apart, so a plain dict update (in C) adds the words.
    out.update(zip(map("w:".__add__, words.keys()), words.values()))  # noqa: B905 - one dict's keys and values
    return out


def features(title: str, text: str) -> set[str]:
    """The features a document is compared by (those :func:`feature_counts` counts)."""
    return set(feature_counts(title, text))


def document_features(doc: Document) -> dict[str, int]:
    """The feature counts :func:`cluster_documents` compares ``doc`` by."""
    return feature_counts(doc.title, doc.text)


def features_json(title: str, text: str) -> str:
    """:func:`feature_counts` as stored: a JSON object, keys sorted so that equal counts are equal strings."""
    return features_json_of_counts(feature_counts(title, text))


def features_json_of_counts(counts: Mapping[str, int]) -> str:
    """:func:`features_json` of the counts :func:`feature_counts` gave."""
    return json.dumps(counts, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def parse_features(stored: str) -> dict[str, int] | None:
    """Stored :func:`features_json` back as counts; None for the first format (a list), to compute again."""
    return _counts_of(json.loads(stored))


def parse_many_features(stored: Sequence[str]) -> list[dict[str, int] | None]:
    """:func:`parse_features` of each stored value, all of them in one call.

    They are read as one JSON array: its parser keeps a single string for each word met in any of
    them (10k documents' counts took 61 MB read one by one, 16 MB so), in half the time of reading
    them one by one and sharing the words after.
    """
    values = json.loads("[" + ",".join(stored) + "]") if stored else []
    if len(values) != len(stored):  # a damaged value that reads as several: each on its own, to fail on it
        values = [json.loads(value) for value in stored]
    return [_counts_of(value) for value in values]


def _counts_of(value: object) -> dict[str, int] | None:
    return value if isinstance(value, dict) else None
