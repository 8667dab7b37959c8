"""Same-story clustering, and subjects above stories.

Stories: articles from different sites telling one story become one group. Two tellings share the
story's particulars (names, places, numbers) far more than two stories on one topic do (two
football matches share the league, not the score and the scorers). So each document becomes a
TF-IDF vector (sublinear term frequency over the whole text, idf fitted on the documents at hand)
over capitalized names, numbers (weighted up) and content words; a name is also a word, so names
count twice. Two documents' similarity is the cosine. Measured on real news
(``bench/eval_grouping.py``) this beat both the earlier presence-only feature sets and a plain
TF-IDF word baseline; boosting names further, stemming or counting the title again all measured
worse. Pairs are only compared when they share some of their heaviest features (blocking through
an inverted index with capped posting lists, so the work grows near-linearly), and only within the
time window. Groups grow by average linkage, so one ambiguous article cannot chain two stories
together. A merge that would put two different posts of one source in a story is refused: a site
does not tell one story twice, while its unrelated posts share its house vocabulary ("Good
morning" posts, a blog's sign-off). A repost or update (a near-duplicate) still joins, first.

Subjects: stories on one subject (several clinics on one therapy, several matches of a league)
share who and what, not particulars. Stories are grouped further by average linkage over their
documents' cosines, at a far lower threshold, over vectors of names (weighted up) and words only,
and without the same-source rule.
"""

from __future__ import annotations

import heapq
import math
import operator
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from itertools import chain

from feedletter.memo import Memo
from feedletter.models import Document
from feedletter.stories.dedupe import document_order, near_duplicates
from feedletter.stories.features import (
    document_features,
)
from feedletter.stories.linkage import Span, average_link
from feedletter.workers import paused_gc

__all__ = ["Assignment", "cluster_documents", "pair_similarities", "pick_lead", "story_members", "subjects"]

SAME_STORY = 0.24
SAME_SUBJECT = 0.04
# Story pairs are candidates for one subject when two of their documents reach this share of the
# subject threshold in same-story cosine.
_CANDIDATE = 1.0


@dataclass(frozen=True)
class Assignment:
    """Where one document landed: its story (the lead's id), its subject (the cluster label of the
    subject's first story) and, for copies, the original."""

    id: str
    cluster: str
    duplicate_of: str | None
    subject: str = ""


# Kind weights on top of idf. Names are not boosted for stories: each name is a word feature too.
_NAME_WEIGHT = 1.0
_NUMBER_WEIGHT = 1.5
_WORD_WEIGHT = 1.0
_SUBJECT_NAME_WEIGHT = 2.0
# Stored features are counts by feature ({feature: count}); the first format was a list (a set).
_Counts = Mapping[str, float]
_Vector = dict[str, float]


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
                      threshold: float = SAME_STORY, duplicate_threshold: float = 0.7,
                      priority: Mapping[str, int] | None = None, max_posting: int = 100,
                      probe_features: int = 8,
                      signatures: Mapping[str, Sequence[int]] | None = None,
                      known_features: Mapping[str, Collection[str] | _Counts] | None = None,
                      subject_threshold: float = SAME_SUBJECT,
                      duplicates: Mapping[str, str] | None = None) -> list[Assignment]:
    """Group ``docs`` into stories and subjects; one :class:`Assignment` per document, in input order.

    ``threshold`` is the average cosine similarity two groups of tellings must reach to merge;
    ``subject_threshold`` the same for two groups of stories to share a subject. Candidates are
    documents sharing at least two of a document's ``probe_features`` heaviest features, counting
    only features held by at most ``max_posting`` documents. ``signatures`` (stored
    :func:`feedletter.stories.minhash.signature` values by id) spare re-hashing known texts, and
    ``known_features`` (stored :func:`feature_counts` by id, see :func:`parse_features`) re-reading
    them; a plain set of features (the first stored format) counts each feature once. ``duplicates``
    is :func:`feedletter.stories.dedupe.near_duplicates` of ``docs`` at ``duplicate_threshold`` when the
    caller has it already.
    """
    with paused_gc():
        dups = dict(duplicates) if duplicates is not None else near_duplicates(
            docs, threshold=duplicate_threshold, signatures=signatures)
        return _cluster(docs, dups, window, threshold, priority, max_posting, probe_features, known_features or {},
                        subject_threshold)


