"""The static web archive: pages, relative links, web copies of issues, byte-identical rebuilds."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import lxml.html
import pytest
import sqlalchemy as sa

from feedletter.config import Config, Schedule, load_config
from feedletter.errors import ConfigError
from feedletter.publish.about import schedule_words
from feedletter.publish.site import publish
from feedletter.publish.web_copy import web_copy
from feedletter.sitehost import SiteHost
from feedletter.store import Store
from tests.conftest import postgres_url
from tests.fixtures_syndication import HOSTILE_TITLE, add_issues, seeded, write_config

ROOT = Path(__file__).resolve().parents[1]
SUBSCRIBE = "https://news.example.com/archive/subscribe?newsletter=weekly"
ABOUT = """\
    description: "News from the riverside towns, chosen from three local blogs.\\n\\nFree, and one click to leave."
    schedule: {cron: "0 8 * * MON", timezone: Europe/Berlin}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Config, Store, Path]]:
    config, store = seeded(tmp_path_factory.mktemp("archive"), issues=5)
    yield config, store, publish(config, store).root
    store.close()


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def links(page: Path) -> list[str]:
    doc = lxml.html.fromstring(page.read_bytes())
    return [value for element, attribute, value, _ in doc.iterlinks() if attribute in ("href", "src")]


def listed_issues(page: Path) -> list[str]:
    doc = lxml.html.fromstring(page.read_bytes())
    return [a.get("href") for a in doc.xpath("//ol[@class='issues']//a")]


@pytest.mark.slow  # runs the CLI in a fresh process
def test_rebuild_gives_byte_identical_files_also_in_a_fresh_process(tmp_path: Path) -> None:
    config, store = seeded(tmp_path, issues=3)
    first = publish(config, store)
    before = snapshot(first.root)
    assert len(before) == len(first.files) and len(before) > 10
    again = publish(config, store)
    assert again.changed == []  # an unchanged store rewrites nothing
    rebuilt = publish(config, store, rebuild=True)
    store.close()
    assert rebuilt.changed == [] and len(rebuilt.files) == len(before)
    assert snapshot(first.root) == before
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "feedletter.cli", "syndicate", "--rebuild", "--config",
                          str(tmp_path / "sources.yaml")], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""  # prints only files that changed: none did
    assert f"syndicate: {len(before)} files in {first.root} (0 changed)" in run.stderr
    assert snapshot(first.root) == before
    today = datetime.now(UTC)
    for name, data in before.items():  # nothing says when the build ran
        text = data.decode("utf-8")
        assert today.strftime("%Y-%m-%d") not in text and f"{today.day} {today:%B %Y}" not in text, name


@pytest.mark.slow  # runs the CLI in a fresh process
def test_cli_prints_changed_files_and_rebuild_removes_stale_ones(tmp_path: Path) -> None:
    config, store = seeded(tmp_path, issues=1)
    publish(config, store)
    folder = tmp_path / "public" / "weekly"
    (folder / "old.html").write_text("stale")
    (folder / "99").mkdir()
    (folder / "99" / "index.html").write_text("stale")
    assert publish(config, store).removed == [] and (folder / "old.html").exists()
    add_issues(config, store, 1)
    store.close()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "feedletter.cli", "syndicate", "--rebuild", "-c",
                          str(tmp_path / "sources.yaml")], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env=env)
    assert run.returncode == 0, run.stderr
    printed = run.stdout.splitlines()
    assert str(folder / "2" / "index.html") in printed and str(folder / "rss.xml") in printed
    assert str(folder / "1" / "index.html") in printed  # it now links to the newer issue
    assert "2 removed" in run.stderr
    assert not (folder / "old.html").exists() and not (folder / "99").exists()


