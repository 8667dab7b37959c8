"""The gather stages against the demo site served on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import sqlalchemy as sa

from feedletter.config import Config
from feedletter.sitehost import SiteHost
from feedletter.store import Store, articles, carriers, sources, stories
from tests.conftest import ROOT, run_gather

EXPECTED = json.loads((ROOT / "demo" / "expected.json").read_text())


def _rows(store: Store, query: sa.Select[tuple[object, ...]]) -> list[sa.Row[tuple[object, ...]]]:
    with store.begin() as conn:
        return list(conn.execute(query))


def test_first_gather_stores_every_article_once(demo_config: Config, store: Store) -> None:
    counts = run_gather(demo_config, store)
    assert counts["ok"] == len(EXPECTED["feeds"]) and counts["errors"] == 0
    # The re-published clinic post arrives under a utm-tagged link: the same article, not a new one.
    assert counts["new"] == EXPECTED["articles"]
    assert counts["duplicates"] == EXPECTED["entries_total"] - EXPECTED["articles"]
    flu = _rows(store, sa.select(articles.c.id).where(articles.c.url.like("%flu-vaccine-drop-in-hours.html")))
    assert len(flu) == 1
    carried_by = {r.source for r in _rows(store, sa.select(carriers.c.source)
                                          .where(carriers.c.article_id == flu[0].id))}
    assert carried_by == {"riverside-clinic", "health-roundup"}


def test_second_gather_gets_304s_and_stores_nothing(demo_config: Config, store: Store, site: SiteHost) -> None:
    run_gather(demo_config, store)
    before = site.not_modified
    again = run_gather(demo_config, store)
    assert again["not_modified"] == len(EXPECTED["feeds"])
    assert site.not_modified - before == len(EXPECTED["feeds"])
    assert again["new"] == 0 and again["stories"] == 0 and again["summarized"] == 0
    validators = _rows(store, sa.select(sources.c.etag, sources.c.last_modified))
    assert all(v.etag and v.last_modified for v in validators)


def test_teasers_get_full_text_without_boilerplate(demo_config: Config, store: Store) -> None:
    counts = run_gather(demo_config, store)
    teasers = EXPECTED["entries"]["morning-teaser"]
    assert counts["extracted"] == teasers
    texts = [r.text for r in _rows(store, sa.select(articles.c.text))]
    teaser_texts = [r.text for r in _rows(store, sa.select(articles.c.text)
                                          .where(articles.c.source == "morning-teaser"))]
    assert all(len(t.split()) > 150 for t in teaser_texts), [len(t.split()) for t in teaser_texts]
    for text in texts:
        for junk in EXPECTED["boilerplate"]:
            assert junk not in text


def test_same_story_from_three_sites_is_one_story(demo_config: Config, store: Store) -> None:
    run_gather(demo_config, store)
    story_of = {r.url.split("127.0.0.1", 1)[1].split("/", 1)[1]: r.story_id
                for r in _rows(store, sa.select(articles.c.url, articles.c.story_id))}
    story_of = {"/" + k: v for k, v in story_of.items()}
    for group in EXPECTED["same_story"]:
        assert len({story_of[p] for p in group}) == 1, group
    for a, b in EXPECTED["distinct_same_topic"]:
        assert story_of[a] != story_of[b]
    assert len(_rows(store, sa.select(stories.c.id))) == EXPECTED["stories"]


def test_summaries_are_short_and_clean(demo_config: Config, store: Store) -> None:
    run_gather(demo_config, store)
    for row in _rows(store, sa.select(stories.c.summary)):
        assert 40 < len(row.summary) <= 600
        for junk in EXPECTED["boilerplate"]:
            assert junk not in row.summary


def test_a_failing_source_does_not_stop_the_others(tmp_path: Path, site: SiteHost) -> None:
    from feedletter.config import load_config
    from tests.conftest import write_config

    path = write_config(tmp_path, site)
    text = path.read_text().replace("city-ledger/atom.xml", "city-ledger/missing.xml")
    path.write_text(text)
    config = load_config(path)
    store = Store.open(config.store_url())
    counts = run_gather(config, store)
    assert counts["errors"] == 1 and counts["ok"] == len(EXPECTED["feeds"]) - 1
    row = _rows(store, sa.select(sources).where(sources.c.name == "city-ledger"))[0]
    assert row.failures == 1 and row.last_error.startswith("fetch: ") and "HTTP 404" in row.last_error
    assert row.next_fetch is not None
    store.close()


def test_a_removed_article_never_comes_back(demo_config: Config, store: Store, site: SiteHost) -> None:
    from typer.testing import CliRunner

    from feedletter.cli import app
    from feedletter.removal import remove_article

    run_gather(demo_config, store)
    flu = _rows(store, sa.select(articles.c.id, articles.c.url, articles.c.story_id)
                .where(articles.c.url.like("%flu-vaccine-drop-in-hours.html")))[0]
    removed = remove_article(store, flu.url + "?utm_source=newsletter")  # any link to the page will do
    assert removed.id == flu.id
    footbridge = _rows(store, sa.select(articles.c.id).where(articles.c.source == "valley-post",
                                                             articles.c.url.like("%bridge-day%")))[0]
    path = str(Path(demo_config._path))
    result = CliRunner().invoke(app, ["articles", "remove", str(footbridge.id), "--config", path])
    assert result.exit_code == 0 and f"removed article {footbridge.id}" in result.output

    # The feeds change (no 304), so both entries are met again, under their keys and under the
    # utm-tagged link of the roundup's copy: neither is stored again.
    with store.begin() as conn:
        conn.execute(sources.update().values(etag=None, last_modified=None))
    again = run_gather(demo_config, store)
    assert again["new"] == 0
    urls = [r.url for r in _rows(store, sa.select(articles.c.url))]
    assert not any("flu-vaccine-drop-in-hours" in u for u in urls)
    assert not any("bridge-day" in u for u in urls)
    # The story the footbridge article was part of lives on with the other two tellings.
    assert len(_rows(store, sa.select(stories.c.id).where(stories.c.id == flu.story_id))) == 0
    listed = CliRunner().invoke(app, ["articles", "list", "--config", path, "--limit", "100"])
    assert listed.exit_code == 0 and len(listed.output.strip().splitlines()) == EXPECTED["articles"] - 2
