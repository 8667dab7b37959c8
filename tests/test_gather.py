"""The gather stages against the demo site served on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from feedletter.config import Config
from feedletter.ingest import gather, pages
from feedletter.models import Article, Document
from feedletter.schema import articles, carriers, sources
from feedletter.schema import stories as stories_table
from feedletter.sitehost import SiteHost
from feedletter.store import Store
from feedletter.stories import stages as stories
from feedletter.stories import work
from feedletter.stories.minhash import document_signature
from tests.conftest import ROOT, run_gather

EXPECTED = json.loads((ROOT / "demo" / "expected.json").read_text())


def _rows(store: Store, query: sa.Select[tuple[object, ...]]) -> list[sa.Row[tuple[object, ...]]]:
    with store.begin() as conn:
        return list(conn.execute(query))


def _processes(config: Config, processes: int) -> Config:
    """``config`` with ``gather.processes`` set."""
    return config.model_copy(update={"gather": config.gather.model_copy(update={"processes": processes})})


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
    assert len(_rows(store, sa.select(stories_table.c.id))) == EXPECTED["stories"]


def test_summaries_are_short_and_clean(demo_config: Config, store: Store) -> None:
    run_gather(demo_config, store)
    for row in _rows(store, sa.select(stories_table.c.summary)):
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
    # Progress ticks once a source, whatever became of it: an error, a 304 or a parse.
    ticks: list[int] = []
    with gather.make_fetcher(config) as fetcher:
        again = gather.fetch_sources(config, store, fetcher, progress=ticks.append, force=True)
    assert sum(ticks) == len(again) == len(EXPECTED["feeds"])
    assert sorted({r.status for r in again}) == ["error", "not_modified"]
    store.close()


def _insert(store: Store, key: str, title: str, text: str, hours: int) -> None:
    stamp = datetime(2026, 3, 2, 8, tzinfo=UTC) + timedelta(hours=hours)
    with store.begin() as conn:
        conn.execute(articles.insert().values(key=key, source=key.split("/")[0], url=f"https://{key}",
                                              canonical=f"https://{key}", title=title, published=stamp,
                                              fetched=stamp, text=text))


_STORY = ("Harbour Board approves the Kestrel Quay ferry terminal after a 7-2 vote on Tuesday; "
          "chair Imogen Varga said building starts in 2027 at a cost of $48m. ")


def test_grouping_stores_each_signature_and_reuses_it(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    _insert(store, "a/1", "Ferry terminal approved", _STORY * 4, 0)
    _insert(store, "b/1", "Kestrel Quay terminal gets the go-ahead", _STORY * 4, 1)  # a copy
    _insert(store, "c/1", "Pie contest returns", "Bakers of Wexley Fen gather for the 31st pie contest. " * 6, 2)
    first = stories.group_articles(store)
    assert (first.articles, first.new_stories, first.joined, first.near_duplicates) == (3, 2, 1, 1)
    rows = {r.key: r for r in _rows(store, sa.select(articles))}
    for row in rows.values():
        doc = Article(id=row.id, source=row.source, key=row.key, url=row.url, title=row.title,
                      published=row.published, text=row.text).as_document()
        assert tuple(stories.unpack_signature(row.signature) or ()) == document_signature(doc)
    assert rows["b/1"].duplicate_of == rows["a/1"].id and rows["b/1"].story_id == rows["a/1"].story_id
    # A later run hands the stored signatures to the clustering: only the new text is hashed.
    hashed: list[str] = []

    def counting(doc: Document) -> tuple[int, ...]:
        hashed.append(doc.id)
        return document_signature(doc)

    monkeypatch.setattr(stories, "document_signature", counting)
    with store.begin() as conn:  # as if summarized since
        conn.execute(stories_table.update().values(summary_hash="done"))
    _insert(store, "d/1", "Terminal vote, in brief", "Kestrel Quay ferry terminal: the Harbour Board vote "
            "went 7-2; Imogen Varga says building starts in 2027 and costs $48m. " * 2, 3)
    second = stories.group_articles(store)
    assert (second.articles, second.new_stories, second.joined) == (1, 0, 1)
    assert hashed == [str(_rows(store, sa.select(articles.c.id).where(articles.c.key == "d/1"))[0].id)]
    story = _rows(store, sa.select(stories_table.c.summary_hash).where(
        stories_table.c.id == rows["a/1"].story_id))
    assert story[0].summary_hash == ""  # a new telling: marked for summarizing again
    assert len(_rows(store, sa.select(stories_table.c.id).where(stories_table.c.summary_hash == "done"))) == 1


def test_signature_survives_packing() -> None:
    sig = document_signature(Document(id="1", title="t", text="one two three four five six"))
    assert tuple(stories.unpack_signature(stories.pack_signature(sig)) or ()) == sig
    assert stories.unpack_signature(None) is None and stories.unpack_signature(b"xyz") is None
    assert stories.pack_signature([2**63]) is None
    # The first store format (65 int64s of crc32 shingle hashes, no marker) reads as missing.
    from array import array
    assert stories.unpack_signature(array("q", sig).tobytes()) is None


def test_summaries_come_from_the_cache_when_the_texts_are_unchanged(demo_config: Config, store: Store) -> None:
    run_gather(demo_config, store)
    before = {r.id: r.summary for r in _rows(store, sa.select(stories_table.c.id, stories_table.c.summary))}
    assert before and all(before.values())
    with store.begin() as conn:
        conn.execute(stories_table.update().values(summary="", summary_hash=""))
    assert stories.summarize(demo_config, store) == (0, len(before))
    after = {r.id: r.summary for r in _rows(store, sa.select(stories_table.c.id, stories_table.c.summary))}
    assert after == before


def test_gather_command_runs_its_flow_without_the_heartbeat_unless_configured(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, get_current_settings, temporary_settings

    from feedletter_flows.common import one_shot_flow

    for name in ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"):
        monkeypatch.delenv(name, raising=False)
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: 180}):  # Prefect's default
        with one_shot_flow():
            assert get_current_settings().flows.heartbeat_frequency is None
        assert get_current_settings().flows.heartbeat_frequency == 180
        monkeypatch.setenv("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "180")
        with one_shot_flow():  # the operator's choice stands
            assert get_current_settings().flows.heartbeat_frequency == 180


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
    assert len(_rows(store, sa.select(stories_table.c.id).where(stories_table.c.id == flu.story_id))) == 0
    listed = CliRunner().invoke(app, ["articles", "list", "--config", path, "--limit", "100"])
    assert listed.exit_code == 0 and len(listed.output.strip().splitlines()) == EXPECTED["articles"] - 2


def _warm_pools(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Gather's worker pools started and ready before the first feed, so every feed is parsed in them.

    Gives the list that records, as each pool closes, whether it had workers.
    """
    used: list[bool] = []

    class Warm(gather.CpuPool):
        def __enter__(self) -> gather.CpuPool:
            self.after = 0
            self.run(int, 0)
            assert self.wait_ready(120) == (self.processes >= 2)
            return self

        def close(self) -> None:
            used.append(self.started and not self._broken)
            super().close()

    monkeypatch.setattr(gather, "CpuPool", Warm)
    monkeypatch.setattr(pages, "CpuPool", Warm)
    return used


