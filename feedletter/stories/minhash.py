"""MinHash signatures of texts, and the similarity two signatures estimate.

Each text becomes a set of word shingles and a signature built by one-permutation hashing (one
hash per shingle, binned, with densification for empty bins), the hashing done a whole text at a
time in numpy. The signature carries the set's size in front, so that the overlap coefficient can
be estimated from the Jaccard. Stored with each article (:func:`pack_signature`); compared by
:mod:`feedletter.stories.dedupe`.
"""

from __future__ import annotations

import operator
import re
import unicodedata
from array import array
from collections.abc import Sequence
from typing import Any

import numpy as np

from feedletter.models import Document
from feedletter.text.boilerplate import is_boilerplate, strip_boilerplate

__all__ = ["SIGNATURE_FORMAT", "SIGNATURE_SIZE", "article_signature", "article_signatures", "document_signature",
           "estimate_jaccard", "estimate_similarity", "normalize", "pack_signature", "signature", "signatures",
           "unpack_signature", "words"]

SIGNATURE_SIZE = 64
SHINGLE = 3
_BIN_BITS = SIGNATURE_SIZE.bit_length() - 1
_BIN_MASK = SIGNATURE_SIZE - 1
_MASK32 = 0xFFFFFFFF
_EMPTY = _MASK32 + 1
_WORD_RE = re.compile(r"\w+(?:[.,'’-]\w+)*")


def normalize(text: str) -> str:
    """Text folded for comparison: NFKC, lower case, typographic quotes made plain."""
    if text.isascii():  # NFKC leaves ASCII as it is, and it has no typographic quotes
        return text.lower()
    text = unicodedata.normalize("NFKC", text).lower()
    return text.replace("’", "'").replace("‘", "'")


def words(text: str) -> list[str]:
    """The word tokens of normalized ``text`` (numbers such as ``4.2`` and ``1,200`` stay whole)."""
    return _WORD_RE.findall(normalize(text))


