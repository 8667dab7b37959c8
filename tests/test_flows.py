"""Both flows end to end through Prefect's test harness, against the demo site and a real SMTP server."""

from __future__ import annotations

import json
from pathlib import Path

import feedparser
import pytest

from feedletter import subscribers
from feedletter.config import load_config
from feedletter.mailsink import MailSink
from feedletter.sitehost import SiteHost
from feedletter.store import Store
from tests.conftest import DEMO_SOURCES, ROOT, write_config

EXPECTED = json.loads((ROOT / "demo" / "expected.json").read_text())
pytestmark = pytest.mark.slow


def test_gather_then_digest_through_prefect(prefect_harness: None, tmp_path: Path, site: SiteHost,
                                            sink: MailSink, monkeypatch: pytest.MonkeyPatch) -> None:
    from feedletter_flows.digest import digest_flow
    from feedletter_flows.gather import gather_flow

    monkeypatch.setenv("FEEDLETTER_SMTP_URL", sink.url)
    path = write_config(tmp_path, site)
    config = load_config(path)
    store = Store.open(config.store_url())
    for i in range(3):
        subscribers.add(store, "weekly", f"reader{i}@example.com")

    first = gather_flow(config_path=str(path))
    assert first.fetched == len(EXPECTED["feeds"]) and first.new == EXPECTED["articles"]
    second = gather_flow(config_path=str(path))
    assert second.not_modified == len(EXPECTED["feeds"]) and second.new == 0

    report = digest_flow(newsletter="weekly", config_path=str(path))
    assert report.sent == 3 and report.failed == 0 and report.issue == 1
    assert len(sink.received) == 3
    msg = sink.received[0].message()
    assert msg["Subject"] == report.subject
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = msg.get_body(("html",)).get_content()
    for junk in EXPECTED["boilerplate"]:
        assert junk not in html
    assert "Also covered by" in html

    # 19 stories and at most 10 an issue: the next run carries the rest, none of them again; the
    # run after that finds nothing new and sends nothing.
    second_issue = digest_flow(newsletter="weekly", config_path=str(path))
    assert second_issue.issue == 2 and second_issue.stories == EXPECTED["stories"] - 10
    third = digest_flow(newsletter="weekly", config_path=str(path))
    assert third.skipped == "no new stories" and len(sink.received) == 6
    first_ids = {m.message()["Message-ID"] for m in sink.received}
    assert len(first_ids) == 6

    feed = feedparser.parse((tmp_path / "public" / "weekly" / "rss.xml").read_bytes())
    assert not feed.bozo and len(feed.entries) == 2 and feed.entries[1].title == report.subject
    assert (tmp_path / "public" / "weekly" / "index.html").read_text().count(report.subject) == 1
    store.close()


# --- operations: retries, one run at a time, artifacts, alerts ------------------------------------

def _attempts_of(error: Exception) -> int:
    """Run a task declared with the I/O tasks' options that fails once with ``error``; count its tries."""
    from prefect import flow, task

    from feedletter_flows.common import io_task_options

    tries: list[int] = []

    @task(**{**io_task_options(timeout=10), "retry_delay_seconds": 0})
    def flaky() -> str:
        tries.append(1)
        if len(tries) == 1:
            raise error
        return "ok"

    @flow
    def run() -> None:
        flaky(return_state=True)

    run()
    return len(tries)


@pytest.mark.parametrize(("error", "tries"), [
    ("fetch-503", 2), ("fetch-404", 1), ("fetch-429", 2), ("smtp-550", 1), ("smtp-421", 2), ("config", 1),
    ("oserror", 2), ("parse", 1),
])
def test_io_tasks_retry_transient_errors_only(prefect_harness: None, error: str, tries: int) -> None:
    from feedletter.errors import ConfigError, DeliveryError, FetchError, ParseError

    errors: dict[str, Exception] = {
        "fetch-503": FetchError("https://x/feed.xml", "HTTP 503", status=503, transient=True),
        "fetch-404": FetchError("https://x/feed.xml", "HTTP 404", status=404, transient=False),
        "fetch-429": FetchError("https://x/feed.xml", "HTTP 429", status=429, transient=True),
        "smtp-550": DeliveryError("a@example.com", "RCPT TO refused: 550", transient=False),
        "smtp-421": DeliveryError("a@example.com", "MAIL FROM refused: 421", transient=True),
        "config": ConfigError("no newsletter named 'x'"),
        "oserror": ConnectionResetError("reset by peer"),
        "parse": ParseError("feed", "not a feed"),
    }
    assert _attempts_of(errors[error]) == tries


