from __future__ import annotations

import json
import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedletter.models import Document
from feedletter.stories.cluster import (
    Assignment,
    cluster_documents,
    pair_similarities,
    pick_lead,
    story_members,
    subjects,
)
from feedletter.stories.features import feature_counts, features, features_json, parse_features
from feedletter.stories.minhash import signature

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


# --- one source never tells two stories as one (issue 15, point 2) ---------------------------

FACE_A = """Apple is looking into reports that Face ID stopped working on some iPhone 16 Pro units after the
iOS 18.2 update. Owners on the Apple forums say the TrueDepth camera fails to recognise them and the phone
asks for the passcode every time. Apple told The Verge a fix will come in iOS 18.3 next week."""
FACE_B = """Some iPhone 16 Pro owners found that Face ID no longer unlocks their phones after installing iOS
18.2. The TrueDepth camera does not recognise faces, forum posts say. Apple has confirmed the bug to The
Verge and promised an iOS 18.3 fix within days."""
IPAD_A = """Apple is expected to launch a new iPad Pro with the M5 chip in October, according to Mark Gurman.
The tablet may gain Face ID in landscape with a redesigned TrueDepth camera, like the iPhone 16 Pro, and
will run iPadOS 18.2 at launch. Apple declined to comment on the report."""

MORNING = [
    """Good morning, readers, and welcome to The Daily Brew, your morning coffee with the news. Today the
city council votes on the new cycle lanes along Harbour Road, and the library opens its reading room
after the flood repairs. Grab a cup and enjoy the day, friends.""",
    """Good morning, readers, and welcome to The Daily Brew, your morning coffee with the news. The bakers'
strike at Kessler's ends after a pay deal, and tickets for the autumn jazz festival go on sale at noon
at the old mill. Grab a cup and enjoy the day, friends.""",
    """Good morning, readers, and welcome to The Daily Brew, your morning coffee with the news. Storm
Imelda brings heavy rain tonight, so the ferry to Gull Island is cancelled, and the school run may be
slow on the coast road. Grab a cup and enjoy the day, friends.""",
    """Good morning, readers, and welcome to The Daily Brew, your morning coffee with the news. Our
football club signs striker Tomas Varga from Dunmore, and the farmers' market moves to the square for
the summer months. Grab a cup and enjoy the day, friends.""",
]

BLOG_POSTS = [
    """Notes from the Workshop: I finally rebuilt the oak workbench in the garage this weekend. The old
top had warped, so I glued up new boards, planed them flat and finished them with hard wax oil. Thanks
for reading Notes from the Workshop, and subscribe for more.""",
    """Notes from the Workshop: a reader asked how I sharpen chisels. I use a coarse diamond plate, then a
fine water stone and a leather strop with green compound, about two minutes a chisel. Thanks for reading
Notes from the Workshop, and subscribe for more.""",
    """Notes from the Workshop: my review of the new cordless track saw. It cuts sheet goods cleanly, the
battery lasts for about forty cuts and the dust port works with my extractor. Thanks for reading Notes
from the Workshop, and subscribe for more.""",
]


def _src(i: str, text: str, source: str | None, hours: float = 0.0, title: str | None = None) -> Document:
    return Document(i, title or text.split(".")[0][:60], text, url=f"https://{source or 'x'}.example/{i}",
                    source=source, published=T0 + timedelta(hours=hours))


def test_a_source_does_not_join_its_own_other_post_to_a_story() -> None:
    # The iPad rumour shares Apple, Face ID, TrueDepth and iPhone 16 Pro with the Face ID story,
    # and so would join it from an unknown source; from the site that told the Face ID story, it is
    # another post, not a second telling.
    docs = [_src("fa", FACE_A, "macnews"), _src("fb", FACE_B, "phonewire", 2), _src("ip", IPAD_A, "macnews", 3)]
    assert _groups(cluster_documents(docs)) == {frozenset({"fa", "fb"}), frozenset({"ip"})}
    anonymous = [*docs[:2], _src("ip", IPAD_A, None, 3)]
    loose = cluster_documents(anonymous, threshold=0.1)
    assert len(_groups(loose)) == 1  # the similarity alone would have let it in
    assert _groups(cluster_documents(docs, threshold=0.1)) == {frozenset({"fa", "fb"}), frozenset({"ip"})}