def _as_counts(value: Collection[str] | _Counts) -> _Counts:
    return value if isinstance(value, Mapping) else dict.fromkeys(value, 1)


def _vectors(counts: Sequence[_Counts]) -> tuple[list[_Vector], Counter[str]]:
    """Unit TF-IDF vectors (sublinear tf, kind weights) and the document frequencies they used."""
    df: Counter[str] = Counter()
    for c in counts:
        df.update(c.keys())
    n = len(counts)
    idf = {f: _weight(f) * _idf(n, k) for f, k in df.items()}
    tf = _TF
    out = []
    for c in counts:
        v = {f: tf[k] * idf[f] for f, k in c.items() if k > 0}
        norm = math.hypot(*v.values()) or 1.0  # hypot of many values: one C call
        out.append({f: x / norm for f, x in v.items()})
    return out, df


def _tf(k: float) -> float:
    """Sublinear term frequency of a count."""
    return 1 + math.log(k)


# Counts are small integers, repeated across millions of features: looked up, not worked out.
_TF = Memo(_tf)


def _subject_vector(v: _Vector) -> _Vector:
    """A document's unit vector for subjects, from its same-story vector: names up, numbers out.

    A subject is about who and what (a company, a league, a therapy) more than any one story's
    particulars: numbers tell events apart and only dilute it, names carry it. Measured on the
    evaluation sets, this let one threshold serve both broad topics and pairs of like events.
    """
    up = _SUBJECT_NAME_WEIGHT / _NAME_WEIGHT
    out = {f: x * up if f[0] == "e" else x for f, x in v.items() if f[0] != "n"}
    norm = math.hypot(*out.values()) or 1.0
    return {f: x / norm for f, x in out.items()}


def _idf(n: int, k: int) -> float:
    return math.log(1 + n / k)


def _cosine(a: _Vector, b: _Vector) -> float:
    if len(a) > len(b):
        a, b = b, a
    shared = a.keys() & b.keys()
    total: float = sum(map(operator.mul, map(a.__getitem__, shared), map(b.__getitem__, shared)))
    return total


def pair_similarities(docs: Sequence[Document], pairs: Iterable[tuple[str, str]]) -> list[float]:
    """The same-story similarity :func:`cluster_documents` gives each pair of ids, idf fitted on ``docs``."""
    vectors, _ = _vectors([document_features(d) for d in docs])
    index = {d.id: i for i, d in enumerate(docs)}
    return [_cosine(vectors[index[a]], vectors[index[b]]) for a, b in pairs]


