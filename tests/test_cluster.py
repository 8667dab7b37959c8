from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta

import pytest

from feedletter.cluster import Assignment, cluster_documents, pick_lead, story_members
from feedletter.dedupe import signature
from feedletter.models import Document

T0 = datetime(2026, 5, 10, 18, 0, tzinfo=UTC)

MATCH_1A = """Leeds United beat Norwich City 3-1 at Elland Road on Saturday. Daniel James opened the scoring
after 12 minutes, Georginio Rutter added a second before half-time and Joel Piroe sealed it with a penalty.
Norwich replied through Borja Sainz late on. The win lifts Leeds to second in the Championship table."""
MATCH_1B = """Daniel James, Georginio Rutter and Joel Piroe were on target as Leeds saw off Norwich 3-1 at
Elland Road. Borja Sainz pulled one back for the visitors, but Leeds moved up to second in the Championship
with the victory."""
MATCH_1C = """Norwich City fell to a 3-1 defeat at Leeds United. Goals from Daniel James and Georginio Rutter
put Leeds two up at the break, and Joel Piroe scored from the spot. Borja Sainz scored for Norwich."""
MATCH_2 = """Leeds United drew 1-1 with Sunderland at the Stadium of Light on Tuesday night. Jack Clarke
put Sunderland ahead from close range before Wilfried Gnonto equalised for Leeds with a curling shot. The
draw leaves Leeds second in the Championship table."""
MATCH_3 = """Sheffield Wednesday beat Hull City 2-0 at Hillsborough. Michael Smith scored twice in the second
half as Wednesday climbed out of the Championship relegation zone in front of 24,000 fans."""

PHONE_1A = """Fairphone has launched the Fairphone 6, a repairable Android phone with a 6.3-inch screen and a
Snapdragon 7s Gen 3 chip. It costs 599 euros and goes on sale in Europe on 25 June. The battery can be
swapped with a single screw, and Fairphone promises seven years of software updates."""
PHONE_1B = """The Fairphone 6 is official: the Dutch maker's latest modular handset has a 6.3-inch display,
Snapdragon 7s Gen 3 and a user-replaceable battery. Priced at 599 euros, it ships from 25 June, with
Android updates promised for seven years."""
PHONE_2 = """Nothing has launched the Phone 3, its first flagship with a Snapdragon 8s Gen 4 chip and a
6.67-inch screen. It costs 799 pounds and goes on sale in the UK on 15 July. Carl Pei said the
Glyph Matrix on the back replaces the light strips of earlier models."""


def _doc(i: str, text: str, hours: float = 0.0, source: str | None = None) -> Document:
    title = text.split(".")[0][:60]
    return Document(i, title, text, url=f"https://example.org/{i}", source=source,
                    published=T0 + timedelta(hours=hours))


def _groups(assignments: list[Assignment]) -> set[frozenset[str]]:
    by: dict[str, set[str]] = {}
    for a in assignments:
        by.setdefault(a.cluster, set()).add(a.id)
    return {frozenset(v) for v in by.values()}


def test_same_story_joins_and_different_matches_and_phones_do_not() -> None:
    docs = [_doc("m1a", MATCH_1A), _doc("m1b", MATCH_1B, 2), _doc("m1c", MATCH_1C, 3),
            _doc("m2", MATCH_2, 72), _doc("m3", MATCH_3, 1),
            _doc("p1a", PHONE_1A, 5), _doc("p1b", PHONE_1B, 6), _doc("p2", PHONE_2, 30)]
    out = cluster_documents(docs)
    assert [a.id for a in out] == [d.id for d in docs]
    assert _groups(out) == {frozenset({"m1a", "m1b", "m1c"}), frozenset({"m2"}), frozenset({"m3"}),
                            frozenset({"p1a", "p1b"}), frozenset({"p2"})}
    assert all(a.duplicate_of is None for a in out)


