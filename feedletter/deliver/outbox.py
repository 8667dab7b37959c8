"""The delivery outbox: one row per (issue, subscriber), claimed under a lease, sent exactly once.

States: queued → sending → sent | failed (| skipped, when the subscriber left before the send).
A row is claimed by a conditional UPDATE that only one worker can win, on SQLite and PostgreSQL
alike; a claim whose worker died is taken over once its lease has run out.

An issue whose provider could not be reached is *paused* (``issues.paused`` says why): its rows
stay queued, and the next digest run resumes it. Rows that failed for good can be queued again
(``requeue``, ``feedletter outbox retry``) once their cause is fixed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from feedletter.schema import issues, outbox, subscribers
from feedletter.store import Store, now, utc

LEASE = timedelta(minutes=5)
BOUNCE_LIMIT = 3


@dataclass(frozen=True)
class OutboxItem:
    id: int
    issue_id: int
    subscriber_id: int
    email: str
    name: str
    message_id: str
    attempts: int


def message_id(issue_id: int, subscriber_id: int, domain: str) -> str:
    tag = hashlib.sha256(f"{issue_id}:{subscriber_id}".encode()).hexdigest()[:10]
    return f"<fl.{issue_id}.{subscriber_id}.{tag}@{domain}>"


def queue(store: Store, issue_id: int, newsletter: str, domain: str, *, only: list[int] | None = None) -> int:
    """Add a row for every active subscriber not yet queued for this issue; return how many were added."""
    query = sa.select(subscribers.c.id, subscribers.c.email).where(
        subscribers.c.newsletter == newsletter, subscribers.c.status == "active")
    if only is not None:
        query = query.where(subscribers.c.id.in_(only))
    with store.begin() as conn:
        present = set(conn.execute(sa.select(outbox.c.subscriber_id).where(outbox.c.issue_id == issue_id))
                      .scalars())
        rows = [{"issue_id": issue_id, "subscriber_id": sid, "email": email, "state": "queued",
                 "message_id": message_id(issue_id, sid, domain)}
                for sid, email in conn.execute(query) if sid not in present]
        if rows:
            conn.execute(outbox.insert(), rows)
    return len(rows)


def claim(store: Store, issue_id: int, owner: str, *, limit: int = 100,
          lease: timedelta = LEASE) -> list[OutboxItem]:
    """Claim up to ``limit`` rows that are queued, or whose previous worker's lease ran out.

    One conditional UPDATE takes the whole batch: a row another worker claimed since we looked no
    longer matches ``ready`` (PostgreSQL re-checks the condition on the newest row version; SQLite
    lets one writer in at a time), so each row is won by exactly one worker.
    """
    stamp = now()
    ready = sa.or_(outbox.c.state == "queued",
                   sa.and_(outbox.c.state == "sending", outbox.c.lease_until < stamp))
    due = sa.or_(outbox.c.not_before.is_(None), outbox.c.not_before <= stamp)
    with store.begin() as conn:
        candidates = conn.execute(sa.select(outbox.c.id).where(outbox.c.issue_id == issue_id, ready, due)
                                  .order_by(outbox.c.id).limit(limit)).scalars().all()
    if not candidates:
        return []
    with store.begin() as conn:
        conn.execute(outbox.update().where(outbox.c.id.in_(candidates), ready).values(
            state="sending", lease_owner=owner, lease_until=stamp + lease, attempts=outbox.c.attempts + 1))
        rows = conn.execute(sa.select(outbox, subscribers.c.name, subscribers.c.status.label("sub_status"))
                            .join(subscribers, subscribers.c.id == outbox.c.subscriber_id)
                            .where(outbox.c.id.in_(candidates), outbox.c.state == "sending",
                                   outbox.c.lease_owner == owner).order_by(outbox.c.id)).mappings().all()
        gone = [r["id"] for r in rows if r["sub_status"] != "active"]
        if gone:
            # Unsubscribed while the issue was in flight: nothing more goes to them.
            conn.execute(outbox.update().where(outbox.c.id.in_(gone)).values(state="skipped", lease_owner=None))
    return [OutboxItem(r["id"], r["issue_id"], r["subscriber_id"], r["email"], r["name"], r["message_id"],
                       r["attempts"]) for r in rows if r["sub_status"] == "active"]


# The hot statement of a send, once per message: plain SQL skips SQLAlchemy's per-call statement
# traversal, which cost as much as the commit itself.
_MARK_SENT = sa.text(
    "UPDATE outbox SET state = 'sent', sent = :sent, lease_owner = NULL, lease_until = NULL, error = NULL "
    "WHERE id = :id AND state = 'sending' AND lease_owner = :owner AND EXISTS ("
    "SELECT 1 FROM subscribers WHERE subscribers.id = outbox.subscriber_id AND subscribers.status = 'active')"
).bindparams(sa.bindparam("sent", type_=sa.DateTime(timezone=True)))


def mark_sent(store: Store, item: OutboxItem, owner: str) -> bool:
    """Record the send, committed at once; False when the lease was lost or the subscriber left:
    then nothing is sent. (A send records with :func:`record_sent`, committed as the message ends.)"""
    with store.engine.connect() as conn:
        transaction = record_sent(item, owner, conn)
        if transaction is None:
            return False
        transaction.commit()
        return True


def record_sent(item: OutboxItem, owner: str, conn: Connection) -> sa.engine.Transaction | None:
    """Record the send in a transaction left open, which the caller commits the moment the message
    is complete (see ``deliver._Record``): the row is ours and locked till then. None, with nothing
    recorded, when the lease was lost or the subscriber left: then nothing is sent.

    The subscriber's status is checked in the same statement, so an unsubscribe that lands while
    the batch is in flight still stops the message (the record precedes the end of DATA).
    """
    transaction = conn.begin()
    try:
        if conn.execute(_MARK_SENT, {"sent": now(), "id": item.id, "owner": owner}).rowcount == 1:
            return transaction
    except BaseException:
        transaction.rollback()
        raise
    transaction.rollback()
    return None


def settle_refused(store: Store, item: OutboxItem, owner: str) -> bool:
    """After ``mark_sent`` said no: a row still ours was refused because its subscriber left."""
    with store.begin() as conn:
        return conn.execute(outbox.update().where(outbox.c.id == item.id, outbox.c.state == "sending",
                                           outbox.c.lease_owner == owner)
                     .values(state="skipped", lease_owner=None, lease_until=None)).rowcount == 1


def unmark_sent(store: Store, item: OutboxItem, error: str, *, retry_in: timedelta | None,
                bounce_limit: int = BOUNCE_LIMIT) -> None:
    """The server refused after we recorded the send: put the row back (or fail it)."""
    release(store, item, error, retry_in=retry_in, from_state="sent", bounce_limit=bounce_limit)


def release(store: Store, item: OutboxItem, error: str, *, retry_in: timedelta | None,
            from_state: str = "sending", bounce_limit: int = BOUNCE_LIMIT) -> None:
    """A failed attempt: queue again after ``retry_in``, or fail for good when it is None."""
    values: dict[str, object] = {"lease_owner": None, "lease_until": None, "error": error[:500], "sent": None}
    if retry_in is None:
        values["state"] = "failed"
    else:
        values.update(state="queued", not_before=now() + retry_in)
    with store.begin() as conn:
        moved = conn.execute(outbox.update().where(outbox.c.id == item.id, outbox.c.state == from_state)
                             .values(**values)).rowcount
        if retry_in is None and moved == 1:
            conn.execute(subscribers.update().where(subscribers.c.id == item.subscriber_id)
                         .values(bounces=subscribers.c.bounces + 1))
            conn.execute(subscribers.update().where(subscribers.c.id == item.subscriber_id,
                                                    subscribers.c.bounces >= bounce_limit)
                         .values(status="bounced"))


def put_back(store: Store, ids: Sequence[int], owner: str, error: str | None = None) -> int:
    """Queue again, due at once, rows this worker claimed but could not try: the provider was
    unreachable (``error`` says how) or delivery paused before their turn. The attempt is not
    counted against the row's retries, nor against its subscriber."""
    values: dict[str, object] = {"state": "queued", "lease_owner": None, "lease_until": None,
                                 "attempts": sa.case((outbox.c.attempts > 0, outbox.c.attempts - 1), else_=0)}
    if error is not None:
        values["error"] = error[:500]
    with store.begin() as conn:
        return int(conn.execute(outbox.update().where(outbox.c.id.in_(list(ids)), outbox.c.state == "sending",
                                                      outbox.c.lease_owner == owner).values(**values)).rowcount)


