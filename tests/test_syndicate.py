"""Feeds: RSS 2.0, Atom 1.0 and JSON Feed 1.1 of issues and of stories; validity, ids, dates, WebSub."""

from __future__ import annotations

import html
import json
import logging
import re
import shutil
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import feedparser
import pytest
from lxml import etree
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from feedletter.config import Config, load_config
from feedletter.errors import ConfigError
from feedletter.ingest.parse.feeds import parse_feed
from feedletter.publish.site import publish
from feedletter.store import Store
from feedletter.text.sanitize import sanitize_html
from tests.fixtures_syndication import add_issues, seeded, write_config

BASE = "https://news.example.com/archive/weekly/"
FEEDS = ["rss.xml", "atom.xml", "feed.json", "stories/rss.xml", "stories/atom.xml", "stories/feed.json"]
RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$")
RFC822 = re.compile(r"^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                    r"\d{4} \d{2}:\d{2}:\d{2} (?:[+-]\d{4}|GMT|UT)$")
ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT = "{http://purl.org/rss/1.0/modules/content/}encoded"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, Store, Path]]:
    config, store = seeded(tmp_path_factory.mktemp("feeds"), issues=5)
    result = publish(config, store)
    yield config, store, result.root / "weekly"
    store.close()


def check_json_feed(feed: Any) -> list[str]:
    """The JSON Feed 1.1 rules a reader relies on (https://www.jsonfeed.org/version/1.1/), one problem a line."""
    problems = []
    if not isinstance(feed, dict):
        return ["top level is not an object"]
    if feed.get("version") != "https://jsonfeed.org/version/1.1":
        problems.append(f"version is {feed.get('version')!r}")
    for key in ("title",):
        if not isinstance(feed.get(key), str) or not feed[key]:
            problems.append(f"{key} is required and must be a string")
    for key in ("home_page_url", "feed_url", "description", "next_url", "icon", "favicon", "language"):
        if key in feed and not isinstance(feed[key], str):
            problems.append(f"{key} must be a string")
    for author in feed.get("authors", []):
        if not isinstance(author, dict) or not {"name", "url", "avatar"} & author.keys():
            problems.append("an author needs at least one of name, url, avatar")
    for hub in feed.get("hubs", []):
        if not isinstance(hub, dict) or not isinstance(hub.get("type"), str) or not isinstance(hub.get("url"), str):
            problems.append("a hub needs type and url")
    items = feed.get("items")
    if not isinstance(items, list):
        return [*problems, "items is required and must be an array"]
    seen: set[str] = set()
    for n, item in enumerate(items):
        if not isinstance(item.get("id"), str) or not item["id"]:
            problems.append(f"items[{n}].id is required and should be a non-empty string")
        elif item["id"] in seen:
            problems.append(f"items[{n}].id {item['id']} is not unique")
        else:
            seen.add(item["id"])
        if not any(isinstance(item.get(k), str) for k in ("content_html", "content_text")):
            problems.append(f"items[{n}] needs content_html or content_text")
        for key in ("url", "external_url", "title", "summary", "image", "banner_image"):
            if key in item and not isinstance(item[key], str):
                problems.append(f"items[{n}].{key} must be a string")
        for key in ("date_published", "date_modified"):
            if key in item and not RFC3339.match(str(item[key])):
                problems.append(f"items[{n}].{key} is not RFC 3339: {item[key]!r}")
        for attachment in item.get("attachments", []):
            if not {"url", "mime_type"} <= attachment.keys():
                problems.append(f"items[{n}] attachment needs url and mime_type")
    return problems


