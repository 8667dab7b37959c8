"""A sender killed with SIGKILL in the middle of a 2,000-subscriber send, then rerun.

The sender runs in a subprocess against a real aiosmtpd server in this process; once some hundreds
of messages have arrived it is killed outright (no cleanup, no atexit), the leases it held are let
run out, and a second run finishes the job. The server must hold exactly one message per subscriber.
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
from fixtures_delivery import FAST_RETRY, expire_waits, make_issue

from feedletter.config import Config
from feedletter.deliver import deliver_issue
from feedletter.deliver import outbox as outbox_queue
from feedletter.deliver.providers.smtp import SmtpMailer, SmtpSettings
from feedletter.mailsink import MailSink
from feedletter.store import Store

WORKER = Path(__file__).with_name("fixtures_delivery.py")
PEOPLE = 2000


@pytest.mark.slow
def test_sigkill_mid_send_then_rerun_delivers_each_subscriber_exactly_once(
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
        before = len(sink.received)
        assert 300 <= before < PEOPLE, "the kill must land in the middle of the send"
        left = outbox_queue.counts(store, issue.issue_id)
        assert left["sending"] > 0 or left["queued"] > 0

        expire_waits(store)  # the dead worker's leases run out
        rerun = deliver_issue(demo_config, store, issue, SmtpMailer(SmtpSettings.from_url(sink.url)),
                              policy=FAST_RETRY)
        received = Counter(r.recipients[0] for r in sink.received)

    assert len(received) == PEOPLE
    assert max(received.values()) == 1, [k for k, v in received.items() if v > 1][:5]
    assert outbox_queue.counts(store, issue.issue_id)["sent"] == PEOPLE
    assert rerun.sent == PEOPLE - before


def test_a_sender_killed_the_moment_a_send_is_recorded_has_sent_that_message(
        demo_config: Config, store: Store) -> None:
    """The record is final only once the message is: killed right after the commit of a send's
    record, the sender has already completed that message (the rerun sends it to nobody twice).

    The record used to be committed before the end of DATA, and a process killed during that
    commit's round trip left the row sent and the message never completed (a PostgreSQL crash run
    missed 1 of 2,000 subscribers)."""
    issue = make_issue(demo_config, store, 3)
    with MailSink() as sink:
        sender = subprocess.run([sys.executable, str(WORKER), str(demo_config.resolve("sources.yaml")),
                                 demo_config.store_url(), sink.url, str(issue.issue_id), "die-at-record"],
                                stdout=subprocess.DEVNULL, env={**os.environ}, timeout=120)
        assert sender.returncode == 9, "the sender must die at its first record"
        deadline = time.monotonic() + 10
        while not sink.received and time.monotonic() < deadline:
            time.sleep(0.02)
        expire_waits(store)
        deliver_issue(demo_config, store, issue, SmtpMailer(SmtpSettings.from_url(sink.url)), policy=FAST_RETRY)
        received = Counter(r.recipients[0] for r in sink.received)
    assert len(received) == 3 and max(received.values()) == 1, received
    assert outbox_queue.counts(store, issue.issue_id)["sent"] == 3