def pause(store: Store, issue_id: int, reason: str | None) -> None:
    """Mark the issue paused (``reason``: why), or no longer paused (None)."""
    with store.begin() as conn:
        conn.execute(issues.update().where(issues.c.id == issue_id).values(paused=reason))


def reclaim(store: Store, newsletter: str) -> int:
    """Queue again, at once, every row of ``newsletter`` left ``sending`` by a run that is gone.

    Called by a digest run that holds the newsletter's lock, so no other run is sending it: a row
    still ``sending`` was claimed by a run that died (or lost the lock). Its record was never
    committed, which a run does right after the message's final ".", so the message was not
    completed (but for a kill in the microseconds between the two) and sending it again is no second
    copy; and should its owner live on after all, its record now fails and it hangs up.
    The dead attempt is not counted against the row's retries.
    """
    ours = sa.select(issues.c.id).where(issues.c.newsletter == newsletter)
    with store.begin() as conn:
        return int(conn.execute(outbox.update().where(outbox.c.issue_id.in_(ours), outbox.c.state == "sending")
                                .values(state="queued", lease_owner=None, lease_until=None,
                                        attempts=sa.case((outbox.c.attempts > 0, outbox.c.attempts - 1),
                                                         else_=0))).rowcount)


STATES = ("queued", "sending", "sent", "failed", "skipped")


