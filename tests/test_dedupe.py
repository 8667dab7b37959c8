from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedletter.models import Document
from feedletter.stories.dedupe import band_rows, carriers, near_duplicates
from feedletter.stories.minhash import (
    SIGNATURE_SIZE,
    document_signature,
    estimate_jaccard,
    estimate_similarity,
    signature,
    words,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)

ARTICLE = """The city council approved a plan on Tuesday to turn the old tram depot on Harbour Road into
a library, a day-care centre and forty affordable flats. The vote passed nine to four after a debate
that lasted nearly three hours. Supporters said the depot had stood empty since 2011 and cost the city
about 80,000 pounds a year to secure. Opponents argued that the building should be sold to pay down
debt. Work is due to start next spring and should finish by the end of 2028, the planning office said.
The architects plan to keep the brick facade and the iron roof trusses, which are listed. A public
consultation on the library's opening hours will run until the end of April. Local residents who spoke
at the meeting mostly welcomed the flats but asked for more parking spaces near the school."""


def _copy_with_edits(text: str) -> str:
    # A syndicated copy: new header and footer lines, one sentence reworded.
    body = text.replace("The vote passed nine to four", "Councillors voted nine to four in favour")
    return "From our partners at the Harbour Gazette\n" + body + "\nRead more local news on our site."


def test_signature_is_stable_and_sized() -> None:
    assert signature(ARTICLE) == signature(ARTICLE)
    assert len(signature(ARTICLE)) == SIGNATURE_SIZE + 1
    toks = words(ARTICLE)
    assert signature(ARTICLE)[0] == len({tuple(toks[i:i + 3]) for i in range(len(toks) - 2)})
    assert all(isinstance(v, int) for v in signature(ARTICLE))


def test_signature_ignores_case_and_whitespace() -> None:
    assert signature(ARTICLE) == signature("  " + ARTICLE.upper().replace(" ", "   "))


def test_similarity_of_edited_copy_is_high_and_unrelated_low() -> None:
    other = "A new bakery opened on the high street selling sourdough, rye and seeded loaves every day."
    assert estimate_similarity(signature(ARTICLE), signature(_copy_with_edits(ARTICLE))) >= 0.8
    assert estimate_similarity(signature(ARTICLE), signature(other)) < 0.2
    assert estimate_similarity(signature(""), signature("")) == 0.0


def test_copy_maps_to_earliest_original() -> None:
    docs = [
        Document("7", "Depot to become library", _copy_with_edits(ARTICLE),
                 published=T0 + timedelta(hours=5)),
        Document("3", "Council backs depot plan", ARTICLE, published=T0),
        Document("9", "Bakery opens", "A new bakery opened on the high street selling bread.", published=T0),
    ]
    assert near_duplicates(docs) == {"7": "3"}


def test_tie_on_date_goes_to_lowest_numeric_id_and_undated_is_not_original() -> None:
    docs = [
        Document("10", "a", ARTICLE, published=T0),
        Document("9", "a", ARTICLE, published=T0),
        Document("2", "a", ARTICLE, published=None),
    ]
    assert near_duplicates(docs) == {"10": "9", "2": "9"}


def test_added_header_and_footer_do_not_hide_a_copy() -> None:
    # Much new material around the same text: Jaccard drops, the share of the smaller kept does not.
    extra = " ".join(f"partner{i} boilerplate{i} line{i}" for i in range(25))
    padded = extra + "\n" + ARTICLE + "\n" + extra
    a, b = signature(ARTICLE), signature(padded)
    assert estimate_jaccard(a, b) < 0.8
    assert estimate_similarity(a, b) >= 0.9


def test_teaser_is_not_a_copy_of_the_full_article() -> None:
    teaser = " ".join(ARTICLE.split()[:40])
    assert estimate_similarity(signature(teaser), signature(ARTICLE)) == 0.0
    assert estimate_similarity(signature(teaser), signature(ARTICLE), min_ratio=0.2) >= 0.8


def test_threshold_controls_what_counts() -> None:
    # Every third sentence garbled in place: about two thirds of the shingles survive.
    sents = ARTICLE.split(". ")
    changed = ". ".join(s if k % 3 else s.upper().replace("E", "3") for k, s in enumerate(sents))
    docs = [Document("a", "", ARTICLE, published=T0), Document("b", "", changed, published=T0)]
    assert near_duplicates(docs, threshold=0.9) == {}
    assert near_duplicates(docs, threshold=0.5) == {"b": "a"}


def test_band_rows_follow_threshold() -> None:
    assert band_rows(0.8) == 3
    assert band_rows(0.6) == 2
    assert band_rows(0.3) == 1


