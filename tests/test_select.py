"""Selection and ordering: several newsletters from one config, each with its own filters."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from feedletter.config import Config
from feedletter.digest import prepare_digest, save_issue
from feedletter.models import Story
from feedletter.patterns import compile_pattern
from feedletter.selection import select_stories, story_score, summary_quality
from feedletter.store import Store, issue_stories, issues
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
