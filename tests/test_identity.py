"""No post lost: an entry with a GUID or link of its own is stored, and every other is counted with
its reason. Gathers run over loopback into SQLite, and into PostgreSQL when
FEEDLETTER_TEST_DATABASE_URL is set."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from fixtures_delivery import store_url

from feedletter.config import load_config
from feedletter.errors import ParseError
from feedletter.ingest.gather import StoreCounts, fetch_sources, make_fetcher, store_entries
from feedletter.ingest.health import all_states
from feedletter.ingest.identity import canonical_url, entry_key, legacy_entry_key
from feedletter.ingest.parse.feeds import parse_feed
from feedletter.removal import remove_article
from feedletter.schema import articles, carriers, tombstones
from feedletter.store import Store
from tests.conftest import ROOT
from tests.fixtures_ingest import RudeServer, rude, send

__all__ = ["rude", "store_url"]  # fixtures used below, imported for pytest to find

CORPUS = ROOT.parent / "shared" / "corpus"


# -- keys ---------------------------------------------------------------------------------------

def test_a_guid_is_the_key_as_given() -> None:
    morning = entry_key("http://daily.example/2026/11/30.html#a080605", None)
    evening = entry_key(" http://daily.example/2026/11/30.html#a170102 ", None)
    assert morning == "guid:http://daily.example/2026/11/30.html#a080605"
    assert evening == "guid:http://daily.example/2026/11/30.html#a170102"
    # What an older feedletter made of both: one key, so the second post was never stored.
    assert legacy_entry_key("http://daily.example/2026/11/30.html#a080605", None) == \
        legacy_entry_key("http://daily.example/2026/11/30.html#a170102", None) == \
        "url:https://daily.example/2026/11/30.html"
    assert entry_key("tag:blog.example,2026:post-7", "https://blog.example/7") == "guid:tag:blog.example,2026:post-7"
    assert legacy_entry_key("tag:blog.example,2026:post-7", "https://blog.example/7") is None


def test_a_link_without_guid_keeps_its_fragment_and_drops_tracking() -> None:
    assert entry_key(None, "http://www.notes.example/log/?utm_source=rss#n2") == "url:https://notes.example/log#n2"
    assert legacy_entry_key(None, "http://www.notes.example/log/?utm_source=rss#n2") == "url:https://notes.example/log"
    assert legacy_entry_key(None, "https://notes.example/log") is None
    assert entry_key(None, None, "A title", "A body").startswith("hash:")
    assert canonical_url("https://notes.example/log#n2") == "https://notes.example/log"
    assert canonical_url("https://notes.example/log#n2", keep_fragment=True) == "https://notes.example/log#n2"


# -- gathers over loopback -----------------------------------------------------------------------

def _rss(*items: tuple[str | None, str | None, str]) -> bytes:
    """An RSS feed of ``(guid, link, title)`` items, each with a body of its own."""
    parts = ['<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>t</title>'
             "<link>https://feed.example/</link>"]
    for guid, link, title in items:
        parts.append(f"<item><title>{title}</title>" + (f"<guid>{guid}</guid>" if guid else "")
                     + (f"<link>{link}</link>" if link else "")
                     + f"<description>&lt;p&gt;{title}: what happened, told at some length.&lt;/p&gt;"
                       "</description></item>")
    return ("".join(parts) + "</channel></rss>").encode()


class Gatherer:
    """Sources served by a loopback server, gathered (fetch + store) into one store."""

    def __init__(self, tmp_path: Path, server: RudeServer, url: str) -> None:
        self.tmp_path, self.server, self.url = tmp_path, server, url
        self.bodies: dict[str, bytes] = {}

    def serve(self, feeds: Mapping[str, bytes]) -> None:
        for name, body in feeds.items():
            self.bodies[name] = body
            self.server.route(f"/{name}", lambda r, name=name: send(  # type: ignore[misc]
                r, 200, self.bodies[name], {"Content-Type": "application/xml"}))

    def run(self, feeds: Mapping[str, bytes] | None = None, *, every_ok: bool = True) -> StoreCounts:
        if feeds:
            self.serve(feeds)
        lines = [f"store: '{self.url}'", "allow_private: true", "gather: {processes: 0}", "sources:"]
        lines += [f"  - {{name: '{n}', url: '{self.server.url('/' + n)}'}}" for n in self.bodies]
        path = self.tmp_path / "sources.yaml"
        path.write_text("\n".join(lines) + "\n")
        config = load_config(path)
        with self.opened() as store, make_fetcher(config) as fetcher:
            results = fetch_sources(config, store, fetcher, force=True)
            assert not every_ok or all(r.status == "ok" for r in results), [r.error for r in results if r.error]
            return store_entries(config, store, results)

    @contextmanager
    def opened(self) -> Iterator[Store]:
        # Closed after each use, as a run would: a PostgreSQL schema is then free to drop.
        store = Store.open(self.url)
        try:
            yield store
        finally:
            store.close()

    def rows(self, query: sa.Select[tuple[object, ...]]) -> list[sa.Row[tuple[object, ...]]]:
        with self.opened() as store, store.begin() as conn:
            return list(conn.execute(query))


@pytest.fixture
def gatherer(tmp_path: Path, rude: RudeServer, store_url: str) -> Iterator[Gatherer]:
    yield Gatherer(tmp_path, rude, store_url)


def _reasons(counts: StoreCounts, name: str) -> dict[str, int]:
    return {k: v for k, v in asdict(counts.per_source[name]).items() if v}


DAY = "http://daily.example/2026/11/30.html"


def test_guids_that_differ_only_by_fragment_are_each_stored(gatherer: Gatherer) -> None:
    feed = _rss((f"{DAY}#a0800", f"{DAY}#a0800", "Morning"), (f"{DAY}#a1200", f"{DAY}#a1200", "Noon"),
                (f"{DAY}#a1700", f"{DAY}#a1700", "Evening"),
                (f"{DAY}#a1200", f"{DAY}#a1200", "Noon, again"))  # the publisher repeated a GUID
    first = gatherer.run({"daily": feed})
    assert _reasons(first, "daily") == {"new": 3, "repeated": 1}
    stored = {r.key: r.canonical for r in gatherer.rows(sa.select(articles.c.key, articles.c.canonical))}
    # The fragment tells the posts apart, so their canonical URLs keep it: one post, one tombstone.
    assert stored == {f"guid:{DAY}#a{t}": f"https://daily.example/2026/11/30.html#a{t}"
                      for t in ("0800", "1200", "1700")}
    assert _reasons(gatherer.run(), "daily") == {"seen": 4}

    with gatherer.opened() as store:
        remove_article(store, f"{DAY}#a0800")
    assert _reasons(gatherer.run(), "daily") == {"seen": 3, "removed": 1}
    with gatherer.opened() as store:
        states = {s.name: s for s in all_states(store)}
    assert (states["daily"].entries.seen, states["daily"].entries.removed, states["daily"].new_items) == (3, 1, 0)


def test_links_that_differ_only_by_fragment_without_guids_are_each_stored(gatherer: Gatherer) -> None:
    feed = _rss((None, "https://notes.example/log#n1", "One"), (None, "https://notes.example/log#n2", "Two"),
                (None, "https://notes.example/log#n3", "Three"))
    assert _reasons(gatherer.run({"notes": feed}), "notes") == {"new": 3}
    keys = sorted(r.key for r in gatherer.rows(sa.select(articles.c.key)))
    assert keys == [f"url:https://notes.example/log#n{i}" for i in (1, 2, 3)]


def test_entries_sharing_one_link_but_not_their_guid_are_each_stored(gatherer: Gatherer) -> None:
    # A linked post and the sponsor post beside it, both pointing at the sponsor's home page.
    feed = _rss(("tag:df.example,2026:/linked/1", "http://sponsor.example/", "Sponsor's app"),
                ("tag:df.example,2026:/sponsors/1", "http://sponsor.example/", "Thanks to Sponsor"))
    assert _reasons(gatherer.run({"df": feed}), "df") == {"new": 2}


def test_the_same_post_in_two_feeds_is_one_article_and_a_carrier(gatherer: Gatherer) -> None:
    own = _rss(("https://site.example/post/7?utm_source=feed", "https://site.example/post/7?utm_source=feed",
                "Bridge reopens"))
    roundup = _rss((None, "http://www.site.example/post/7/?utm_medium=rss&utm_source=roundup", "Bridge reopens"),
                   ("roundup-2", "https://other.example/story", "Something else"))
    first = gatherer.run({"site": own, "roundup": roundup})
    assert _reasons(first, "site") == {"new": 1}
    assert _reasons(first, "roundup") == {"new": 1, "carried": 1}
    (post,) = gatherer.rows(sa.select(articles.c.id).where(articles.c.source == "site"))
    carried_by = {r.source for r in gatherer.rows(sa.select(carriers.c.source).where(carriers.c.article_id == post.id))}
    assert carried_by == {"site", "roundup"}
    again = gatherer.run()
    assert _reasons(again, "roundup") == {"seen": 2} and len(again.new_ids) == 0


def test_a_changed_guid_with_the_same_link_and_title_is_not_a_new_post(gatherer: Gatherer) -> None:
    gatherer.run({"blog": _rss(("http://blog.example/?p=9", "https://blog.example/hello", "Hello"))})
    # The site moved to https and its GUIDs with it: the post with the same link and title is known.
    moved = _rss(("https://blog.example/?p=9", "https://blog.example/hello", "Hello"),
                 ("https://blog.example/?p=10", "https://blog.example/news", "News"))
    assert _reasons(gatherer.run({"blog": moved}), "blog") == {"new": 1, "seen": 1}
    # A feed that links every entry to its home page and shows one at a time: another title, another post.
    gatherer.run({"home": _rss(("h1", "https://home.example/", "Monday"))})
    assert _reasons(gatherer.run({"home": _rss(("h2", "https://home.example/", "Tuesday"))}), "home") == {"new": 1}


def test_a_store_keyed_the_old_way_gets_no_article_twice(gatherer: Gatherer) -> None:
    """An upgrade: articles stored under the old keys (URL GUIDs canonicalized, fragments dropped)
    are recognised and re-keyed; the posts the old keys collapsed are stored now."""
    stamp = datetime(2026, 11, 30, 9, tzinfo=UTC)
    old = [  # what the old store step left: one article for the day's three posts, the noon one
        ("url:https://daily.example/2026/11/30.html", "daily", f"{DAY}#a1200", "Noon"),
        ("url:https://blog.example/post/1", "blog", "https://blog.example/post/1?utm_source=rss", "First"),
        ("guid:blog-2", "blog", "https://blog.example/post/2", "Second"),
    ]
    with gatherer.opened() as store, store.begin() as conn:
        conn.execute(articles.insert(), [{"key": k, "source": s, "url": u, "canonical": canonical_url(u),
                                          "title": t, "published": stamp, "fetched": stamp} for k, s, u, t in old])
        # A post removed then: its tombstones are of the old form too.
        conn.execute(tombstones.insert(), [{"key": "url:https://blog.example/post/3", "reason": "removed",
                                            "created": stamp}])
    daily = _rss((f"{DAY}#a0800", f"{DAY}#a0800", "Morning"), (f"{DAY}#a1200", f"{DAY}#a1200", "Noon"),
                 (f"{DAY}#a1700", f"{DAY}#a1700", "Evening"))
    blog = _rss(("http://blog.example/post/1?utm_source=rss", "https://blog.example/post/1?utm_source=rss", "First"),
                ("blog-2", "https://blog.example/post/2", "Second"),
                ("https://blog.example/post/3", "https://blog.example/post/3", "Third"))
    first = gatherer.run({"daily": daily, "blog": blog})
    assert _reasons(first, "daily") == {"new": 2, "seen": 1}
    assert _reasons(first, "blog") == {"seen": 2, "removed": 1}
    rows = {r.title: r for r in gatherer.rows(sa.select(articles.c.title, articles.c.key, articles.c.id))}
    assert sorted(rows) == ["Evening", "First", "Morning", "Noon", "Second"]
    assert rows["Noon"].key == f"guid:{DAY}#a1200" and rows["Noon"].id == 1  # the same row, re-keyed
    assert rows["First"].key == "guid:http://blog.example/post/1?utm_source=rss"
    again = gatherer.run()
    assert len(again.new_ids) == 0 and again.total.seen == 5 and again.total.removed == 1


# -- the corpus ----------------------------------------------------------------------------------

def _corpus() -> list[Path]:
    manifest = CORPUS / "feeds" / "manifest.json"
    if not manifest.is_file():
        pytest.skip(f"no feed corpus at {CORPUS} (../shared/corpus next to the repository): evaluation data only")
    return [CORPUS / "feeds" / item["file"] for item in json.loads(manifest.read_text())]


def test_every_corpus_feed_stores_every_entry_with_a_guid_or_link_of_its_own(gatherer: Gatherer) -> None:
    files = _corpus()
    names = {re.sub(r"[^a-z0-9]+", "-", f"c{i:02d}-{path.stem}".lower())[:60]: path for i, path in enumerate(files)}
    counts = gatherer.run({name: path.read_bytes() for name, path in names.items()}, every_ok=False)
    when = datetime(2026, 12, 1, tzinfo=UTC)
    carried = {r.source: r.n for r in gatherer.rows(
        sa.select(carriers.c.source, sa.func.count().label("n")).group_by(carriers.c.source))}
    lost = {}
    for name, path in names.items():
        if name not in counts.per_source:  # not a feed (an HTML page): a recorded parse error, nothing lost
            with pytest.raises(ParseError):
                parse_feed(path.read_bytes(), url=gatherer.server.url("/" + name), source=name, now=when)
            continue
        entries = parse_feed(path.read_bytes(), url=gatherer.server.url("/" + name), source=name, now=when).entries
        own = {("guid", e.guid) if e.guid else ("link", e.link) if e.link else ("body", e.key) for e in entries}
        tally = counts.per_source[name]
        # Each entry counted once, under one reason; a fresh store has none seen or removed.
        assert tally.new + tally.repeated + tally.carried + tally.filtered == len(entries), name
        # Every entry with its own identity is an article of this feed or carries another feed's.
        if carried.get(name, 0) != len(own):
            lost[name] = (len(own), carried.get(name, 0))
    assert not lost, f"distinct GUIDs/links vs articles stored or carried: {lost}"
    scripting = next(n for n in names if "scriptingnews" in n)
    assert counts.per_source[scripting].new == 48  # 50 entries, two of them repeat a GUID
    assert len(gatherer.run(every_ok=False).new_ids) == 0