def test_document_signature_is_what_near_duplicates_uses() -> None:
    docs = [Document("a", "Depot plan", ARTICLE, published=T0),
            Document("b", "Something else", "A bakery opened on the high street today.", published=T0)]
    # Stored as the store would keep it: the same value near_duplicates would compute.
    stored = {d.id: document_signature(d) for d in docs}
    assert near_duplicates(docs, signatures=stored) == near_duplicates(docs) == {}
    assert document_signature(docs[0]) == signature("Depot plan\n" + ARTICLE)


def test_stored_signatures_are_used() -> None:
    docs = [Document("a", "", "completely different words here", published=T0),
            Document("b", "", ARTICLE, published=T0 + timedelta(1))]
    sig = signature("\n" + ARTICLE)
    assert near_duplicates(docs, signatures={"a": sig}) == {"b": "a"}


def test_many_documents_scale() -> None:
    rng = random.Random(5)
    vocab = [f"w{i}" for i in range(5000)]
    docs = []
    for i in range(1500):
        docs.append(Document(str(i), "", " ".join(rng.choice(vocab) for _ in range(120)), published=T0))
    docs.append(Document("copy", "", docs[17].text + " extra footer", published=T0 + timedelta(1)))
    start = time.process_time()  # CPU time: other jobs on a shared machine do not count
    found = near_duplicates(docs)
    assert found == {"copy": "17"}
    assert time.process_time() - start < 5


def test_carriers_lists_original_source_first() -> None:
    docs = [
        Document("1", "", ARTICLE, source="gazette", published=T0),
        Document("2", "", _copy_with_edits(ARTICLE), source="wire", published=T0 + timedelta(hours=2)),
        Document("3", "", _copy_with_edits(ARTICLE), source="aggregator", published=T0 + timedelta(hours=1)),
        Document("4", "", "Unrelated words about a bakery and its bread.", source="gazette", published=T0),
    ]
    copies = near_duplicates(docs)
    assert copies == {"2": "1", "3": "1"}
    assert carriers(docs, copies) == {"1": ("gazette", "aggregator", "wire")}


def test_default_threshold_is_the_pipelines() -> None:
    # `feedletter cluster` calls these with their defaults; the pipeline passes stories.near_duplicate.
    import inspect

    from feedletter.config import Stories
    from feedletter.stories.cluster import cluster_documents

    default = Stories().near_duplicate
    assert inspect.signature(near_duplicates).parameters["threshold"].default == default == 0.7
    assert inspect.signature(cluster_documents).parameters["duplicate_threshold"].default == default


def test_default_finds_a_copy_with_a_quarter_changed() -> None:
    # Two of eight sentences replaced and a header added: below 0.8 overlap, above 0.7.
    from feedletter.stories.minhash import _shingle_hashes

    sents = ARTICLE.split(". ")
    sents[1] = "Councillors argued late into the evening before a show of hands settled the matter"
    sents[5] = "Our correspondent adds that the details may still change before the work begins"
    copy = "Syndicated from a partner site.\n" + ". ".join(sents)
    docs = [Document("a", "", ARTICLE, published=T0), Document("b", "", copy, published=T0 + timedelta(1))]
    mine, theirs = set(_shingle_hashes(copy).tolist()), set(_shingle_hashes(ARTICLE).tolist())
    exact = len(mine & theirs) / min(len(mine), len(theirs))
    assert 0.7 <= exact < 0.8, exact
    # 64 MinHash bins estimate it within a few hundredths (one standard error is about 0.05).
    share = estimate_similarity(signature(copy), signature(ARTICLE))
    assert abs(share - exact) < 0.1, (share, exact)
    assert near_duplicates(docs) == {"b": "a"}
    assert near_duplicates(docs, threshold=0.95) == {}


def _plain_signature(text: str) -> tuple[int, ...]:
    """The stored formula written out in plain Python, one word and one shingle at a time."""
    from feedletter.stories import minhash
    from feedletter.text.boilerplate import strip_boilerplate

    mask = (1 << 64) - 1

    def mix(x: int) -> int:
        x ^= x >> 33
        x = (x * 0xFF51AFD7ED558CCD) & mask
        x ^= x >> 33
        x = (x * 0xC4CEB9FE1A85EC53) & mask
        return x ^ (x >> 33)

    place = [int(w) for w in minhash._PLACE_WEIGHTS]
    weights = [int(w) for w in minhash._SHINGLE_WEIGHTS]
    hashes = [sum((byte + 1) * place[i % 256] for i, byte in enumerate(w.encode())) & mask
              for w in words(strip_boilerplate(text))]
    hashes += [0] * (3 - len(hashes)) if hashes else []
    grams = {mix(sum(h * w for h, w in zip(hashes[i:i + 3], weights, strict=True)) & mask) >> 32
             for i in range(len(hashes) - 2)}
    bins = [min((g >> 6 for g in grams if g & 63 == b), default=None) for b in range(SIGNATURE_SIZE)]
    return (len(grams), *bins)  # type: ignore[arg-type]


