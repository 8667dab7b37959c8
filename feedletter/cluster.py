"""Same-story clustering: articles from different sites telling one story become one group.

Two tellings of a story share its particulars — names, places, numbers — far more than two
stories on one topic do (two football matches share the league, not the score and the scorers).
So each document becomes a weighted set of features: capitalized names (weighted up), numbers
(weighted up) and content words, each by inverse document frequency. Pairs are only compared when
they share rare features (blocking through an inverted index with capped posting lists, so the
work grows near-linearly), and only within the time window. Groups grow by average-link merging in
order of similarity, so one ambiguous article cannot chain two stories together.
"""

from __future__ import annotations

import json
import math
import operator
import re
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain

from feedletter.dedupe import document_order, near_duplicates, paused_gc
from feedletter.models import Document
from feedletter.summarize import STOPWORDS

__all__ = ["Assignment", "cluster_documents", "document_features", "features", "features_json", "pick_lead",
           "story_members"]


@dataclass(frozen=True)
class Assignment:
    """Where one document landed: its story (the lead's id) and, for copies, the original."""

    id: str
    cluster: str
    duplicate_of: str | None


# A run of capitalized words: each word is a name, and so is the run ("Daniel James").
# Both patterns open with a character class and check what precedes it with a lookbehind after
# it, rather than with \b or a lookbehind first: then the regex engine skips ahead to candidate
# characters instead of trying every position (names twice, numbers half again as fast).
_NAME_RE = re.compile(r"[A-Z](?<!\w[A-Z])(?:[\w'’.-]*\w(?:[ \t]+[A-Z][\w'’.-]*\w)*|\b)")
_NUMBER_RE = re.compile(r"[$€£\d](?<![\w.,][$€£\d])(?:(?<=[$€£])\d+|(?<=\d)\d*)(?:[.,:]\d+)*"
                        r"(?:\s?(?:%|percent|bn|m|km|kg))?(?:-\d+)?(?![\w])")
_WORD_RE = re.compile(r"(?<![\w'’-])[a-z][a-z'’-]{3,}(?![\w'’-])")
_NAME_WEIGHT = 2.0
_NUMBER_WEIGHT = 1.5
_WORD_WEIGHT = 1.0
_MAX_WORDS = 400
_STEM = operator.itemgetter(slice(0, 6))


def features(title: str, text: str) -> set[str]:
    """The comparable particulars of a story: names (``e:``), numbers (``n:``) and words (``w:``)."""
    body = " ".join(text.split()[:_MAX_WORDS])
    both = title + " . " + body
    names: set[str] = set()
    for run in set(_NAME_RE.findall(both)):
        parts = run.replace("’", "'").lower().split()
        names.update(parts)
        while parts and parts[0] in STOPWORDS:
            parts.pop(0)  # "The Daniel James" at a sentence start is still Daniel James
        if len(parts) > 1:
            # The whole name too: "Daniel James" is far rarer than "Daniel" or "James" alone.
            names.add(" ".join(parts))
    names = {n[:-2] if n.endswith("'s") else n for n in names}
    out = {"e:" + n for n in names if len(n) > 1 and n not in STOPWORDS}
    out.update("n:" + m.replace(",", "").replace(" ", "").replace("percent", "%")
               for m in set(_NUMBER_RE.findall(both)))
    # A crude stem: "launches", "launched" and "launching" meet at six letters.
    # (map and set difference rather than a generator: this runs for every word of every article)
    out.update(map("w:".__add__, map(_STEM, set(_WORD_RE.findall(both.lower())) - STOPWORDS)))
    return out


def _weight(feature: str) -> float:
    kind = feature[0]
    return _NAME_WEIGHT if kind == "e" else _NUMBER_WEIGHT if kind == "n" else _WORD_WEIGHT


