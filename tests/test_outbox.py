"""The outbox's exactly-once rules: unique rows, stable Message-IDs, leases, concurrent senders.

Each concurrency test runs on SQLite and on PostgreSQL (FEEDLETTER_TEST_DATABASE_URL, a fresh
schema per test); the SMTP server is a real aiosmtpd on loopback.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections import Counter
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
import sqlalchemy as sa
from fixtures_delivery import FAST_RETRY, any_store, closed_port, make_issue, store_url

from feedletter.config import Config
from feedletter.deliver import DeliveryCounts, deliver_issue
from feedletter.deliver import outbox as outbox_queue
from feedletter.deliver.providers.smtp import SmtpMailer, SmtpSettings
from feedletter.mailsink import MailSink
from feedletter.schema import outbox
from feedletter.store import Store

__all__ = ["any_store", "store_url"]  # fixtures used below, imported for pytest to find
WORKER = Path(__file__).with_name("fixtures_delivery.py")


def _mailer(sink: MailSink) -> SmtpMailer:
    return SmtpMailer(SmtpSettings.from_url(sink.url))


def _assert_each_once(sink: MailSink, people: int) -> None:
    got = Counter(r.recipients[0] for r in sink.received)
    assert len(got) == people
    assert max(got.values()) == 1, [k for k, v in got.items() if v > 1][:5]


def test_two_threads_at_once_send_each_row_once(demo_config: Config, any_store: Store, sink: MailSink) -> None:
    issue = make_issue(demo_config, any_store, 240)
    results: list[DeliveryCounts] = []
    start = threading.Barrier(2)

    def run() -> None:
        start.wait()
        results.append(deliver_issue(demo_config, any_store, issue, _mailer(sink), batch=10, policy=FAST_RETRY))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sum(r.sent for r in results) == 240
    assert all(r.sent > 0 for r in results), "both runs should have taken a share"
    _assert_each_once(sink, 240)
    assert outbox_queue.counts(any_store, issue.issue_id)["sent"] == 240


def test_two_processes_at_once_send_each_row_once(demo_config: Config, any_store: Store, store_url: str,
                                                  sink: MailSink) -> None:
    issue = make_issue(demo_config, any_store, 400)
    config_path = str(demo_config.resolve("sources.yaml"))
    procs = [subprocess.Popen([sys.executable, str(WORKER), config_path, store_url, sink.url, str(issue.issue_id)],
                              stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=180)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    sent = [int(out.strip().rsplit("sent=", 1)[1]) for out in outputs]
    assert sum(sent) == 400
    _assert_each_once(sink, 400)
    assert outbox_queue.counts(any_store, issue.issue_id)["sent"] == 400


def test_a_row_is_unique_per_issue_and_subscriber(demo_config: Config, any_store: Store) -> None:
    issue = make_issue(demo_config, any_store, 3)
    assert outbox_queue.queue(any_store, issue.issue_id, "weekly", "riverside.example") == 0
    with any_store.begin() as conn:
        row = conn.execute(sa.select(outbox).limit(1)).mappings().one()
    with pytest.raises(sa.exc.IntegrityError), any_store.begin() as conn:
        conn.execute(outbox.insert().values(issue_id=row["issue_id"], subscriber_id=row["subscriber_id"],
                                            email=row["email"], message_id="<x@y>", state="queued"))


def test_message_id_is_stable_and_distinct(demo_config: Config, any_store: Store, sink: MailSink) -> None:
    issue = make_issue(demo_config, any_store, 3)
    with any_store.begin() as conn:
        stored = dict(conn.execute(sa.select(outbox.c.email, outbox.c.message_id)).all())
    assert len(set(stored.values())) == 3
    assert stored["reader0@example.com"] == outbox_queue.message_id(issue.issue_id, 1, "riverside.example")
    deliver_issue(demo_config, any_store, issue, _mailer(sink), policy=FAST_RETRY)
    assert {r.recipients[0]: r.message()["Message-ID"] for r in sink.received} == stored


def test_only_an_expired_lease_is_taken_over(demo_config: Config, any_store: Store) -> None:
    issue = make_issue(demo_config, any_store, 4)
    first = outbox_queue.claim(any_store, issue.issue_id, "worker-a", limit=10)
    assert len(first) == 4
    assert outbox_queue.claim(any_store, issue.issue_id, "worker-b", limit=10) == []
    # A lease in the past (the worker died): worker b takes the rows, and worker a may no longer send.
    with any_store.begin() as conn:
        conn.execute(outbox.update().values(lease_until=outbox_queue.now() - timedelta(seconds=1)))
    second = outbox_queue.claim(any_store, issue.issue_id, "worker-b", limit=10)
    assert [i.id for i in second] == [i.id for i in first]
    assert outbox_queue.mark_sent(any_store, first[0], "worker-a") is False
    assert outbox_queue.mark_sent(any_store, second[0], "worker-b") is True


def test_a_lost_lease_aborts_mid_data_and_nothing_arrives(sink: MailSink) -> None:
    mailer = _mailer(sink)
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "a@example.com", "b@example.com", "x", "<1@x>"
    msg.set_content("body")
    assert mailer.send(msg, "a@example.com", "b@example.com", lambda: False) is False
    assert mailer.send(msg, "a@example.com", "b@example.com", lambda: True) is True
    mailer.close()
    assert len(sink.received) == 1


def test_unsubscribing_after_the_claim_still_stops_the_message(demo_config: Config, any_store: Store,
                                                               sink: MailSink) -> None:
    from feedletter import subscribers

    issue = make_issue(demo_config, any_store, 2)
    items = outbox_queue.claim(any_store, issue.issue_id, "me", limit=10)
    subscribers.remove(any_store, "weekly", items[0].email)  # lands while the batch is in flight
    mailer = _mailer(sink)
    for item in items:
        mailer.send(_message(item.email), "news@riverside.example", item.email,
                    lambda item=item: outbox_queue.mark_sent(any_store, item, "me"))
    mailer.close()
    assert [r.recipients[0] for r in sink.received] == [items[1].email]
    assert outbox_queue.settle_refused(any_store, items[0], "me")
    assert outbox_queue.counts(any_store, issue.issue_id)["skipped"] == 1


def _message(to: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "news@riverside.example", to, "x", "<1@x>"
    msg.set_content("body")
    return msg


# --- a way back: paused and failed messages queued again ---------------------------------------------

def test_failed_messages_are_queued_again_and_their_bounces_taken_back(demo_config: Config, any_store: Store,
                                                                     sink: MailSink) -> None:
    from feedletter.schema import subscribers

    issue = make_issue(demo_config, any_store, 4)
    sink.set_rule(lambda recipient, number: "550 5.7.1 relaying denied")  # a relay that refused everyone
    assert deliver_issue(demo_config, any_store, issue, _mailer(sink), policy=FAST_RETRY).failed == 4
    with any_store.begin() as conn:  # reader0 had bounced twice before: this failure marked them bounced
        conn.execute(subscribers.update().where(subscribers.c.email == "reader0@example.com")
                     .values(bounces=3, status="bounced"))

    assert outbox_queue.requeue(any_store, issue.issue_id) == outbox_queue.Requeued(0, 0, 4)
    assert outbox_queue.counts(any_store, issue.issue_id)["failed"] == 4
    assert outbox_queue.requeue(any_store, issue.issue_id, failed=True) == outbox_queue.Requeued(0, 4, 0)
    with any_store.begin() as conn:
        people = {r.email: (r.bounces, r.status) for r in conn.execute(sa.select(subscribers))}
    assert people["reader0@example.com"] == (2, "active") and people["reader1@example.com"] == (0, "active")

    sink.set_rule(None)  # the relay was fixed
    assert deliver_issue(demo_config, any_store, issue, _mailer(sink), policy=FAST_RETRY).sent == 4
    _assert_each_once(sink, 4)


def test_outbox_command_shows_each_issue_and_retry_requeues_it(demo_config: Config, store: Store,
                                                               sink: MailSink) -> None:
    from dataclasses import replace

    from typer.testing import CliRunner

    from feedletter.cli import app

    config = ["--config", str(demo_config._path)]
    first = make_issue(demo_config, store, 3)
    sink.set_rule(lambda recipient, number: "550 5.1.1 no such user" if recipient == "reader1@example.com" else None)
    deliver_issue(demo_config, store, first, _mailer(sink), policy=FAST_RETRY)
    second = make_issue(demo_config, store, 0)
    down = SmtpMailer(SmtpSettings.from_url(f"smtp://127.0.0.1:{closed_port()}"))
    deliver_issue(demo_config, store, second, down, policy=replace(FAST_RETRY, pause_gap=timedelta(0)))

    runner = CliRunner()
    shown = runner.invoke(app, ["outbox", *config])
    assert shown.exit_code == 0, shown.output
    lines = [line.split() for line in shown.stdout.splitlines()]
    assert lines[0] == ["issue", "state", "queued", "sending", "sent", "failed", "skipped"]
    assert lines[1] == ["weekly/1", "delivered", "0", "0", "2", "1", "0"]
    assert " ".join(lines[2]) == ("weekly/2 paused 3 0 0 0 0 SMTP unreachable (connection refused) after 3 tries")

    again = runner.invoke(app, ["outbox", "retry", "2", *config])
    assert again.exit_code == 0, again.output
    assert again.stdout.splitlines() == ["weekly/2: 3 queued messages due now",
                                         "next: feedletter digest weekly (sends them before any new issue)"]
    assert runner.invoke(app, ["outbox", *config]).stdout.splitlines()[2].split()[:3] == ["weekly/2", "sending", "3"]

    kept = runner.invoke(app, ["outbox", "retry", "weekly/1", *config])
    assert kept.stdout.strip() == ("weekly/1: nothing to send again; 1 failed for good (add --failed once their "
                                   "cause is fixed)")
    back = runner.invoke(app, ["outbox", "retry", "weekly/1", "--failed", *config])
    assert back.stdout.splitlines()[0] == "weekly/1: 1 failed message queued again"
    assert outbox_queue.counts(store, first.issue_id)["queued"] == 1

    missing = runner.invoke(app, ["outbox", "retry", "weekly/9", *config])
    assert missing.exit_code == 1 and "no such issue" in missing.stderr
