"""Story and subject grouping on real news, beside a plain TF-IDF baseline (issue 15, points 3 and 4).

Run from the repository root: ``python bench/eval_grouping.py [--corpus DIR]``. The corpus (see
``../shared/corpus/SOURCES-dev.md`` §2-§4) is evaluation data only and is never copied here.

* ``stories/clusters.jsonl`` (ECB+): same-event clusters (label ``cluster``), two events of one
  kind per ``topic``. Stories: pairwise precision/recall and B-cubed P/R/F1. Subjects: B-cubed F1
  against ``topic``.
* ``stories/same-story-pairs.jsonl`` (SemEval-2022 task 8): a pair is "same story" when
  ``overall`` <= 1.5 and "different" when >= 3.5 (in-between pairs are left out). All its articles
  are grouped together; ours decides "same" when both land in one story, and its score (for AUC) is
  :func:`feedletter.stories.cluster.pair_similarities`. The baseline decides cosine >= threshold.
* ``stories/topics.jsonl`` (MEANTIME): four coarse topics; subject B-cubed F1 against ``topic``.

The baseline is implemented here: word tokens minus stop words, sublinear tf, idf fitted on the
set, cosine, average-linkage agglomeration cut at a threshold. Its threshold is swept and both its
best recall at precision >= 0.95 and its best F1 are shown; ours runs at the project's defaults,
one setting for every set. Dates are not used by either side (``published`` is None for all), and
an article's source (for the same-source rule) is its URL's host, or None when it has no URL.
Results are also printed for two halves of each set (odd and even topics / pairs) as a check
against settings that fit one part only.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feedletter.models import Document  # noqa: E402
from feedletter.stories.cluster import cluster_documents, pair_similarities  # noqa: E402
from feedletter.stories.summarize import STOPWORDS  # noqa: E402

_TOKEN = re.compile(r"[a-z0-9]+(?:['’][a-z]+)?")
PRECISION_FLOOR = 0.95


# --- data ------------------------------------------------------------------------------------

def _host(url: str | None) -> str | None:
    return (urlparse(url).hostname or None) if url else None


def _rows(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _doc(i: str, title: str | None, text: str, url: str | None) -> Document:
    return Document(id=i, title=title or "", text=text, url=url, source=_host(url), published=None)


# --- metrics ---------------------------------------------------------------------------------

def pair_counts(pred: Sequence[Hashable], truth: Sequence[Hashable]) -> tuple[int, int, int]:
    """(pairs together in both, pairs together in pred, pairs together in truth)."""
    def together(labels: Iterable[Hashable]) -> int:
        sizes: dict[Hashable, int] = defaultdict(int)
        for x in labels:
            sizes[x] += 1
        return sum(k * (k - 1) // 2 for k in sizes.values())
    return together(zip(pred, truth, strict=True)), together(pred), together(truth)


def pairwise(pred: Sequence[Hashable], truth: Sequence[Hashable]) -> tuple[float, float]:
    both, p, t = pair_counts(pred, truth)
    return (both / p if p else 1.0), (both / t if t else 1.0)


def bcubed(pred: Sequence[Hashable], truth: Sequence[Hashable]) -> tuple[float, float, float]:
    joint: dict[tuple[Hashable, Hashable], int] = defaultdict(int)
    ps: dict[Hashable, int] = defaultdict(int)
    ts: dict[Hashable, int] = defaultdict(int)
    for a, b in zip(pred, truth, strict=True):
        joint[(a, b)] += 1
        ps[a] += 1
        ts[b] += 1
    n = len(pred)
    p = sum(c * c / ps[a] for (a, _), c in joint.items()) / n
    r = sum(c * c / ts[b] for (_, b), c in joint.items()) / n
    return p, r, _f1(p, r)


def _f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Chance that a positive scores above a negative (ties count half)."""
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    if not pos or not neg:
        return float("nan")
    wins = sum((p > q) + 0.5 * (p == q) for p in pos for q in neg)
    return wins / (len(pos) * len(neg))


# --- the baseline ----------------------------------------------------------------------------

def tfidf_matrix(docs: Sequence[Document]) -> np.ndarray[Any, np.dtype[np.float64]]:
    """Rows: L2-normalized TF-IDF vectors (sublinear tf, smoothed idf fitted on ``docs``)."""
    counts: list[dict[str, int]] = []
    for d in docs:
        c: dict[str, int] = defaultdict(int)
        for w in _TOKEN.findall(f"{d.title}\n{d.text}".lower()):
            if w not in STOPWORDS and len(w) > 1:
                c[w] += 1
        counts.append(c)
    vocab = {w: k for k, w in enumerate(sorted({w for c in counts for w in c}))}
    df = np.zeros(len(vocab))
    for c in counts:
        for w in c:
            df[vocab[w]] += 1
    idf = np.log((1 + len(docs)) / (1 + df)) + 1
    m = np.zeros((len(docs), len(vocab)))
    for i, c in enumerate(counts):
        for w, k in c.items():
            m[i, vocab[w]] = (1 + math.log(k)) * idf[vocab[w]]
    m /= np.maximum(np.linalg.norm(m, axis=1, keepdims=True), 1e-12)
    return m