def pick_lead(docs: Sequence[Document], priority: Mapping[str, int] | None = None) -> Document:
    """The document that fronts a story: highest source priority, then fullest text, then earliest."""
    if not docs:
        raise ValueError("pick_lead needs at least one document")
    prio = priority or {}
    return min(docs, key=lambda d: (-prio.get(d.source or "", 0), -len(d.text), document_order(d)))


def cluster_documents(docs: Sequence[Document], *, window: timedelta = timedelta(days=7),
                      threshold: float = 0.2, duplicate_threshold: float = 0.7,
                      priority: Mapping[str, int] | None = None, max_posting: int = 100,
                      probe_features: int = 8,
                      signatures: Mapping[str, Sequence[int]] | None = None,
                      known_features: Mapping[str, set[str]] | None = None) -> list[Assignment]:
    """Group ``docs`` into stories; one :class:`Assignment` per document, in input order.

    ``threshold`` is the weighted cosine similarity of feature sets two tellings must reach.
    Candidates are documents sharing at least two of a document's ``probe_features`` rarest
    features, counting only features held by at most ``max_posting`` documents. ``signatures``
    (stored :func:`feedletter.dedupe.signature` values by id) spare re-hashing known texts, and
    ``known_features`` (stored :func:`document_features` by id) re-reading them.
    """
    with paused_gc():
        dups = near_duplicates(docs, threshold=duplicate_threshold, signatures=signatures)
        return _cluster(docs, dups, window, threshold, priority, max_posting, probe_features, known_features or {})


def document_features(doc: Document) -> set[str]:
    """The features :func:`cluster_documents` compares ``doc`` by."""
    return features(doc.title, doc.text)


def features_json(title: str, text: str) -> str:
    """:func:`features` as stored: a JSON list, sorted so that equal sets are equal strings."""
    return json.dumps(sorted(features(title, text)), ensure_ascii=False)


def _cluster(docs: Sequence[Document], dups: dict[str, str], window: timedelta, threshold: float,
             priority: Mapping[str, int] | None, max_posting: int, probe_features: int,
             known: Mapping[str, set[str]]) -> list[Assignment]:
    feats = [known[d.id] if d.id in known else document_features(d) for d in docs]
    df: Counter[str] = Counter()
    for doc_feats in feats:
        df.update(doc_feats)
    edges = _similar_pairs(docs, feats, df, window=window, threshold=threshold,
                           max_posting=max_posting, probe_features=probe_features)
    index = {d.id: i for i, d in enumerate(docs)}
    for copy, original in dups.items():
        i, j = sorted((index[copy], index[original]))
        edges[(i, j)] = 2.0  # copies always join their original first
    groups = _average_link(docs, edges, threshold, window)

    members_of: dict[int, list[Document]] = defaultdict(list)
    for i, d in enumerate(docs):
        members_of[groups[i]].append(d)
    leads: dict[int, str] = {}
    for g, members in members_of.items():
        # A copy never fronts a story while its original is there.
        originals = [m for m in members if m.id not in dups] or members
        leads[g] = pick_lead(originals, priority).id
    return [Assignment(d.id, leads[groups[i]], dups.get(d.id)) for i, d in enumerate(docs)]


