"""runreport.py: the run reports and their summary lines, causes of real failures, warnings grouped by cause."""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from feedletter.config import load_config
from feedletter.errors import FeedletterError, FetchError, ParseError
from feedletter.ingest import gather
from feedletter.ingest.entries import extract_page
from feedletter.ingest.fetch import Fetcher
from feedletter.ingest.parse.feeds import parse_feed
from feedletter.runreport import DigestReport, GatherReport, Paused, WarningGroups, cause_of, counted
from feedletter.sitehost import SiteHost
from feedletter.status import last_run_per_target, run_line
from feedletter.store import Store
from tests.fixtures_ingest import RudeServer, rude, send
from tests.fixtures_tls import self_signed

__all__ = ["rude"]  # a fixture, used by name

GATHER = GatherReport(sources=500, fetched=480, not_modified=15, errors=5, new=1234, seen=300, repeated=2, carried=5,
                      stories_new=700, stories_joined=112, seconds=9.4321)


def test_gather_line_reads_as_a_sentence() -> None:
    assert GATHER.line() == ("gather: 500 sources: 480 ok, 15 not modified, 5 failed · 1,234 new articles · "
                             "skipped 300 seen, 2 repeated, 5 carried · 700 new stories, "
                             "112 articles joined stories · 9.4 s")


def test_gather_line_singulars_zeros_and_the_rest_of_the_report() -> None:
    one = GatherReport(sources=1, fetched=1, new=1, stories_new=1, seconds=0.05)
    assert one.line() == "gather: 1 source: 1 ok · 1 new article · 1 new story · 0.1 s"
    busy = replace(GATHER, skipped=2, removed=1, filtered=12_000, near_duplicates=1, extracted=1, extract_errors=3,
                   stories_joined=1, summarized=1500, summaries_cached=1400, seconds=125.2)
    assert busy.line() == (
        "gather: 500 sources: 480 ok, 15 not modified, 5 failed, 2 skipped · 1,234 new articles (1 near-duplicate) · "
        "skipped 300 seen, 2 repeated, 5 carried, 1 removed, 12,000 filtered · 1 page extracted, 3 failed · "
        "700 new stories, 1 article joined stories · 1,500 summaries (1,400 cached) · 2 min 5 s")
    assert GatherReport().line() == "gather: no sources · 0 new articles · 0 new stories · 0.0 s"


def test_gather_report_json_keeps_every_count_in_order() -> None:
    assert list(GATHER.to_json()) == [
        "sources", "fetched", "not_modified", "errors", "skipped", "new", "seen", "repeated", "carried", "removed",
        "filtered", "near_duplicates", "extracted", "extract_errors", "stories_new", "stories_joined", "summarized",
        "summaries_cached", "seconds", "stage_seconds"]


def test_digest_line_and_json() -> None:
    sent = DigestReport("weekly", issue=12, subject="Bridge reopens", stories=8, sent=1234, failed=2,
                        published_files=5, outbox={"sent": 1234})
    assert sent.line() == "digest weekly: issue 12 “Bridge reopens” · 8 stories · 1,234 sent, 2 failed · " \
                          "5 files published"
    assert sent.to_json() == {"newsletter": "weekly", "issue": 12, "sent": 1234, "failed": 2,
                              "subject": "Bridge reopens", "stories": 8, "published_files": 5,
                              "outbox": {"sent": 1234}}
    assert replace(sent, stories=1, failed=0, published_files=1).line() == \
        "digest weekly: issue 12 “Bridge reopens” · 1 story · 1,234 sent · 1 file published"
    skipped = DigestReport("weekly", skipped="no new stories")
    assert skipped.line() == "digest weekly: nothing sent (no new stories)"
    assert list(skipped.to_json()) == ["newsletter", "issue", "sent", "failed", "skipped"]
    assert replace(skipped, sent=3).line() == \
        "digest weekly: no new issue (no new stories) · earlier issue finished: 3 sent"
    failed = DigestReport("weekly", error="render: weekly: too big")
    assert failed.line() == "digest weekly: no new issue · failed: render: weekly: too big"
    assert failed.to_json() == {"newsletter": "weekly", "issue": None, "sent": 0, "failed": 0,
                                "error": "render: weekly: too big"}


def test_a_paused_digest_says_so_in_one_line() -> None:
    paused = DigestReport("weekly", issue=3, paused=Paused(3, "SMTP unreachable (connection refused) after 3 tries",
                                                           0, 2000))
    assert paused.line() == ("digest weekly: issue 3 paused: SMTP unreachable (connection refused) after 3 tries; "
                             "0/2,000 sent; the next run resumes it")
    assert paused.to_json()["paused"] == {"issue": 3, "reason": "SMTP unreachable (connection refused) after 3 tries",
                                          "sent": 0, "recipients": 2000}


