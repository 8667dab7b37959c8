"""Subscribers per newsletter: add, import, list, remove; signed tokens for confirm and unsubscribe."""

from __future__ import annotations

import base64
import csv
import hashlib
import hmac
import io
import os
import re
import time
from dataclasses import dataclass

import sqlalchemy as sa

from feedletter.errors import FeedletterError
from feedletter.models import Subscriber
from feedletter.schema import subscribers
from feedletter.store import Store, now

SECRET_ENV = "FEEDLETTER_SECRET"
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
TOKEN_DAYS = {"confirm": 7, "unsubscribe": 3650}
# The unsubscribe link of previews and test sends: it names nobody (a real token is signed, with a
# dot in it), and the web app answers it with a page saying so.
TEST_TOKEN = "test-send"


class SubscriberError(FeedletterError):
    stage = "subscribers"


def valid_email(address: str) -> bool:
    return len(address) <= 254 and bool(_EMAIL.match(address))


def _row(row: sa.RowMapping) -> Subscriber:
    return Subscriber(id=row["id"], newsletter=row["newsletter"], email=row["email"], name=row["name"],
                      status=row["status"])


def add(store: Store, newsletter: str, email: str, name: str = "", *, status: str = "active") -> Subscriber:
    """Add a subscriber, or return the one already on record.

    ``status`` is ``active`` for staff-added, already-consenting people and ``pending`` for a double
    opt-in request. An address that unsubscribed or bounced stays so when staff add it again (a
    re-import must never undo an unsubscribe); only its owner's own request (``pending``, then the
    confirm link) brings it back.
    """
    return _upsert(store, newsletter, email, name, status)[0]


def _upsert(store: Store, newsletter: str, email: str, name: str, status: str) -> tuple[Subscriber, bool]:
    email = email.strip()
    if not valid_email(email):
        raise SubscriberError(email or "(empty)", "not a valid email address")
    with store.begin() as conn:
        found = conn.execute(sa.select(subscribers).where(subscribers.c.newsletter == newsletter,
                                                          sa.func.lower(subscribers.c.email) == email.lower())
                             ).mappings().first()
        if found is not None:
            current = found["status"]
            values: dict[str, object] = {}
            if current in ("unsubscribed", "bounced") and status == "pending":
                values = {"status": "pending", "bounces": 0}
            elif current == "pending" and status == "active":
                values = {"status": "active", "confirmed": now()}
            if values:
                conn.execute(subscribers.update().where(subscribers.c.id == found["id"]).values(**values))
                current = str(values["status"])
            return Subscriber(found["id"], newsletter, found["email"], found["name"], current), False
        row = conn.execute(subscribers.insert().values(
            newsletter=newsletter, email=email, name=name.strip(), status=status, created=now(),
            confirmed=now() if status == "active" else None))
        sid = int(row.inserted_primary_key[0])  # type: ignore[index]
        return Subscriber(sid, newsletter, email, name.strip(), status), True


@dataclass(frozen=True)
class ImportResult:
    added: int
    problems: tuple[str, ...]
    existing: int = 0
    kept_unsubscribed: int = 0


def import_csv(store: Store, newsletter: str, text: str, *, filename: str = "CSV") -> ImportResult:
    """Add subscribers from CSV text with a header row (``email``, optional ``name``).

    Invalid rows are reported with their line numbers, and a file with any bad row adds nothing, so
    that staff fix the file and import it again whole. Addresses already on record are left as they
    are: in particular, people who unsubscribed stay unsubscribed.
    """
    reader = csv.DictReader(io.StringIO(text.removeprefix("\ufeff")))
    fields = [f.strip().lower() for f in (reader.fieldnames or [])]
    if "email" not in fields:
        raise SubscriberError(filename, "the header row must name an 'email' column")
    reader.fieldnames = fields
    rows, problems = [], []
    for row in reader:
        email = (row.get("email") or "").strip()
        if not valid_email(email):
            problems.append(f"{filename}:{reader.line_num}: email: not a valid address: {email!r}")
            continue
        rows.append((email, (row.get("name") or "").strip()))
    if problems:
        return ImportResult(0, tuple(problems))
    added = existing = kept = 0
    for email, name in rows:
        person, created = _upsert(store, newsletter, email, name, "active")
        added += created
        existing += not created and person.status in ("active", "pending")
        kept += person.status in ("unsubscribed", "bounced")
    return ImportResult(added, (), existing, kept)