def counts(store: Store, issue_id: int) -> dict[str, int]:
    with store.begin() as conn:
        rows = conn.execute(sa.select(outbox.c.state, sa.func.count()).where(outbox.c.issue_id == issue_id)
                            .group_by(outbox.c.state)).all()
    out = dict.fromkeys(STATES, 0)
    out.update({state: int(n) for state, n in rows})
    return out


@dataclass(frozen=True)
class IssueDelivery:
    """Where one issue's delivery stands: its messages by state, and why it is paused, if it is."""

    issue_id: int
    newsletter: str
    number: int
    paused: str | None
    counts: dict[str, int]

    @property
    def to_go(self) -> int:
        return self.counts["queued"] + self.counts["sending"]

    @property
    def recipients(self) -> int:
        return sum(self.counts.values()) - self.counts["skipped"]

    @property
    def state(self) -> str:
        """``paused`` (the provider was unreachable), ``sending`` (messages still to go: a run is on
        it, they wait out a back-off, or a run died), or ``delivered`` (failed ones included)."""
        if self.to_go:
            return "paused" if self.paused else "sending"
        return "delivered"

    @property
    def name(self) -> str:
        return f"{self.newsletter}/{self.number}"


def deliveries(store: Store, *, newsletter: str | None = None, issue_ids: Sequence[int] | None = None,
               recent: int | None = None) -> list[IssueDelivery]:
    """The delivery of each issue asked for, oldest first: ``issue_ids``, or those of ``newsletter``
    (default: all); of those, with ``recent``, the latest ``recent`` and every one not delivered."""
    query = sa.select(issues.c.id, issues.c.newsletter, issues.c.number, issues.c.paused)
    if newsletter is not None:
        query = query.where(issues.c.newsletter == newsletter)
    if issue_ids is not None:
        query = query.where(issues.c.id.in_(list(issue_ids)))
    with store.begin() as conn:
        if recent is not None:
            # Only what is asked for is counted: a store keeps every issue's rows, for years.
            undelivered = sa.select(outbox.c.issue_id).where(outbox.c.state.in_(("queued", "sending")))
            latest = sa.select(query.order_by(issues.c.id.desc()).limit(recent).subquery().c.id)
            query = query.where(sa.or_(issues.c.id.in_(undelivered), issues.c.id.in_(latest)))
        found = conn.execute(query.order_by(issues.c.id)).all()
        tally: dict[int, dict[str, int]] = {int(r.id): dict.fromkeys(STATES, 0) for r in found}
        for chunk in (list(tally)[i:i + 500] for i in range(0, len(tally), 500)):
            for issue_id, state, n in conn.execute(
                    sa.select(outbox.c.issue_id, outbox.c.state, sa.func.count())
                    .where(outbox.c.issue_id.in_(chunk)).group_by(outbox.c.issue_id, outbox.c.state)):
                tally[int(issue_id)][str(state)] = int(n)
    return [IssueDelivery(int(r.id), r.newsletter, int(r.number), r.paused, tally[int(r.id)]) for r in found]