def _mix(x: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """MurmurHash3's 64-bit finalizer, element-wise (uint64 arithmetic wraps)."""
    x = x ^ (x >> _S33)
    x = x * _M1
    x = x ^ (x >> _S33)
    x = x * _M2
    return x ^ (x >> _S33)


def _splitmix(seed: int, n: int) -> list[int]:
    out = []
    for _ in range(n):
        seed = (seed + 0x9E3779B97F4A7C15) & _MASK64
        z = seed
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
        out.append(z ^ (z >> 31))
    return out


_S33 = np.uint64(33)
_M1 = np.uint64(0xFF51AFD7ED558CCD)
_M2 = np.uint64(0xC4CEB9FE1A85EC53)
_MASK64 = (1 << 64) - 1
# Fixed (not drawn from numpy's generators, whose streams are not promised forever): stored
# signatures must come out the same in every process and version.
_PLACE_WEIGHTS = np.array(_splitmix(0x5EED, 256), dtype=np.uint64)
_SHINGLE_WEIGHTS = [np.uint64(w | 1) for w in _splitmix(0xF00D, SHINGLE)]
# Bytes of a word: ASCII letters, digits and "_", and every byte of a non-ASCII character (the
# text has had its non-ASCII non-word characters replaced first). Joiners inside a word keep
# numbers such as 4.2 and 1,200, and words such as don't, whole, as :func:`words` does.
_WORD_BYTE = np.zeros(256, dtype=bool)
_WORD_BYTE[[ord(c) for c in "0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"]] = True
_WORD_BYTE[0x80:] = True
_WORD_TABLE = bytes(_WORD_BYTE.view(np.uint8))
_JOINER_TABLE = bytes(1 if chr(i) in ".,'-" else 0 for i in range(256))
_ZERO = np.zeros(1, dtype=np.int8)
_ZERO_INDEX = np.zeros(1, dtype=np.intp)
_TRUE = np.ones(1, dtype=np.bool_)
_ONE = np.uint64(1)
_BIN_MASK_U = np.uint64(SIGNATURE_SIZE - 1)
_BIN_BITS_U = np.uint64(SIGNATURE_SIZE.bit_length() - 1)
_S32 = np.uint64(32)
_NON_ASCII_NON_WORD = re.compile(r"[^\x00-\x7f\w]+")


def _word_bytes(text: str) -> tuple[np.ndarray[Any, np.dtype[np.uint8]], np.ndarray[Any, np.dtype[np.intp]]]:
    """The UTF-8 bytes of the words of normalized ``text``, one after the other, and each one's length."""
    letters, lengths, _ = _words_in(_ascii_clean(text).encode())
    return letters, lengths


def _ascii_clean(text: str) -> str:
    return text if text.isascii() else _NON_ASCII_NON_WORD.sub(" ", text)


def _words_in(raw: bytes) -> tuple[np.ndarray[Any, np.dtype[np.uint8]], np.ndarray[Any, np.dtype[np.intp]],
                                   np.ndarray[Any, np.dtype[np.intp]]]:
    """The words' bytes, lengths and starts in ``raw``: normalized text, non-word characters out."""
    data = np.frombuffer(raw, dtype=np.uint8)
    word = np.frombuffer(bytearray(raw.translate(_WORD_TABLE)), dtype=np.bool_)
    if len(raw) > 2:
        joiner = np.frombuffer(raw.translate(_JOINER_TABLE), dtype=np.bool_)
        word[1:-1] |= joiner[1:-1] & word[:-2] & word[2:]
    padded = np.concatenate((_ZERO, word.view(np.int8), _ZERO))
    # Where a word starts or ends, alternately: starts at even places, ends at odd.
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return data[word], edges[1::2] - edges[::2], edges[::2]


def _shingle_hashes(text: str, *, stripped: bool = False) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """The distinct 32-bit hashes of the word 3-shingles of ``text``, sorted.

    Computed on the UTF-8 bytes with numpy, a few array operations a text: the words are those of
    :func:`words`, but a Python regex and a hash per shingle took three times as long.
    """
    letters, lengths = _word_bytes(normalize(text if stripped else strip_boilerplate(text)))
    if not len(lengths):
        return np.zeros(0, dtype=np.uint64)
    words_ = _word_hashes(letters, lengths)
    if len(words_) < SHINGLE:  # a short text is one shingle
        words_ = np.concatenate((words_, np.zeros(SHINGLE - len(words_), dtype=np.uint64)))
    grams = _gram_hashes(words_)
    grams.sort()
    distinct: np.ndarray[Any, np.dtype[np.uint64]] = grams[np.concatenate((_TRUE, grams[1:] != grams[:-1]))]
    return distinct


def _word_hashes(letters: np.ndarray[Any, np.dtype[np.uint8]],
                 lengths: np.ndarray[Any, np.dtype[np.intp]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """A word's hash: its bytes weighted by their place in it, summed."""
    offsets = np.concatenate((_ZERO_INDEX, np.cumsum(lengths[:-1])))
    place = np.arange(len(letters)) - np.repeat(offsets, lengths)
    hashed: np.ndarray[Any, np.dtype[np.uint64]] = np.add.reduceat(
        (letters + _ONE) * _PLACE_WEIGHTS[place & 255], offsets)
    return hashed


def _gram_hashes(words_: np.ndarray[Any, np.dtype[np.uint64]]) -> np.ndarray[Any, np.dtype[np.uint64]]:
    """The 32-bit hash of each run of :data:`SHINGLE` words: the words weighted, summed and mixed."""
    n = len(words_) - SHINGLE + 1
    grams = words_[:n] * _SHINGLE_WEIGHTS[0]
    for k in range(1, SHINGLE):
        grams += words_[k:k + n] * _SHINGLE_WEIGHTS[k]
    return _mix(grams) >> _S32


def signature(text: str, *, stripped: bool = False) -> tuple[int, ...]:
    """The signature of ``text``: its shingle count, then :data:`SIGNATURE_SIZE` MinHash values.

    Stable across processes and versions of Python, so it can be stored. Empty text gets a
    signature that matches nothing. ``stripped`` says that ``text`` is already free of boilerplate.
    """
    shingles = _shingle_hashes(text, stripped=stripped)
    if not len(shingles):
        return (0, *[_EMPTY] * SIGNATURE_SIZE)
    # Low bits pick the bin, the rest is the value: one hash per shingle, not one per bin.
    found = np.full(SIGNATURE_SIZE, _EMPTY, dtype=np.uint64)
    np.minimum.at(found, shingles & _BIN_MASK_U, shingles >> _BIN_BITS_U)
    return (len(shingles), *_densify(found.tolist()))


def signatures(texts: Sequence[str], *, stripped: bool = False) -> list[tuple[int, ...]]:
    """:func:`signature` of each text, the same values, hashed all together.

    A feed's twenty articles in one set of array operations rather than twenty: numpy's fixed cost
    per operation was most of a single article's hashing.
    """
    prepared = [normalize(t if stripped else strip_boilerplate(t)) for t in texts]
    encoded = [_ascii_clean(t).encode() for t in prepared]
    letters, lengths, starts = _words_in(b" ".join(encoded))
    # Each word's text: where the words' starts fall among the texts' ends (one space apart).
    ends = np.cumsum(np.array([len(e) + 1 for e in encoded], dtype=np.intp))
    owner = np.searchsorted(ends, starts, side="right")
    counts = np.bincount(owner, minlength=len(texts))
    out: list[tuple[int, ...] | None] = [None] * len(texts)
    for i in np.flatnonzero(counts < SHINGLE).tolist():  # a short text is one padded shingle: the plain way
        out[i] = signature(prepared[i], stripped=True)
    if len(lengths) >= SHINGLE:
        grams = _gram_hashes(_word_hashes(letters, lengths))
        keep = owner[:len(grams)] == owner[SHINGLE - 1:]  # shingles within one text
        docs = owner[:len(grams)][keep].astype(np.uint64)
        keyed = np.sort((docs << _S32) | grams[keep])  # then distinct: np.unique hashes, 15x slower here
        keyed = keyed[np.concatenate((_TRUE, keyed[1:] != keyed[:-1]))]
        docs, grams = keyed >> _S32, keyed & np.uint64(0xFFFFFFFF)
        distinct = np.bincount(docs.astype(np.intp), minlength=len(texts)).tolist()
        found = np.full(len(texts) * SIGNATURE_SIZE, _EMPTY, dtype=np.uint64)
        np.minimum.at(found, docs * np.uint64(SIGNATURE_SIZE) + (grams & _BIN_MASK_U), grams >> _BIN_BITS_U)
        rows = found.reshape(len(texts), SIGNATURE_SIZE).tolist()
        for i, row in enumerate(rows):
            if out[i] is None:
                out[i] = (distinct[i], *_densify(row))
    return [sig if sig is not None else signature(prepared[i], stripped=True) for i, sig in enumerate(out)]


def _densify(bins: list[int]) -> list[int]:
    # An empty bin borrows the next filled bin's value, salted by the distance, so that two texts
    # with the same shingles still agree bin for bin.
    out = list(bins)
    for i in range(SIGNATURE_SIZE):
        if bins[i] == _EMPTY:
            j, step = i, 0
            while bins[j] == _EMPTY:
                j = (j + 1) % SIGNATURE_SIZE
                step += 1
            out[i] = bins[j] + step * _EMPTY * 2
    return out


def document_signature(doc: Document) -> tuple[int, ...]:
    """The signature :func:`near_duplicates` computes for ``doc``: store this one."""
    return signature(doc.title + "\n" + doc.text)


def article_signature(title: str, text: str) -> tuple[int, ...]:
    """:func:`document_signature` of an article whose ``text`` came out of :func:`strip_boilerplate`.

    The same value without stripping the whole text again (a fifth of the cost): stripping works
    line by line and keeps what it kept, so only the title line is left to judge.
    """
    return article_signatures([(title, text)])[0]


def article_signatures(articles: Sequence[tuple[str, str]]) -> list[tuple[int, ...]]:
    """:func:`article_signature` of each ``(title, text)``, hashed together (see :func:`signatures`)."""
    out: list[tuple[int, ...] | None] = [None] * len(articles)
    joined: list[str] = []
    for i, (title, text) in enumerate(articles):
        if len(title.splitlines()) > 1:
            out[i] = signature(title + "\n" + text)
        else:
            joined.append(text if is_boilerplate(title) else (title + "\n" + text).strip())
    hashed = iter(signatures(joined, stripped=True))
    return [sig if sig is not None else next(hashed) for sig in out]


# Stored signatures start with this marker, which says which hashing made them. The first store
# format (crc32 shingle hashes) had none: those blobs read as missing and are computed again.
SIGNATURE_FORMAT = -2


def pack_signature(sig: Sequence[int]) -> bytes | None:
    """A signature as stored: native int64s (None, so it is recomputed, if a value does not fit)."""
    try:
        return array("q", (SIGNATURE_FORMAT, *sig)).tobytes()
    except OverflowError:
        return None


def unpack_signature(blob: bytes | None) -> array[int] | None:
    """A stored signature, or None when there is none or another hashing made it.

    An array of int64s, a quarter of the memory of a tuple of ints (10k articles' signatures held
    through grouping: 6 MB against 25); :func:`feedletter.stories.dedupe.near_duplicates` makes
    tuples of them only while it compares them.
    """
    if not blob or len(blob) % 8:
        return None
    values = array("q", blob)
    if values[0] != SIGNATURE_FORMAT:
        return None
    return values[1:]


def estimate_jaccard(a: Sequence[int], b: Sequence[int]) -> float:
    """Estimated Jaccard similarity of the shingle sets behind two signatures."""
    if len(a) != SIGNATURE_SIZE + 1 or len(b) != len(a) or not a[0] or not b[0]:
        return 0.0
    # Compared in C, counts included, and the counts' own agreement taken off again.
    agree: int = sum(map(operator.eq, a, b))
    return (agree - (a[0] == b[0])) / SIGNATURE_SIZE


def estimate_similarity(a: Sequence[int], b: Sequence[int], *, min_ratio: float = 0.5) -> float:
    """Estimated share of the smaller text's shingles that the other text has too.

    0 when one text has fewer than ``min_ratio`` times the other's shingles.
    """
    # The size test is the cheaper one, so it goes first: most LSH candidates fail one of the two.
    small, large = sorted((a[0], b[0]))
    if small < min_ratio * large:
        return 0.0
    j = estimate_jaccard(a, b)
    if not j:
        return 0.0
    # |A ∩ B| = J (|A| + |B|) / (1 + J)
    return min(1.0, j * (small + large) / ((1 + j) * small))
