"""Near-duplicate detection: the same text syndicated with small edits.

Exact duplicates are caught earlier by :func:`feedletter.ingest.identity.entry_key`. What remains are
copies whose header, footer or a paragraph differ. Each text has a MinHash signature of its word
shingles (:mod:`feedletter.stories.minhash`, hashed a whole text at a time in numpy, which keeps
100k documents affordable); LSH banding over the signatures yields candidate pairs.

Similarity is the share of the smaller text's shingles found in the other (the overlap
coefficient), estimated from the MinHash Jaccard and the two set sizes, which the signature
carries in front. Jaccard would punish the copy for its extra header and footer: on a short post a
new footer and one changed paragraph already pull it below 0.8, though every reader would call
it the same article. Texts of very different lengths (a teaser, a digest) are not copies.
"""

from __future__ import annotations

import operator
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from itertools import compress

from feedletter.models import Document
from feedletter.stories.minhash import document_signature, estimate_similarity
from feedletter.workers import paused_gc

__all__ = ["band_rows", "candidate_pairs", "carriers", "document_order", "near_duplicates"]

_FAR_FUTURE = datetime.max.replace(tzinfo=UTC)




def document_order(doc: Document) -> tuple[datetime, tuple[int, int, str]]:
    """Sort key for "which came first": earliest published, undated last, then lowest id."""
    return (doc.published or _FAR_FUTURE, _id_key(doc.id))


def _id_key(doc_id: str) -> tuple[int, int, str]:
    # Numeric ids compare as numbers so that "9" comes before "10".
    return (0, int(doc_id), "") if doc_id.isdigit() else (1, 0, doc_id)


def band_rows(threshold: float) -> int:
    """Rows per LSH band: pairs at ``threshold`` must collide in some band almost surely.

    Two texts of equal size with overlap t have Jaccard t / (2 - t); with r rows the chance of a
    shared band is 1 - (1 - J**r) ** (SIGNATURE_SIZE // r). Three rows keep it above 0.99 from
    J = 0.6 (overlap 0.75) while sparing the many low-similarity pairs shorter bands would yield.
    Pairs of unequal size have a lower Jaccard and are found less surely.
    """
    jaccard = threshold / (2 - threshold) if threshold < 2 else 1.0
    return 3 if jaccard >= 0.6 else 2 if jaccard >= 0.4 else 1


def candidate_pairs(sigs: Sequence[Sequence[int]], rows: int = 3,
                    neighbours: int = 8) -> Iterable[tuple[int, int]]:
    """Index pairs that share an LSH band of ``rows`` signature values, each pair once.

    In a bucket each member is paired with at most ``neighbours`` members before it: enough to
    connect a family of copies through the caller's union-find, and it keeps a bucket that
    collides on a stock phrase from costing quadratic time.
    """
    seen: set[tuple[int, int]] = set()
    live = [i for i, sig in enumerate(sigs) if sig[0]]
    n = len(live)
    # One column of band keys per band, built by zip in C: band b of a signature is its values
    # 1 + b*rows ... (b+1)*rows.
    columns = zip(*(tuple(zip(*(sigs[i][1 + k::rows] for k in range(rows)))) for i in live))  # noqa: B905
    for col in columns:
        # Most keys occur once. Find the shared ones without a Python step per document: a key
        # is shared when some position holds it that is not its last.
        last = dict(zip(col, range(n)))  # noqa: B905 - same length
        shared = set(compress(col, map(operator.ne, map(last.__getitem__, col), range(n))))
        buckets: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for pos in compress(range(n), map(shared.__contains__, col)):
            buckets[col[pos]].append(live[pos])
        for members in buckets.values():
            for x in range(1, len(members)):
                j = members[x]
                for i in members[max(0, x - neighbours):x]:
                    if (i, j) not in seen:
                        seen.add((i, j))
                        yield i, j


def near_duplicates(docs: Sequence[Document], *, threshold: float = 0.7, min_ratio: float = 0.5,
                    signatures: Mapping[str, Sequence[int]] | None = None) -> dict[str, str]:
    """Map each near-duplicate copy's id to its original's id.

    Copies are grouped transitively; the original of a group is its earliest published document
    (ties and undated documents broken by lowest id). ``signatures`` may supply stored signatures
    by document id so that only new texts are hashed.
    """
    with paused_gc():
        return _near_duplicates(docs, threshold, min_ratio, signatures or {})


def _near_duplicates(docs: Sequence[Document], threshold: float, min_ratio: float,
                     known: Mapping[str, Sequence[int]]) -> dict[str, str]:
    sigs = [tuple(known[d.id]) if d.id in known else document_signature(d) for d in docs]
    parent = list(range(len(docs)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in candidate_pairs(sigs, band_rows(threshold)):
        if estimate_similarity(sigs[i], sigs[j], min_ratio=min_ratio) >= threshold:
            ri, rj = find(i), find(j)
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(docs)):
        groups[find(i)].append(i)
    result: dict[str, str] = {}
    for members in groups.values():
        if len(members) < 2:
            continue
        original = min(members, key=lambda k: document_order(docs[k]))
        for k in members:
            if k != original and docs[k].id != docs[original].id:
                result[docs[k].id] = docs[original].id
    return result


def carriers(docs: Sequence[Document], copies: Mapping[str, str]) -> dict[str, tuple[str, ...]]:
    """For each original with copies, the sources that carried it: its own first, then the others.

    ``copies`` is the result of :func:`near_duplicates`. Sources are listed once each, copies in
    the order they were published.
    """
    by_id = {d.id: d for d in docs}
    found: dict[str, list[Document]] = defaultdict(list)
    for copy, original in copies.items():
        if copy in by_id and original in by_id:
            found[original].append(by_id[copy])
    out: dict[str, tuple[str, ...]] = {}
    for original, copied in found.items():
        names = [by_id[original].source or ""]
        names += [c.source or "" for c in sorted(copied, key=document_order)]
        out[original] = tuple(dict.fromkeys(n for n in names if n))
    return out
