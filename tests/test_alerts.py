"""Operator alerts: once per incident, through the newsletters' own mailer, to the configured address."""

from __future__ import annotations

from pathlib import Path

import pytest

from feedletter import alerts
from feedletter.config import load_config, parse_config
from feedletter.ingest import gather, health
from feedletter.mailsink import MailSink
from feedletter.sitehost import SiteHost
from feedletter.store import Store
from tests.conftest import write_config

ALERTS = "alerts: {to: ops@example.com, from: 'feedletter <alerts@news.example.com>'}\n"


def _broken_source_config(tmp_path: Path, site: SiteHost) -> Path:
    path = write_config(tmp_path, site, extra=ALERTS + "gather: {max_failures: 2}\n")
    text = path.read_text().replace(
        "sources:\n", f"sources:\n  - {{name: gone, url: '{site.url('gone/feed.xml')}', tags: [city]}}\n", 1)
    path.write_text(text)
    return path


def test_alerts_config_takes_one_address_or_many() -> None:
    one, problems = parse_config("alerts: {to: ops@example.com}\n")
    assert not problems and one is not None and one.alerts is not None and one.alerts.to == ["ops@example.com"]
    many, _ = parse_config("alerts: {to: [a@example.com, b@example.com], from: 'x <x@example.com>'}\n")
    assert many is not None and many.alerts is not None and len(many.alerts.to) == 2
    _, bad = parse_config("alerts:\n  to: not-an-address\n")
    assert bad and bad[0].line == 2 and "not an email address" in bad[0].message


def test_a_disabled_source_alerts_once_until_it_is_enabled(tmp_path: Path, site: SiteHost, sink: MailSink,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDLETTER_SMTP_URL", sink.url)
    config = load_config(_broken_source_config(tmp_path, site))
    store = Store.open(config.store_url())

    def fetch_gone() -> None:
        with gather.make_fetcher(config) as fetcher:
            gather.fetch_sources(config, store, fetcher, only=["gone"], force=True)

    fetch_gone()
    assert alerts.track_sources(store) == [] and alerts.send_alerts(config, store).sent == 0
    fetch_gone()  # second failure: max_failures reached, the source is disabled
    assert alerts.track_sources(store) == ["gone"]
    assert alerts.send_alerts(config, store).sent == 1
    assert len(sink.received) == 1
    msg = sink.received[0].message()
    assert msg["To"] == "ops@example.com" and msg["Subject"] == "[feedletter] source gone disabled"
    body = msg.get_content()
    assert "HTTP 404" in body and "feedletter sources enable gone" in body

    # Still disabled on the next runs: the same incident, no second email.
    fetch_gone()
    assert alerts.track_sources(store) == [] and alerts.send_alerts(config, store).sent == 0
    assert len(sink.received) == 1

    # Enabled again, then failing again: a new incident, a new alert.
    health.enable(store, "gone")
    assert alerts.track_sources(store) == [] and alerts.open_incidents(store) == []
    fetch_gone()
    fetch_gone()
    assert alerts.track_sources(store) == ["gone"]
    alerts.send_alerts(config, store)
    assert len(sink.received) == 2
    store.close()


def test_an_alert_that_cannot_go_out_stays_pending(tmp_path: Path, site: SiteHost, sink: MailSink,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDLETTER_SMTP_URL", sink.url)
    config = load_config(write_config(tmp_path, site, extra=ALERTS))
    store = Store.open(config.store_url())
    assert alerts.digest_failed(store, "weekly", "deliver: weekly: no recipient reached")
    assert not alerts.digest_failed(store, "weekly", "deliver: weekly: no recipient reached")
    sink.set_rule(lambda rcpt, n: "451 try again later")
    counts = alerts.send_alerts(config, store)
    assert counts.sent == 0 and counts.failed == 1 and "451" in counts.errors[0]
    assert [i.target for i in alerts.pending(store)] == ["weekly"]
    sink.set_rule(None)
    assert alerts.send_alerts(config, store).sent == 1 and alerts.pending(store) == []
    assert sink.received[0].message()["Subject"] == "[feedletter] digest weekly failed"
    assert alerts.close_incident(store, alerts.DIGEST_FAILED, "weekly")
    store.close()


def test_without_an_alerts_address_incidents_are_only_logged(demo_config: object, store: Store,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    from feedletter.config import Config

    assert isinstance(demo_config, Config) and demo_config.alerts is None
    alerts.digest_failed(store, "weekly", "boom")
    assert alerts.send_alerts(demo_config, store).sent == 0
    assert "digest weekly failed" in caplog.text
    assert len(alerts.pending(store)) == 1  # sent once an address is configured


def test_status_shows_last_runs_counts_and_open_incidents(tmp_path: Path, site: SiteHost) -> None:
    import json

    from typer.testing import CliRunner

    from feedletter.cli import app
    from tests.conftest import run_gather

    path = _broken_source_config(tmp_path, site)
    config = load_config(path)
    store = Store.open(config.store_url())
    from feedletter import subscribers

    for email in ("a@example.com", "b@example.com"):
        subscribers.add(store, "weekly", email)
    for status in ("failed", "completed"):
        run = store.start_run("gather")
        run_gather(config, store)
        store.finish_run(run, status, {"sources": 6, "fetched": 5, "errors": 1, "new": 3})
    run = store.start_run("digest", "weekly")
    store.finish_run(run, "skipped", {"skipped": "no new stories"})
    alerts.digest_failed(store, "weekly", "boom")
    store.close()

    runner = CliRunner()
    shown = runner.invoke(app, ["status", "--config", str(path)])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    assert any(line.split()[:3] == ["gather", "(all)", "completed"] for line in lines)  # the latest only
    assert not any(line.split()[:3] == ["gather", "(all)", "failed"] for line in lines)
    assert any(line.split()[:3] == ["digest", "weekly", "skipped"] for line in lines)
    assert "6 known: 5 ok, 1 backing off" in shown.output
    assert "2 active" in shown.output and "Incidents 1 open" in shown.output
    data = json.loads(runner.invoke(app, ["status", "--json", "--config", str(path)]).output)
    assert data["counts"]["sources"] == {"ok": 5, "backing off": 1} and data["counts"]["articles"] > 0
    assert data["incidents"][0]["target"] == "weekly" and len(data["runs"]) == 2
