"""Delivery through the outbox to a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from feedletter import subscribers
from feedletter.config import Config
from feedletter.deliver import IssueContent, deliver_issue, outbox
from feedletter.deliver.smtp import SmtpMailer, SmtpSettings
from feedletter.digest import queue_issue
from feedletter.mailsink import MailSink
from feedletter.store import Store, issues, now

HTML = "<html><body><p>Hello %%NAME%%</p><a href=\"%%UNSUBSCRIBE_URL%%\">Unsubscribe</a></body></html>"
TEXT = "Hello\n\nUnsubscribe: %%UNSUBSCRIBE_URL%%\n"


def _issue(config: Config, store: Store, people: int) -> IssueContent:
    newsletter = config.newsletter("weekly")
    for i in range(people):
        subscribers.add(store, "weekly", f"reader{i}@example.com", f"Reader {i}")
    with store.begin() as conn:
        row = conn.execute(issues.insert().values(newsletter="weekly", number=1, issued=now(), subject="Hi",
                                                  preheader="", html=HTML, text=TEXT, mjml="", data="{}"))
        issue_id = int(row.inserted_primary_key[0])
    queue_issue(store, issue_id, newsletter)
    return IssueContent(issue_id, newsletter, "Weekly: hello", HTML, TEXT)


def _mailer(sink: MailSink) -> SmtpMailer:
    return SmtpMailer(SmtpSettings.from_url(sink.url))


def test_one_message_per_subscriber_with_both_parts_and_unsubscribe_headers(
        demo_config: Config, store: Store, sink: MailSink) -> None:
    issue = _issue(demo_config, store, 3)
    counts = deliver_issue(demo_config, store, issue, _mailer(sink))
    assert counts.sent == 3
    received = sink.received
    assert sorted(r.recipients[0] for r in received) == [f"reader{i}@example.com" for i in range(3)]
    for item in received:
        msg = item.message()
        assert msg.get_content_type() == "multipart/alternative"
        kinds = [part.get_content_type() for part in msg.iter_parts()]
        assert kinds == ["text/plain", "text/html"]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe = msg["List-Unsubscribe"]
        assert "<https://news.example.com/unsubscribe/" in unsubscribe and "<mailto:" in unsubscribe
        token_url = unsubscribe.split("<", 1)[1].split(">", 1)[0]
        assert token_url in msg.get_body(("html",)).get_content()
        assert token_url in msg.get_body(("plain",)).get_content()
        assert "%%" not in msg.as_string()
        assert msg["Message-ID"].startswith("<fl.")


def test_a_rerun_sends_nothing_twice(demo_config: Config, store: Store, sink: MailSink) -> None:
    issue = _issue(demo_config, store, 4)
    deliver_issue(demo_config, store, issue, _mailer(sink))
    again = deliver_issue(demo_config, store, issue, _mailer(sink))
    assert again.sent == 0
    assert queue_issue(store, issue.issue_id, issue.newsletter) == 0
    assert len(sink.received) == 4
    assert outbox.counts(store, issue.issue_id)["sent"] == 4


def test_unsubscribed_while_in_flight_receives_nothing(demo_config: Config, store: Store, sink: MailSink) -> None:
    issue = _issue(demo_config, store, 3)
    subscribers.remove(store, "weekly", "reader1@example.com")
    deliver_issue(demo_config, store, issue, _mailer(sink))
    assert sorted(r.recipients[0] for r in sink.received) == ["reader0@example.com", "reader2@example.com"]
    assert outbox.counts(store, issue.issue_id)["skipped"] == 1


def test_transient_refusal_is_retried_and_permanent_one_fails(
        demo_config: Config, store: Store, sink: MailSink) -> None:
    issue = _issue(demo_config, store, 3)
    tries: dict[str, int] = {}

    def rule(recipient: str, number: int) -> str | None:
        del number
        tries[recipient] = tries.get(recipient, 0) + 1
        if recipient == "reader0@example.com" and tries[recipient] == 1:
            return "451 4.3.0 try again later"
        if recipient == "reader2@example.com":
            return "550 5.1.1 no such user"
        return None

    sink.set_rule(rule)
    first = deliver_issue(demo_config, store, issue, _mailer(sink))
    assert first.sent == 1 and first.retried == 1 and first.failed == 1
    # The 4xx row waits for its back-off; pretend it has passed.
    with store.begin() as conn:
        conn.execute(outbox.outbox.update().values(not_before=datetime(2000, 1, 1, tzinfo=UTC)))
    second = deliver_issue(demo_config, store, issue, _mailer(sink))
    assert second.sent == 1
    assert sorted(r.recipients[0] for r in sink.received) == ["reader0@example.com", "reader1@example.com"]
    assert outbox.counts(store, issue.issue_id) == {"queued": 0, "sending": 0, "sent": 2, "failed": 1,
                                                     "skipped": 0}


@pytest.mark.parametrize("drop_at", [2, 5])
def test_dropped_connection_mid_batch_loses_and_repeats_nothing(
        demo_config: Config, store: Store, sink: MailSink, drop_at: int) -> None:
    issue = _issue(demo_config, store, 8)
    sink.set_rule(lambda recipient, number: "DROP" if number == drop_at else None)
    first = deliver_issue(demo_config, store, issue, _mailer(sink))
    with store.begin() as conn:
        conn.execute(outbox.outbox.update().values(not_before=datetime(2000, 1, 1, tzinfo=UTC)))
    second = deliver_issue(demo_config, store, issue, _mailer(sink))
    got = sorted(r.recipients[0] for r in sink.received)
    assert got == sorted(f"reader{i}@example.com" for i in range(8))
    assert first.sent + second.sent == 8