def _cluster(docs: Sequence[Document], dups: dict[str, str], window: timedelta, threshold: float,
             priority: Mapping[str, int] | None, max_posting: int, probe_features: int,
             known: Mapping[str, Collection[str] | _Counts], subject_threshold: float) -> list[Assignment]:
    counts = [_as_counts(known[d.id]) if d.id in known else document_features(d) for d in docs]
    vectors, df = _vectors(counts)
    # Edges a little below the threshold are kept too: average linkage needs them, and an edge
    # left out counts as 0.
    edges = _similar_pairs(docs, vectors, df, window=window, floor=min(threshold * 0.5, subject_threshold * _CANDIDATE),
                           max_posting=max_posting, probe_features=probe_features)
    index = {d.id: i for i, d in enumerate(docs)}
    family = list(range(len(docs)))  # documents that are copies of each other share a family
    forced = []
    for copy, original in dups.items():
        i, j = index[copy], index[original]
        family[i] = j
        forced.append((i, j))
    n = len(docs)
    spans: list[Span] = [(d.published, d.published) for d in docs]
    sources = [{d.source: family[i]} if d.source else {} for i, d in enumerate(docs)]
    groups = average_link(n, edges, threshold, forced, spans=spans, window=window, sources=sources)

    members_of: dict[int, list[int]] = defaultdict(list)
    for i in range(n):
        members_of[groups[i]].append(i)
    leads: dict[int, str] = {}
    for g, members in members_of.items():
        # A copy never fronts a story while its original is there.
        originals = [docs[m] for m in members if docs[m].id not in dups] or [docs[m] for m in members]
        leads[g] = pick_lead(originals, priority).id
    order = list(members_of)  # stories in the order of their first document
    position = {g: k for k, g in enumerate(order)}
    rep = _subjects([position[groups[i]] for i in range(n)], len(order), vectors, edges, subject_threshold)
    subject_of = {g: leads[order[rep[k]]] for k, g in enumerate(order)}
    return [Assignment(d.id, leads[groups[i]], dups.get(d.id), subject_of[groups[i]]) for i, d in enumerate(docs)]


def _probes(vectors: Sequence[_Vector], df: Mapping[str, int], max_posting: int,
            probe_features: int) -> list[list[str]]:
    sharable = {f for f, c in df.items() if 1 < c <= max_posting}
    probes: list[list[str]] = []
    for v in vectors:
        # Sorting by name first keeps ties, and so the result, independent of dict order.
        ranked = sorted(sharable.intersection(v))
        # The heaviest (most telling for this document) rather than the rarest: on ECB+ the 8
        # rarest found 1753 of 4797 same-story pairs, the 8 heaviest 4776.
        ranked.sort(key=v.__getitem__, reverse=True)
        probes.append(ranked[:probe_features])
    return probes


def _similar_pairs(docs: Sequence[Document], vectors: Sequence[_Vector], df: Mapping[str, int], *,
                   window: timedelta, floor: float, max_posting: int,
                   probe_features: int) -> dict[tuple[int, int], float]:
    """Pairs (i < j) within the window whose cosine reaches ``floor``, found by blocking."""
    return _blocked_pairs(vectors, _probes(vectors, df, max_posting, probe_features), floor,
                          lambda i, j: _within(docs[i], docs[j], window))


def _blocked_pairs(vectors: Sequence[_Vector], probes: Sequence[Sequence[str]], floor: float,
                   allowed: Callable[[int, int], bool] | None = None) -> dict[tuple[int, int], float]:
    # Postings list every holder of a probed feature, not only those that probe with it: a short
    # article naming "Conway" must find the long one whose heaviest features are others.
    probed = set(chain.from_iterable(probes))
    postings: dict[str, list[int]] = defaultdict(list)
    for i, v in enumerate(vectors):
        for f in probed.intersection(v):
            postings[f].append(i)
    edges: dict[tuple[int, int], float] = {}
    checked: set[tuple[int, int]] = set()
    for i, probe in enumerate(probes):
        shared = Counter(chain.from_iterable(postings[f] for f in probe))
        mine = vectors[i]
        for j, k in shared.items():
            if k < 2 or j == i:
                continue
            pair = (i, j) if i < j else (j, i)
            if pair in checked:
                continue
            checked.add(pair)
            if allowed is not None and not allowed(i, j):
                continue
            s = _cosine(mine, vectors[j])
            if s >= floor:
                edges[pair] = s
    return edges