def test_progress_ticks_once_a_source_when_its_parse_is_done_in_a_worker(
        demo_config: Config, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    used = _warm_pools(monkeypatch)
    config = _processes(demo_config, 2)
    ticks: list[int] = []
    with gather.make_fetcher(config) as fetcher:
        results = gather.fetch_sources(config, store, fetcher, progress=ticks.append)
    assert used == [True] and sum(ticks) == len(results) == len(EXPECTED["feeds"])
    assert all(r.status == "ok" and r.entries for r in results)


def test_parsing_and_extracting_in_worker_processes_stores_what_the_threads_store(
        tmp_path: Path, site: SiteHost, monkeypatch: pytest.MonkeyPatch) -> None:
    from feedletter.config import load_config
    from tests.conftest import write_config

    def stored(processes: int, name: str) -> list[tuple[object, ...]]:
        (tmp_path / name).mkdir()
        config = load_config(write_config(tmp_path / name, site))
        config = _processes(config, processes)
        store = Store.open(config.store_url())
        try:
            run_gather(config, store)
            return [tuple(r) for r in _rows(store, sa.select(
                articles.c.key, articles.c.canonical, articles.c.title, articles.c.html, articles.c.text,
                articles.c.content_hash, articles.c.signature).order_by(articles.c.key))]
        finally:
            store.close()

    used = _warm_pools(monkeypatch)
    in_processes = stored(2, "processes")
    assert used == [True, True]  # parsing, then the teasers' full-text extraction
    in_threads = stored(0, "threads")
    assert used == [True, True, False, False]
    assert in_processes == in_threads and len(in_threads) == EXPECTED["articles"]


def test_grouping_stores_each_articles_features_and_reuses_them(store: Store,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from feedletter.stories.features import features

    _insert(store, "a/1", "Ferry terminal approved", _STORY * 4, 0)
    _insert(store, "c/1", "Pie contest returns", "Bakers of Wexley Fen gather for the 31st pie contest. " * 6, 2)
    stories.group_articles(store)
    for row in _rows(store, sa.select(articles)):
        assert set(json.loads(row.features)) == features(row.title, row.text)
    read: list[str] = []
    real = stories.features_json

    def counting(title: str, text: str) -> str:
        read.append(title)
        return real(title, text)

    monkeypatch.setattr(stories, "features_json", counting)
    _insert(store, "d/1", "Terminal vote, in brief", "Kestrel Quay ferry terminal: the Harbour Board vote "
            "went 7-2; Imogen Varga says building starts in 2027 and costs $48m. " * 2, 3)
    assert stories.group_articles(store).joined == 1
    assert read == ["Terminal vote, in brief"]  # the known articles' features came from the store
    with store.begin() as conn:  # a store from before the features column: they are read once, then kept
        conn.execute(articles.update().values(features=None))
    _insert(store, "e/1", "Pie contest, day two", "Bakers of Wexley Fen judged the 31st pie contest. " * 6, 4)
    read.clear()
    stories.group_articles(store)
    assert sorted(read) == sorted(r.title for r in _rows(store, sa.select(articles.c.title)))
    assert all(r.features for r in _rows(store, sa.select(articles.c.features)))


def test_signatures_of_an_older_hashing_are_replaced_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from array import array

    _insert(store, "a/1", "Ferry terminal approved", _STORY * 4, 0)
    _insert(store, "b/1", "Kestrel Quay terminal gets the go-ahead", _STORY * 4, 1)
    stories.group_articles(store)
    with store.begin() as conn:  # as the first store format wrote them: no format marker
        conn.execute(articles.update().values(signature=array("q", [7] * 65).tobytes()))
    _insert(store, "c/1", "Terminal vote, in brief", _STORY * 3, 2)
    hashed: list[str] = []
    real = stories.document_signature

    def counting(doc: Document) -> tuple[int, ...]:
        hashed.append(doc.title)
        return real(doc)

    monkeypatch.setattr(stories, "document_signature", counting)
    counts = stories.group_articles(store)
    assert counts.joined == 1 and counts.near_duplicates == 1  # the old texts were hashed again
    assert sorted(hashed) == sorted(r.title for r in _rows(store, sa.select(articles.c.title)))
    for row in _rows(store, sa.select(articles)):
        doc = Article(id=row.id, source=row.source, key=row.key, url=row.url, title=row.title,
                      published=row.published, text=row.text).as_document()
        assert tuple(stories.unpack_signature(row.signature) or ()) == real(doc)
    hashed.clear()
    _insert(store, "d/1", "Pie contest returns", "Bakers of Wexley Fen gather for the pie contest. " * 6, 3)
    stories.group_articles(store)
    assert hashed == ["Pie contest returns"]  # once only


def test_features_computed_in_worker_processes_group_the_same(demo_config: Config, store: Store, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    with gather.make_fetcher(demo_config) as fetcher:
        gather.store_entries(demo_config, store, gather.fetch_sources(demo_config, store, fetcher))
    other = Store.open(f"sqlite:///{tmp_path / 'copy.db'}")
    try:
        with store.begin() as conn:
            # Stored by the fetch stage: cleared, so that grouping computes them, inline and in workers.
            conn.execute(articles.update().values(features=None))
            rows = [dict(r._mapping) for r in conn.execute(sa.select(articles))]
        with other.begin() as conn:
            conn.execute(articles.insert(), rows)
        inline = stories.group_articles(store, processes=0)
        monkeypatch.setattr(stories, "_FEATURES_IN_WORKERS", 0)
        parallel = stories.group_articles(other, processes=2)
        assert inline == parallel
        query = sa.select(articles.c.key, articles.c.features, articles.c.duplicate_of).order_by(articles.c.key)
        assert _rows(store, query) == _rows(other, query)
    finally:
        other.close()


def test_an_extracted_page_is_fetched_once_and_reused(demo_config: Config, store: Store, site: SiteHost) -> None:
    first = run_gather(demo_config, store)
    teasers = EXPECTED["entries"]["morning-teaser"]
    assert first["extracted"] == teasers
    hits = sum(n for path, n in site.hits.items() if not path.endswith((".xml", ".json")))
    teaser_rows = sa.select(articles.c.id, articles.c.text).where(articles.c.source == "morning-teaser")
    full = {r.id: r.text for r in _rows(store, teaser_rows)}
    with store.begin() as conn:  # as if the teasers came again under new keys
        conn.execute(articles.update().where(articles.c.source == "morning-teaser").values(
            needs_text=True, text="teaser"))
    with gather.make_fetcher(demo_config) as fetcher:
        again = gather.extract_articles(demo_config, store, fetcher)
    assert (again.extracted, again.cached, again.failed) == (0, teasers, 0)
    assert sum(n for path, n in site.hits.items() if not path.endswith((".xml", ".json"))) == hits
    assert {r.id: r.text for r in _rows(store, teaser_rows)} == full


def test_a_fetched_feed_keeps_its_validators_not_its_body(demo_config: Config, store: Store) -> None:
    with gather.make_fetcher(demo_config) as fetcher:
        results = gather.fetch_sources(demo_config, store, fetcher)
    fetched = [r.fetched for r in results if r.status == "ok"]
    assert fetched and all(f is not None and f.body is None and f.status == 200 for f in fetched)  # type: ignore[attr-defined]
    gather.store_entries(demo_config, store, results)
    with store.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(sources).where(
            (sources.c.etag.is_not(None)) | (sources.c.last_modified.is_not(None)))).scalar_one() > 0


def test_features_from_workers_hold_each_word_once() -> None:
    (json_a, a), (json_b, b) = stories._features_of([
        ("Council votes on the harbour plan", "The city council of Oslo voted on the harbour plan today."),
        ("Harbour plan passes", "Oslo's council passed the harbour plan after a long debate.")])
    shared = set(a) & set(b)
    assert shared and all(next(k for k in a if k == w) is next(k for k in b if k == w) for w in shared)
    assert json.loads(json_a) == a and json.loads(json_b) == b


def test_the_fetch_stage_stores_the_features_grouping_would_compute(demo_config: Config, store: Store) -> None:
    from feedletter.stories.features import features_json

    with gather.make_fetcher(demo_config) as fetcher:
        gather.store_entries(demo_config, store, gather.fetch_sources(demo_config, store, fetcher))
    with store.begin() as conn:
        rows = conn.execute(sa.select(articles.c.title, articles.c.text, articles.c.features,
                                      articles.c.needs_text)).all()
    assert any(r.features for r in rows)
    for r in rows:
        assert r.features == (None if r.needs_text else features_json(r.title, r.text))
    before = _rows(store, sa.select(articles.c.key, articles.c.features).order_by(articles.c.key))
    stories.group_articles(store)
    after = _rows(store, sa.select(articles.c.key, articles.c.features).order_by(articles.c.key))
    assert [f for _, f in after if f] and all(f == a for (_, f), (_, a) in zip(before, after, strict=True) if f)


def test_a_story_shows_the_feeds_picture_else_the_pages(tmp_path: Path) -> None:
    """A feed item's picture is stored with its article; a teaser with none takes its page's og:image."""
    from feedletter.config import load_config

    root = tmp_path / "site"
    root.mkdir()
    body = "<p>" + " ".join(["The council voted on Tuesday to rebuild the old river bridge by 2027."] * 3) + "</p>"
    (root / "feed.xml").write_text(f"""<?xml version='1.0'?>
<rss version='2.0' xmlns:media='http://search.yahoo.com/mrss/'><channel><title>Town</title><link>/</link>
<item><title>Bridge to be rebuilt</title><link>/bridge.html</link><guid>b</guid>
<media:content url='/img/bridge.jpg' medium='image'/><description><![CDATA[{body}]]></description></item>
<item><title>Library opens late</title><link>/library.html</link><guid>l</guid>
<description>The library opens late on Thursdays from next month. Read more</description></item>
</channel></rss>""")
    (root / "library.html").write_text(
        "<html><head><title>Library</title><meta property='og:image' content='/img/library.png'></head><body>"
        "<article><h1>Library opens late</h1>" + "<p>The city library opens until nine on Thursdays from "
        "next month, after readers asked for evening hours in a survey of 1,200 people.</p>" * 4
        + "</article></body></html>")
    with SiteHost(root) as site:
        (tmp_path / "sources.yaml").write_text(
            f"store: sqlite:///{tmp_path / 'f.db'}\nallow_private: true\nsources:\n"
            f"  - {{name: town, url: '{site.url('feed.xml')}', full_text: auto}}\n")
        config = load_config(tmp_path / "sources.yaml")
        store = Store.open(config.store_url())
        run_gather(config, store)
    pictures = dict(_rows(store, sa.select(articles.c.title, articles.c.image)))
    assert pictures == {"Bridge to be rebuilt": site.url("img/bridge.jpg"),
                        "Library opens late": site.url("img/library.png")}
    ids = [r.id for r in _rows(store, sa.select(stories_table.c.id))]
    loaded = {s.title: s.image for s in stories.load_stories(store, ids, {})}
    assert loaded == pictures
    store.close()


@pytest.mark.parametrize("enough", [True, False])
def test_parse_workers_start_at_once_when_enough_feeds_must_come_whole(
        demo_config: Config, store: Store, monkeypatch: pytest.MonkeyPatch, enough: bool) -> None:
    """A feed with no validator to send answers in full and is parsed: when that many are due (a
    first run), the workers start before the first parse, not after the first few."""
    starts: list[int] = []  # calls made when the workers were started

    class Watched(gather.CpuPool):
        def start(self) -> None:
            starts.append(self._calls)
            super().start()

    feeds = len(EXPECTED["feeds"])
    monkeypatch.setattr(gather, "CpuPool", Watched)
    monkeypatch.setattr(gather, "PROCESSES_AFTER", feeds if enough else feeds + 1)
    config = _processes(demo_config, 2)
    run_gather(config, store)
    assert starts == ([0] if enough else [])
    # Now every feed has validators: it may answer "not modified", and nothing is started ahead.
    assert run_gather(config, store)["not_modified"] == feeds
    assert starts == ([0] if enough else [])


def test_the_store_stage_tells_each_new_article_but_no_teaser_and_nothing_seen(
        demo_config: Config, store: Store) -> None:
    told: list[tuple[str, str]] = []
    with gather.make_fetcher(demo_config) as fetcher:
        results = gather.fetch_sources(demo_config, store, fetcher)
    counts = gather.store_entries(demo_config, store, results, told=told.extend)
    stored = _rows(store, sa.select(articles.c.title, articles.c.text, articles.c.needs_text))
    assert sorted(told) == sorted((r.title, r.text) for r in stored if not r.needs_text)
    teasers = EXPECTED["entries"]["morning-teaser"]
    assert len(told) == len(counts.new_ids) - teasers and teasers > 0
    told.clear()
    gather.store_entries(demo_config, store, results, told=told.extend)  # every entry seen now
    assert told == []


def _story_summaries(store: Store) -> dict[str, str]:
    """Each story's summary, by its lead's URL path."""
    rows = _rows(store, sa.select(articles.c.url, stories_table.c.summary)
                 .join(stories_table, stories_table.c.lead_id == articles.c.id))
    return {r.url.split("/", 3)[3]: r.summary for r in rows}


def test_drafts_begun_by_the_store_stage_are_taken_and_change_no_summary(
        tmp_path: Path, site: SiteHost, monkeypatch: pytest.MonkeyPatch) -> None:
    from feedletter import runs
    from feedletter.config import load_config
    from feedletter.runner import InProcess
    from feedletter.stories import summaries
    from tests.conftest import write_config

    def gathered(name: str, processes: int) -> dict[str, str]:
        (tmp_path / name).mkdir()
        config = _processes(load_config(write_config(tmp_path / name, site)), processes)
        store = Store.open(config.store_url())
        try:
            runs.gather_run(config, store, InProcess())
            return _story_summaries(store)
        finally:
            store.close()

    plain = gathered("plain", 0)
    made: list[work.Drafting] = []
    told: list[int] = []
    given: list[object] = []

    class Watched(work.Drafting):
        def __init__(self, begin: Any) -> None:
            super().__init__(begin)
            made.append(self)

        def told(self, new: Any) -> None:
            told.append(len(new))
            super().told(new)

    group = stories.group

    def watched_group(config: Config, store: Store, drafts: Any = None) -> Any:
        given.append(drafts)
        return group(config, store, drafts)

    monkeypatch.setattr(runs, "Drafting", Watched)
    monkeypatch.setattr(stories, "group", watched_group)
    monkeypatch.setattr(summaries, "_SUMMARIES_IN_WORKERS", 1)
    monkeypatch.setattr(summaries, "_DRAFT_CHUNK", 2)
    drafted = gathered("drafted", 2)
    assert drafted == plain and len(plain) == EXPECTED["stories"]
    teasers = EXPECTED["entries"]["morning-teaser"]
    assert told == [EXPECTED["articles"] - teasers]  # the store stage's new articles, teasers aside
    drafts = made[0].drafts
    assert isinstance(drafts, summaries.Drafts) and given == [drafts]  # the group stage went on with them
    assert drafts._pool is None  # finished: no worker left


def test_a_run_that_fails_after_the_store_stage_stops_its_drafts(
        demo_config: Config, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from feedletter import runs
    from feedletter.errors import FeedletterError
    from feedletter.runner import InProcess, Stage
    from feedletter.stories import summaries

    made: list[work.Drafting] = []

    class Watched(work.Drafting):
        def __init__(self, begin: Any) -> None:
            super().__init__(begin)
            made.append(self)

    def broken(*args: Any) -> None:
        raise FeedletterError("extract", "the extract stage broke")

    monkeypatch.setattr(runs, "Drafting", Watched)
    monkeypatch.setattr(runs, "EXTRACT", Stage("extract_articles", broken))
    monkeypatch.setattr(summaries, "_SUMMARIES_IN_WORKERS", 1)
    with pytest.raises(FeedletterError, match="extract stage broke"):
        runs.gather_run(_processes(demo_config, 2), store, InProcess())
    drafts = made[0].drafts
    assert drafts is not None and drafts._pool is None and drafts.finish() == {}


def _rss(items: list[tuple[str, str, str]]) -> bytes:
    body = "".join(f"<item><title>{title}</title><link>https://blog.example/{slug}</link><guid>{slug}</guid>"
                   f"<description><![CDATA[<p>{text}</p>]]></description></item>" for slug, title, text in items)
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Blog</title><link>https://blog.example/</link>'
            f"{body}</channel></rss>").encode()


def test_a_post_in_two_feeds_is_hashed_and_read_once_by_a_process_with_the_same_outcome(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from feedletter.ingest import entries
    from feedletter.ingest.rules import EntryRules

    shared = ("Harbour Board approves the Kestrel Quay ferry terminal after a 7-2 vote on Tuesday. Chair Imogen "
              "Varga said building starts in 2027 at a cost of $48m. Residents had asked for a second hearing.")
    own = ("Bakers of Wexley Fen gather for the 31st pie contest on Saturday. Last year's winner, Tomas Oyelaran, "
           "returns with a rhubarb entry. The judges will taste 140 pies before noon.")
    news = _rss([("news/ferry", "Ferry terminal approved", shared), ("news/pies", "Pie contest", own)])
    council = _rss([("council/ferry", "Ferry terminal approved", shared)])
    hashed: list[int] = []
    real = entries.minhash.article_signatures

    def counting(told: Any) -> Any:
        hashed.append(len(told))
        return real(told)

    def prepared(body: bytes) -> dict[str, tuple[bytes | None, str | None]]:
        made = entries.prepare_feed(body, "https://blog.example/feed", "application/rss+xml",
                                    EntryRules("blog", full_text="never"), (), datetime(2026, 3, 2, tzinfo=UTC))
        assert not isinstance(made, str)
        return {p.url.rsplit("/", 2)[1] + "/" + p.url.rsplit("/", 1)[1]: (p.signature, p.features) for p in made[1]}

    monkeypatch.setattr(entries, "_MADE", {})
    monkeypatch.setattr(entries.minhash, "article_signatures", counting)
    first, second = prepared(news), prepared(council)
    assert hashed == [2, 0]  # the council feed's copy of the ferry post: taken from the first feed's
    assert second["council/ferry"] == first["news/ferry"] and first["news/ferry"][0] is not None
    monkeypatch.setattr(entries, "_MADE", {})
    assert prepared(council) == second  # made afresh: the same
    monkeypatch.setattr(entries, "_MADE_HELD", 1)
    prepared(news)
    assert len(entries._MADE) == 1


_PRESTART_PROBE = """
import json, sys
import multiprocessing.forkserver as forkserver
from feedletter.config import parse_config
from feedletter.ingest.gather import start_parsing_early

store, sources, processes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
lines = [f"store: sqlite:///{store}", f"gather: {{processes: {processes}}}", "sources:"]
lines += [f"  - {{name: s{i}, url: 'https://example.org/{i}.xml'}}" for i in range(sources)]
config, problems = parse_config("\\n".join(lines) + "\\n")
assert not problems, problems
started = start_parsing_early(config)
print(json.dumps([started, forkserver._forkserver._forkserver_pid]))
"""


@pytest.mark.parametrize(("new_store", "sources", "processes", "expected"), [
    (True, 16, 2, [True, True]),     # a first gather of many feeds: every one will be parsed
    (False, 16, 2, [False, False]),  # a store that exists: its feeds may answer "not modified"
    (True, 15, 2, [False, False]),   # too few feeds for parse workers
    (True, 16, 0, [False, False]),   # parsing kept in the fetch threads
])
def test_a_first_gather_into_a_new_store_starts_the_fork_server_at_once(
        tmp_path: Path, new_store: bool, sources: int, processes: int, expected: list[bool]) -> None:
    store = tmp_path / "new" / "feedletter.db"
    if not new_store:
        Store.open(f"sqlite:///{store}").close()
    # In a process of its own: the fork server is one per process, and this one's may be running.
    result = subprocess.run([sys.executable, "-c", _PRESTART_PROBE, str(store), str(sources), str(processes)],
                            cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    started, server = json.loads(result.stdout)
    assert [started, server is not None] == expected
    assert store.exists() is not new_store  # nothing created: the store is opened later, as before
    if server is not None:  # and the fork server ends with the command that started it
        deadline = time.monotonic() + 30
        while Path(f"/proc/{server}").exists() and "zombie" not in _state(server) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path(f"/proc/{server}").exists() or "zombie" in _state(server)


def _state(pid: int) -> str:
    try:
        return next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:"))
    except (OSError, StopIteration):
        return "gone (zombie or reaped)"


def test_a_store_folder_it_may_not_read_starts_nothing_early_and_leaves_the_error_to_the_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from feedletter.config import parse_config

    lines = [f"store: sqlite:///{tmp_path / 'locked' / 'feedletter.db'}", "gather: {processes: 2}", "sources:"]
    lines += [f"  - {{name: s{i}, url: 'https://example.org/{i}.xml'}}" for i in range(20)]
    config, problems = parse_config("\n".join(lines) + "\n")
    assert not problems

    def denied(self: Path) -> bool:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "exists", denied)
    assert gather.start_parsing_early(config) is False