def test_index_is_newest_first_and_paginated(built: tuple[Config, Store, Path]) -> None:
    folder = built[2] / "weekly"
    assert listed_issues(folder / "index.html") == ["5/", "4/"]
    assert listed_issues(folder / "page/2/index.html") == ["../../3/", "../../2/"]
    assert listed_issues(folder / "page/3/index.html") == ["../../1/"]
    assert not (folder / "page/4").exists() and not (folder / "page/1").exists()
    first = lxml.html.fromstring((folder / "index.html").read_bytes())
    assert [a.get("href") for a in first.xpath("//nav[@class='pages']//a[@rel='next']")] == ["page/2/"]
    second = lxml.html.fromstring((folder / "page/2/index.html").read_bytes())
    assert [a.get("href") for a in second.xpath("//nav[@class='pages']//a[@rel='prev']")] == ["../../"]
    assert [a.get("href") for a in second.xpath("//nav[@class='pages']//a[@rel='next']")] == ["../../page/3/"]
    home = lxml.html.fromstring((built[2] / "index.html").read_bytes())
    assert [a.get("href") for a in home.xpath("//section[@class='newsletter']//h2/a")] == ["weekly/"]


def test_every_page_links_relatively_and_every_link_resolves(built: tuple[Config, Store, Path]) -> None:
    root = built[2]
    pages = sorted(root.rglob("*.html"))
    assert len(pages) == 1 + 3 + 5 + 10  # home, index pages, issues, stories
    checked = 0
    for page in pages:
        for link in links(page):
            parts = urlsplit(link)
            if link.startswith("#") and len(link) > 1:  # "In this issue" links to a card on the same page
                assert f'name="{link[1:]}"' in page.read_text(), (page, link)
                continue
            if parts.scheme or link.startswith("#"):
                assert parts.scheme in ("http", "https", "mailto") or link == "#", (page, link)
                continue
            assert not link.startswith("/"), f"{page}: {link} only works at the host's root"
            target = (page.parent / parts.path).resolve()
            target = target / "index.html" if target.is_dir() else target
            assert target.is_file() and root.resolve() in target.parents, f"{page}: {link} is broken"
            checked += 1
    assert checked > 100


def test_issue_page_is_the_email_without_per_subscriber_parts(built: tuple[Config, Store, Path]) -> None:
    _, store, root = built
    page = (root / "weekly" / "5" / "index.html").read_text()
    # The email's footer speaks to a subscriber; a visitor gets the way to subscribe instead.
    for gone in ("%%", "Unsubscribe", "View in browser", "because you subscribed", "You receive"):
        assert gone not in page
    assert "Story number 2 about the riverside" in page
    assert "<script>" not in page and "javascript:" not in page
    assert "Get Riverside Weekly by email" in page
    doc = lxml.html.fromstring(page)
    alternates = {(link.get("type"), link.get("href")) for link in doc.xpath("//link[@rel='alternate']")}
    assert alternates == {("application/rss+xml", "../rss.xml"), ("application/atom+xml", "../atom.xml"),
                          ("application/feed+json", "../feed.json"), ("application/rss+xml", "../stories/rss.xml"),
                          ("application/atom+xml", "../stories/atom.xml"),
                          ("application/feed+json", "../stories/feed.json")}
    assert doc.xpath("//link[@rel='canonical']")[0].get("href") == "https://news.example.com/archive/weekly/5/"
    nav = [a.get("href") for a in doc.xpath("//nav//a")]
    assert nav == ["../", "../4/", SUBSCRIBE]  # the newest issue: no newer one
    permalinks = {a.get("href"): a.text_content() for a in doc.xpath("//section//li/a")}
    assert permalinks == {"../stories/2/": "Story number 2 about the riverside",
                          "../stories/1/": HOSTILE_TITLE}  # the hostile title, shown as text
    with store.begin() as conn:
        email_html = conn.exec_driver_sql("select html from issues where number = 5").scalar_one()
    assert "%%UNSUBSCRIBE_URL%%" in email_html  # the stored email still has its placeholders


def test_story_pages_link_the_lead_and_the_other_tellings(built: tuple[Config, Store, Path]) -> None:
    stories = sorted((built[2] / "weekly" / "stories").glob("*/index.html"))
    assert len(stories) == 10
    page = lxml.html.fromstring((built[2] / "weekly" / "stories" / "2" / "index.html").read_bytes())
    assert page.xpath("//h1")[0].text_content() == "Story number 2 about the riverside"
    hrefs = [a.get("href") for a in page.xpath("//article//a")]
    assert hrefs == ["https://valley-post.example.org/story-2", "https://riverside-clinic.example.org/s2"]
    assert [a.get("href") for a in page.xpath("//p[@class='meta']//a")] == ["../../", "../../5/"]
    hostile = (built[2] / "weekly" / "stories" / "1" / "index.html").read_text()
    assert "javascript:" not in hostile and "<script>" not in hostile
    assert "Read the full story" not in hostile  # its lead's URL was javascript:, so no link to it
    assert "Council &lt;script&gt;" in hostile


