"""Double opt-in: a subscribe request is queued; a sender mails the confirm link, within the limits.

The web form only calls :func:`request`: it counts the request against the rate limits (per address,
per client IP, per newsletter; :mod:`feedletter.web.limits`) and, within them, queues it in
``subscribe_requests``. Those are the same few statements whoever the address belongs to, so
neither the answer nor its time tells a stranger who is subscribed. :func:`send_confirmations`
(the web app's background thread, or ``feedletter subscribers send-confirmations``) then records
the person as pending, unless already on record, and mails a confirm link when
``subscribers.open_confirmation`` allows one: never to an active subscriber, at most one an hour,
one a day after an unsubscribe.

The link (``{site.base_url}/confirm/{token}``) expires after ``TOKEN_DAYS["confirm"]`` days and
works once. The mail goes through the newsletter's own mailer when it sends single messages (smtp,
file), else into the file provider's folder, where an operator can see it.
"""

from __future__ import annotations

import contextlib
import html
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr

import sqlalchemy as sa

from feedletter import subscribers
from feedletter.config import Config
from feedletter.config_newsletters import Newsletter
from feedletter.deliver import Mailer, make_mailer
from feedletter.deliver.message import sender_domain
from feedletter.errors import ConfigError, DeliveryError, SubscriberError
from feedletter.models import Subscriber
from feedletter.plugins import PROVIDERS
from feedletter.schema import subscribe_requests
from feedletter.store import Store, now
from feedletter.web import limits

MailerFactory = Callable[[Config, Newsletter], Mailer]
LEASE = timedelta(minutes=10)
MAX_ATTEMPTS = 5
log = logging.getLogger(__name__)


def confirm_url(config: Config, subscriber_id: int, nonce: str) -> str:
    token = subscribers.make_token(subscriber_id, "confirm", nonce=nonce)
    return f"{config.site.base_url.rstrip('/')}/confirm/{token}"


def confirmation_message(newsletter: Newsletter, person: Subscriber, url: str) -> EmailMessage:
    """The confirm mail: plain text and a small HTML part, every outside value escaped."""
    days = subscribers.TOKEN_DAYS["confirm"]
    msg = EmailMessage(policy=SMTP)
    msg["From"] = newsletter.sender
    msg["To"] = person.email
    msg["Subject"] = f"Confirm your subscription to {newsletter.title}"
    msg["Date"] = format_datetime(now())
    msg["Message-ID"] = make_msgid("confirm", domain=sender_domain(newsletter.sender))
    msg["Auto-Submitted"] = "auto-generated"
    if newsletter.reply_to:
        msg["Reply-To"] = newsletter.reply_to
    footer = f"\n{newsletter.postal_address}\n" if newsletter.postal_address else ""
    msg.set_content(
        f"Someone, hopefully you, asked to receive {newsletter.title} at {person.email}.\n\n"
        f"To confirm, open this link within {days} days:\n\n{url}\n\n"
        f"If it was not you, ignore this message: nothing will be sent to you.\n{footer}",
        subtype="plain", charset="utf-8", cte="quoted-printable")
    title, link = html.escape(newsletter.title), html.escape(url, quote=True)
    address = f"<p style=\"color:#7b8794;font-size:12px\">{html.escape(newsletter.postal_address)}</p>" \
        if newsletter.postal_address else ""
    msg.add_alternative(
        "<!doctype html><html><body style=\"font-family:Helvetica,Arial,sans-serif;color:#1f2933\">"
        f"<p>Someone, hopefully you, asked to receive <b>{title}</b> at {html.escape(person.email)}.</p>"
        f"<p><a href=\"{link}\" style=\"display:inline-block;background:#1d5fa8;color:#ffffff;"
        f"padding:10px 18px;border-radius:4px;text-decoration:none\">Confirm my subscription</a></p>"
        f"<p>The link works for {days} days. If it was not you, ignore this message: nothing will be "
        f"sent to you.</p>{address}</body></html>", subtype="html", charset="utf-8", cte="quoted-printable")
    return msg


def confirmation_mailer(config: Config, newsletter: Newsletter) -> Mailer:
    if PROVIDERS.get(newsletter.provider).kind == "per-subscriber":
        return make_mailer(config, newsletter)
    # Campaign providers (Listmonk, Mailchimp) send whole issues, not single messages.
    return make_mailer(config, newsletter.model_copy(update={"provider": "file"}))


def request(config: Config, store: Store, newsletter_name: str, email: str, name: str = "", *,
            client: str = "") -> bool:
    """Count a subscribe request from ``client`` (an IP address) and queue it if within every limit.

    Raises ConfigError for an unknown newsletter and SubscriberError for a malformed address, neither
    of which needs the store. Returns whether the request was queued; the form answers the same either
    way. The limits are counted in turn, client, address, newsletter, each only for requests within
    the ones before: a client over its limit uses up no one's address and not the newsletter's.
    """
    newsletter = config.newsletter(newsletter_name)
    email = email.strip()
    if not subscribers.valid_email(email):
        raise SubscriberError(email or "(empty)", "not a valid email address")
    by_address, by_ip, by_newsletter = limits.subscribe_limits(config)
    at = time.time()
    with _writers(store), store.begin() as conn:
        within = (limits.hit(conn, by_ip, client, at) and limits.hit(conn, by_address, email.lower(), at)
                  and limits.hit(conn, by_newsletter, newsletter.name, at))
        if within:
            conn.execute(subscribe_requests.insert().values(newsletter=newsletter.name, email=email,
                                                            name=name.strip()[:200], requested=now()))
    return within


_SQLITE_WRITERS = threading.Lock()