def items(path: Path) -> list[dict[str, str]]:
    """Each item's id, title, link, date and raw HTML content, read from the file itself."""
    if path.suffix == ".json":
        return [{"id": i["id"], "title": i["title"], "link": i["url"], "date": i["date_published"],
                 "html": i["content_html"]} for i in json.loads(path.read_bytes())["items"]]
    root = etree.fromstring(path.read_bytes())
    if root.tag == "rss":
        return [{"id": i.findtext("guid") or "", "title": i.findtext("title") or "", "link": i.findtext("link") or "",
                 "date": i.findtext("pubDate") or "", "html": i.findtext(CONTENT) or ""} for i in root.iter("item")]
    return [{"id": e.findtext(f"{ATOM}id") or "", "title": e.findtext(f"{ATOM}title") or "",
             "link": e.find(f"{ATOM}link").get("href"), "date": e.findtext(f"{ATOM}updated") or "",  # type: ignore[union-attr]
             "html": e.findtext(f"{ATOM}content") or ""} for e in root.iter(f"{ATOM}entry")]


@pytest.mark.parametrize("name", FEEDS)
def test_every_feed_reparses_cleanly(built: tuple[Config, Store, Path], name: str) -> None:
    path = built[2] / name
    data = path.read_bytes()
    if name.endswith(".json"):
        assert check_json_feed(json.loads(data)) == []
        parsed = parse_feed(data, url=BASE + name, source="check")
        assert parsed.format.startswith("json")
    else:
        parsed_xml = feedparser.parse(data)
        assert not parsed_xml.bozo, parsed_xml.get("bozo_exception")
        assert parsed_xml.version == ("rss20" if name.endswith("rss.xml") else "atom10")
        assert parsed_xml.feed.title.startswith("Riverside Weekly")
        parsed = parse_feed(data, url=BASE + name, source="check")
    expected = 5 * 2 if name.startswith("stories/") else 5
    assert len(parsed.entries) == expected
    assert [e.link for e in parsed.entries] == [i["link"] for i in items(path)]


@pytest.mark.parametrize("name", ["rss.xml", "stories/rss.xml"])
def test_rss_has_required_elements_and_rfc822_dates(built: tuple[Config, Store, Path], name: str) -> None:
    channel = etree.fromstring((built[2] / name).read_bytes()).find("channel")
    assert channel is not None
    for tag in ("title", "link", "description", "lastBuildDate"):
        assert (channel.findtext(tag) or "").strip(), tag
    assert channel.findtext("link") == BASE
    assert RFC822.match(channel.findtext("lastBuildDate") or "")
    for item in channel.iter("item"):
        assert item.findtext("title") and item.findtext("link") and item.findtext("description")
        guid = item.find("guid")
        assert guid is not None and guid.get("isPermaLink") == "true" and guid.text == (
            item.findtext("link") if name == "rss.xml" else guid.text)
        date = item.findtext("pubDate") or ""
        assert RFC822.match(date), date
        assert parsedate_to_datetime(date).utcoffset() is not None


@pytest.mark.parametrize("name", ["atom.xml", "stories/atom.xml"])
def test_atom_has_required_elements_and_rfc3339_dates(built: tuple[Config, Store, Path], name: str) -> None:
    feed = etree.fromstring((built[2] / name).read_bytes())
    assert feed.findtext(f"{ATOM}id") == BASE + name
    assert feed.findtext(f"{ATOM}title") and feed.find(f"{ATOM}author") is not None
    assert RFC3339.match(feed.findtext(f"{ATOM}updated") or "")
    for entry in feed.iter(f"{ATOM}entry"):
        assert entry.findtext(f"{ATOM}id") and entry.findtext(f"{ATOM}title")
        assert RFC3339.match(entry.findtext(f"{ATOM}updated") or "")
        assert RFC3339.match(entry.findtext(f"{ATOM}published") or "")
        assert entry.find(f"{ATOM}content").get("type") == "html"  # type: ignore[union-attr]


@pytest.mark.parametrize("name", FEEDS)
def test_self_link_is_the_files_own_address(built: tuple[Config, Store, Path], name: str) -> None:
    data = (built[2] / name).read_bytes()
    if name.endswith(".json"):
        assert json.loads(data)["feed_url"] == BASE + name
        return
    root = etree.fromstring(data)
    selfs = [link.get("href") for link in root.iter(f"{ATOM}link") if link.get("rel") == "self"]
    assert selfs == [BASE + name]


