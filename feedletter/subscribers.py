"""Subscribers per newsletter: add, import, list, remove; confirm and unsubscribe by link (see tokens.py)."""

from __future__ import annotations

import csv
import hmac
import io
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from feedletter.errors import SubscriberError
from feedletter.models import Subscriber
from feedletter.schema import subscribers
from feedletter.store import Store, insert_for, now
from feedletter.tokens import SECRET_ENV, TOKEN_DAYS, Link, make_token, read_link, read_token, secret

__all__ = ["SECRET_ENV", "TEST_TOKEN", "TOKEN_DAYS", "ImportResult", "SubscriberError", "active", "add", "confirm",
           "confirmation", "from_token", "get", "import_csv", "listing", "make_token", "open_confirmation",
           "open_nonce", "read_token", "remove", "secret", "set_status", "unsubscribe", "valid_email"]
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$")
# The least time between two confirmation mails to one address: while it waits to confirm, and after
# it unsubscribed or bounced (a stranger's requests must not become a stream of mail).
CONFIRM_EVERY = {"pending": timedelta(hours=1), "unsubscribed": timedelta(days=1)}
# The unsubscribe link of previews and test sends: it names nobody (a real token is signed, with a
# dot in it), and the web app answers it with a page saying so.
TEST_TOKEN = "test-send"


def valid_email(address: str) -> bool:
    return len(address) <= 254 and bool(_EMAIL.match(address))


def _row(row: sa.RowMapping) -> Subscriber:
    return Subscriber(id=row["id"], newsletter=row["newsletter"], email=row["email"], name=row["name"],
                      status=row["status"])


def add(store: Store, newsletter: str, email: str, name: str = "", *, status: str = "active") -> Subscriber:
    """Add a subscriber, or return the one already on record.

    ``status`` is ``active`` for staff-added, already-consenting people and ``pending`` for a double
    opt-in request. An address that unsubscribed or bounced stays so when added again (a re-import
    must never undo an unsubscribe, nor a stranger's request); only its owner's click on a new
    confirm link (:func:`open_confirmation`, :func:`confirm`) brings it back.
    """
    return _upsert(store, newsletter, email, name, status)[0]


def _upsert(store: Store, newsletter: str, email: str, name: str, status: str) -> tuple[Subscriber, bool]:
    email = email.strip()
    if not valid_email(email):
        raise SubscriberError(email or "(empty)", "not a valid email address")
    c = subscribers.c
    same = sa.and_(c.newsletter == newsletter, sa.func.lower(c.email) == email.lower())
    at = now()
    with store.begin() as conn:
        # Insert unless on record (in any letter case), in one statement: two requests for one address at
        # once must not both insert (a UNIQUE error), and SQLite must take the write lock before reading.
        values = {"newsletter": newsletter, "email": email, "name": name.strip(), "status": status, "created": at,
                  "confirmed": at if status == "active" else None}
        missing = sa.select(*[sa.literal(v, c[k].type) for k, v in values.items()]).where(
            ~sa.exists().where(same))
        created = conn.execute(insert_for(conn, subscribers).from_select(list(values), missing)
                               .on_conflict_do_nothing()).rowcount == 1
        found = conn.execute(sa.select(subscribers).where(same).order_by(c.id).limit(1)).mappings().one()
        person = _row(found)
        if person.status == "pending" and status == "active":  # staff vouch for someone who had not confirmed
            conn.execute(subscribers.update().where(c.id == person.id)
                         .values(status="active", confirmed=at, confirm_nonce=None))
            person = Subscriber(person.id, newsletter, person.email, person.name, "active")
        return person, created


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
        # An open confirmation dies with the subscription: its link cannot bring the person back.
        values.update(unsubscribed=now(), confirm_nonce=None)
    elif status == "active":
        values.update(confirmed=now(), confirm_nonce=None)
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


