"""An SMTP outage during a digest (issue 20): the issue pauses with its messages queued, the next run
after the server is back delivers it, once to each subscriber, and the operators' alert arrives.

The real `feedletter` command runs in child processes, in-process (no Prefect API), on SQLite and
on PostgreSQL (FEEDLETTER_TEST_DATABASE_URL); the server is down first (nothing listens on its
port), then an aiosmtpd server comes up on that port. Alerts go through the same server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import sqlalchemy as sa
from fixtures_delivery import closed_port, store_url

from feedletter.errors import EXIT_PAUSED
from feedletter.mailsink import MailSink
from feedletter.schema import issues, subscribers
from feedletter.sitehost import SiteHost
from tests.conftest import ROOT, gathered_newsletter

__all__ = ["store_url"]  # the sqlite/postgresql fixture, imported for pytest to find

PEOPLE = 20
OPS = "ops@example.com"
ALERTS = f"alerts: {{to: {OPS}, from: 'feedletter <alerts@news.example.com>'}}\n"


def _feedletter(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feedletter.cli", *args], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)


def test_an_smtp_outage_pauses_the_issue_and_the_next_run_delivers_it_once(
        tmp_path: Path, site: SiteHost, store_url: str) -> None:
    port = closed_port()
    path, store = gathered_newsletter(tmp_path, site, store_url, PEOPLE, extra=ALERTS)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PYTHONPATH=str(ROOT), PREFECT_HOME=str(tmp_path / "prefect-home"),
               FEEDLETTER_SMTP_URL=f"smtp://127.0.0.1:{port}")
    digest = ["digest", "weekly", "--config", str(path)]

    # Down: the run stops within seconds, the issue paused, not failed.
    started = time.monotonic()
    first = _feedletter(tmp_path, env, *digest)
    took = time.monotonic() - started
    assert first.returncode == EXIT_PAUSED, first.stderr
    assert ("digest weekly: issue 1 paused: SMTP unreachable (connection refused) after 3 tries; 0/20 sent; "
            "the next run resumes it") in first.stderr
    assert took < 60, took  # was 454 s of per-message back-off, every message failed at the end

    # Still down: the next run tries the paused issue first, and makes no new issue behind it.
    second = _feedletter(tmp_path, env, *digest)
    assert second.returncode == EXIT_PAUSED and "issue 1 paused" in second.stderr, second.stderr
    with store.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(issues)).scalar_one() == 1

    status = _feedletter(tmp_path, env, "status", "--config", str(path))
    assert status.returncode == 0, status.stderr
    shown = status.stdout
    assert any(line.split()[:3] == ["digest", "weekly", "paused"] for line in shown.splitlines()), shown
    assert ("issue weekly/1 paused: SMTP unreachable (connection refused) after 3 tries: 0 sent, 20 queued "
            "(the next digest run resumes it)") in shown
    assert "Outbox    20 queued" in shown and "Incidents 1 open" in shown
    assert "delivery-paused weekly since " in shown
    assert f"(alert pending, last try: deliver: smtp://127.0.0.1:{port}: cannot connect" in shown

    # Up again: the next run finishes issue 1 before anything new; the alert goes out with it.
    with MailSink(port=port) as sink:
        third = _feedletter(tmp_path, env, *digest, "--json")
        assert third.returncode == 0, third.stderr
        received = sink.received
    report = json.loads(third.stdout.strip().splitlines()[-1])
    per_issue: dict[int, Counter[str]] = {}
    for item in received:
        if item.recipients != [OPS]:
            number = int(item.message()["Message-ID"].split(".")[1])
            per_issue.setdefault(number, Counter())[item.recipients[0]] += 1
    assert 1 in per_issue  # issue 1's id is 1
    for got in per_issue.values():
        assert len(got) == PEOPLE and max(got.values()) == 1, got
    assert report["sent"] == PEOPLE * len(per_issue)
    to_ops = [item.message() for item in received if item.recipients == [OPS]]
    assert [m["Subject"] for m in to_ops] == ["[feedletter] delivery of weekly paused (resolved)"]
    assert "issue 1 paused: SMTP unreachable (connection refused) after 3 tries" in to_ops[0].get_content()

    after = _feedletter(tmp_path, env, "status", "--config", str(path)).stdout
    assert "Incidents 0 open" in after and "alert pending" not in after and "queued" not in after
    with store.begin() as conn:
        assert conn.execute(sa.select(sa.func.sum(subscribers.c.bounces))).scalar_one() == 0
    store.close()
