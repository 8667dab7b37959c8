"""Staff commands: digest --dry-run, send-test, preview, and progress output."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from feedletter.cli import app
from feedletter.config import Config
from feedletter.errors import FeedletterError
from feedletter.ingest import gather
from feedletter.issue.digest import save_issue
from feedletter.issue.preview import PreviewServer, next_issue, preview_routes
from feedletter.issue.selection import select_stories
from feedletter.mailsink import MailSink
from feedletter.progress import report_progress
from feedletter.schema import issue_stories, issues, outbox
from feedletter.sitehost import SiteHost
from feedletter.store import Store
from tests.fixtures_staff import put_story, staff, staff_config

__all__ = ["staff"]
CONTRACT_KEYS = {"newsletter", "subject", "preheader", "stories"}
runner = CliRunner()


def _path(config: Config) -> str:
    return config._path


def _recorded(store: Store) -> tuple[int, int, int]:
    with store.begin() as conn:
        return tuple(int(conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one())  # type: ignore[return-value]
                     for t in (issues, issue_stories, outbox))


def test_dry_run_writes_html_text_subject_and_headers(staff: tuple[Config, Store], tmp_path: Path) -> None:
    config, store = staff
    put_story(store, "city-ledger", "Footbridge opens")
    out = tmp_path / "preview"
    result = runner.invoke(app, ["digest", "city", "--dry-run", "--out", str(out), "--config", _path(config)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert names == ["digest.eml", "digest.html", "digest.json", "digest.mjml", "digest.txt"]
    record = json.loads((out / "digest.json").read_text())
    assert record.keys() >= CONTRACT_KEYS and record["stories"][0]["title"] == "Footbridge opens"
    headers = record["headers"]
    assert headers["Subject"] == record["subject"] == "City Weekly: Footbridge opens"
    assert headers["From"] == "City <news@city.example>"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Unsubscribe"].startswith("<https://news.example.com/unsubscribe/")
    msg = message_from_bytes((out / "digest.eml").read_bytes(), policy=policy.default)
    assert msg["Subject"] == record["subject"] and not msg["Subject"].startswith("[TEST]")
    html = msg.get_body(("html",))
    assert html is not None and "Footbridge opens" in html.get_content() and "%%" not in html.get_content()
    assert "Footbridge opens" in (out / "digest.html").read_text()
    assert _recorded(store) == (0, 0, 0)  # a dry run records nothing


def test_dry_run_prints_each_pre_send_check_also_when_all_pass(staff: tuple[Config, Store], tmp_path: Path) -> None:
    config, store = staff
    put_story(store, "city-ledger", "Footbridge opens")
    result = runner.invoke(app, ["digest", "city", "--dry-run", "--out", str(tmp_path / "out"),
                                 "--config", _path(config)])
    assert result.exit_code == 0, result.output
    report = result.stdout.splitlines()[-7:]
    assert report[0] == "pre-send checks: 6 passed"
    assert [line.split()[:2] for line in report[1:]] == [
        ["pass", "html_size"], ["pass", "links"], ["pass", "alt"], ["pass", "subject_length"],
        ["pass", "unsubscribe"], ["pass", "postal_address"]]
    assert "subject is 29 characters (limit 150)" in report[4]


def test_dry_run_prints_warnings_failures_and_checks_turned_off(tmp_path: Path) -> None:
    config = staff_config(tmp_path, newsletters="""\
  - name: city
    title: City Weekly
    from: "City <news@city.example>"
    select: {tags: [city], since: all}
    checks: {subject_max: 20, subject_length: fail, alt: off}
