"""Build one subscriber's message from the issue rendered once."""

from __future__ import annotations

from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, parseaddr
from urllib.parse import quote

from feedletter.models import Subscriber
from feedletter.render import personalize
from feedletter.store import now


def sender_domain(sender: str) -> str:
    address = parseaddr(sender)[1]
    return address.rsplit("@", 1)[-1] if "@" in address else "localhost"


def build_message(*, sender: str, subscriber: Subscriber, subject: str, html: str, text: str,
                  message_id: str, unsubscribe_url: str, list_id: str, reply_to: str | None = None,
                  test: bool = False) -> EmailMessage:
    """A multipart/alternative message with one-click unsubscribe headers (RFC 2369, RFC 8058)."""
    msg = EmailMessage(policy=SMTP)
    msg["From"] = sender
    msg["To"] = Address(display_name=subscriber.name, addr_spec=subscriber.email) if subscriber.name \
        else subscriber.email
    msg["Subject"] = f"[TEST] {subject}" if test else subject
    msg["Date"] = format_datetime(now())
    msg["Message-ID"] = message_id
    if reply_to:
        msg["Reply-To"] = reply_to
    mailto = f"mailto:{parseaddr(sender)[1]}?subject={quote('unsubscribe ' + unsubscribe_url.rsplit('/', 1)[-1])}"
    msg["List-Unsubscribe"] = f"<{unsubscribe_url}>, <{mailto}>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["List-Id"] = f"<{list_id}.{sender_domain(sender)}>"
    msg["Precedence"] = "bulk"
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(personalize(text, unsubscribe_url=unsubscribe_url, name=subscriber.name, html=False),
                    subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(personalize(html, unsubscribe_url=unsubscribe_url, name=subscriber.name, html=True),
                        subtype="html", charset="utf-8", cte="quoted-printable")
    return msg