def test_status_shows_each_last_run_as_its_command_said_it(tmp_path: Path) -> None:
    """`feedletter status` reads the stored report back into the command's own words, not JSON."""
    store = Store.open(f"sqlite:///{tmp_path / 'runs.db'}")
    reports = {
        ("gather", ""): ("completed", GatherReport(sources=5, fetched=4, not_modified=1, new=21, stories_new=19,
                                                   seconds=2.14).to_json()),
        ("digest", "weekly"): ("completed", DigestReport("weekly", issue=12, sent=1234, failed=2, subject="Bridge",
                                                         stories=8).to_json()),
        ("digest", "city"): ("paused", DigestReport("city", issue=3, paused=Paused(3, "SMTP unreachable", 0,
                                                                                     2000)).to_json()),
        ("digest", "old"): ("completed", {"issue": 1, "sent": 3, "made_up": True}),  # not a report's fields
        ("gather", "one"): ("failed", {}),
    }
    for (flow, target), (state, counts) in reports.items():
        store.finish_run(store.start_run(flow, target), state, counts)
    lines = {(run["flow"], run["target"]): run_line(run) for run in last_run_per_target(store)}
    assert lines == {
        ("gather", ""): "5 sources: 4 ok, 1 not modified · 21 new articles · 19 new stories · 2.1 s",
        ("digest", "weekly"): "issue 12 “Bridge” · 8 stories · 1,234 sent, 2 failed",
        ("digest", "city"): "issue 3 paused: SMTP unreachable; 0/2,000 sent; the next run resumes it",
        ("digest", "old"): '{"issue": 1, "sent": 3, "made_up": true}',
        ("gather", "one"): "",
    }
    store.close()


# --- causes of real failures -------------------------------------------------------------------------

def _fetch_error(url: str, *, allow_private: bool = True, timeout: float = 5,
                 max_bytes: int = 1024 * 1024) -> FetchError:
    with Fetcher(allow_private=allow_private, timeout=timeout, max_bytes=max_bytes) as f, \
            pytest.raises(FetchError) as caught:
        f.get(url)
    return caught.value


def _both(error: FeedletterError) -> str:
    """The cause of an error, checked to be the same from its message alone (what extract logs)."""
    cause = cause_of(error)
    assert cause_of(str(error)) == cause, str(error)
    return cause


def test_http_statuses(rude: RudeServer) -> None:
    assert _both(_fetch_error(rude.url("/nothing-here"))) == "HTTP 404"
    busy = rude.route("/busy", lambda r: send(r, 503, headers={"Retry-After": "120"}))
    error = _fetch_error(busy)
    assert "retry after 120s" in str(error) and _both(error) == "HTTP 503"
    gone = rude.route("/gone", lambda r: send(r, 410))
    assert _both(_fetch_error(gone)) == "HTTP 410"


def test_redirects(rude: RudeServer) -> None:
    loop = rude.route("/loop", lambda r: send(r, 302, headers={"Location": "/loop"}))
    assert _both(_fetch_error(loop)) == "redirect loop"
    lost = rude.route("/lost", lambda r: send(r, 301))
    assert _both(_fetch_error(lost)) == "redirect without Location"


def test_too_large_and_bad_compression(rude: RudeServer) -> None:
    big = rude.route("/big", lambda r: send(r, 200, b"x" * 5000))
    assert _both(_fetch_error(big, max_bytes=4096)) == "too large"
    bad = rude.route("/bad-gzip", lambda r: send(r, 200, b"not gzip", {"Content-Encoding": "gzip"}))
    assert _both(_fetch_error(bad)) == "bad compression"


def test_refused_and_blocked() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        url = f"http://127.0.0.1:{s.getsockname()[1]}/feed"
        assert _both(_fetch_error(url)) == "connection refused"
        blocked = _fetch_error(url, allow_private=False)
        assert "non-public address" in str(blocked) and _both(blocked) == "blocked private address"


@pytest.mark.parametrize("private", [True, False])  # two code paths: http.client's lookup and the pinned one
def test_a_host_that_does_not_exist(private: bool) -> None:
    error = _fetch_error("http://feedletter-test.invalid/feed", allow_private=private)
    if "Temporary failure" in str(error):
        pytest.skip(f"this machine's resolver does not answer: {error}")
    assert _both(error) == "host not found"