""")
    store = Store.open(config.store_url())
    try:
        put_story(store, "city-ledger", "Footbridge opens")
    finally:
        store.close()
    result = runner.invoke(app, ["digest", "city", "--dry-run", "--out", str(tmp_path / "out"),
                                 "--config", _path(config)])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("pre-send checks:"))
    assert lines[start] == ("pre-send checks: 3 passed, 1 warning, 1 failure, 1 check off "
                            "(a real send would stop here)")
    outcomes = {line.split()[1]: line.split()[0] for line in lines[start + 1:]}
    assert outcomes == {"html_size": "pass", "links": "pass", "alt": "off", "subject_length": "fail",
                        "unsubscribe": "pass", "postal_address": "warn"}
    assert any("no postal address in the footer" in line for line in lines[start + 1:])


def test_send_test_sends_one_marked_message_and_records_nothing(
        staff: tuple[Config, Store], sink: MailSink, monkeypatch: pytest.MonkeyPatch) -> None:
    config, store = staff
    monkeypatch.setenv("FEEDLETTER_SMTP_URL", sink.url)
    put_story(store, "city-ledger", "Footbridge opens")
    put_story(store, "valley-post", "Library hours")
    before = [s.id for s in select_stories(config, store, config.newsletter("city"))]
    result = runner.invoke(app, ["send-test", "city", "--to", "me@staff.example", "--config", _path(config)])
    assert result.exit_code == 0, result.output
    assert len(sink.received) == 1
    got = sink.received[0]
    assert got.recipients == ["me@staff.example"]
    msg = got.message()
    assert msg["Subject"].startswith("[TEST] City Weekly: ")
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    assert _recorded(store) == (0, 0, 0)
    assert [s.id for s in select_stories(config, store, config.newsletter("city"))] == before
    again = runner.invoke(app, ["send-test", "city", "--to", "me@staff.example", "--config", _path(config)])
    assert again.exit_code == 0 and len(sink.received) == 2  # stories stay unused: same issue again
    assert sink.received[1].message()["Subject"] == msg["Subject"]


def test_a_test_sends_links_work(staff: tuple[Config, Store], sink: MailSink, monkeypatch: pytest.MonkeyPatch) -> None:
    """Its unsubscribe link leads to a page saying it was a test; "view in browser" to the issue's copy."""
    import re
    import warnings
    from urllib.parse import urlsplit

    from feedletter import subscribers
    from feedletter.web.app import create_app

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    config, store = staff
    monkeypatch.setenv("FEEDLETTER_SMTP_URL", sink.url)
    put_story(store, "city-ledger", "Footbridge opens")
    reader = subscribers.add(store, "city", "reader@example.com", status="active")
    result = runner.invoke(app, ["send-test", "city", "--to", "me@staff.example", "--config", _path(config)])
    assert result.exit_code == 0, result.output
    html_part = sink.received[0].message().get_body(("html",))
    text_part = sink.received[0].message().get_body(("plain",))
    assert html_part is not None and text_part is not None
    html, text = html_part.get_content(), text_part.get_content()
    unsubscribe = re.search(r'href="([^"]*/unsubscribe/[^"]*)"', html)
    view = re.search(r'href="([^"]*)"[^>]*>View in browser', html)
    assert unsubscribe and view, html
    assert view.group(1).startswith("https://news.example.com/_preview/city/")
    assert f"View in browser: {view.group(1)}" in text and view.group(1) in result.stdout
    with TestClient(create_app(config, store)) as client:
        for method in ("GET", "POST"):
            page = client.request(method, urlsplit(unsubscribe.group(1)).path)
            assert page.status_code == 200 and "This was a test send" in page.text
            assert "Nobody was unsubscribed" in page.text
        copy = client.get(urlsplit(view.group(1)).path)
        assert copy.status_code == 200
        assert "Footbridge opens" in copy.text and "Test send of City Weekly issue 1" in copy.text
        assert '<meta name="robots" content="noindex">' in copy.text
    assert [p.status for p in subscribers.listing(store, "city")] == [reader.status]
    # a second test send replaces the first one's copy
    again = runner.invoke(app, ["send-test", "city", "--to", "me@staff.example", "--config", _path(config)])
    assert again.exit_code == 0, again.output
    copies = list((config.resolve(config.site.archive_dir) / "_preview" / "city").iterdir())
    assert len(copies) == 1 and copies[0].name != urlsplit(view.group(1)).path.strip("/").split("/")[-1]


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feedletter.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_send_test_errors_are_one_line(staff: tuple[Config, Store], tmp_path: Path) -> None:
    config, _ = staff
    empty = _cli("send-test", "city", "--to", "me@staff.example", "--config", _path(config), cwd=tmp_path)
    assert empty.returncode == 1 and "Traceback" not in empty.stderr
    assert "nothing to send: the store holds no stories yet (run `feedletter gather` first)" in empty.stderr
    unknown = _cli("send-test", "citty", "--to", "me@x.example", "--config", _path(config), cwd=tmp_path)
    assert unknown.returncode == 1 and "no newsletter named 'citty' (known: city, health)" in unknown.stderr