def subjects(stories: Sequence[Sequence[Document]], *, threshold: float = SAME_SUBJECT, max_posting: int = 100,
             probe_features: int = 8, known_features: Mapping[str, Collection[str] | _Counts] | None = None
             ) -> list[int]:
    """For each story (its documents, lead first), the index of its subject's first story in ``stories``.

    Stories are grouped by average linkage over their documents' TF-IDF cosines (idf fitted on all
    the documents given) at ``threshold``; deterministic for one input.
    """
    known = known_features or {}
    flat = [d for story in stories for d in story]
    story_of = [k for k, story in enumerate(stories) for _ in story]
    with paused_gc():
        counts = [_as_counts(known[d.id]) if d.id in known else document_features(d) for d in flat]
        vectors, df = _vectors(counts)
        probes = _probes(vectors, df, max_posting, probe_features)
        edges = _blocked_pairs(vectors, probes, threshold * _CANDIDATE)
        return _subjects(story_of, len(stories), vectors, edges, threshold)


def _subjects(story_of: Sequence[int], count: int, vectors: Sequence[_Vector],
              edges: Mapping[tuple[int, int], float], threshold: float) -> list[int]:
    """For stories 0..count-1 (``story_of`` gives each document's), the first story of each one's subject.

    Average linkage over documents, starting from the stories: a story's similarity to another is
    the mean of its documents' cosines to theirs, which is exact as the dot product of the two
    sums of unit vectors over the product of sizes, so pairs the blocking never compared are not
    counted as 0. (Comparing normalized centroids instead favoured big stories, smoother than one
    article, and wanted another threshold on every corpus.) Two groups whose mean reaches the
    threshold have some pair of documents that does, so the ``edges`` at or above it are enough
    to find nearly every candidate (``edges`` are same-story cosines, which weigh numbers too,
    hence the margin of :data:`_CANDIDATE`).
    """
    near: list[set[int]] = [set() for _ in range(count)]
    for (i, j), s in edges.items():
        a, b = story_of[i], story_of[j]
        if s >= threshold * _CANDIDATE and a != b:
            near[a].add(b)
            near[b].add(a)
    # Sums only for stories with a candidate: most stories stand alone and cost nothing more.
    sums: list[dict[str, float]] = [{} for _ in range(count)]
    size = [0] * count
    for i, k in enumerate(story_of):
        size[k] += 1
        if near[k]:
            v = _subject_vector(vectors[i])
            if size[k] == 1:
                sums[k] = v
            else:
                total = sums[k]
                for f, x in v.items():
                    total[f] = total.get(f, 0.0) + x
    parent = list(range(count))
    version = [0] * count

    def mean(a: int, b: int) -> float:
        return _dot(sums[a], sums[b]) / (size[a] * size[b])

    heap = [(-mean(a, b), a, b, 0, 0) for a in range(count) for b in sorted(near[a]) if a < b]
    heapq.heapify(heap)
    while heap:
        neg, a, b, va, vb = heapq.heappop(heap)
        if -neg < threshold:
            break
        if parent[a] != a or parent[b] != b or version[a] != va or version[b] != vb:
            continue  # a group has merged or grown since: a newer entry stands for the pair
        # The earlier story stays the root, so a subject's root is its first story.
        big, small = (a, b) if len(sums[a]) >= len(sums[b]) else (b, a)
        total = sums[big]
        for f, x in sums[small].items():
            total[f] = total.get(f, 0.0) + x
        root, child = min(a, b), max(a, b)
        sums[root], sums[child] = total, {}
        size[root] += size[child]
        parent[child] = root
        version[root] += 1
        joined = (near[a] | near[b]) - {a, b}
        near[root], near[child] = joined, set()
        for c in sorted(joined):
            near[c].discard(child)
            near[c].add(root)
            x, y = min(root, c), max(root, c)
            heapq.heappush(heap, (-mean(x, y), x, y, version[x], version[y]))

    def find(k: int) -> int:
        while parent[k] != k:
            k = parent[k]
        return k

    return [find(k) for k in range(count)]


def _dot(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    if len(a) > len(b):
        a, b = b, a
    shared = a.keys() & b.keys()
    total: float = sum(map(operator.mul, map(a.__getitem__, shared), map(b.__getitem__, shared)))
    return total


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