@dataclass(frozen=True)
class Requeued:
    """What ``requeue`` did: rows due again at once, failed rows queued again, failed rows left."""

    waiting: int
    failed: int
    failed_left: int


def requeue(store: Store, issue_id: int, *, failed: bool = False, bounce_limit: int = BOUNCE_LIMIT) -> Requeued:
    """Make an issue's messages due at once, with their retries counted afresh, and lift its pause;
    with ``failed``, queue its failed messages again too.

    For when the operator fixed the cause (the server's address or password, a relay that refused
    everyone). A failed message had counted as a bounce of its subscriber: that bounce is taken
    back, and a subscriber it had marked bounced is active again (another failure counts anew).
    """
    fresh = {"not_before": None, "attempts": 0, "lease_owner": None, "lease_until": None}
    with store.begin() as conn:
        conn.execute(issues.update().where(issues.c.id == issue_id).values(paused=None))
        waiting = int(conn.execute(outbox.update().where(outbox.c.issue_id == issue_id, outbox.c.state == "queued")
                                   .values(**fresh)).rowcount)
        of_issue = sa.and_(outbox.c.issue_id == issue_id, outbox.c.state == "failed")
        if not failed:
            left = conn.execute(sa.select(sa.func.count()).select_from(outbox).where(of_issue)).scalar_one()
            return Requeued(waiting, 0, int(left))
        people = sa.select(outbox.c.subscriber_id).where(of_issue)
        conn.execute(subscribers.update().where(subscribers.c.id.in_(people), subscribers.c.bounces > 0)
                     .values(bounces=subscribers.c.bounces - 1))
        conn.execute(subscribers.update().where(subscribers.c.id.in_(people), subscribers.c.status == "bounced",
                                                subscribers.c.bounces < bounce_limit).values(status="active"))
        again = int(conn.execute(outbox.update().where(of_issue)
                                 .values(state="queued", error=None, sent=None, **fresh)).rowcount)
    return Requeued(waiting, again, 0)


def skip_queued(store: Store, issue_id: int, reason: str) -> int:
    """Settle rows that will never be sent one by one (the issue went out as a campaign)."""
    with store.begin() as conn:
        return int(conn.execute(outbox.update().where(outbox.c.issue_id == issue_id, outbox.c.state == "queued")
                                .values(state="skipped", error=reason[:500])).rowcount)


def next_retry(store: Store, issue_id: int) -> datetime | None:
    """When the earliest queued row may be tried (rows other workers hold are theirs to finish)."""
    with store.begin() as conn:
        value = conn.execute(sa.select(sa.func.min(sa.func.coalesce(outbox.c.not_before, now())))
                             .where(outbox.c.issue_id == issue_id, outbox.c.state == "queued")).scalar()
    return utc(value)