def open_confirmation(conn: Connection, subscriber_id: int) -> str | None:
    """Take the right to mail a confirmation now: the nonce for its link, or None when none may go.

    None for an active subscriber, within an hour of the last confirmation mail, and within a day of it
    for an address that unsubscribed or bounced (unless it unsubscribed since: their first request after
    that goes at once). One UPDATE decides, so processes sharing the store cannot both send. In the
    caller's transaction, so that it can record the mail as due with it.
    """
    c, at = subscribers.c, now()
    due = sa.or_(c.confirm_sent.is_(None),
                 sa.and_(c.status == "pending", c.confirm_sent < at - CONFIRM_EVERY["pending"]),
                 sa.and_(c.status != "pending", sa.or_(c.confirm_sent < at - CONFIRM_EVERY["unsubscribed"],
                                                       c.confirm_sent < c.unsubscribed)))
    nonce = sa.func.coalesce(c.confirm_nonce, secrets.token_urlsafe(12))
    taken = conn.execute(subscribers.update().where(c.id == subscriber_id, c.status != "active", due)
                         .values(confirm_sent=at, confirm_nonce=nonce))
    if taken.rowcount != 1:
        return None
    return str(conn.execute(sa.select(c.confirm_nonce).where(c.id == subscriber_id)).scalar_one())


def open_nonce(store: Store, subscriber_id: int) -> str | None:
    """The confirmation a subscriber may still click, if any (a retried mail carries the same link)."""
    with store.begin() as conn:
        row = conn.execute(sa.select(subscribers.c.confirm_nonce, subscribers.c.status)
                           .where(subscribers.c.id == subscriber_id)).first()
    return None if row is None or row.status == "active" else row.confirm_nonce


def _confirmable(person: sa.RowMapping, link: Link) -> bool:
    # A link made before confirm links had nonces works for a row still waiting the old way.
    if link.nonce is None:
        return person["status"] == "pending" and person["confirm_nonce"] is None
    return person["confirm_nonce"] is not None and hmac.compare_digest(person["confirm_nonce"], link.nonce)


def _confirm_row(store: Store, token: str) -> tuple[sa.RowMapping, Link]:
    link = read_link(token, "confirm")
    with store.begin() as conn:
        row = conn.execute(sa.select(subscribers).where(subscribers.c.id == link.subscriber_id)).mappings().first()
    if row is None:
        raise SubscriberError("token", "no such subscriber (removed from the store?)")
    return row, link


def _stale(person: Subscriber) -> SubscriberError:
    return SubscriberError(person.email, f"is {person.status}; this link no longer works, subscribe again "
                                         "to get a new one")


def confirmation(store: Store, token: str) -> Subscriber:
    """Whom a confirm link is for, changing nothing (its page asks first: link scanners open every link).

    SubscriberError when the link no longer works: used already for a later unsubscribe, or replaced.
    """
    row, link = _confirm_row(store, token)
    person = _row(row)
    if person.status != "active" and not _confirmable(row, link):
        raise _stale(person)
    return person


def confirm(store: Store, token: str) -> Subscriber:
    """Activate whoever a confirm link was made for, once (again, once active: harmless, changes nothing)."""
    row, link = _confirm_row(store, token)
    person = _row(row)
    if person.status == "active":
        return person
    if not _confirmable(row, link):
        raise _stale(person)
    c = subscribers.c
    match = c.confirm_nonce == link.nonce if link.nonce else sa.and_(c.status == "pending", c.confirm_nonce.is_(None))
    with store.begin() as conn:
        done = conn.execute(subscribers.update().where(c.id == person.id, c.status != "active", match)
                            .values(status="active", confirmed=now(), confirm_nonce=None, bounces=0)).rowcount
    if not done:  # unsubscribed or confirmed in between: answer for what is now
        now_row, _ = _confirm_row(store, token)
        if now_row["status"] != "active":
            raise _stale(_row(now_row))
        return _row(now_row)
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