@dataclass
class Dendrogram:
    """Average-linkage merges, highest similarity first: (a, b, similarity) over cluster ids."""

    n: int
    merges: list[tuple[int, int, float]]

    def cut(self, threshold: float) -> list[int]:
        """Flat labels after every merge at similarity >= ``threshold``."""
        parent = list(range(self.n))

        def find(i: int) -> int:
            while parent[i] != i:
                parent[i] = parent[parent[i]]
                i = parent[i]
            return i

        for a, b, s in self.merges:
            if s < threshold:
                break  # average linkage has no inversions: later merges are lower still
            parent[find(b)] = find(a)
        return [find(i) for i in range(self.n)]


def average_linkage(sim: np.ndarray[Any, np.dtype[np.float64]]) -> Dendrogram:
    """The full average-linkage dendrogram of a similarity matrix (Lance-Williams updates)."""
    n = len(sim)
    s = sim.astype(np.float64).copy()
    np.fill_diagonal(s, -np.inf)
    size = np.ones(n)
    alive = np.ones(n, dtype=bool)
    merges: list[tuple[int, int, float]] = []
    # Cluster k is represented by its lowest member index, so cut() can union by index.
    for _ in range(n - 1):
        flat = int(np.argmax(s))
        a, b = divmod(flat, n)
        best = float(s[a, b])
        if best == -np.inf:
            break
        a, b = min(a, b), max(a, b)
        merges.append((a, b, best))
        row = (size[a] * s[a] + size[b] * s[b]) / (size[a] + size[b])
        s[a, :] = row
        s[:, a] = row
        s[a, a] = -np.inf
        s[b, :] = -np.inf
        s[:, b] = -np.inf
        size[a] += size[b]
        alive[b] = False
    return Dendrogram(n, merges)


def thresholds() -> list[float]:
    return [round(0.02 * k, 2) for k in range(1, 50)]


_Point = tuple[float, float, float]


def sweep(score: Callable[[float], tuple[float, float]]) -> tuple[_Point, _Point]:
    """Over the thresholds: (threshold, P, R) with the best recall at P >= floor, and with the best F1."""
    at_floor = (float("nan"), float("nan"), 0.0)
    best_f1 = (float("nan"), 0.0, 0.0)
    for t in thresholds():
        p, r = score(t)
        if p >= PRECISION_FLOOR and r > at_floor[2]:
            at_floor = (t, p, r)
        if _f1(p, r) > _f1(best_f1[1], best_f1[2]):
            best_f1 = (t, p, r)
    return at_floor, best_f1


# --- the evaluations -------------------------------------------------------------------------

def _ours(docs: Sequence[Document]) -> tuple[list[str], list[str]]:
    out = cluster_documents(docs)
    return [a.cluster for a in out], [a.subject for a in out]


def _fmt(t: tuple[float, float, float]) -> str:
    th, p, r = t
    return f"t={th:.2f} P {p:.3f} R {r:.3f} F1 {_f1(p, r):.3f}"


def eval_clusters(rows: list[dict[str, Any]], label: str) -> None:
    docs = [_doc(r["id"], r["title"], r["text"], r.get("url")) for r in rows]
    truth = [r["cluster"] for r in rows]
    topic = [r["topic"] for r in rows]
    stories, subjects = _ours(docs)
    p, r = pairwise(stories, truth)
    bp, br, bf = bcubed(stories, truth)
    tree = average_linkage(tfidf_matrix(docs) @ tfidf_matrix(docs).T)
    at_floor, best = sweep(lambda t: pairwise(tree.cut(t), truth))
    b_best = max(((t, *bcubed(tree.cut(t), truth)) for t in thresholds()), key=lambda x: x[3])
    ok = "MET" if p >= PRECISION_FLOOR and r > at_floor[2] else "NOT MET"
    print(f"{label}: {len(docs)} articles, {len(set(truth))} stories, {len(set(topic))} topics")
    print(f"  stories   ours      pairwise P {p:.3f} R {r:.3f} | B-cubed P {bp:.3f} R {br:.3f} F1 {bf:.3f}"
          f"  ({len(set(stories))} stories)")
    print(f"            baseline  at P>=0.95: {_fmt(at_floor)}; best pairwise F1: {_fmt(best)}; "
          f"best B-cubed F1 {b_best[3]:.3f} (t={b_best[0]:.2f})")
    print(f"            target (ours P >= 0.95 and R > baseline's R at P >= 0.95): {ok}")
    sp, sr, sf = bcubed(subjects, topic)
    t_best = max(((t, *bcubed(tree.cut(t), topic)) for t in thresholds()), key=lambda x: x[3])
    print(f"  subjects  ours      B-cubed P {sp:.3f} R {sr:.3f} F1 {sf:.3f} ({len(set(subjects))} subjects) | "
          f"baseline best B-cubed F1 {t_best[3]:.3f} (P {t_best[1]:.3f} R {t_best[2]:.3f}, t={t_best[0]:.2f}): "
          f"{'MET' if sf >= t_best[3] else 'NOT MET'}")


