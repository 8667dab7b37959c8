"""Average-linkage grouping over sparse similarities, with the rules that may refuse a merge.

Shared by stories and subjects (:mod:`feedletter.stories.cluster`): a group grows by average
linkage, so one ambiguous document cannot chain two groups together.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

__all__ = ["Span", "average_link"]

Span = tuple[datetime | None, datetime | None]


def average_link(n: int, edges: Mapping[tuple[int, int], float], threshold: float,
                  forced: Iterable[tuple[int, int]], *, spans: list[Span] | None = None,
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
            span: Span = (None, None)
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


def _within_window(a: int, b: int, spans: list[Span] | None, window: timedelta | None) -> bool:
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


def _merge_span(a: Span, b: Span) -> Span:
    dates = [d for d in (*a, *b) if d is not None]
    if not dates:
        return (None, None)
    return (min(dates), max(dates))