def test_after_an_issue_went_out_preview_and_send_test_show_it_again(
        staff: tuple[Config, Store], sink: MailSink, monkeypatch: pytest.MonkeyPatch) -> None:
    """Staff editing a template right after an issue went out: no new story makes a next issue, so
    preview and send-test make the last one again from its stories, with today's templates, and say
    so; the dry run (what `digest` would send) still sends nothing."""
    config, store = staff
    monkeypatch.setenv("FEEDLETTER_SMTP_URL", sink.url)
    newsletter = config.newsletter("city")
    with pytest.raises(FeedletterError, match="the store holds no stories yet"):
        next_issue(config, store, newsletter, again=True)  # no issue yet to show again
    put_story(store, "city-ledger", "Footbridge opens")
    put_story(store, "valley-post", "Library hours")
    first = next_issue(config, store, newsletter)
    save_issue(store, first)
    with pytest.raises(FeedletterError, match="nothing to send: no new story matches"):
        next_issue(config, store, newsletter)
    again = next_issue(config, store, newsletter, again=True)
    assert again.again and again.number == first.number == 1
    assert [s.id for s in again.digest.stories] == [s.id for s in first.digest.stories]
    assert again.rendered.subject == first.rendered.subject
    page = preview_routes(config, again, newsletter)["index.html"][1].decode()
    assert "nothing new to send: this is issue 1 again" in page
    result = runner.invoke(app, ["send-test", "city", "--to", "me@staff.example", "--config", _path(config)])
    assert result.exit_code == 0, result.output
    assert "note: nothing new to send: this is issue 1 again" in result.stderr
    assert sink.received[-1].message()["Subject"] == f"[TEST] {first.rendered.subject}"
    assert _recorded(store)[0] == 1  # still the one issue: nothing recorded for the test
    dry = runner.invoke(app, ["digest", "city", "--dry-run", "--out", str(config.resolve("out")),
                              "--config", _path(config)])
    assert isinstance(dry.exception, FeedletterError) and "nothing to send: no new story" in str(dry.exception)


def test_preview_page_shows_desktop_and_mobile(staff: tuple[Config, Store]) -> None:
    config, store = staff
    put_story(store, "city-ledger", "Footbridge <opens>")
    newsletter = config.newsletter("city")
    with PreviewServer(preview_routes(config, next_issue(config, store, newsletter), newsletter)) as server:
        page = urllib.request.urlopen(server.url, timeout=10).read().decode()
        email = urllib.request.urlopen(server.url + "email.html", timeout=10).read().decode()
        text = urllib.request.urlopen(server.url + "email.txt", timeout=10).read().decode()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(server.url + "nope", timeout=10)
    assert '<iframe src="email.html" width="600"' in page and '<iframe src="email.html" width="375"' in page
    assert "City Weekly: Footbridge &lt;opens&gt;" in page  # the subject, escaped, in the headers table
    assert "List-Unsubscribe" in page
    assert "Footbridge &lt;opens&gt;" in email and "%%" not in email
    assert "Footbridge <opens>" in text
    assert _recorded(store) == (0, 0, 0)