@pytest.mark.parametrize("name", FEEDS)
def test_content_is_sanitized_and_hostile_text_escaped(built: tuple[Config, Store, Path], name: str) -> None:
    found = items(built[2] / name)
    assert any("&lt;script&gt;" in i["html"] for i in found)  # the hostile title is there, as text
    for item in found:
        assert urlsplit(item["link"]).scheme == "https"
        assert "<script" not in item["html"].lower()
        assert "javascript:" not in item["html"].lower()
        assert sanitize_html(item["html"]) == item["html"]  # a fixed point of the one sanitizer
    # The "also covered by" link whose URL was javascript: is kept as a name without a link.
    assert any("Also covered by Valley Post" in i["html"] for i in found)


def test_issue_items_carry_every_story_and_story_items_link_the_lead(built: tuple[Config, Store, Path]) -> None:
    feed = json.loads((built[2] / "feed.json").read_bytes())
    stories = json.loads((built[2] / "stories/feed.json").read_bytes())
    newest = feed["items"][0]
    assert newest["id"] == newest["url"] == BASE + "5/"
    for story in stories["items"][:2]:  # the newest issue's two stories: title, summary and permalink
        assert html.escape(story["title"], quote=False) in newest["content_html"]
        assert html.escape(story["summary"], quote=False) in newest["content_html"]
        assert f'href="{story["id"]}"' in newest["content_html"]
    assert f'href="{stories["items"][2]["id"]}"' not in newest["content_html"]
    first = stories["items"][0]
    assert first["id"].startswith(BASE + "stories/") and first["url"].startswith("https://")
    assert f'href="{first["url"]}"' in first["content_html"]
    assert "Also covered by <a href=" in first["content_html"]
    hostile = next(s for s in stories["items"] if s["id"] == BASE + "stories/1/")
    assert hostile["url"] == hostile["id"]  # a javascript: lead URL gives way to the permalink


def test_ids_are_unique_and_stable_across_rebuilds(tmp_path: Path) -> None:
    config, store = seeded(tmp_path, issues=3)
    root = publish(config, store).root / "weekly"
    before = {name: items(root / name) for name in FEEDS}
    add_issues(config, store, 1)
    shutil.rmtree(root)
    publish(config, store)
    after = {name: items(root / name) for name in FEEDS}
    store.close()
    for name in FEEDS:
        ids = [i["id"] for i in after[name]]
        assert len(ids) == len(set(ids)), name
        old = {i["id"]: (i["title"], i["date"]) for i in before[name]}
        new = {i["id"]: (i["title"], i["date"]) for i in after[name]}
        assert old.items() <= new.items(), name  # every earlier item kept its id, title and date
        assert len(new) > len(old)


def test_feeds_hold_the_newest_feed_items(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    path.write_text(path.read_text().replace("archive_per_page: 2", "archive_per_page: 2, feed_items: 3"))
    config = load_config(path)
    store = Store.open(config.store_url())
    add_issues(config, store, 4)
    root = publish(config, store).root / "weekly"
    store.close()
    assert [i["id"] for i in items(root / "rss.xml")] == [BASE + f"{n}/" for n in (4, 3, 2)]
    assert len(items(root / "stories/atom.xml")) == 3


def test_only_listed_formats_are_written(tmp_path: Path) -> None:
    config, store = seeded(tmp_path, issues=1, feeds="[atom]")
    files = publish(config, store).files
    store.close()
    names = {p.name for p in files}
    assert "atom.xml" in names and not {"rss.xml", "feed.json"} & names
    assert not (tmp_path / "public/weekly/stories/atom.xml").exists()
    index = (tmp_path / "public/weekly/index.html").read_text()
    assert 'type="application/atom+xml"' in index and "application/rss+xml" not in index


def test_empty_newsletter_gets_valid_feeds_dated_without_now(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path))
    store = Store.open(config.store_url())
    publish(config, store)
    store.close()
    parsed = feedparser.parse((tmp_path / "public/weekly/atom.xml").read_bytes())
    assert not parsed.bozo and parsed.entries == []
    assert parsed.feed.updated.startswith("1970-01-01")
    assert check_json_feed(json.loads((tmp_path / "public/weekly/feed.json").read_bytes())) == []


