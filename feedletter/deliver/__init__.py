"""Delivery: queue an issue in the outbox and send it through a mailer, exactly once per subscriber.

Per-subscriber providers (smtp, file) go through the outbox; campaign providers (listmonk,
mailchimp) hand the whole issue over as one campaign (see ``campaign``). Each provider is a module
of ``providers/``, found through :data:`feedletter.plugins.PROVIDERS`. ``send_issue`` picks the
right way for a newsletter and is what the digest flow calls.

What is retried, and when: a message refused for now (SMTP 4xx, a connection lost mid-message) is
tried again after ``RetryPolicy.base``, doubled each time, up to ``max_attempts``; a run waits up to
``RetryPolicy.wait`` for those, then leaves them queued for the next run. A provider unreachable for
everyone (refused connection, DNS, TLS, login) counts against no message: after ``pause_after`` in a
row the send stops, the issue is *paused* with its messages queued, and the next digest run resumes it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from typing import Protocol, cast

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from feedletter.config import Config
from feedletter.config_newsletters import Newsletter
from feedletter.deliver import outbox
from feedletter.deliver.message import IssueContent, IssueMessage, Outgoing, build_message
from feedletter.errors import DeliveryError, ProviderUnreachable
from feedletter.models import Subscriber
from feedletter.plugins import PROVIDERS
from feedletter.runreport import cause_of
from feedletter.schema import issues
from feedletter.store import Store, now
from feedletter.subscribers import make_token

__all__ = ["DeliveryCounts", "IssueContent", "Mailer", "RetryPolicy", "build_message",
           "deliver_issue", "load_issue", "make_mailer", "send_issue"]

log = logging.getLogger(__name__)

SAY_EVERY = 30.0  # seconds between "waiting to retry" lines while a run waits out a back-off


class Mailer(Protocol):
    name: str

    def send(self, msg: EmailMessage | Outgoing, sender: str, recipient: str, commit: Callable[[], bool]) -> bool:
        """Send ``msg``, calling ``commit()`` just before completing it: when it says False, send nothing.

        The record is final when ``send`` returns True, or sooner, when the mailer calls
        ``commit.seal()`` (the outbox's record has one) the moment the message is complete.
        """

    def close(self, *, abort: bool = False) -> None: ...


def make_mailer(config: Config, newsletter: Newsletter) -> Mailer:
    """The mailer for a newsletter's provider; secrets come from the environment only."""
    provider = PROVIDERS.get(newsletter.provider)
    if provider.kind != "per-subscriber":
        raise DeliveryError(provider.name, "this provider sends campaigns, not single messages", transient=False)
    return cast(Mailer, provider.factory(config, newsletter))


@dataclass(frozen=True)
class RetryPolicy:
    """How transient failures are retried; from ``providers.smtp`` in the config."""

    base: timedelta = timedelta(seconds=30)
    wait: timedelta = timedelta(minutes=10)
    max_attempts: int = 5
    bounce_limit: int = outbox.BOUNCE_LIMIT
    pause_after: int = 3  # messages in a row that found the provider unreachable: then the issue pauses
    pause_gap: timedelta = timedelta(seconds=1)  # between those tries: a server restarting is not an outage

    @classmethod
    def from_config(cls, config: Config) -> RetryPolicy:
        # Imported here: a config naming only other providers need not load SMTP (see feedletter.plugins).
        from feedletter.deliver.providers.smtp import PROVIDER as SMTP

        smtp = SMTP.settings_in(config)
        return cls(timedelta(seconds=smtp.retry_base), timedelta(seconds=smtp.retry_wait), smtp.max_attempts,
                   smtp.bounce_limit, smtp.pause_after)


@dataclass
class DeliveryCounts:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    paused: str | None = None  # why the send stopped with messages still queued: "SMTP unreachable (…) after 3 tries"


def unsubscribe_url(config: Config, subscriber_id: int) -> str:
    return f"{config.site.base_url.rstrip('/')}/unsubscribe/{make_token(subscriber_id, 'unsubscribe')}"


def deliver_issue(config: Config, store: Store, issue: IssueContent, mailer: Mailer, *,
                  batch: int = 200, progress: Callable[[int], None] | None = None,
                  policy: RetryPolicy | None = None) -> DeliveryCounts:
    """Send every claimable outbox row of an issue; safe to run twice at once or after a crash.

    Rows refused with a 4xx wait out their back-off; this run waits for them while the next one is
    due within ``policy.wait``, and leaves the rest queued for the next run. When the provider is
    unreachable for ``policy.pause_after`` messages in a row, the run stops at once and pauses the
    issue (``counts.paused`` says why); its rows stay queued. ``progress`` counts recipients done with
    (sent, skipped, failed for good), not attempts.
    """
    policy = policy or RetryPolicy.from_config(config)
    owner = uuid.uuid4().hex
    counts = DeliveryCounts()
    newsletter = issue.newsletter
    template = IssueMessage(sender=newsletter.sender, subject=issue.subject, html=issue.html, text=issue.text,
                            list_id=newsletter.name, reply_to=newsletter.reply_to)
    give_up_at = time.monotonic() + policy.wait.total_seconds()
    said = time.monotonic() - SAY_EVERY
    unreachable = 0  # messages in a row that found the provider unreachable
    recorder = store.engine.connect()
    try:
        while counts.paused is None:
            items = outbox.claim(store, issue.issue_id, owner, limit=batch)
            if not items:
                due = outbox.next_retry(store, issue.issue_id)
                delay = 0.0 if due is None else (due - now()).total_seconds()
                if due is None or time.monotonic() + delay > give_up_at:
                    break
                if delay >= 1.0 and time.monotonic() - said >= SAY_EVERY:
                    said = time.monotonic()
                    _say_waiting(store, issue, delay, give_up_at)
                time.sleep(min(max(delay, 0.01), 5.0))
                continue
            for n, item in enumerate(items):
                outcome = _send_one(config, store, template, item, owner, mailer, counts, policy, recorder)
                if isinstance(outcome, ProviderUnreachable):
                    unreachable += 1
                    if unreachable >= policy.pause_after:
                        counts.paused = (f"{_PROVIDER_NAMES.get(mailer.name, mailer.name)} unreachable "
                                         f"({cause_of(outcome.problem)}) after {unreachable} tries")
                        outbox.put_back(store, [rest.id for rest in items[n + 1:]], owner)
                        break
                    log.warning("%s (%d in a row; the issue pauses at %d)", outcome, unreachable,
                                policy.pause_after)
                    time.sleep(policy.pause_gap.total_seconds())
                    continue
                unreachable = 0
                if outcome and progress:
                    progress(1)
    finally:
        mailer.close()
        recorder.close()
    outbox.pause(store, issue.issue_id, counts.paused)
    return counts


_PROVIDER_NAMES = {"smtp": "SMTP"}


def _say_waiting(store: Store, issue: IssueContent, delay: float, give_up_at: float) -> None:
    waiting = outbox.counts(store, issue.issue_id)["queued"]
    log.warning("%s: waiting to retry %d %s refused for now (the next in %.0f s); this run leaves any still "
                "refused to the next one in %.0f s", issue.newsletter.name, waiting,
                "message" if waiting == 1 else "messages", max(delay, 0.0),
                max(give_up_at - time.monotonic(), 0.0))


def _send_one(config: Config, store: Store, template: IssueMessage, item: outbox.OutboxItem, owner: str,
              mailer: Mailer, counts: DeliveryCounts, policy: RetryPolicy,
              recorder: Connection) -> bool | ProviderUnreachable:
    """Send one row: True when its recipient is done with (sent, skipped, failed for good), False when
    it waits for a retry, the error when the provider could not be reached (the row is queued again)."""
    person = Subscriber(item.subscriber_id, template.list_id, item.email, item.name)
    message = template.for_subscriber(person, message_id=item.message_id,
                                      unsubscribe_url=unsubscribe_url(config, item.subscriber_id))
    record = _Record(item, owner, recorder)
    try:
        if mailer.send(message, template.sender, item.email, record):
            record.seal()  # a mailer that does not seal (file, plugins): the message is complete now
            counts.sent += 1
            return True
        record.drop()
        # Refused before the end of DATA: either the subscriber left (skip them) or another worker
        # took the row over (it is theirs to send; settle_refused leaves it alone).
        if not record.sealed and outbox.settle_refused(store, item, owner):
            counts.skipped += 1
            return True
        return False
    except DeliveryError as exc:
        record.drop()
        if isinstance(exc, ProviderUnreachable) and not record.sealed:
            # Nothing of this message reached the server: it is no one's failure.
            outbox.put_back(store, [item.id], owner, str(exc))
            return exc
        return _failed(store, item, exc, record.sealed, counts, policy)
    finally:
        record.drop()


class _Record:
    """The ``commit`` a mailer calls just before it completes a message: records the row as sent.

    The record is made in two steps. Calling it writes the record in a transaction it leaves open
    (the row is ours and locked, or it says False); ``seal`` commits it. The SMTP mailer seals right
    after writing the final dot, before the server answers, so that a process killed at any moment
    leaves the row unrecorded unless the whole message went out: a commit that waited for its
    answer before the dot lost the message when the process died during that round trip (1 of
    2,000 subscribers in a PostgreSQL crash test). What is left is the few microseconds between the
    two writes, where a kill sends the message again, with the same Message-ID.
    """

    def __init__(self, item: outbox.OutboxItem, owner: str, conn: Connection) -> None:
        self._item, self._owner, self._conn = item, owner, conn
        self._open: sa.engine.Transaction | None = None
        self.sealed = False

    def __call__(self) -> bool:
        self._open = outbox.record_sent(self._item, self._owner, self._conn)
        return self._open is not None

    def seal(self) -> None:
        if self._open is not None:
            transaction, self._open = self._open, None
            transaction.commit()
            self.sealed = True

    def drop(self) -> None:
        """Take back a record not sealed (the message was not completed)."""
        if self._open is not None:
            transaction, self._open = self._open, None
            transaction.rollback()


def _failed(store: Store, item: outbox.OutboxItem, exc: DeliveryError, recorded: bool, counts: DeliveryCounts,
            policy: RetryPolicy) -> bool:
    """A refused message: queued for a retry after its back-off, or failed for good (True)."""
    give_up = not exc.transient or item.attempts >= policy.max_attempts
    retry_in = None if give_up else policy.base * (2 ** (item.attempts - 1))
    if recorded:
        outbox.unmark_sent(store, item, str(exc), retry_in=retry_in, bounce_limit=policy.bounce_limit)
    else:
        outbox.release(store, item, str(exc), retry_in=retry_in, bounce_limit=policy.bounce_limit)
    if give_up:
        counts.failed += 1
        counts.errors.append(str(exc))
        log.warning("%s", exc)
    else:
        counts.retried += 1
        log.info("will retry: %s", exc)
    return give_up


def load_issue(config: Config, store: Store, issue_id: int) -> IssueContent:
    with store.begin() as conn:
        row = conn.execute(sa.select(issues).where(issues.c.id == issue_id)).mappings().first()
    if row is None:
        raise DeliveryError(f"issue {issue_id}", "no such issue in the store", transient=False)
    return IssueContent(issue_id, config.newsletter(row["newsletter"]), row["subject"], row["html"], row["text"])


def send_issue(config: Config, store: Store, issue_id: int, *,
               progress: Callable[[int], None] | None = None) -> DeliveryCounts:
    """Deliver a saved issue through its newsletter's provider, exactly once; safe to rerun."""
    issue = load_issue(config, store, issue_id)
    if PROVIDERS.get(issue.newsletter.provider).kind == "campaign":
        from feedletter.deliver.campaign import send_campaign

        result = send_campaign(config, store, issue)
        # Rows queued for this issue are not ours to send: the campaign reached the whole list.
        skipped = outbox.skip_queued(store, issue_id, f"sent as {result.provider} campaign {result.campaign_id}")
        return DeliveryCounts(sent=1 if result.started else 0, skipped=skipped)
    return deliver_issue(config, store, issue, make_mailer(config, issue.newsletter), progress=progress)
