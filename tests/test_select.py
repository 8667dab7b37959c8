"""Selection and ordering: several newsletters from one config, each with its own filters."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from feedletter.config import Config
from feedletter.issue.digest import digest_record, prepare_digest, save_issue
from feedletter.issue.selection import select_stories, story_score, summary_quality
from feedletter.models import Story
from feedletter.patterns import compile_pattern
from feedletter.schema import issue_stories, issues
from feedletter.store import Store
from tests.fixtures_staff import AT, put_story, staff, staff_config

__all__ = ["staff"]

NEWSLETTER = """\
  - name: {name}
    title: Test
    from: "T <t@t.example>"
    postal_address: "1 Road"
    select: {select}
"""


def _titles(config: Config, store: Store, name: str) -> list[str]:
    return [s.title for s in select_stories(config, store, config.newsletter(name), at=AT)]


def _one(tmp_path: Path, select: str, name: str = "only") -> tuple[Config, Store]:
    config = staff_config(tmp_path, NEWSLETTER.format(name=name, select=select))
    return config, Store.open(config.store_url())


def test_each_newsletter_selects_by_source_tags_and_may_share_a_story(staff: tuple[Config, Store]) -> None:
    config, store = staff
    put_story(store, "city-ledger", "Footbridge opens")
    put_story(store, "clinic", "Flu clinic hours")
    put_story(store, "clinic", "Clinic and council agree on a new health centre", also=("city-ledger",))
    assert sorted(_titles(config, store, "city")) == ["Clinic and council agree on a new health centre",
                                                      "Footbridge opens"]
    assert sorted(_titles(config, store, "health")) == ["Clinic and council agree on a new health centre",
                                                        "Flu clinic hours"]


@pytest.mark.parametrize(("include", "exclude", "expected"), [
    ("[bridge]", "[]", ["Footbridge opens", "Bridge repairs"]),         # a word matches whole words only
    ("[BRIDGE]", "[]", ["Footbridge opens", "Bridge repairs"]),         # case-insensitive
    ("['^bridge']", "[]", ["Bridge repairs"]),                           # a regex, as written
    ("['foot|library']", "[]", ["Footbridge opens", "Library hours"]),  # a regex finds 'foot' in a word
    ("[]", "[sponsored]", ["Footbridge opens", "Bridge repairs"]),
    ("[]", "[ad]", ["Footbridge opens", "Bridge repairs", "Library hours"]),  # 'ad' is not in 'read'
    ("[tender]", "[]", ["Bridge repairs"]),                              # matched in the article text
])
def test_include_and_exclude_patterns(tmp_path: Path, include: str, exclude: str, expected: list[str]) -> None:
    config, store = _one(tmp_path, f"{{since: all, include: {include}, exclude: {exclude}}}")
    put_story(store, "city-ledger", "Footbridge opens", age=timedelta(hours=1),
              summary="The footbridge opened. A bridge for walkers and cyclists was long awaited.")
    put_story(store, "city-ledger", "Bridge repairs", age=timedelta(hours=2), text="The tender closes in May.",
              summary="Repairs to the old stone bridge begin next week, the city said.")
    put_story(store, "city-ledger", "Library hours", age=timedelta(hours=3),
              summary="Sponsored: the library opens late. Read all about it in the library news today.")
    got = _titles(config, store, "only")
    assert sorted(got) == sorted(expected)
    # the regex form found "foot" inside "Footbridge"; the word form would not have
    assert compile_pattern("foot").search("Footbridge opens") is None


def test_summary_quality_is_words_in_complete_sentences() -> None:
    assert summary_quality("") == 0
    assert summary_quality("Footbridge opens") == 0                           # a headline, no sentence
    assert summary_quality("Read more…") == 0                                # too short to count
    assert summary_quality("The council approved the bridge. It opens in May.") == 9
    assert summary_quality("The council approved the bridge. And then the") == 5  # cut-off tail ignored


def test_min_quality_drops_thin_summaries(tmp_path: Path) -> None:
    config, store = _one(tmp_path, "{since: all, min_quality: 8}")
    put_story(store, "city-ledger", "Thin", summary="Footbridge opens today")
    put_story(store, "city-ledger", "Good", summary="The council approved the footbridge on Monday evening.")
    assert _titles(config, store, "only") == ["Good"]


def test_max_stories_caps_the_issue(tmp_path: Path) -> None:
    config, store = _one(tmp_path, "{since: all, max_stories: 2}")
    for i in range(5):
        put_story(store, "city-ledger", f"Story {i}", age=timedelta(hours=i + 1))
    assert _titles(config, store, "only") == ["Story 0", "Story 1"]


@pytest.mark.parametrize(("since", "expected"), [
    ("24h", ["fresh"]), ("7d", ["fresh", "days"]), ("all", ["fresh", "days", "old"]),
    ("last_issue", ["fresh", "days", "old"]),  # the first issue takes everything not yet sent
])
def test_since_period(tmp_path: Path, since: str, expected: list[str]) -> None:
    config, store = _one(tmp_path, f"{{since: {since}}}")
    put_story(store, "city-ledger", "fresh", age=timedelta(hours=3))
    put_story(store, "city-ledger", "days", age=timedelta(days=3))
    put_story(store, "city-ledger", "old", age=timedelta(days=30))
    assert _titles(config, store, "only") == expected


def test_since_last_issue_takes_only_what_came_after_it(tmp_path: Path) -> None:
    config, store = _one(tmp_path, "{since: last_issue}")
    newsletter = config.newsletter("only")
    put_story(store, "city-ledger", "before", age=timedelta(days=2))
    first = prepare_digest(config, store, newsletter, at=AT - timedelta(days=1))
    assert first is not None
    save_issue(store, first)
    put_story(store, "city-ledger", "left over", age=timedelta(days=3), created=AT - timedelta(days=3))
    put_story(store, "city-ledger", "after", age=timedelta(hours=1))
    assert _titles(config, store, "only") == ["after"]


def test_never_twice_in_one_issue_nor_again_in_the_next(staff: tuple[Config, Store]) -> None:
    config, store = staff
    city = config.newsletter("city")
    shared = put_story(store, "city-ledger", "Shared story", also=("valley-post", "clinic"))
    put_story(store, "valley-post", "Valley only")
    first = prepare_digest(config, store, city, at=AT)
    assert first is not None
    ids = [s.id for s in first.digest.stories]
    assert len(ids) == len(set(ids)) == 2
    issue_id = save_issue(store, first)
    assert _titles(config, store, "city") == []          # nothing new: the next issue repeats nothing
    put_story(store, "city-ledger", "Next week")
    assert _titles(config, store, "city") == ["Next week"]
    assert "Shared story" in _titles(config, store, "health")  # another newsletter may still carry it
    with store.begin() as conn:
        second = int(conn.execute(issues.insert().values(
            newsletter="city", number=2, issued=AT, subject="s", preheader="", html="", text="", mjml="",
            data="{}")).inserted_primary_key[0])  # type: ignore[index]
    assert second != issue_id
    with pytest.raises(sa.exc.IntegrityError), store.begin() as conn:  # and the store refuses a repeat
        conn.execute(issue_stories.insert().values(issue_id=second, story_id=shared, newsletter="city",
                                                   position=0))


def test_order_by_documented_score(tmp_path: Path) -> None:
    config, store = _one(tmp_path, "{since: all}")
    put_story(store, "city-ledger", "one source, new", age=timedelta(hours=1))
    put_story(store, "city-ledger", "two sources, old", age=timedelta(days=5), also=("clinic",))
    put_story(store, "city-ledger", "one source, older", age=timedelta(days=1))
    put_story(store, "valley-post", "priority source, older", age=timedelta(days=2))  # priority 1
    assert _titles(config, store, "only") == ["two sources, old", "priority source, older",
                                              "one source, new", "one source, older"]


def test_story_score_formula() -> None:
    story = Story(id=1, title="t", url="u", source="a", published=AT - timedelta(days=1), summary="")
    assert story_score(story, at=AT, priority={"a": 3}) == pytest.approx(2 + 0.5 + 3)


def test_pinned_sources_and_keywords_come_first(tmp_path: Path) -> None:
    config, store = _one(tmp_path, "{since: all, pin_sources: [clinic], pin_keywords: [council]}")
    put_story(store, "city-ledger", "Big story", also=("valley-post",))
    put_story(store, "clinic", "Clinic notes", age=timedelta(days=3))
    put_story(store, "city-ledger", "Council meets", age=timedelta(days=2))
    put_story(store, "city-ledger", "Councillors' cars", age=timedelta(days=1))  # 'council' is a word
    assert _titles(config, store, "only") == ["Council meets", "Clinic notes", "Big story", "Councillors' cars"]


# --- diversity: a cap per source, one entry per subject -------------------------------------------

def test_one_busy_source_does_not_fill_the_issue(tmp_path: Path) -> None:
    config, store = _one(tmp_path, "{since: all, max_stories: 4}")  # max_per_source: 2 by default
    for i in range(5):  # the busiest, newest source: every one of its stories outscores the others
        put_story(store, "city-ledger", f"Ledger {i}", age=timedelta(hours=i + 1))
    put_story(store, "valley-post", "Valley", age=timedelta(days=3))
    put_story(store, "clinic", "Clinic", age=timedelta(days=4))
    got = select_stories(config, store, config.newsletter("only"), at=AT)
    assert [s.source for s in got].count("city-ledger") == 2
    assert {s.title for s in got} == {"Ledger 0", "Ledger 1", "Valley", "Clinic"}


def test_the_cap_gives_way_when_no_other_source_has_stories(tmp_path: Path) -> None:
    config, store = _one(tmp_path, "{since: all, max_stories: 3}")
    for i in range(5):
        put_story(store, "clinic", f"Clinic {i}", age=timedelta(hours=i + 1))
    assert _titles(config, store, "only") == ["Clinic 0", "Clinic 1", "Clinic 2"]


def test_max_per_source_zero_means_no_cap(tmp_path: Path) -> None:
    config, store = _one(tmp_path, "{since: all, max_stories: 3, max_per_source: 0}")
    for i in range(3):
        put_story(store, "city-ledger", f"Ledger {i}", age=timedelta(hours=i + 1))
    put_story(store, "clinic", "Clinic", age=timedelta(days=4))
    assert _titles(config, store, "only") == ["Ledger 0", "Ledger 1", "Ledger 2"]


def test_equal_scores_alternate_sources_instead_of_going_to_the_newest(tmp_path: Path) -> None:
    config, store = _one(tmp_path, "{since: all, max_stories: 4, max_per_source: 3}")
    for i in range(3):  # same age, same coverage: equal scores
        put_story(store, "clinic", f"Clinic {i}", age=timedelta(days=400))
        put_story(store, "city-ledger", f"Ledger {i}", age=timedelta(days=400))
    got = [s.source for s in select_stories(config, store, config.newsletter("only"), at=AT)]
    assert got.count("clinic") == got.count("city-ledger") == 2


# Three sites explain one therapy, each in its own words, and a fourth story is about something else.
THERAPY = [
    ("clinic", "What ketamine infusions can do for depression",
     "Ketamine infusion therapy helps patients whose depression did not respond to other treatment. "
     "Many patients with treatment-resistant depression notice their mood lift within hours of an infusion. "
     "Ketamine acts on glutamate receptors in the brain, unlike antidepressants that target serotonin. "
     "Infusions are given over forty minutes under medical supervision."),
    ("valley-post", "Ketamine therapy for depression explained",
     "Doctors increasingly offer ketamine infusions for depression that resists treatment. "
     "Ketamine works on glutamate in the brain rather than serotonin, which is why patients "
     "with treatment-resistant depression may feel relief within hours. "
     "A course of infusions under supervision usually spans several weeks."),
    ("city-ledger", "Benefits of ketamine for treatment-resistant depression",
     "For depression that resists antidepressants, ketamine infusion therapy offers fast relief. "
     "The drug acts on the brain's glutamate system instead of serotonin. "
     "Patients with treatment-resistant depression often report a better mood within hours of an infusion, "
     "given under medical supervision."),
]


def test_one_subject_is_one_entry_with_more_on_this(tmp_path: Path) -> None:
    config, store = _one(tmp_path, "{since: all}")
    ids = [put_story(store, source, title, text=text, age=timedelta(hours=i + 1))
           for i, (source, title, text) in enumerate(THERAPY)]
    put_story(store, "clinic", "Council closes the footbridge for repairs",
              text="The council closed the Mill Lane footbridge on Monday for repairs to its railings. "
                   "Walkers must use the road bridge until the work ends in March, engineers said.",
              age=timedelta(hours=5))
    newsletter = config.newsletter("only")
    prepared = prepare_digest(config, store, newsletter, at=AT)
    assert prepared is not None
    entries = prepared.digest.stories
    assert len(entries) == 2
    therapy = next(s for s in entries if s.id in ids)
    assert {m.story_id for m in therapy.more} == set(ids) - {therapy.id}
    record = digest_record(prepared)
    item = next(s for s in record["stories"] if s["title"] == therapy.title)
    assert {m["title"] for m in item["more"]} == {t for _, t, _ in THERAPY} - {therapy.title}
    assert all(set(m) == {"source", "title", "url"} for m in item["more"])
    assert "More on this" in prepared.rendered.html and "More on this" in prepared.rendered.text
    save_issue(store, prepared)
    assert _titles(config, store, "only") == []  # the subject's other stories were carried too


def test_different_subjects_stay_apart(tmp_path: Path) -> None:
    config, store = _one(tmp_path, "{since: all}")
    put_story(store, "clinic", THERAPY[0][1], text=THERAPY[0][2])
    put_story(store, "valley-post", "Valley league: Wrenford beat Millbrook 3-1",
              text="Wrenford beat Millbrook 3-1 on Saturday in the valley league, with two goals from "
                   "Ada Okafor. The win lifts Wrenford to second in the table before the cup match.")
    got = select_stories(config, store, config.newsletter("only"), at=AT)
    assert len(got) == 2 and all(not s.more for s in got)


def test_every_page_of_a_story_is_shown_once(tmp_path: Path) -> None:
    config, store = _one(tmp_path, "{since: all}")
    # The lead, the site's own update at another address, and another site's telling.
    put_story(store, "city-ledger", "Bridge opens", also=("city-ledger", "valley-post"))
    (story,) = select_stories(config, store, config.newsletter("only"), at=AT)
    assert [a.source for a in story.also] == ["city-ledger", "valley-post"]
    assert story_score(story, at=AT, priority={}) < 2 * 3  # two sites, not three
