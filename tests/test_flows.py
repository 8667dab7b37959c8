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
from tests.conftest import ROOT, write_config

EXPECTED = json.loads((ROOT / "demo" / "expected.json").read_text())
pytestmark = pytest.mark.slow


def test_gather_then_digest_through_prefect(prefect_harness: None, tmp_path: Path, site: SiteHost,
                                            sink: MailSink, monkeypatch: pytest.MonkeyPatch) -> None:
    from flows.digest import digest_flow
    from flows.gather import gather_flow

    monkeypatch.setenv("FEEDLETTER_SMTP_URL", sink.url)
    path = write_config(tmp_path, site)
    config = load_config(path)
    store = Store.open(config.store_url())
    for i in range(3):
        subscribers.add(store, "weekly", f"reader{i}@example.com")

    first = gather_flow(config_path=str(path))
    assert first["fetched"] == len(EXPECTED["feeds"]) and first["new"] == EXPECTED["articles"]
    second = gather_flow(config_path=str(path))
    assert second["not_modified"] == len(EXPECTED["feeds"]) and second["new"] == 0

    report = digest_flow(newsletter="weekly", config_path=str(path))
    assert report["sent"] == 3 and report["failed"] == 0 and report["issue"] == 1
    assert len(sink.received) == 3
    msg = sink.received[0].message()
    assert msg["Subject"] == report["subject"]
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    html = msg.get_body(("html",)).get_content()
    for junk in EXPECTED["boilerplate"]:
        assert junk not in html
    assert "Also covered by" in html

    # 19 stories and at most 10 an issue: the next run carries the rest, none of them again; the
    # run after that finds nothing new and sends nothing.
    second_issue = digest_flow(newsletter="weekly", config_path=str(path))
    assert second_issue["issue"] == 2 and second_issue["stories"] == EXPECTED["stories"] - 10
    third = digest_flow(newsletter="weekly", config_path=str(path))
    assert third.get("skipped") == "no new stories" and len(sink.received) == 6
    first_ids = {m.message()["Message-ID"] for m in sink.received}
    assert len(first_ids) == 6

    feed = feedparser.parse((tmp_path / "public" / "weekly" / "rss.xml").read_bytes())
    assert not feed.bozo and len(feed.entries) == 2 and feed.entries[1].title == report["subject"]
    assert (tmp_path / "public" / "weekly" / "index.html").read_text().count(report["subject"]) == 1
    store.close()
