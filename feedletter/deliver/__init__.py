"""Delivery: queue an issue in the outbox and send it through a mailer, exactly once per subscriber."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from typing import Protocol

from feedletter.config import Config, Newsletter
from feedletter.deliver import outbox
from feedletter.deliver.filebox import FileMailer
from feedletter.deliver.message import build_message
from feedletter.deliver.smtp import SmtpMailer, SmtpSettings
from feedletter.errors import DeliveryError
from feedletter.models import Subscriber
from feedletter.store import Store
from feedletter.subscribers import make_token

log = logging.getLogger(__name__)
RETRY_BASE = timedelta(seconds=30)
MAX_ATTEMPTS = 5


class Mailer(Protocol):
    name: str

    def send(self, msg: EmailMessage, sender: str, recipient: str, commit: Callable[[], bool]) -> bool: ...

    def close(self, *, abort: bool = False) -> None: ...


def make_mailer(config: Config, newsletter: Newsletter) -> Mailer:
    """The mailer for a newsletter's provider; secrets come from the environment only."""
    if newsletter.provider == "file":
        return FileMailer(config.resolve(config.providers.file.dir))
    if newsletter.provider == "smtp":
        env = config.providers.smtp.url_env
        url = os.environ.get(env)
        if not url:
            raise DeliveryError("smtp", f"${env} is not set (smtp://user:pass@host:587?starttls=1)",
                                transient=False)
        return SmtpMailer(SmtpSettings.from_url(url), rate_per_second=config.providers.smtp.rate_per_second)
    raise DeliveryError(newsletter.provider, "this provider sends campaigns, not single messages",
                        transient=False)


@dataclass(frozen=True)
class IssueContent:
    issue_id: int
    newsletter: Newsletter
    subject: str
    html: str
    text: str


@dataclass
class DeliveryCounts:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def unsubscribe_url(config: Config, subscriber_id: int) -> str:
    return f"{config.site.base_url.rstrip('/')}/unsubscribe/{make_token(subscriber_id, 'unsubscribe')}"


def deliver_issue(config: Config, store: Store, issue: IssueContent, mailer: Mailer, *,
                  batch: int = 200, progress: Callable[[int], None] | None = None) -> DeliveryCounts:
    """Send every claimable outbox row of an issue; safe to run twice at once or after a crash."""
    owner = uuid.uuid4().hex
    counts = DeliveryCounts()
    newsletter = issue.newsletter
    try:
        while items := outbox.claim(store, issue.issue_id, owner, limit=batch):
            for item in items:
                person = Subscriber(item.subscriber_id, newsletter.name, item.email, item.name)
                msg = build_message(sender=newsletter.sender, subscriber=person, subject=issue.subject,
                                    html=issue.html, text=issue.text, message_id=item.message_id,
                                    unsubscribe_url=unsubscribe_url(config, item.subscriber_id),
                                    list_id=newsletter.name, reply_to=newsletter.reply_to)
                recorded = False

                def commit(item: outbox.OutboxItem = item) -> bool:
                    nonlocal recorded
                    recorded = outbox.mark_sent(store, item, owner)
                    return recorded

                try:
                    if mailer.send(msg, newsletter.sender, item.email, commit):
                        counts.sent += 1
                except DeliveryError as exc:
                    _failed(store, item, exc, counts, recorded)
                if progress:
                    progress(1)
    finally:
        mailer.close()
    return counts


def _failed(store: Store, item: outbox.OutboxItem, exc: DeliveryError, counts: DeliveryCounts,
            recorded: bool) -> None:
    give_up = not exc.transient or item.attempts >= MAX_ATTEMPTS
    retry_in = None if give_up else RETRY_BASE * (2 ** (item.attempts - 1))
    if recorded:
        outbox.unmark_sent(store, item, str(exc), retry_in=retry_in)
    else:
        outbox.release(store, item, str(exc), retry_in=retry_in)
    if give_up:
        counts.failed += 1
        counts.errors.append(str(exc))
        log.warning("%s", exc)
    else:
        counts.retried += 1
        log.info("will retry: %s", exc)