def test_home_pages_exist_before_the_first_issue_and_say_what_the_newsletter_is(tmp_path: Path) -> None:
    config, store = seeded(tmp_path, issues=0, newsletter=ABOUT)
    root = publish(config, store).root
    store.close()
    for page, newsletter_link in ((root / "index.html", "weekly/"), (root / "weekly" / "index.html", None)):
        doc = lxml.html.fromstring(page.read_bytes())
        text = " ".join(doc.text_content().split())
        assert "Riverside Weekly" in text and "No issues yet" in text
        assert [p.text_content() for p in doc.xpath("//p[@class='description']")] == [
            "News from the riverside towns, chosen from three local blogs.", "Free, and one click to leave."]
        assert "Get Riverside Weekly by email, every Monday at 08:00 (Europe/Berlin)." in text
        assert doc.xpath("//a[@class='subscribe-button']/@href") == [SUBSCRIBE]
        if newsletter_link:
            assert newsletter_link in doc.xpath("//h2/a/@href")
    index = lxml.html.fromstring((root / "weekly" / "index.html").read_bytes())
    assert index.xpath("//meta[@name='description']/@content") == [
        "News from the riverside towns, chosen from three local blogs."]


def subscribe_links(page: Path) -> set[str]:
    doc = lxml.html.fromstring(page.read_bytes())
    return {a.get("href") for a in doc.xpath("//a") if "Subscribe" in a.text_content()}


def test_every_page_links_to_the_subscribe_form(built: tuple[Config, Store, Path]) -> None:
    pages = sorted(built[2].rglob("*.html"))
    assert len(pages) == 19  # home, index pages, issues, stories
    for page in pages:
        assert subscribe_links(page) == {SUBSCRIBE}, page


@pytest.mark.parametrize(("setting", "expected"), [
    ("subscribe_url: 'https://forms.example.org/join?list={newsletter}'", {"https://forms.example.org/join?list=weekly"}),
    ("subscribe_url: 'https://forms.example.org/riverside'", {"https://forms.example.org/riverside"}),
    ("subscribe_url: null", set()),  # a static archive with nowhere to subscribe: no dead links
])
def test_subscribe_links_follow_site_subscribe_url(tmp_path: Path, setting: str, expected: set[str]) -> None:
    config, store = seeded(tmp_path, issues=1, site=setting, newsletter=ABOUT)
    root = publish(config, store).root
    store.close()
    pages = sorted(root.rglob("*.html"))
    assert len(pages) == 5  # home, index, the issue, its two stories
    for page in pages:
        assert subscribe_links(page) == expected, page
        assert ('class="subscribe' in page.read_text()) == bool(expected), page
    if not expected:  # the schedule is still said, without the subscribe box that says it otherwise
        assert "A new issue every Monday at 08:00 (Europe/Berlin)." in (root / "weekly" / "index.html").read_text()