def test_good_morning_posts_of_one_blog_stay_apart() -> None:
    docs = [_src(f"gm{k}", text, "dailybrew", 24 * k, title="Good morning") for k, text in enumerate(MORNING)]
    out = cluster_documents(docs, threshold=0.05)  # even at a far looser threshold than the default
    assert _groups(out) == {frozenset({d.id}) for d in docs}
    assert all(a.duplicate_of is None for a in out)


def test_unrelated_posts_of_one_blog_stay_apart() -> None:
    docs = [_src(f"b{k}", text, "workshop", 5 * k) for k, text in enumerate(BLOG_POSTS)]
    assert _groups(cluster_documents(docs, threshold=0.05)) == {frozenset({d.id}) for d in docs}


def test_a_sources_repost_joins_its_post() -> None:
    repost = "Updated with Apple's statement.\n" + FACE_A
    docs = [_src("fa", FACE_A, "macnews"), _src("re", repost, "macnews", 4), _src("fb", FACE_B, "phonewire", 2)]
    out = {a.id: a for a in cluster_documents(docs)}
    assert out["re"].duplicate_of == "fa"
    assert out["re"].cluster == out["fa"].cluster == out["fb"].cluster


def test_different_sources_still_join_and_a_source_rule_needs_a_source() -> None:
    # Undated, unsourced documents (the CLI without those fields) group by text alone.
    docs = [Document("fa", "Face ID broken", FACE_A), Document("fb", "Face ID bug", FACE_B)]
    assert len(_groups(cluster_documents(docs))) == 1


# --- subjects (issue 15, point 4) --------------------------------------------------------------

CLINICS = [
    """Harbourside Physio now offers shockwave therapy for plantar fasciitis. Dr Aisha Rahman says three
weekly sessions of shockwave therapy ease heel pain for most patients with plantar fasciitis who did not
improve with stretching and insoles.""",
    """At the Meadow Clinic we treat plantar fasciitis with shockwave therapy. Physiotherapist Ben Okafor
explains how the pulses help heel pain, what a session feels like and why most patients need three
to five sessions of shockwave therapy.""",
    """Does shockwave therapy work for plantar fasciitis? Podiatrist Clara Jensen of Northgate Foot Care
looks at the evidence on heel pain: most trials found less pain after shockwave therapy than after
placebo, with few side effects.""",
    """Riverside Sports Injury Centre has bought a new shockwave therapy machine. Our team, led by Marco
Silva, uses shockwave therapy for plantar fasciitis when heel pain has lasted months, and most patients
feel less pain after three sessions.""",
    """Plantar fasciitis: is shockwave therapy right for you? Elm Street Podiatry's Hannah Lee answers
patients' questions about heel pain, the cost of shockwave therapy sessions and how soon patients
walk without pain.""",
]


def test_clinics_on_one_therapy_are_stories_of_one_subject() -> None:
    docs = [_src(f"c{k}", text, f"clinic{k}", k) for k, text in enumerate(CLINICS)]
    docs += [_src("p1a", PHONE_1A, "wire", 1), _src("p1b", PHONE_1B, "blog", 2), _src("p2", PHONE_2, "wire", 3)]
    out = {a.id: a for a in cluster_documents(docs)}
    # Each clinic wrote its own post: five stories, one subject, labelled by its first story.
    assert len({out[f"c{k}"].cluster for k in range(5)}) == 5
    assert {out[f"c{k}"].subject for k in range(5)} == {out["c0"].cluster}
    assert out["p1a"].cluster == out["p1b"].cluster != out["p2"].cluster
    assert out["p1a"].subject == out["p1b"].subject != out["c0"].subject


def test_subjects_of_stories_point_at_the_first_story_of_each() -> None:
    clinics = [[_src(f"c{k}", text, f"clinic{k}", k)] for k, text in enumerate(CLINICS)]
    phones = [[_src("p1a", PHONE_1A, "wire", 1), _src("p1b", PHONE_1B, "blog", 2)]]
    matches = [[_doc("m1a", MATCH_1A), _doc("m1b", MATCH_1B, 1)]]
    stories = [*phones, *clinics, *matches]
    found = subjects(stories)
    assert found[1:6] == [1] * 5
    assert found[0] == 0 and found[6] == 6
    assert subjects(stories) == found  # deterministic
    assert subjects([]) == []


def test_subject_of_a_lone_story_is_its_own() -> None:
    out = cluster_documents([_doc("m3", MATCH_3)])
    assert out == [Assignment("m3", "m3", None, "m3")]


# --- stored features ---------------------------------------------------------------------------