def test_every_io_task_has_a_timeout_and_the_retry_rule() -> None:
    from feedletter.runs import DIGEST_STAGES, GATHER_STAGES
    from feedletter_flows.common import prefect_task, retry_transient

    tasks = {stage.name: prefect_task(stage) for stage in GATHER_STAGES + DIGEST_STAGES}
    assert list(tasks) == ["fetch_sources", "store_entries", "extract_articles", "group_articles",
                           "summarize_stories", "send_alerts", "prepare_digest", "save_issue", "send_issue",
                           "publish_issue"]
    io = [tasks[name] for name in ("fetch_sources", "extract_articles", "send_issue")]
    for t in io:
        assert t.retries == 2 and t.retry_delay_seconds == [5.0, 30.0] and t.retry_condition_fn is retry_transient
    others = [t for t in tasks.values() if t not in io]
    for t in io + others:
        assert t.timeout_seconds and t.timeout_seconds > 0, t.name
    for t in others:
        assert not t.retries, t.name


def _artifact(key: str) -> object:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
    assert found, f"no artifact {key}"
    return max(found, key=lambda a: a.created)


def test_runs_of_one_newsletter_never_overlap_and_artifacts_tell_what_happened(
        prefect_harness: None, tmp_path: Path, site: SiteHost, sink: MailSink,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from prefect.client.orchestration import get_client

    from feedletter.status import last_run_per_target
    from feedletter_flows.digest import digest_flow
    from feedletter_flows.gather import gather_flow

    monkeypatch.setenv("FEEDLETTER_SMTP_URL", sink.url)
    path = write_config(tmp_path, site)
    config = load_config(path)
    store = Store.open(config.store_url())
    for i in range(4):
        subscribers.add(store, "weekly", f"reader{i}@example.com")
    gather_flow(config_path=str(path))

    rows = json.loads(_artifact("feed-health").data)  # type: ignore[attr-defined]
    assert {r["source"] for r in rows} == {name for name, _, _ in DEMO_SOURCES}
    assert all(r["state"] == "ok" and r["this run"] == "ok" and r["last_error"] == "" for r in rows)
    assert sum(r["new"] for r in rows) == EXPECTED["articles"]
    assert set(rows[0]) == {"source", "state", "this run", "new", "duplicates", "seen", "repeated", "carried",
                            "removed", "filtered", "seconds", "failures", "last_error"}

    with ThreadPoolExecutor(2) as pool:
        reports = list(pool.map(lambda _: digest_flow(newsletter="weekly", config_path=str(path)), range(2)))
    # Both ran, one after the other (the store's lock): two different issues, every reader got each once.
    assert sorted(r.issue for r in reports) == [1, 2]
    assert len(sink.received) == 8 and len({m.message()["Message-ID"] for m in sink.received}) == 8
    runs = [r for r in store.recent_runs(10) if r["flow"] == "digest"]
    first, second = sorted(runs, key=lambda r: r["started"])
    assert first["finished"] <= second["started"]
    assert {r["mode"] for r in runs} == {"prefect"}
    with get_client(sync_client=True) as client:
        flow_runs = [r for r in client.read_flow_runs() if r.parameters.get("config_path") == str(path)]
    assert len([r for r in flow_runs if r.name and r.state and r.state.is_completed()]) == 3

    markdown = _artifact("digest-weekly").data  # type: ignore[attr-defined]
    assert "| 4 | 0 | 4 | 0 | 0 |" in markdown and "https://news.example.com/weekly/2/" in markdown
    assert "## Pre-send checks" in markdown and "## Stories" in markdown and "KB" in markdown
    assert last_run_per_target(store)[0]["status"] == "completed"

    skipped = digest_flow(newsletter="weekly", config_path=str(path))
    assert skipped.skipped == "no new stories" and len(sink.received) == 8
    assert "nothing sent" in _artifact("digest-weekly").data  # type: ignore[attr-defined]
    assert last_run_per_target(store)[0]["status"] == "skipped"
    store.close()


def test_a_failed_digest_run_alerts_operators_once(prefect_harness: None, tmp_path: Path, site: SiteHost,
                                                   sink: MailSink, monkeypatch: pytest.MonkeyPatch) -> None:
    from feedletter import alerts
    from feedletter_flows.digest import digest_flow
    from feedletter_flows.gather import gather_flow

    monkeypatch.setenv("FEEDLETTER_SMTP_URL", sink.url)
    path = write_config(tmp_path, site, extra="alerts: {to: ops@example.com, from: 'fl <fl@example.com>'}\n")
    store = Store.open(load_config(path).store_url())
    subscribers.add(store, "weekly", "reader@example.com")
    gather_flow(config_path=str(path))
    sink.set_rule(lambda rcpt, n: None if rcpt.startswith("ops@") else "550 mailbox unavailable")

    for _ in range(2):
        with pytest.raises(Exception, match="no recipient reached"):
            digest_flow(newsletter="weekly", config_path=str(path))
    to_ops = [m.message() for m in sink.received if m.recipients == ["ops@example.com"]]
    assert len(to_ops) == 1 and to_ops[0]["Subject"] == "[feedletter] digest weekly failed"
    assert "550 mailbox unavailable" in to_ops[0].get_content()
    assert store.recent_runs(1)[0]["status"] == "failed"

    sink.set_rule(None)  # fixed: the next run succeeds and closes the incident
    digest_flow(newsletter="weekly", config_path=str(path))
    assert alerts.open_incidents(store) == []
    store.close()
