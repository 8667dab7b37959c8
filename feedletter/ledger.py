"""Side effects done exactly once: claim a keyed thing before the effect, record it after.

A campaign started, a hub pinged for an issue, a story posted somewhere: each is an entry keyed by
``(kind, key)``. :func:`claim` takes the entry under a lease, creating it on first use; it returns
None when the entry is done or another live run holds it, so two runs never do the same thing at
once. :func:`record` notes each step and, with ``done=True``, closes the entry for good; :func:`fail`
lets it go at once with the error noted. A run killed between claim and record leaves its entry
claimed: the next claim after the lease runs out wins it, and sees how far the dead run got (its
last state and ``ref``, say a campaign already created) to resume from there, never from scratch.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import sqlalchemy as sa

from feedletter.schema import ledger
from feedletter.store import Store, now, utc

LEASE = timedelta(minutes=10)


@dataclass(frozen=True)
class Claim:
    """The right to do one keyed effect, held until ``record(done=True)``, ``fail`` or the lease's end."""

    kind: str
    key: str
    owner: str
    state: str  # the state recorded last: the first claim's, or how far an earlier run got
    ref: str | None = None  # the remote thing's id, once recorded


@dataclass(frozen=True)
class Entry:
    """An entry as the store has it (for status output, resuming and tests)."""

    kind: str
    key: str
    state: str
    ref: str | None
    created: datetime
    done: datetime | None
    lease_until: datetime | None
    error: str | None


def _where(kind: str, key: str) -> sa.ColumnElement[bool]:
    return sa.and_(ledger.c.kind == kind, ledger.c.key == key)


def claim(store: Store, kind: str, key: str, *, state: str = "claimed", lease: timedelta = LEASE) -> Claim | None:
    """Take the entry under a lease; None when it is done or another run holds it.

    ``state`` is what a new entry starts as; an entry left by an earlier run keeps its own.
    """
    stamp = now()
    where = _where(kind, key)
    with store.begin() as conn:
        if conn.execute(sa.select(ledger.c.state).where(where)).first() is None:
            try:
                with conn.begin_nested():
                    conn.execute(ledger.insert().values(kind=kind, key=key, state=state, created=stamp))
            except sa.exc.IntegrityError:
                pass  # another run inserted it first; the lease below decides who goes on
    owner = uuid.uuid4().hex
    with store.begin() as conn:
        won = conn.execute(ledger.update().where(
            where, ledger.c.done.is_(None),
            sa.or_(ledger.c.lease_until.is_(None), ledger.c.lease_until < stamp))
            .values(lease_owner=owner, lease_until=stamp + lease)).rowcount
        if won != 1:
            return None
        row = conn.execute(sa.select(ledger.c.state, ledger.c.ref).where(where)).one()
    return Claim(kind, key, owner, row.state, row.ref)


def record(store: Store, held: Claim, state: str, *, ref: str | None = None, done: bool = False) -> Claim:
    """Note a step of the effect (and the remote id, once known); ``done`` closes the entry for good.

    Only the lease's holder writes: a run whose lease ran out and was taken over changes nothing.
    """
    values: dict[str, object] = {"state": state}
    if ref is not None:
        values["ref"] = ref
    if done:
        values.update(done=now(), lease_owner=None, lease_until=None, error=None)
    _update(store, held, values)
    return replace(held, state=state, ref=held.ref if ref is None else ref)


def fail(store: Store, held: Claim, error: str) -> None:
    """Let the entry go at once, with the error noted; the next claim resumes from its last state."""
    _update(store, held, {"error": error[:500], "lease_owner": None, "lease_until": None})


def _update(store: Store, held: Claim, values: dict[str, object]) -> None:
    with store.begin() as conn:
        conn.execute(ledger.update().where(_where(held.kind, held.key), ledger.c.lease_owner == held.owner)
                     .values(**values))


def entries(store: Store, kind: str, prefix: str = "") -> list[Entry]:
    """The entries of ``kind`` whose key starts with ``prefix``, in key order."""
    return _read(store, sa.and_(ledger.c.kind == kind, ledger.c.key.startswith(prefix, autoescape=True)))


def entry(store: Store, kind: str, key: str) -> Entry | None:
    found = _read(store, _where(kind, key))
    return found[0] if found else None


def _read(store: Store, where: sa.ColumnElement[bool]) -> list[Entry]:
    with store.begin() as conn:
        rows = conn.execute(sa.select(ledger).where(where).order_by(ledger.c.key)).mappings().all()
    return [_entry(row) for row in rows]


def _entry(row: sa.RowMapping) -> Entry:
    created = utc(row["created"])
    assert created is not None  # the column is NOT NULL
    return Entry(row["kind"], row["key"], row["state"], row["ref"], created, utc(row["done"]),
                 utc(row["lease_until"]), row["error"])


__all__ = ["LEASE", "Claim", "Entry", "claim", "entries", "entry", "fail", "record"]