def _writers(store: Store) -> threading.Lock | contextlib.nullcontext[None]:
    """SQLite takes one writer at a time and makes the others sleep and retry, up to 100 ms a go: the
    request threads of one process wait their turn here instead (bench_subscribe's p99: 1.6 s before)."""
    return _SQLITE_WRITERS if store.dialect == "sqlite" else contextlib.nullcontext()


def send_confirmations(config: Config, store: Store, *, mailers: MailerFactory = confirmation_mailer,
                       batch: int = 100) -> int:
    """Mail the confirm links of every queued request, ``batch`` at a time; how many were sent.

    Safe beside another sender on the same store: each request is claimed under a lease. A send that
    fails for a while is tried again later, up to MAX_ATTEMPTS times, with the same link.
    """
    owner, sent = uuid.uuid4().hex, 0
    open_mailers: dict[str, Mailer] = {}

    def mailer_for(newsletter: Newsletter) -> Mailer:
        if newsletter.name not in open_mailers:
            open_mailers[newsletter.name] = mailers(config, newsletter)
        return open_mailers[newsletter.name]

    try:
        while True:
            rows = _claim(store, owner, batch)
            sent += sum(_send_one(config, store, row, mailer_for) for row in rows)
            if len(rows) < batch:
                return sent
    finally:
        for mailer in open_mailers.values():
            mailer.close()


def _claim(store: Store, owner: str, batch: int) -> list[sa.RowMapping]:
    c, at = subscribe_requests.c, now()
    free = sa.or_(c.lease_until.is_(None), c.lease_until < at)
    with store.begin() as conn:
        ids = sa.select(c.id).where(free).order_by(c.id).limit(batch).scalar_subquery()
        conn.execute(subscribe_requests.update().where(c.id.in_(ids), free)
                     .values(lease_owner=owner, lease_until=at + LEASE, attempts=c.attempts + 1))
        return list(conn.execute(sa.select(subscribe_requests).where(c.lease_owner == owner, c.lease_until > at)
                                 .order_by(c.id)).mappings())


def _send_one(config: Config, store: Store, row: sa.RowMapping, mailer_for: Callable[[Newsletter], Mailer]) -> int:
    c = subscribe_requests.c
    done = subscribe_requests.delete().where(c.id == row["id"])
    try:
        newsletter = config.newsletter(row["newsletter"])
        person = subscribers.add(store, newsletter.name, row["email"], row["name"], status="pending")
    except (ConfigError, SubscriberError):  # the newsletter is gone from the config
        with store.begin() as conn:
            conn.execute(done)
        return 0
    if row["approved"]:
        nonce = subscribers.open_nonce(store, person.id)  # a retry: the link already made, if still open
    else:
        with store.begin() as conn:
            nonce = subscribers.open_confirmation(conn, person.id)
            conn.execute(done if nonce is None else
                         subscribe_requests.update().where(c.id == row["id"]).values(approved=True))
    if nonce is None:
        with store.begin() as conn:
            conn.execute(done)
        return 0
    msg = confirmation_message(newsletter, person, confirm_url(config, person.id, nonce))
    try:
        mailer_for(newsletter).send(msg, parseaddr(newsletter.sender)[1] or newsletter.sender, person.email,
                                    lambda: True)
    except DeliveryError as exc:
        again = exc.transient and row["attempts"] < MAX_ATTEMPTS
        log.warning("confirmation mail for %s: %s%s", newsletter.name, exc, "; will try again" if again else "")
        with store.begin() as conn:
            conn.execute(done if not again else subscribe_requests.update().where(c.id == row["id"]).values(
                lease_owner=None, lease_until=now() + timedelta(minutes=2 ** row["attempts"]), error=str(exc)))
        return 0
    with store.begin() as conn:
        conn.execute(done)
    return 1


def subscribe(config: Config, store: Store, newsletter_name: str, email: str, name: str = "", *,
              mailers: MailerFactory = confirmation_mailer) -> Subscriber:
    """Staff's ``subscribers add --confirm``: record the person as pending and mail the link now.

    The same rules as the form's requests (at most one mail an hour; none to an active subscriber),
    without the form's rate limits. Raises ConfigError for an unknown newsletter, SubscriberError for
    a bad address and DeliveryError when the mail cannot be sent (the person may be asked again).
    """
    newsletter = config.newsletter(newsletter_name)
    person = subscribers.add(store, newsletter.name, email, name, status="pending")
    with store.begin() as conn:
        nonce = subscribers.open_confirmation(conn, person.id)
    if nonce is not None:
        msg = confirmation_message(newsletter, person, confirm_url(config, person.id, nonce))
        mailer = mailers(config, newsletter)
        try:
            mailer.send(msg, parseaddr(newsletter.sender)[1] or newsletter.sender, person.email, lambda: True)
        finally:
            mailer.close()
    return person


class ConfirmationSender:
    """The web app's thread that runs :func:`send_confirmations`: woken by each request, and every
    ``poll`` seconds for requests other processes queued. It also deletes rate-limit windows that are over."""

    def __init__(self, config: Config, store: Store, mailers: MailerFactory, *, poll: float = 30.0) -> None:
        self.config, self.store, self.mailers, self.poll = config, store, mailers, poll
        self._wake, self._stop = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._run, name="feedletter-confirmations", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        purged = 0.0
        while not self._stop.is_set():
            self._wake.wait(self.poll)
            self._wake.clear()
            try:
                send_confirmations(self.config, self.store, mailers=self.mailers)
                if time.monotonic() - purged > 600:
                    limits.purge(self.store)
                    purged = time.monotonic()
            except Exception:  # the store or the mail server is away: try again at the next wake-up
                log.exception("sending confirmation mails")
