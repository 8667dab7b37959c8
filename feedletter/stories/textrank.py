"""The extractive summarizer's graph: TF-IDF similarities between a story's sentences, and TextRank
over them (:mod:`feedletter.stories.summarize` scores and picks the sentences)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate, chain

import numpy as np
import numpy.typing as npt

__all__ = ["Matrix", "similarities", "textrank"]

Matrix = npt.NDArray[np.float64]


def similarities(sentences: Sequence[Mapping[str, int]],
                 title: Iterable[str]) -> tuple[Matrix, Matrix, list[float], list[int]]:
    """TF-IDF cosine similarity of each pair of sentences (each given by its terms' counts; 0 with
    itself) and of each sentence to the title (its terms); and the sentences' TF-IDF weights, in
    the order of their terms, sentence by sentence: sentence i's are ``weights[starts[i]:starts[i + 1]]``
    (cut only for the few sentences a summary weighs)."""
    n = len(sentences)
    # One entry per (sentence, term), sentence by sentence; each term numbered by its first entry
    # (numbers in the order terms were first seen, with gaps, which no sum below meets).
    terms = list(chain.from_iterable(sentences))
    column: dict[str, int] = {}
    cols = np.fromiter(map(column.setdefault, terms, range(len(terms))), np.intp, len(terms))
    counts = np.fromiter(chain.from_iterable(c.values() for c in sentences), np.intp, len(terms))
    rows = np.repeat(np.arange(n), [len(c) for c in sentences])
    df = np.bincount(cols)
    # Weights from math.log, as before, are the same to the last bit, which the coverage test (a
    # >= between sums of them) needs. A weight depends only on a term's count and its document
    # frequency, so math.log runs once per value of those, not once per term.
    idf_of = [0.0, *(math.log(1 + n / k) for k in range(1, int(df.max()) + 1))]
    tf_of = [0.0, *(1 + math.log(k) for k in range(1, int(counts.max()) + 1))]
    weights = np.array(tf_of)[counts] * np.array(idf_of)[df[cols]]
    length = np.sqrt(np.bincount(rows, weights * weights, minlength=n))
    # Only terms two sentences share make them alike: the matrix of unit vectors needs no column
    # for the others (most of a long story's words), which keeps it small.
    shared = df[cols] > 1
    shared_column = np.cumsum(df > 1) - 1
    unit = np.zeros((n, int(np.count_nonzero(df > 1))))
    unit[rows[shared], shared_column[cols[shared]]] = weights[shared] / length[rows[shared]]
    sim: Matrix = unit @ unit.T  # exactly 0 where two sentences share no term, as before
    np.fill_diagonal(sim, 0.0)
    title_vec = np.zeros(len(terms))
    title_length = 0.0
    for t in title:
        k = column.get(t)
        w = idf_of[1] if k is None else idf_of[df[k]]  # a word no sentence has weighs as if one had it
        title_length += w * w
        if k is not None:
            title_vec[k] = w
    title_sim: Matrix = (np.bincount(rows, weights * title_vec[cols], minlength=n) / length
                          / math.sqrt(title_length)) if title_length else np.zeros(n)
    return sim, title_sim, weights.tolist(), [0, *accumulate(map(len, sentences))]


def textrank(sim: Matrix, damping: float = 0.85, rounds: int = 30) -> Matrix:
    """PageRank over the weighted similarity graph ``sim`` (zero diagonal), by power iteration."""
    n = len(sim)
    out_weight = sim.sum(axis=1)
    linked = out_weight > 0
    # A round is rank' = (1 - damping) / n + damping * rank @ shares, where row i of shares is how
    # i's rank divides among the others; a sentence linked to nothing spreads its rank evenly
    # rather than losing it. Carried out on [rank, 1], a round is a single product with ``step``.
    step = np.zeros((n + 1, n + 1))
    shares = step[:n, :n]
    shares[:] = 1.0 / n
    shares[linked] = sim[linked] / out_weight[linked, None]
    shares *= damping
    step[n, :n] = (1 - damping) / n
    step[n, n] = 1.0
    # ``rounds`` rounds are one product with step ** rounds, which takes a few squarings of step
    # (a 25-sentence story: 7 matrix products rather than 30 vector ones, each mostly numpy's
    # fixed cost). The ranks differ from round-by-round ones in the last bits only (1e-16), far
    # below the scores' tie margin (the summarizer's tie margin).
    power = np.linalg.matrix_power(step, rounds)
    rank: Matrix = power[n, :n] + power[:n, :n].sum(axis=0) / n
    return rank