def test_signature_values_are_the_stored_formula() -> None:
    # Signatures are stored: the numpy hashing must give exactly the values of the plain formula
    # (each word's UTF-8 bytes weighted by place, three words weighted and mixed, binned by the
    # low six bits of the high 32), non-ASCII and short texts too.
    for text in (ARTICLE, "Zoë’s café in Malmö served 1,200 crêpes — “déjà vu”, said the chef.", "two words",
                 "one", "4.2% of a..b and a.-b, don't; e-mail_x"):
        plain = _plain_signature(text)
        sig = signature(text)
        assert sig[0] == plain[0]
        for b in range(SIGNATURE_SIZE):
            if plain[1 + b] is not None:
                assert sig[1 + b] == plain[1 + b], (text, b)
    assert signature("")[0] == 0 and signature("— … —")[0] == 0


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from([*"ab1_ .,'’-\n\tÉéß–…“", "\u00a0", "\u0301", "Ⅻ", "ﬁ", "٣", "中"]),
               max_size=60))
def test_signature_words_are_those_of_words(text: str) -> None:
    # The hashing finds words in bytes with lookup tables; they must be the regex's words exactly.
    from feedletter.stories.minhash import _word_bytes, normalize

    data, lengths = _word_bytes(normalize(text))
    found, at = [], 0
    for n in lengths.tolist():
        found.append(bytes(data[at:at + n]).decode())
        at += n
    assert found == words(text)


def test_candidate_pairs_are_those_sharing_a_band() -> None:
    # Reference: bucket by each band's values in document order, pair each member with up to
    # `neighbours` before it. Small value ranges force crowded buckets, so the cap matters.
    from collections import defaultdict

    from feedletter.stories.dedupe import candidate_pairs

    rng = random.Random(3)
    sigs = [(rng.choice([0, 5, 9]), *(rng.randrange(3) for _ in range(SIGNATURE_SIZE))) for _ in range(60)]
    for rows in (1, 2, 3, 4):
        expected: set[tuple[int, int]] = set()
        for lo in range(1, SIGNATURE_SIZE + 2 - rows, rows):
            buckets: dict[tuple[int, ...], list[int]] = defaultdict(list)
            for i, sig in enumerate(sigs):
                if sig[0]:
                    buckets[sig[lo:lo + rows]].append(i)
            for members in buckets.values():
                for x, j in enumerate(members):
                    expected.update((i, j) for i in members[max(0, x - 4):x])
        found = list(candidate_pairs(sigs, rows, neighbours=4))
        assert len(found) == len(set(found)) and set(found) == expected


@pytest.mark.parametrize("title", ["Clinic opens", "", "   ", "  Spaced title ", "Leave a Reply", "Home News Health",
                                   "two\nlines", "sep\u2028arated", "(untitled)", "© 2024 Example"])
@pytest.mark.parametrize("raw", [
    "First paragraph with several words here.\n\nLeave a Reply\nYour email address will not be published.\n\nMore text",
    "", "Home News Health\nOne line only", "a\n\n\n\nb c d e f", "Back to top button"])
def test_article_signature_is_document_signature(title: str, raw: str) -> None:
    from feedletter.stories.minhash import article_signature, signature
    from feedletter.text.boilerplate import strip_boilerplate

    text = strip_boilerplate(raw)
    assert article_signature(title, text) == signature(title + "\n" + text)


def test_signatures_hashed_together_are_those_hashed_alone() -> None:
    # A feed's articles are hashed in one batch: each must get exactly its own signature, whatever
    # its neighbours (empty, one or two words, non-ASCII, a multi-line title, boilerplate).
    from feedletter.stories.minhash import article_signature, article_signatures, signatures

    rng = random.Random(5)
    pool = [ARTICLE, _copy_with_edits(ARTICLE), "", "one", "two words", "a b c", "— … —", "Zoë’s café: 1,200 crêpes.",
            "Leave a Reply\nYour email address will not be published.\n" + ARTICLE[:300], "x.y,z don't e-mail"]
    for _ in range(40):
        batch = [rng.choice(pool) for _ in range(rng.randint(0, 12))]
        for stripped in (False, True):
            assert signatures(batch, stripped=stripped) == [signature(t, stripped=stripped) for t in batch]
        pairs = [(rng.choice(["A title", "Two\nlines", "", "Share this"]), t) for t in batch]
        assert article_signatures(pairs) == [article_signature(title, text) for title, text in pairs]
