"""The outputs an issue is published to: the digest run calls each once per issue, in order, and an
output that claims its posts in the ledger makes none twice, however often it is called."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from feedletter import ledger
from feedletter.config import Config, load_config
from feedletter.publish import Report, outputs, publish_issue, register, unregister
from feedletter.publish.issues import PublishedIssue
from feedletter.runner import InProcess
from feedletter.runs import digest_run
from feedletter.store import Store
from tests.fixtures_syndication import add_stories, write_config

BASE = "https://news.example.com/archive/weekly/"
FEEDS = ["rss.xml", "stories/rss.xml", "atom.xml", "stories/atom.xml", "feed.json", "stories/feed.json"]


class Toots:
    """A throwaway output: one post per story of each issue, as a Mastodon output would make them.

    After ``fail_after`` posts it fails, as a server going away mid-issue would make it.
    """

    name = "toots"

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.posted: list[str] = []
        self.fail_after: int | None = None

    def publish(self, config: Config, store: Store, issue: PublishedIssue) -> Report:
        self.calls.append(issue.number)
        made = 0
        for story in issue.stories:
            held = ledger.claim(store, "toot", f"{issue.id}/{story.id}")
            if held is None:  # posted by an earlier call
                continue
            if self.fail_after is not None and len(self.posted) >= self.fail_after:
                ledger.fail(store, held, "the server went away")
                raise RuntimeError("the server went away")
            self.posted.append(story.title)
            ledger.record(store, held, "posted", ref=f"https://social.example/@news/{len(self.posted)}", done=True)
            made += 1
        return Report(self.name, made, "posts")


@pytest.fixture
def toots() -> Iterator[Toots]:
    output = register(Toots())
    yield output
    unregister(output.name)


def _newsletter(tmp_path: Path, hub: str | None = None) -> tuple[Config, Store]:
    """The syndication newsletter with two stories waiting (an issue holds two), sent as files to nobody yet."""
    path = write_config(tmp_path, hub=hub)
    path.write_text(path.read_text() + "    provider: file\n")
    config = load_config(path)
    store = Store.open(config.store_url())
    add_stories(store, 2, 2)  # story 1 is the hostile one, which the pre-send checks refuse
    return config, store


def test_outputs_are_the_site_then_the_hub_then_those_registered(toots: Toots) -> None:
    assert [o.name for o in outputs()] == ["site", "websub", "toots"]
    with pytest.raises(ValueError, match="registered already"):
        register(Toots())


def test_the_digest_run_publishes_each_issue_to_a_registered_output_once(tmp_path: Path, toots: Toots) -> None:
    config, store = _newsletter(tmp_path)
    try:
        report = digest_run(config, store, InProcess(), "weekly")
        assert report.issue == 1 and toots.calls == [1]
        assert len(toots.posted) == report.stories == 2
        assert report.published_files > 0 and (tmp_path / "public/weekly/1/index.html").is_file()
        again = digest_run(config, store, InProcess(), "weekly")  # nothing new: no issue, nothing published
        assert again.skipped is not None and toots.calls == [1]
        issue_id = ledger.entries(store, "toot")[0].key.split("/")[0]
        rerun = publish_issue(config, store, int(issue_id))  # the publish stage run again for the issue
        assert toots.calls == [1, 1] and len(toots.posted) == 2
        assert [(r.output, r.count, r.unit) for r in rerun][2] == ("toots", 0, "posts")
        add_stories(store, 4, 2)
        digest_run(config, store, InProcess(), "weekly")
        assert toots.calls == [1, 1, 2] and len(toots.posted) == 4
    finally:
        store.close()


def test_an_issue_with_no_subscribers_to_mail_says_so(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config, store = _newsletter(tmp_path)  # a file provider, and nobody subscribed
    try:
        with caplog.at_level(logging.WARNING, logger="feedletter.run"):
            report = digest_run(config, store, InProcess(), "weekly")
        assert report.issue == 1 and report.sent == 0
        assert [r.getMessage() for r in caplog.records if "no active subscribers" in r.getMessage()] == [
            "weekly: no active subscribers: issue 1 went to no inbox (it is on the site and in the feeds); "
            "add them with `feedletter subscribers add` or `import`"]
    finally:
        store.close()


def test_an_output_that_failed_mid_issue_finishes_it_on_the_rerun_without_repeating(tmp_path: Path,
                                                                                    toots: Toots) -> None:
    config, store = _newsletter(tmp_path)
    try:
        toots.fail_after = 1
        with pytest.raises(RuntimeError, match="went away"):
            digest_run(config, store, InProcess(), "weekly")
        assert len(toots.posted) == 1
        entries = ledger.entries(store, "toot")
        (posted,) = [e for e in entries if e.done is not None]
        (left,) = [e for e in entries if e.done is None]
        assert left.error == "the server went away" and left.lease_until is None
        toots.fail_after = None
        issue_id = int(posted.key.split("/")[0])
        (report,) = [r for r in publish_issue(config, store, issue_id) if r.output == "toots"]
        assert report.count == 1 and len(toots.posted) == 2 and len(set(toots.posted)) == 2
    finally:
        store.close()


def test_the_digest_run_tells_the_hub_about_the_issues_feeds_once(tmp_path: Path, httpserver: HTTPServer) -> None:
    received: list[str] = []

    def hub(request: Request) -> Response:
        received.append(parse_qs(request.get_data(as_text=True))["hub.url"][0])
        return Response(status=204)

    httpserver.expect_request("/hub", method="POST").respond_with_handler(hub)
    config, store = _newsletter(tmp_path, hub=httpserver.url_for("/hub"))
    try:
        digest_run(config, store, InProcess(), "weekly")
        assert received == [BASE + name for name in FEEDS]  # every feed of the issue, as a build changes them
        (issue_id,) = {int(e.key.split("/")[0]) for e in ledger.entries(store, "websub")}
        received.clear()
        reports = publish_issue(config, store, issue_id)
        assert received == [] and [(r.output, r.count) for r in reports][1] == ("websub", 0)
    finally:
        store.close()


def test_a_hub_that_failed_is_pinged_again_by_the_next_call_for_the_issue(tmp_path: Path,
                                                                        httpserver: HTTPServer) -> None:
    httpserver.expect_oneshot_request("/hub", method="POST").respond_with_data("", status=503)
    httpserver.expect_request("/hub", method="POST").respond_with_data("", status=204)
    config, store = _newsletter(tmp_path, hub=httpserver.url_for("/hub"))
    try:
        report = digest_run(config, store, InProcess(), "weekly")  # a hub problem does not fail the run
        assert report.issue == 1 and report.error is None
        (entry,) = ledger.entries(store, "websub")
        assert entry.done is None and entry.error is not None and "HTTP 503" in entry.error
        (_, websub) = publish_issue(config, store, int(entry.key.split("/")[0]))
        assert (websub.count, websub.problems) == (len(FEEDS), ())
        assert len(httpserver.log) == 2 * len(FEEDS)
    finally:
        store.close()