def test_issues_feeds_carry_the_newsletter_description(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, newsletter='    description: "Riverside news,\\n\\nweekly."\n'))
    store = Store.open(config.store_url())
    publish(config, store)
    store.close()
    folder = tmp_path / "public/weekly"
    assert feedparser.parse((folder / "atom.xml").read_bytes()).feed.subtitle == "Riverside news, weekly."
    assert json.loads((folder / "feed.json").read_bytes())["description"] == "Riverside news, weekly."
    assert feedparser.parse((folder / "stories/rss.xml").read_bytes()).feed.description == \
        "Every story Riverside Weekly has carried"


@pytest.mark.parametrize(("feeds", "hub", "problem"), [
    ("[stories]", None, "stories needs a feed format beside it"),
    ("[rss, podcast]", None, "feeds"),
    ("[rss]", "ftp://hub.example.com/", "not an http(s) URL"),
])
def test_config_rejects_bad_syndication_settings(tmp_path: Path, feeds: str, hub: str | None, problem: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(problem)):
        load_config(write_config(tmp_path, feeds=feeds, hub=hub))


# -- WebSub ------------------------------------------------------------------------------------

def _fake_hub(httpserver: HTTPServer, status: int = 204) -> list[dict[str, list[str]]]:
    """A hub on loopback that records each publish notice after checking it is a form POST."""
    received: list[dict[str, list[str]]] = []

    def handle(request: Request) -> Response:
        assert request.headers["Content-Type"].startswith("application/x-www-form-urlencoded")
        received.append(parse_qs(request.get_data(as_text=True), strict_parsing=True))
        return Response(status=status)

    httpserver.expect_request("/hub", method="POST").respond_with_handler(handle)
    return received


def test_websub_hub_is_pinged_for_changed_feeds_only(tmp_path: Path, httpserver: HTTPServer) -> None:
    received = _fake_hub(httpserver)
    hub = httpserver.url_for("/hub")
    config, store = seeded(tmp_path, issues=1, hub=hub)
    first = publish(config, store)
    assert first.hub_problems == []
    assert sorted(r["hub.url"][0] for r in received) == sorted(BASE + n for n in FEEDS)
    assert all(r["hub.mode"] == ["publish"] and len(r) == 2 for r in received)
    received.clear()
    publish(config, store)  # nothing new: nothing to announce
    assert received == []
    add_issues(config, store, 1)
    publish(config, store)
    store.close()
    assert len(received) == len(FEEDS)
    root = first.root / "weekly"
    assert f'<atom:link href="{hub}" rel="hub"/>' in (root / "rss.xml").read_text()
    assert f'<link href="{hub}" rel="hub"/>' in (root / "stories/atom.xml").read_text()
    assert json.loads((root / "feed.json").read_text())["hubs"] == [{"type": "WebSub", "url": hub}]


@pytest.mark.parametrize("status", [500, None])
def test_websub_failure_is_logged_not_fatal(tmp_path: Path, httpserver: HTTPServer, status: int | None,
                                            caplog: pytest.LogCaptureFixture) -> None:
    if status is None:  # a hub that is not there at all
        hub = httpserver.url_for("/hub")
        httpserver.stop()
    else:
        _fake_hub(httpserver, status=status)
        hub = httpserver.url_for("/hub")
    config, store = seeded(tmp_path, issues=1, hub=hub, feeds="[rss]")
    with caplog.at_level(logging.WARNING, logger="feedletter.publish.websub"):
        result = publish(config, store)
    store.close()
    assert (result.root / "weekly/rss.xml").is_file()
    assert len(result.hub_problems) == 1
    assert result.hub_problems[0].startswith(f"syndicate: {hub}: WebSub ping for {BASE}rss.xml")
    assert ("HTTP 500" if status else "ConnectionError") in result.hub_problems[0]
    assert any("WebSub ping" in r.getMessage() for r in caplog.records)
    if status is None:
        httpserver.start()  # the fixture stops it again at teardown