def test_stored_features_round_trip_and_the_first_format_still_works() -> None:
    stored = features_json("Fairphone 6", PHONE_1A)
    counts = parse_features(stored)
    assert counts == feature_counts("Fairphone 6", PHONE_1A)
    assert counts is not None and counts["e:fairphone"] >= 3
    assert set(counts) == features("Fairphone 6", PHONE_1A)
    assert parse_features(json.dumps(sorted(counts))) is None  # a list: the first format, to compute again
    docs = [_doc("p1a", PHONE_1A), _doc("p1b", PHONE_1B, 1), _doc("p2", PHONE_2, 2)]
    fresh = cluster_documents(docs)
    known = {d.id: parse_features(features_json(d.title, d.text)) or {} for d in docs}
    assert cluster_documents(docs, known_features=known) == fresh
    as_sets = {d.id: features(d.title, d.text) for d in docs}  # what a store of the first format held
    assert _groups(cluster_documents(docs, known_features=as_sets)) == _groups(fresh)


def test_pair_similarities_rank_a_second_telling_above_another_story() -> None:
    docs = [_doc("p1a", PHONE_1A), _doc("p1b", PHONE_1B, 1), _doc("p2", PHONE_2, 2), _doc("m1a", MATCH_1A)]
    same, other, far = pair_similarities(docs, [("p1a", "p1b"), ("p1a", "p2"), ("p1a", "m1a")])
    assert same > 0.24 > other > far >= 0


def test_cli_writes_story_and_subject(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from feedletter.cli import app

    rows = [{"id": "p1a", "title": "Fairphone 6", "text": PHONE_1A, "url": "https://wire.example/1"},
            {"id": "p1b", "title": "Fairphone 6 official", "text": PHONE_1B, "url": "https://blog.example/2"},
            {"id": "m3", "title": "Wednesday win", "text": MATCH_3}]
    path = tmp_path / "docs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = CliRunner().invoke(app, ["cluster", str(path)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines() if line.strip()]
    assert [set(line) for line in lines] == [{"id", "cluster", "subject", "duplicate_of"}] * 3
    by = {line["id"]: line for line in lines}
    assert by["p1a"]["cluster"] == by["p1b"]["cluster"] == by["p1a"]["subject"]
    assert by["m3"]["cluster"] == by["m3"]["subject"] == "m3"


PHONE_1C = """Our Fairphone 6 hands-on: an hour with the modular phone ahead of the 25 June launch. Its bright
6.3-inch screen and the Snapdragon 7s Gen 3 impressed, and the battery swap took under a minute with one
screw. It sells for 599 euros with seven years of Android updates."""
PHONE_1D = """Fairphone 6 hands-on: we spent an hour with Fairphone's new modular phone before its 25 June
launch. The 6.3-inch screen is bright, the Snapdragon 7s Gen 3 feels quick, and swapping the battery
took us under a minute. At 599 euros, with seven years of updates, it undercuts most rivals."""


def test_a_sites_second_post_leaves_the_story_instead_of_splitting_it() -> None:
    # Four tellings, two of them by one site: the news (w1, b) and two hands-ons (w2, m) pair up
    # first; then the site's second post has to leave, and the other three tellings make one story
    # (not two halves, each grown around one of the site's posts).
    docs = [_src("w1", PHONE_1A, "wire"), _src("b", PHONE_1B, "blog", 1), _src("m", PHONE_1C, "mag", 2),
            _src("w2", PHONE_1D, "wire", 3)]
    groups = _groups(cluster_documents(docs))
    assert len(groups) == 2
    main = next(g for g in groups if "b" in g)
    assert "m" in main and len(main & {"w1", "w2"}) == 1


def test_average_link_sends_out_the_one_post_in_the_way_rather_than_keeping_halves() -> None:
    from feedletter.stories.linkage import average_link

    # Documents 0 and 2 are one site's two posts; 0-1 and 2-3 pair up first, then the pairs meet.
    edges = {(0, 1): 0.9, (2, 3): 0.9, (0, 2): 0.5, (0, 3): 0.5, (1, 2): 0.5, (1, 3): 0.5}
    sources = [{"wire": 0}, {"blog": 1}, {"wire": 2}, {"mag": 3}]
    owner = average_link(4, edges, 0.3, [], sources=sources)
    groups = {frozenset(i for i in range(4) if owner[i] == r) for r in set(owner)}
    assert len(groups) == 2 and {1, 3} <= max(groups, key=len) and len(max(groups, key=len)) == 3
    assert average_link(4, edges, 0.3, []) == [0, 0, 0, 0]  # without sources: one group