@pytest.mark.parametrize(("value", "problem"), [
    ("'{base_url}/join?n={name}'", "unknown placeholder(s) ['name']"),
    ("'/subscribe'", "not an http(s) URL"),
])
def test_site_subscribe_url_is_checked(tmp_path: Path, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_config(write_config(tmp_path, site=f"subscribe_url: {value}"))
    assert problem in str(raised.value)


@pytest.mark.parametrize(("cron", "words"), [
    ("0 8 * * MON", "every Monday at 08:00 (Europe/Berlin)"),
    ("30 6 * * *", "every day at 06:30 (Europe/Berlin)"),
    ("0 7 * * 1-5", "every weekday at 07:00 (Europe/Berlin)"),
    ("0 7 * * mon,thu", "every Monday and Thursday at 07:00 (Europe/Berlin)"),
    ("0 9 * * 5-7", "every Friday, Saturday and Sunday at 09:00 (Europe/Berlin)"),
    ("0 8 1 * *", "on the 1st of every month at 08:00 (Europe/Berlin)"),
    ("0 8 22 * *", "on the 22nd of every month at 08:00 (Europe/Berlin)"),
    ("*/30 * * * *", ""), ("0 8 1 1 *", ""), ("0 8 1 * MON", ""),  # no short wording: nothing rather than a guess
])
def test_schedule_in_words(cron: str, words: str) -> None:
    assert schedule_words(Schedule(cron=cron, timezone="Europe/Berlin")) == words


@pytest.mark.parametrize(("email", "page"), [
    # The footer section that holds the unsubscribe link goes whole: why one gets it, the address.
    ('<div class="footer" style="x"><div>You receive it because you subscribed as %%NAME%%. '
     '<a href="%%UNSUBSCRIBE_URL%%">Unsubscribe</a></div><div>12 Mill Lane</div></div><p>After</p>',
     "<p>After</p>"),
    # Without a footer class, the innermost block holding the link; "View in browser" with it.
    ('<table><tr><td><p>You subscribed. <a href="%%UNSUBSCRIBE_URL%%" style="x">Unsubscribe</a> · '
     '<a href="https://n.example/w/3/">View in browser</a></p><p>12 Mill Lane</p></td></tr></table>',
     "<table><tr><td><p>12 Mill Lane</p></td></tr></table>"),
    ('<p class="greeting subscriber-only">Hi %%NAME%%,</p><p>Text</p>', "<p>Text</p>"),
    ('<div class="footer"><p>x <a href="%%UNSUBSCRIBE_URL%%">U</a></span></div>tail', "tail"),  # a stray end tag
    ('<div><a href="https://n.example/w/3/">View in browser</a></div>', "<div></div>"),
    ('A · <a href="%%UNSUBSCRIBE_URL%%">Unsubscribe</a> · B', "A · B"),
    ("<p>Hello%%NAME%%, you subscribed as %%NAME%%.</p>", "<p>Hello, you subscribed.</p>"),
    ("<p>Hi %%NAME%%, here is the week.</p>", "<p>Hi, here is the week.</p>"),
    ('<a href="javascript:alert(1)">x</a><a href="java&#115;cript:alert(1)">y</a><a href=" JaVa\tscript:1">z</a>',
     '<a href="#">x</a><a href="#">y</a><a href="#">z</a>'),
    ('<a href="https://ok.example/a?b=1&amp;c=2">ok</a> <a href="mailto:x@example.com">m</a>',
     '<a href="https://ok.example/a?b=1&amp;c=2">ok</a> <a href="mailto:x@example.com">m</a>'),
])
def test_web_copy_takes_out_what_belongs_to_one_subscriber(email: str, page: str) -> None:
    assert web_copy(email, "https://n.example/w/3/") == page


def test_archive_is_served_from_a_static_host_under_a_sub_path(built: tuple[Config, Store, Path],
                                                               tmp_path: Path) -> None:
    shutil.copytree(built[2], tmp_path / "archive")
    with SiteHost(tmp_path) as host, httpx.Client(base_url=host.base) as client:
        for path in ("/archive/", "/archive/weekly/", "/archive/weekly/page/3/", "/archive/weekly/1/",
                     "/archive/weekly/stories/10/", "/archive/weekly/feed.json", "/archive/weekly/rss.xml"):
            response = client.get(path)
            assert response.status_code == 200, path
        assert client.get("/archive/weekly/feed.json").headers["content-type"].startswith("application/feed+json")


@pytest.mark.postgres
@pytest.mark.skipif(postgres_url() is None, reason="set FEEDLETTER_TEST_DATABASE_URL to test with PostgreSQL")
def test_postgres_store_publishes_the_same_bytes_as_sqlite(tmp_path: Path) -> None:
    url = sa.engine.make_url(postgres_url() or "")
    name = f"feedletter_syndicate_{os.getpid()}"  # a database of its own: other tests share the server
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name}")
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    (tmp_path / "pg").mkdir()
    (tmp_path / "lite").mkdir()
    try:
        pg_config, pg_store = seeded(tmp_path / "pg", issues=3,
                                     store=url.set(database=name).render_as_string(hide_password=False))
        assert pg_store.dialect == "postgresql"
        pg_root = publish(pg_config, pg_store).root
        pg_store.close()
        lite_config, lite_store = seeded(tmp_path / "lite", issues=3)
        lite_root = publish(lite_config, lite_store).root
        lite_store.close()
        assert snapshot(pg_root) == snapshot(lite_root)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.dispose()
