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
import json
import math
import operator
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import chain

from feedletter.models import Document
from feedletter.stories.dedupe import document_order, near_duplicates, paused_gc
from feedletter.stories.summarize import STOPWORDS

__all__ = ["Assignment", "cluster_documents", "document_features", "feature_counts", "features", "features_json",
           "features_json_of_counts",
           "pair_similarities", "parse_features", "pick_lead", "story_members", "subjects"]

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


# A run of capitalized words: each word is a name, and so is the run ("Daniel James").
# Both patterns open with a character class and check what precedes it with a lookbehind after
# it, rather than with \b or a lookbehind first: then the regex engine skips ahead to candidate
# characters instead of trying every position (names twice, numbers half again as fast).
_NAME_RE = re.compile(r"[A-Z](?<!\w[A-Z])(?:[\w'’.-]*\w(?:[ \t]+[A-Z][\w'’.-]*\w)*|\b)")
_NUMBER_RE = re.compile(r"[$€£\d](?<![\w.,][$€£\d])(?:(?<=[$€£])\d+|(?<=\d)\d*)(?:[.,:]\d+)*"
                        r"(?:\s?(?:%|percent|bn|m|km|kg))?(?:-\d+)?(?![\w])")
_WORD_RE = re.compile(r"(?<![\w'’-])[a-z][a-z'’-]{3,}(?![\w'’-])")
# The same words, faster: each run of [\w'’-] is matched whole, as group 1 when it is such a word
# and as an empty group 1 otherwise, rather than the lookbehind being tried at every character.
_WORD_RUN_RE = re.compile(r"([a-z][a-z'’-]{3,})(?![\w'’-])|[\w'’-]+")
# Kind weights on top of idf. Names are not boosted for stories: each name is a word feature too.
_NAME_WEIGHT = 1.0
_NUMBER_WEIGHT = 1.5
_WORD_WEIGHT = 1.0
_SUBJECT_NAME_WEIGHT = 2.0
# Enough for a long article's body; the rest of a very long page adds cost more than evidence.
_MAX_WORDS = 1000
# Stored features are counts by feature ({feature: count}); the first format was a list (a set).
_Counts = Mapping[str, float]
_Vector = dict[str, float]


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
    words = Counter(filter(None, _WORD_RUN_RE.findall(both.lower())))
    for w in STOPWORDS.intersection(words):
        del words[w]
    # The kinds' prefixes keep keys apart, so a plain dict update (in C) adds the words.
    out.update(zip(map("w:".__add__, words.keys()), words.values()))  # noqa: B905 - one dict's keys and values
    return out


def features(title: str, text: str) -> set[str]:
    """The features a document is compared by (those :func:`feature_counts` counts)."""
    return set(feature_counts(title, text))


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
    :func:`feedletter.stories.dedupe.signature` values by id) spare re-hashing known texts, and
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
    value = json.loads(stored)
    return value if isinstance(value, dict) else None


def _as_counts(value: Collection[str] | _Counts) -> _Counts:
    return value if isinstance(value, Mapping) else dict.fromkeys(value, 1)


def _vectors(counts: Sequence[_Counts]) -> tuple[list[_Vector], Counter[str]]:
    """Unit TF-IDF vectors (sublinear tf, kind weights) and the document frequencies they used."""
    df: Counter[str] = Counter()
    for c in counts:
        df.update(c.keys())
    n = len(counts)
    idf = {f: _weight(f) * _idf(n, k) for f, k in df.items()}
    out = []
    for c in counts:
        v = {f: _tf(k) * idf[f] for f, k in c.items() if k > 0}
        norm = math.hypot(*v.values()) or 1.0  # hypot of many values: one C call
        out.append({f: x / norm for f, x in v.items()})
    return out, df


def _tf(k: float, _cache: dict[float, float] = {}) -> float:  # noqa: B006 - a memo of 1 + log k
    # Counts are small integers, repeated across millions of features: look the log up.
    try:
        return _cache[k]
    except KeyError:
        value = _cache[k] = 1 + math.log(k)
        return value


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
    spans: list[_Span] = [(d.published, d.published) for d in docs]
    sources = [{d.source: family[i]} if d.source else {} for i, d in enumerate(docs)]
    groups = _average_link(n, edges, threshold, forced, spans=spans, window=window, sources=sources)

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


_Span = tuple[datetime | None, datetime | None]