def test_timed_out(rude: RudeServer) -> None:
    release = threading.Event()

    def stuck(request: BaseHTTPRequestHandler) -> None:
        del request
        release.wait(10)  # the headers never come, until the test is over

    url = rude.route("/stuck", stuck)
    try:
        assert _both(_fetch_error(url, timeout=0.3)) == "timed out"
    finally:
        release.set()


@pytest.fixture
def tls_server(rude: RudeServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[RudeServer]:
    cert, key = self_signed(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    rude.httpd.socket = context.wrap_socket(rude.httpd.socket, server_side=True)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)  # the certificate is trusted by no one
    yield rude


def test_an_untrusted_certificate(tls_server: RudeServer) -> None:
    url = tls_server.route("/feed", lambda r: send(r, 200, b"")).replace("http://", "https://")
    error = _fetch_error(url)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error) and _both(error) == "TLS certificate problem"


def _parse_error(body: bytes, content_type: str | None = None) -> ParseError:
    with pytest.raises(ParseError) as caught:
        parse_feed(body, url="https://x.example/feed", source="x", content_type=content_type)
    return caught.value


def test_parse_failures() -> None:
    assert _both(_parse_error(b"<!doctype html><html><body>Hi</body></html>")) == "not a feed"
    assert _both(_parse_error(b"<svg xmlns='http://www.w3.org/2000/svg'/>")) == "not a feed"
    assert _both(_parse_error(b'{"version": "x"}', "application/json")) == "not a feed"
    assert _both(_parse_error(b"{not json", "application/feed+json")) == "malformed feed"
    assert _both(_parse_error(b"  \n")) == "empty feed"
    # As gather wraps it: the source's ParseError holds the parser's whole message.
    inner = str(_parse_error(b"<html><body>Hi</body></html>"))
    assert cause_of(ParseError("x", inner)) == cause_of(str(ParseError("x", inner))) == "not a feed"


def test_extract_failures() -> None:
    empty = extract_page(b"", "https://x.example/a")
    chrome_only = extract_page(b"<html><body><nav>Home</nav></body></html>", "https://x.example/a")
    assert isinstance(empty, str) and isinstance(chrome_only, str)
    assert cause_of(empty) == "empty page"
    assert cause_of(chrome_only) == "no main content"


@pytest.mark.parametrize(("message", "cause"), [
    ("fetch: https://x/feed: connection failed: [Errno -3] Temporary failure in name resolution",
     "DNS lookup failed"),
    ("fetch: x.example:443: cannot resolve x.example: No address associated with hostname", "host not found"),
    ("fetch: https://x/feed: connection failed: [Errno 104] Connection reset by peer", "connection dropped"),
    ("fetch: https://x/feed: connection failed: Remote end closed connection without response",
     "connection dropped"),
    ("fetch: https://x/feed: connection failed: cannot connect to x: [Errno 101] Network is unreachable",
     "host unreachable"),
    ("fetch: https://x/feed: connection failed: [SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1000)",
     "TLS error"),
    ("fetch: https://x/feed: timed out after 20s (slow body)", "timed out"),
    ("fetch: https://x/feed: HTTP 502 Bad Gateway", "HTTP 502"),
    ("fetch: ftp://x/feed: only http and https URLs are fetched, not ftp", "bad URL"),
    ("fetch: https://x/feed: body sent with Content-Encoding 'br', which was not asked for", "bad compression"),
    ("parse: https://x/feed: malformed feed: not well-formed (invalid token)", "malformed feed"),
    ("extract: https://x/a: not an HTML document", "not HTML"),
    ("fetch: https://x/feed: connection failed: got more than 65536 bytes when reading header line",
     "connection failed"),
    ("something odd happened", "something odd happened"),
])
def test_causes_of_messages(message: str, cause: str) -> None:
    assert cause_of(message) == cause


# --- warnings grouped by cause -----------------------------------------------------------------------

@pytest.fixture
def log() -> logging.Logger:
    return logging.getLogger("feedletter.test_runreport")