def test_preview_command_serves_until_stopped(staff: tuple[Config, Store], tmp_path: Path) -> None:
    config, store = staff
    put_story(store, "city-ledger", "Footbridge opens")
    proc = subprocess.Popen([sys.executable, "-m", "feedletter.cli", "preview", "city", "--no-browser",
                             "--config", _path(config)], cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.startswith("preview of city issue 1: http://127.0.0.1:")
        url = line.split(": ", 1)[1].split()[0]
        assert "width=\"375\"" in urllib.request.urlopen(url, timeout=10).read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_plain_progress_is_a_few_log_lines() -> None:
    out = io.StringIO()
    with report_progress("digest weekly", 95, unit="messages", stream=out) as advance:
        for _ in range(95):
            advance(1)
    lines = out.getvalue().splitlines()
    assert lines[0] == "digest weekly: 9/95 messages" and lines[-1] == "digest weekly: 95/95 messages"
    assert 10 <= len(lines) <= 11


def test_terminal_progress_draws_a_bar() -> None:
    out = io.StringIO()
    with report_progress("gather", 4, unit="sources", stream=out, terminal=True) as advance:
        for _ in range(4):
            advance(1)
    shown = out.getvalue()
    assert "gather" in shown and "4/4" in shown and "━" in shown


def test_fetch_sources_reports_each_source(demo_config: Config, store: Store, site: SiteHost) -> None:
    del site
    done: list[int] = []
    with gather.make_fetcher(demo_config) as fetcher:
        results = gather.fetch_sources(demo_config, store, fetcher, progress=done.append)
    assert len(done) == len(results) == 5 and sum(done) == 5


@pytest.mark.slow
def test_gather_command_logs_progress_when_not_a_terminal(prefect_harness: None, tmp_path: Path,
                                                          site: SiteHost) -> None:
    from tests.conftest import write_config

    path = write_config(tmp_path, site)
    result = runner.invoke(app, ["gather", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert "gather: 5/5 sources" in result.stderr
    assert result.stdout.startswith("gather: 5 sources: 5 ok · 21 new articles · ")
    assert "ran in-process" not in result.stderr  # a Prefect API (the harness's) is configured: a flow run
    again = runner.invoke(app, ["gather", "--json", "--config", str(path)])
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout.strip().splitlines()[-1])
    assert report["not_modified"] == 5 and report["new"] == 0


def test_delivery_reports_each_message(staff: tuple[Config, Store], sink: MailSink) -> None:
    from feedletter import subscribers
    from feedletter.deliver import deliver_issue
    from feedletter.deliver.providers.smtp import SmtpMailer, SmtpSettings
    from feedletter.issue.digest import issue_content, queue_issue, save_issue

    config, store = staff
    put_story(store, "city-ledger", "Footbridge opens")
    newsletter = config.newsletter("city")
    for i in range(3):
        subscribers.add(store, "city", f"reader{i}@example.com")
    issue_id = save_issue(store, next_issue(config, store, newsletter))
    queue_issue(store, issue_id, newsletter)
    done: list[int] = []
    counts = deliver_issue(config, store, issue_content(config, store, issue_id),
                           SmtpMailer(SmtpSettings.from_url(sink.url)), progress=done.append)
    assert counts.sent == 3 and done == [1, 1, 1]


GAZETTE = """<?xml version="1.0" encoding="utf-8"?>
<rss version="2.0"><channel><title>Riverside Gazette</title><link>https://gazette.example/</link>
<description>News from the river</description>
<item><title>Ferry returns</title><link>https://gazette.example/ferry?via=rss&amp;id=7</link>
<pubDate>Mon, 23 Nov 2026 07:00:00 GMT</pubDate>
<description>The ferry is back.</description></item>
</channel></rss>
"""


@pytest.fixture
def gazette(tmp_path: Path) -> Iterator[SiteHost]:
    """A loopback server with one feed, titled "Riverside Gazette", at /feed.xml."""
    root = tmp_path / "gazette"
    root.mkdir()
    (root / "feed.xml").write_text(GAZETTE, encoding="utf-8")
    with SiteHost(root) as host:
        yield host


def test_parse_url_takes_its_settings_from_the_config(gazette: SiteHost, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FEEDLETTER_CONFIG", raising=False)
    url = gazette.url("feed.xml")
    refused = runner.invoke(app, ["parse", url])  # no config: loopback addresses are refused
    assert refused.exit_code == 1 and "private" in str(refused.exception or refused.output)
    config = tmp_path / "parse.yaml"
    config.write_text(f"allow_private: true\ngather: {{tracking_params: [via]}}\n"
                      f"sources:\n  - {{name: gazette, url: '{url}'}}\n")
    for option in ("--config", "-c"):
        result = runner.invoke(app, ["parse", url, option, str(config)])
        assert result.exit_code == 0, result.output
        record = json.loads(result.stdout.splitlines()[0])
        assert record["title"] == "Ferry returns" and record["link"] == "https://gazette.example/ferry?via=rss&id=7"
        # the entry's key drops the config's tracking parameter, as gather's does
        assert "via=" not in record["key"] and "id=7" in record["key"], record["key"]


def _commands(group: typer.Typer) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command of the CLI by its words (typer keeps its own copy of click: duck-typed)."""
    for name, sub in typer.main.get_command(group).commands.items():  # type: ignore[attr-defined]
        if hasattr(sub, "commands"):
            for inner, leaf in sub.commands.items():
                yield (name, inner), leaf
        else:
            yield (name,), sub


def test_every_command_takes_config_and_c() -> None:
    """DESIGN's contract: every command takes --config PATH (and -c); `init` writes a config instead of reading
    one, and `extract` reads one HTML file with no setting that applies."""
    missing = []
    for words, command in _commands(app):
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        if words != ("init",) and not {"--config", "-c"} <= options:
            missing.append(" ".join(words))
    assert missing == []


def test_nothing_to_send_says_whether_the_store_is_empty_or_nothing_matches(staff: tuple[Config, Store]) -> None:
    config, store = staff
    with pytest.raises(FeedletterError, match=r"city: nothing to send: the store holds no stories yet"):
        next_issue(config, store, config.newsletter("city"))
    put_story(store, "clinic", "A clinic opens on Mill Lane")
    with pytest.raises(FeedletterError, match=r"city: nothing to send: no new story matches the newsletter's select"):
        next_issue(config, store, config.newsletter("city"))
    assert next_issue(config, store, config.newsletter("health")).digest.stories


def test_the_command_freezes_what_its_imports_made_before_it_runs() -> None:
    """Import-time objects live to the end: frozen, the collector's full passes skip them."""
    probe = ("import gc, sys\n"
             "import feedletter.cli as cli\n"
             "cli.app = lambda: print(gc.get_freeze_count())\n"
             "cli.main()\n")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) > 10_000