def _average_link(n: int, edges: Mapping[tuple[int, int], float], threshold: float,
                  forced: Iterable[tuple[int, int]], *, spans: list[_Span] | None = None,
                  window: timedelta | None = None, sources: list[dict[str, int]] | None = None) -> list[int]:
    """Average-linkage groups over sparse similarities (a missing pair counts 0), each group's root.

    ``forced`` pairs (near-duplicates) are joined first whatever else holds. A merge is refused
    when the joined group would span more than ``window`` or hold two documents of one source
    that are not of one family of copies (``sources``: per document, source -> family). When one
    document of the smaller group alone stands in the way, it leaves that group instead, and the
    rest may merge: otherwise a story told twice by one site ended up split in two halves, each
    grown around one of the site's posts (a tenth of same-story pairs lost on ECB+).
    """
    owner = list(range(n))  # each document's group, named by its lowest member
    members = [[i] for i in range(n)]
    version = [0] * n  # bumped whenever a group changes, which makes its queued entries stale
    doc_spans = list(spans) if spans is not None else None
    doc_sources = [dict(x) for x in sources] if sources is not None else None
    in_family: set[int] = set()
    # A document sent out of a group never rejoins its former members (else it would come back
    # and be sent out again, forever).
    exile: dict[int, set[int]] = {}

    def join(a: int, b: int) -> int:
        root, child = min(a, b), max(a, b)
        for m in members[child]:
            owner[m] = root
        members[root].extend(members[child])
        members[child] = []
        version[root] += 1
        version[child] += 1
        if spans is not None:
            spans[root] = _merge_span(spans[root], spans[child])
        if sources is not None:
            sources[root].update(sources[child])
        return root

    for i, j in forced:
        in_family.update((i, j))
        if owner[i] != owner[j]:
            join(owner[i], owner[j])
    adjacency: dict[int, dict[int, float]] = defaultdict(dict)
    # Sums of similarities between groups, by root.
    sums: dict[int, dict[int, float]] = defaultdict(dict)
    for (i, j), s in edges.items():
        adjacency[i][j] = s
        adjacency[j][i] = s
        ri, rj = owner[i], owner[j]
        if ri != rj:
            sums[ri][rj] = sums[ri].get(rj, 0.0) + s
            sums[rj][ri] = sums[rj].get(ri, 0.0) + s

    def size(r: int) -> int:
        return len(members[r])

    def entry(a: int, b: int, total: float) -> tuple[float, int, int, int, int]:
        x, y = min(a, b), max(a, b)
        return (-total / (size(a) * size(b)), x, y, version[x], version[y])

    heap = [entry(a, b, total) for a, near in sums.items() for b, total in near.items() if a < b]
    heapq.heapify(heap)

    def detachable(a: int, b: int) -> int | None:
        """The one document of the smaller group whose source conflicts with the other group, if any."""
        if doc_sources is None or sources is None:
            return None
        small, big = (a, b) if size(a) <= size(b) else (b, a)
        if size(small) < 2:
            return None
        theirs = sources[big]
        clash = [m for m in members[small] for src, fam in doc_sources[m].items() if theirs.get(src, fam) != fam]
        if len(clash) != 1 or clash[0] in in_family:
            return None
        return clash[0]

    def detach(x: int) -> None:
        g = owner[x]
        rest = [m for m in members[g] if m != x]
        r = min(rest)
        if r != g:  # x was the group's name: the rest takes its lowest member's
            near = sums.pop(g, {})
            sums[r] = near
            for c in near:
                sums[c][r] = sums[c].pop(g)
        members[r] = rest
        members[x] = [x]
        exile.setdefault(x, set()).update(rest)
        for m in rest:
            owner[m] = r
        owner[x] = x
        version[r] += 1
        version[x] += 1
        if spans is not None and doc_spans is not None:
            span: _Span = (None, None)
            for m in rest:
                span = _merge_span(span, doc_spans[m])
            spans[r], spans[x] = span, doc_spans[x]
        if sources is not None and doc_sources is not None:
            merged: dict[str, int] = {}
            for m in rest:
                merged.update(doc_sources[m])
            sources[r], sources[x] = merged, dict(doc_sources[x])
        sums[x] = {}
        for j, s in adjacency[x].items():
            rj = owner[j]
            if rj != r and rj in sums[r]:  # (absent: a merge of the two was refused, which stands)
                sums[r][rj] -= s
                sums[rj][r] -= s
            sums[x][rj] = sums[x].get(rj, 0.0) + s
            sums[rj][x] = sums[rj].get(x, 0.0) + s
        for root in (r, x):
            for c, total in sums[root].items():
                heapq.heappush(heap, entry(root, c, total))

    def _exiled(a: int, b: int) -> bool:
        return size(a) == 1 and a in exile and not exile[a].isdisjoint(members[b])

    while heap:
        neg, a, b, va, vb = heapq.heappop(heap)
        if -neg < threshold:
            break
        if version[a] != va or version[b] != vb or b not in sums[a]:
            continue  # a group that has changed since: a newer entry stands for it
        if not _within_window(a, b, spans, window) or _exiled(a, b) or _exiled(b, a):
            del sums[a][b], sums[b][a]  # groups only grow, so the refusal stands
            continue
        if not _sources_agree(a, b, sources):
            x = detachable(a, b)
            if x is None:
                del sums[a][b], sums[b][a]
            else:
                detach(x)
            continue
        near_a, near_b = sums.pop(a), sums.pop(b)
        del near_a[b], near_b[a]
        root = join(a, b)
        other = b if root == a else a
        merged = near_a
        for c, s in near_b.items():
            merged[c] = merged.get(c, 0.0) + s
        sums[root] = merged
        for c, s in merged.items():
            near_c = sums[c]
            near_c.pop(other, None)
            near_c[root] = s
            heapq.heappush(heap, entry(root, c, s))
    return owner


def _within_window(a: int, b: int, spans: list[_Span] | None, window: timedelta | None) -> bool:
    if spans is not None and window is not None:
        lo, hi = _merge_span(spans[a], spans[b])
        if lo is not None and hi is not None and hi - lo > window:
            return False
    return True


def _sources_agree(a: int, b: int, sources: list[dict[str, int]] | None) -> bool:
    if sources is not None:
        mine, theirs = sources[a], sources[b]
        if len(mine) > len(theirs):
            mine, theirs = theirs, mine
        # Two documents of one source only share a story when they are copies of one another.
        for source, fam in mine.items():
            if theirs.get(source, fam) != fam:
                return False
    return True


def _merge_span(a: _Span, b: _Span) -> _Span:
    dates = [d for d in (*a, *b) if d is not None]
    if not dates:
        return (None, None)
    return (min(dates), max(dates))