def eval_pairs(rows: list[dict[str, Any]], label: str) -> None:
    kept = [row for row in rows if row["overall"] <= 1.5 or row["overall"] >= 3.5]
    docs_by: dict[str, Document] = {}
    for row in rows:  # every article of the set is grouped, in-between pairs' too
        docs_by.setdefault(row["id1"], _doc(row["id1"], row["title1"], row["text1"], row.get("url1")))
        docs_by.setdefault(row["id2"], _doc(row["id2"], row["title2"], row["text2"], row.get("url2")))
    docs = list(docs_by.values())
    index = {d.id: k for k, d in enumerate(docs)}
    same = [row["overall"] <= 1.5 for row in kept]
    pairs = [(row["id1"], row["id2"]) for row in kept]
    stories, _ = _ours(docs)
    ours = [stories[index[a]] == stories[index[b]] for a, b in pairs]
    scores = pair_similarities(docs, pairs)
    m = tfidf_matrix(docs)
    cos = [float(m[index[a]] @ m[index[b]]) for a, b in pairs]

    def decide(decisions: Sequence[bool]) -> tuple[float, float]:
        tp = sum(d and y for d, y in zip(decisions, same, strict=True))
        said = sum(decisions)
        return (tp / said if said else 1.0), tp / max(1, sum(same))

    p, r = decide(ours)
    at_floor, best = sweep(lambda t: decide([c >= t for c in cos]))
    ok = "MET" if p >= PRECISION_FLOOR and r > at_floor[2] else "NOT MET"
    print(f"{label}: {len(kept)} pairs ({sum(same)} same story, {len(kept) - sum(same)} unrelated), "
          f"{len(docs)} articles grouped together")
    print(f"  pairs     ours      P {p:.3f} R {r:.3f} F1 {_f1(p, r):.3f} AUC {auc(scores, same):.3f}")
    print(f"            baseline  at P>=0.95: {_fmt(at_floor)}; best F1: {_fmt(best)}; AUC {auc(cos, same):.3f}")
    print(f"            target (ours P >= 0.95 and R > baseline's R at P >= 0.95): {ok}")


def eval_topics(rows: list[dict[str, Any]], label: str) -> None:
    docs = [_doc(r["id"], r["title"], r["text"], None) for r in rows]
    topic = [r["topic"] for r in rows]
    _, subjects = _ours(docs)
    sp, sr, sf = bcubed(subjects, topic)
    m = tfidf_matrix(docs)
    tree = average_linkage(m @ m.T)
    t_best = max(((t, *bcubed(tree.cut(t), topic)) for t in thresholds()), key=lambda x: x[3])
    print(f"{label}: {len(docs)} articles, {len(set(topic))} topics")
    print(f"  subjects  ours      B-cubed P {sp:.3f} R {sr:.3f} F1 {sf:.3f} ({len(set(subjects))} subjects) | "
          f"baseline best B-cubed F1 {t_best[3]:.3f} (P {t_best[1]:.3f} R {t_best[2]:.3f}, t={t_best[0]:.2f}): "
          f"{'MET' if sf >= t_best[3] else 'NOT MET'}")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--corpus", type=Path, default=ROOT.parent / "shared" / "corpus",
                    help="the shared evaluation corpus (default: ../shared/corpus)")
    ap.add_argument("--no-halves", action="store_true", help="skip the per-half check")
    args = ap.parse_args(argv)
    base = args.corpus / "stories"
    needed = [base / n for n in ("clusters.jsonl", "same-story-pairs.jsonl", "topics.jsonl")]
    missing = [p for p in needed if not p.is_file()]
    if missing:
        print(f"eval_grouping skipped: corpus absent ({', '.join(str(p) for p in missing)})")
        return 0
    clusters, pairs, topics = (_rows(p) for p in needed)
    print("ours: feedletter.stories.cluster at its defaults; baseline: TF-IDF cosine + average linkage, "
          "threshold swept; no dates for either; source = URL host or None")
    eval_clusters(clusters, "clusters.jsonl (ECB+)")
    eval_pairs(pairs, "same-story-pairs.jsonl (SemEval-2022 task 8, en-en)")
    eval_topics(topics, "topics.jsonl (MEANTIME)")
    if not args.no_halves:
        print("--- halves (odd / even ECB+ topic numbers; odd / even pair positions) ---")
        for parity in (1, 0):
            eval_clusters([r for r in clusters if int(r["topic"]) % 2 == parity],
                          f"clusters.jsonl, {'odd' if parity else 'even'} topics")
        for parity in (1, 0):
            eval_pairs(pairs[1 - parity::2], f"same-story-pairs.jsonl, {'odd' if parity else 'even'} positions")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
