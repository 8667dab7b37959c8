"""A sender killed with SIGKILL in the middle of a 2,000-subscriber send, then rerun.

The sender runs in a subprocess against a real aiosmtpd server in this process; once some hundreds
of messages have arrived it is killed outright (no cleanup, no atexit), the leases it held are let
run out, and a second run finishes the job. The server must hold one message per subscriber; only
the message whose final dot was on the wire at the kill may come twice, with one Message-ID (see
fixtures_delivery.each_once_but_the_one_on_the_wire).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from fixtures_delivery import FAST_RETRY, each_once_but_the_one_on_the_wire, expire_waits, make_issue

from feedletter.config import Config
from feedletter.deliver import IssueContent, deliver_issue
from feedletter.deliver import outbox as outbox_queue
from feedletter.deliver.providers.smtp import SmtpMailer, SmtpSettings
from feedletter.mailsink import MailSink
from feedletter.store import Store

WORKER = Path(__file__).with_name("fixtures_delivery.py")
PEOPLE = 2000


@pytest.mark.slow
def test_sigkill_mid_send_then_rerun_delivers_to_each_subscriber_once(
        demo_config: Config, store: Store, tmp_path: Path) -> None:
    issue = make_issue(demo_config, store, PEOPLE)
    with MailSink() as sink:  # no save_dir: 2,000 files would only slow the server down
        sender = subprocess.Popen([sys.executable, str(WORKER), str(demo_config.resolve("sources.yaml")),
                                   demo_config.store_url(), sink.url, str(issue.issue_id)],
                                  stdout=subprocess.DEVNULL, env={**os.environ})
        deadline = time.monotonic() + 240
        while len(sink.received) < 300 and sender.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(timeout=30)
        assert sender.returncode == -signal.SIGKILL
        left = outbox_queue.counts(store, issue.issue_id)
        assert left["sending"] > 0 or left["queued"] > 0
        recorded = left["sent"]
        deadline = time.monotonic() + 10
        while len(sink.received) < recorded and time.monotonic() < deadline:
            time.sleep(0.02)  # the sink may still be reading the last recorded message
        # Every recorded message arrived; the one on the wire at the kill may have arrived unrecorded.
        assert recorded <= len(sink.received) <= recorded + 1
        assert 300 <= recorded < PEOPLE, "the kill must land in the middle of the send"

        expire_waits(store)  # the dead worker's leases run out
        rerun = deliver_issue(demo_config, store, issue, SmtpMailer(SmtpSettings.from_url(sink.url)),
                              policy=FAST_RETRY)
        received = each_once_but_the_one_on_the_wire(sink.received)

    assert len(received) == PEOPLE
    assert outbox_queue.counts(store, issue.issue_id)["sent"] == PEOPLE
    assert rerun.sent == PEOPLE - recorded


def test_a_sender_killed_the_moment_a_send_is_recorded_has_sent_that_message(
        demo_config: Config, store: Store) -> None:
    """The record is final only once the message is: killed right after the commit of a send's
    record, the sender has already completed that message (the rerun sends it to nobody twice).

    The record used to be committed before the end of DATA, and a process killed during that
    commit's round trip left the row sent and the message never completed (a PostgreSQL crash run
    missed 1 of 2,000 subscribers)."""
    issue = make_issue(demo_config, store, 3)
    with MailSink() as sink:
        _die_at_the_first_message_then_rerun(demo_config, store, sink, issue, "die-at-record")
        received = Counter(r.recipients[0] for r in sink.received)
    assert len(received) == 3 and max(received.values()) == 1, received
    assert outbox_queue.counts(store, issue.issue_id)["sent"] == 3


def test_a_sender_killed_between_the_final_dot_and_its_record_sends_that_message_again(
        demo_config: Config, store: Store) -> None:
    """The one window a sender cannot close goes the safe way: killed after writing a message's
    final dot and before committing its record, the message is complete at the server and the
    rerun sends it again, with the same Message-ID; nobody is left without it."""
    issue = make_issue(demo_config, store, 3)
    with MailSink() as sink:
        before, recorded = _die_at_the_first_message_then_rerun(demo_config, store, sink, issue, "die-before-record")
        received = each_once_but_the_one_on_the_wire(sink.received)
    assert (before, recorded) == (1, 0)
    assert len(received) == 3 and sorted(received.values()) == [1, 1, 2], received
    assert outbox_queue.counts(store, issue.issue_id)["sent"] == 3


def _die_at_the_first_message_then_rerun(config: Config, store: Store, sink: MailSink, issue: IssueContent,
                                         how: str) -> tuple[int, int]:
    """A sender that dies (exit 9) at its first message as ``how`` says, then a rerun in this process.
    Returns the messages the server had and the sends recorded before the rerun."""
    sender = subprocess.run([sys.executable, str(WORKER), str(config.resolve("sources.yaml")),
                             config.store_url(), sink.url, str(issue.issue_id), how],
                            stdout=subprocess.DEVNULL, env={**os.environ}, timeout=120)
    assert sender.returncode == 9, f"the sender must die ({how})"
    deadline = time.monotonic() + 10
    while not sink.received and time.monotonic() < deadline:
        time.sleep(0.02)
    before, recorded = len(sink.received), outbox_queue.counts(store, issue.issue_id)["sent"]
    expire_waits(store)
    deliver_issue(config, store, issue, SmtpMailer(SmtpSettings.from_url(sink.url)), policy=FAST_RETRY)
    return before, recorded