def listing(store: Store, newsletter: str, *, status: str | None = None) -> list[Subscriber]:
    query = sa.select(subscribers).where(subscribers.c.newsletter == newsletter).order_by(subscribers.c.id)
    if status:
        query = query.where(subscribers.c.status == status)
    with store.begin() as conn:
        return [_row(r) for r in conn.execute(query).mappings()]


def active(store: Store, newsletter: str) -> list[Subscriber]:
    return listing(store, newsletter, status="active")


def set_status(store: Store, subscriber_id: int, status: str) -> bool:
    values: dict[str, object] = {"status": status}
    if status == "unsubscribed":
        values["unsubscribed"] = now()
    elif status == "active":
        values["confirmed"] = now()
    with store.begin() as conn:
        return bool(conn.execute(subscribers.update().where(subscribers.c.id == subscriber_id)
                                 .values(**values)).rowcount)


def remove(store: Store, newsletter: str, email: str) -> bool:
    """Unsubscribe (the row stays as a tombstone, so a re-import cannot re-add silently)."""
    with store.begin() as conn:
        row = conn.execute(sa.select(subscribers.c.id).where(
            subscribers.c.newsletter == newsletter,
            sa.func.lower(subscribers.c.email) == email.strip().lower())).first()
    return row is not None and set_status(store, row.id, "unsubscribed")


def secret() -> bytes:
    value = os.environ.get(SECRET_ENV, "")
    if len(value) < 16:
        raise SubscriberError(SECRET_ENV, "must be set to a random string of at least 16 characters "
                                          "(it signs unsubscribe and confirm links)")
    return value.encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def make_token(subscriber_id: int, purpose: str, *, key: bytes | None = None,
               issued: float | None = None) -> str:
    expires = int((issued or time.time()) + TOKEN_DAYS[purpose] * 86400)
    payload = f"{purpose}.{subscriber_id}.{expires}".encode()
    mac = hmac.new(key or secret(), payload, hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(mac)}"


def read_token(token: str, purpose: str, *, key: bytes | None = None) -> int:
    """The subscriber id a token was made for; SubscriberError if forged, expired or for another use."""
    try:
        payload_b64, mac_b64 = token.split(".", 1)
        payload = base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4))
        mac = base64.urlsafe_b64decode(mac_b64 + "=" * (-len(mac_b64) % 4))
        kind, sid, expires = payload.decode().split(".")
    except (ValueError, UnicodeDecodeError):
        raise SubscriberError("token", "malformed") from None
    expected = hmac.new(key or secret(), payload, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, expected):
        raise SubscriberError("token", "bad signature")
    if kind != purpose:
        raise SubscriberError("token", f"made for {kind}, not {purpose}")
    if int(expires) < time.time():
        raise SubscriberError("token", "expired")
    return int(sid)


def confirm(store: Store, token: str) -> Subscriber:
    """Activate the pending subscriber a confirm link was made for (again: harmless)."""
    person = from_token(store, token, "confirm")
    if person.status == "active":
        return person
    if person.status != "pending":
        raise SubscriberError(person.email, f"is {person.status}; subscribe again to get a new link")
    set_status(store, person.id, "active")
    return Subscriber(person.id, person.newsletter, person.email, person.name, "active")


def unsubscribe(store: Store, token: str) -> Subscriber:
    """Unsubscribe whoever an unsubscribe link was made for; doing it twice is fine."""
    person = from_token(store, token, "unsubscribe")
    if person.status != "unsubscribed":
        set_status(store, person.id, "unsubscribed")
    return Subscriber(person.id, person.newsletter, person.email, person.name, "unsubscribed")


def from_token(store: Store, token: str, purpose: str) -> Subscriber:
    person = get(store, read_token(token, purpose))
    if person is None:
        raise SubscriberError("token", "no such subscriber (removed from the store?)")
    return person


def get(store: Store, subscriber_id: int) -> Subscriber | None:
    with store.begin() as conn:
        row = conn.execute(sa.select(subscribers).where(subscribers.c.id == subscriber_id)).mappings().first()
    return None if row is None else _row(row)


