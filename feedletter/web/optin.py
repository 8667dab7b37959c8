"""Double opt-in: a subscribe request makes a pending subscriber and mails them a signed confirm link.

The link (``{site.base_url}/confirm/{token}``) expires after ``subscribers.TOKEN_DAYS["confirm"]``
days; ``feedletter web`` serves it. The mail goes through the newsletter's own mailer when it sends
single messages (smtp, file), else into the file provider's folder, where an operator can see it.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid, parseaddr

from feedletter import subscribers
from feedletter.config import Config, Newsletter
from feedletter.deliver import Mailer, make_mailer
from feedletter.deliver.message import sender_domain
from feedletter.models import Subscriber
from feedletter.plugins import PROVIDERS
from feedletter.store import Store, now

MailerFactory = Callable[[Config, Newsletter], Mailer]


def confirm_url(config: Config, subscriber_id: int) -> str:
    token = subscribers.make_token(subscriber_id, "confirm")
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


def subscribe(config: Config, store: Store, newsletter_name: str, email: str, name: str = "", *,
              mailers: MailerFactory = confirmation_mailer) -> Subscriber:
    """Record a subscribe request and send the confirm mail; an active subscriber is left alone.

    Raises ConfigError for an unknown newsletter, SubscriberError for a bad address and
    DeliveryError when the mail cannot be sent (the person stays pending and may ask again).
    """
    newsletter = config.newsletter(newsletter_name)
    person = subscribers.add(store, newsletter.name, email, name, status="pending")
    if person.status == "pending":
        msg = confirmation_message(newsletter, person, confirm_url(config, person.id))
        mailer = mailers(config, newsletter)
        try:
            mailer.send(msg, parseaddr(newsletter.sender)[1] or newsletter.sender, person.email, lambda: True)
        finally:
            mailer.close()
    return person