def _similar_pairs(docs: Sequence[Document], feats: Sequence[set[str]], df: Counter[str], *,
                   window: timedelta, threshold: float, max_posting: int,
                   probe_features: int) -> dict[tuple[int, int], float]:
    """Pairs (i < j) within the window whose cosine reaches ``threshold``, found by blocking."""
    # Features are present or absent, so a vector is its features' weights and a dot product is
    # the sum of squared weights of the shared features.
    n = len(feats)
    square = {f: (_weight(f) * math.log(1 + n / c)) ** 2 for f, c in df.items()}
    norms = [math.sqrt(sum(map(square.__getitem__, fs))) or 1.0 for fs in feats]
    probes: list[list[str]] = []
    # Features shared by a few documents, tested once each rather than once per holder.
    sharable = {f for f, c in df.items() if 1 < c <= max_posting}
    for fs in feats:
        # Probe with the rarest shared features; names and numbers carry a story's identity.
        # Sorting by name first keeps ties, and so the result, independent of set order.
        ranked = sorted(fs & sharable)
        ranked.sort(key=df.__getitem__)
        probes.append(ranked[:probe_features])
    # Postings list every holder of a probed feature, not only those that probe with it: a short
    # article naming "Conway" must find the long one whose rarest features are first names.
    probed = set(chain.from_iterable(probes))
    postings: dict[str, list[int]] = defaultdict(list)
    for i, fs in enumerate(feats):
        for f in probed.intersection(fs):
            postings[f].append(i)

    edges: dict[tuple[int, int], float] = {}
    checked: set[tuple[int, int]] = set()
    for i, probe in enumerate(probes):
        shared = Counter(chain.from_iterable(postings[f] for f in probe))
        mine = feats[i]
        for j, k in shared.items():
            if k < 2 or j == i:
                continue
            pair = (i, j) if i < j else (j, i)
            if pair in checked:
                continue
            checked.add(pair)
            if not _within(docs[i], docs[j], window):
                continue
            s = sum(map(square.__getitem__, mine & feats[j])) / (norms[i] * norms[j])
            if s >= threshold:
                edges[pair] = s
    return edges


def story_members(docs: Sequence[Document], assignments: Sequence[Assignment]) -> dict[str, list[Document]]:
    """Each story's documents by cluster label: the lead first, then the others as published.

    Copies (``duplicate_of`` set) are left out: they are the same article, not another site's
    telling, so they belong in the original's list of carriers rather than in "also covered by".
    """
    by_id = {d.id: d for d in docs}
    out: dict[str, list[Document]] = {}
    for a in assignments:
        if a.duplicate_of is None and a.id in by_id:
            out.setdefault(a.cluster, []).append(by_id[a.id])
    for label, members in out.items():
        members.sort(key=lambda d: (d.id != label, document_order(d)))
    return out


def _within(a: Document, b: Document, window: timedelta) -> bool:
    if a.published is None or b.published is None:
        return True
    return abs(a.published - b.published) <= window


def _average_link(docs: Sequence[Document], edges: dict[tuple[int, int], float], threshold: float,
                  window: timedelta) -> list[int]:
    n = len(docs)
    parent = list(range(n))
    members: dict[int, list[int]] = {i: [i] for i in range(n)}
    span: dict[int, _Span] = {i: (docs[i].published, docs[i].published) for i in range(n)}
    adjacency: dict[int, dict[int, float]] = defaultdict(dict)
    for (i, j), s in edges.items():
        adjacency[i][j] = s
        adjacency[j][i] = s

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for (i, j), s in sorted(edges.items(), key=lambda e: (-e[1], e[0])):
        ri, rj = find(i), find(j)
        if ri == rj:
            continue
        small, big = sorted((ri, rj), key=lambda r: len(members[r]))
        big_set = set(members[big])
        total = sum(adjacency[m].get(o, 0.0) for m in members[small] for o in adjacency[m] if o in big_set)
        pairs = len(members[small]) * len(members[big])
        if s < 2.0 and total / pairs < threshold * 0.5:
            continue
        merged_span = _merge_span(span[ri], span[rj])
        lo, hi = merged_span
        if s < 2.0 and lo is not None and hi is not None and hi - lo > window:
            continue
        root, child = min(ri, rj), max(ri, rj)
        parent[child] = root
        members[root].extend(members.pop(child))
        span[root] = merged_span
    return [find(i) for i in range(n)]


_Span = tuple[datetime | None, datetime | None]


def _merge_span(a: _Span, b: _Span) -> _Span:
    dates = [d for d in (*a, *b) if d is not None]
    if not dates:
        return (None, None)
    return (min(dates), max(dates))