def test_cluster_label_is_lead_id_fullest_text() -> None:
    docs = [_doc("b", MATCH_1B), _doc("a", MATCH_1A, 1), _doc("c", MATCH_1C, 2)]
    out = cluster_documents(docs)
    assert {a.cluster for a in out} == {"a"}  # MATCH_1A is the longest


def test_window_keeps_stories_apart() -> None:
    docs = [_doc("p1a", PHONE_1A), _doc("p1b", PHONE_1B, 24 * 9)]
    assert len(_groups(cluster_documents(docs))) == 2
    assert len(_groups(cluster_documents(docs, window=timedelta(days=10)))) == 1


def test_undated_documents_can_join_anything() -> None:
    docs = [_doc("p1a", PHONE_1A), Document("p1b", "Fairphone 6", PHONE_1B)]
    assert len(_groups(cluster_documents(docs))) == 1


def test_copies_are_marked_and_join_their_original() -> None:
    copy = "Reposted from Tech Wire\n" + PHONE_1A
    docs = [_doc("p1a", PHONE_1A, 1), _doc("copy", copy, 3), _doc("p2", PHONE_2)]
    out = {a.id: a for a in cluster_documents(docs)}
    assert out["copy"].duplicate_of == "p1a"
    assert out["p1a"].duplicate_of is None
    assert out["copy"].cluster == out["p1a"].cluster == "p1a"  # a copy never leads
    assert out["p2"].cluster == "p2"


def test_story_members_lead_first_and_copies_left_out() -> None:
    copy = "Reposted from Tech Wire\n" + PHONE_1A
    docs = [_doc("p1b", PHONE_1B, 0), _doc("p1a", PHONE_1A, 1), _doc("copy", copy, 3), _doc("p2", PHONE_2)]
    out = cluster_documents(docs)
    members = story_members(docs, out)
    lead = next(a.cluster for a in out if a.id == "p1b")
    assert members[lead][0].id == lead
    assert {d.id for d in members[lead]} == {"p1a", "p1b"}
    assert [d.id for d in members["p2"]] == ["p2"]


def test_stored_signatures_are_passed_to_dedupe() -> None:
    docs = [_doc("p1a", PHONE_1A), _doc("p2", PHONE_2, 1)]
    # A stored signature says p2's text is p1a's: the copy is found without hashing p2 again.
    stored = {"p2": signature(docs[0].title + "\n" + docs[0].text)}
    out = {a.id: a for a in cluster_documents(docs, signatures=stored)}
    assert out["p2"].duplicate_of == "p1a"
    assert out["p2"].cluster == "p1a"


def test_pick_lead_order() -> None:
    short = _doc("s", "Short text.", 0, source="wire")
    long_late = _doc("l", "A much longer text than the other one.", 5, source="blog")
    long_early = _doc("e", "A much longer text than the other one.", 1, source="blog")
    assert pick_lead([short, long_late, long_early]).id == "e"
    assert pick_lead([short, long_late, long_early], {"wire": 10}).id == "s"
    with pytest.raises(ValueError):
        pick_lead([])


def test_empty_input() -> None:
    assert cluster_documents([]) == []


def test_generated_corpus_is_fast() -> None:
    rng = random.Random(3)
    vocab = [f"word{i}" for i in range(3000)]
    docs: list[Document] = []
    for story in range(200):
        names = [f"Name{story}x{k}" for k in range(4)]
        facts = [*names, f"{story * 7 + 11}", f"{story % 9}-{story % 5}"]
        for copy in range(3):
            body = " ".join(rng.choice(vocab) for _ in range(60))
            picked = rng.sample(facts, 5)
            docs.append(Document(f"{story}-{copy}", f"{names[0]} story", body + " " + " ".join(picked),
                                 published=T0 + timedelta(hours=story % 50 + copy)))
    start = time.process_time()  # CPU time: other jobs on a shared machine do not count
    out = cluster_documents(docs)
    elapsed = time.process_time() - start
    groups = _groups(out)
    assert len(groups) == 200
    assert all(len({i.split("-")[0] for i in g}) == 1 for g in groups)
    assert elapsed < 5