def test_warnings_are_grouped_by_cause_most_frequent_first(log: logging.Logger) -> None:
    groups = WarningGroups()
    with groups.attached("feedletter"):
        for i in range(3):
            log.warning("fetch: https://feed-%d.example/rss: HTTP 404 Not Found", i,
                        extra={"cause": "HTTP 404", "kind": "source"})
        for i in range(28):
            log.warning("fetch: https://site-%d.invalid/post: connection failed: [Errno -2] Name or service "
                        "not known", i, extra={"cause": "host not found", "kind": "article page"})
        log.warning("fetch: https://feed-7.example/rss: HTTP 500", extra={"cause": "HTTP 500", "kind": "source"})
        for _ in range(2):
            log.warning("extract: https://a.example/1: no main content found",
                        extra={"cause": "no main content", "kind": "article page"})
        log.warning("pre-send check: a link has no text")
        log.warning("pre-send check: a link has no text")
        log.info("not a warning")
    log.warning("after the block", extra={"cause": "HTTP 404", "kind": "source"})
    assert groups.lines() == [
        "28 article pages not fetched: host not found (e.g. site-0.invalid/post, site-1.invalid/post, "
        "site-2.invalid/post and 25 more) — see `feedletter sources status`",
        "3 sources failed: HTTP 404 (e.g. feed-0.example/rss, feed-1.example/rss, feed-2.example/rss) "
        "— see `feedletter sources status`",
        "2 article pages not extracted: no main content (e.g. a.example/1) — see `feedletter sources status`",
        "pre-send check: a link has no text (2 times)",
        "fetch: https://feed-7.example/rss: HTTP 500",
    ]
    assert groups.counts() == {("article page", "host not found"): 28, ("source", "HTTP 404"): 3,
                               ("article page", "no main content"): 2, ("", "pre-send check: a link has no text"): 2,
                               ("source", "HTTP 500"): 1}


def test_counts_survive_the_cap_on_examples(log: logging.Logger) -> None:
    groups = WarningGroups()
    with groups.attached():
        for i in range(5000):
            log.warning("fetch: https://h%d.example/: timed out after 20s", i % 2000,
                        extra={"cause": "timed out", "kind": "source"})
    assert groups.lines() == ["5,000 sources failed: timed out (e.g. h0.example/, h1.example/, h2.example/ "
                              "and 1,997 more) — see `feedletter sources status`"]


def test_quiet_keeps_grouped_warnings_off_the_console_only(log: logging.Logger, tmp_path: Path) -> None:
    console: list[str] = []
    screen = logging.StreamHandler()
    screen.emit = lambda record: console.append(record.getMessage())  # type: ignore[method-assign]
    file = logging.FileHandler(tmp_path / "run.log")
    root = logging.getLogger()
    root.addHandler(screen)
    root.addHandler(file)
    try:
        with WarningGroups().attached(quiet=True) as groups:
            log.warning("fetch: https://x/: HTTP 404", extra={"cause": "HTTP 404", "kind": "source"})
            log.warning("alerts: no operator address")
        log.warning("fetch: https://y/: HTTP 404", extra={"cause": "HTTP 404", "kind": "source"})
    finally:
        root.removeHandler(screen)
        root.removeHandler(file)
        file.close()
    assert console == ["alerts: no operator address", "fetch: https://y/: HTTP 404"]
    assert (tmp_path / "run.log").read_text().splitlines() == [
        "fetch: https://x/: HTTP 404", "alerts: no operator address", "fetch: https://y/: HTTP 404"]
    assert groups.lines() == ["fetch: https://x/: HTTP 404", "alerts: no operator address"]


def test_gather_logs_each_failure_with_its_cause_and_kind(tmp_path: Path) -> None:
    from tests.conftest import DEMO_SITE, write_config

    shutil.copytree(DEMO_SITE, tmp_path / "site")
    shutil.rmtree(tmp_path / "site" / "morning-teaser" / "posts")  # the teasers' pages: 404
    with SiteHost(tmp_path / "site") as site:
        path = write_config(tmp_path, site)
        path.write_text(path.read_text().replace("city-ledger/atom.xml", "city-ledger/missing.xml")
                        .replace("valley-post/feed.xml", "index.html"))
        config = load_config(path)
        store = Store.open(config.store_url())
        try:
            with WarningGroups().attached("feedletter") as groups, gather.make_fetcher(config) as fetcher:
                results = gather.fetch_sources(config, store, fetcher)
                gather.store_entries(config, store, results)
                pages = gather.extract_articles(config, store, fetcher)
        finally:
            store.close()
    assert pages.failed > 1 and pages.extracted == 0
    assert groups.counts() == {("article page", "HTTP 404"): pages.failed, ("source", "HTTP 404"): 1,
                               ("source", "not a feed"): 1}


def test_counts_are_singular_for_one() -> None:
    assert [counted(n, "story", "stories") for n in (0, 1, 2, 1234)] == [
        "0 stories", "1 story", "2 stories", "1,234 stories"]
    assert counted(1, "subscriber") == "1 subscriber" and counted(3, "file") == "3 files"
