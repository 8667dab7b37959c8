"""Rate limits for the subscribe form, counted in the store so that every process serving it shares them.

Each limit is a fixed window: one row per thing counted and window (``address:…:1767225600``), raised
by one ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` on SQLite and PostgreSQL alike, so two
requests at once both count. Email and IP addresses are stored as keyed hashes, never in
clear: the table holds no one's address. Old windows are deleted by :func:`purge`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from feedletter.config import Config
from feedletter.schema import rate_limits
from feedletter.store import Store, insert_for, now
from feedletter.tokens import secret

HOUR, DAY = 3600, 86400


@dataclass(frozen=True)
class Limit:
    what: str  # address | ip | newsletter
    most: int
    seconds: int


def subscribe_limits(config: Config) -> tuple[Limit, Limit, Limit]:
    limits = config.web.limits
    return (Limit("address", limits.address_per_day, DAY), Limit("ip", limits.ip_per_hour, HOUR),
            Limit("newsletter", limits.newsletter_per_hour, HOUR))


def _key(limit: Limit, thing: str, start: int) -> str:
    digest = hmac.new(secret(), f"{limit.what}:{thing}".encode(), hashlib.sha256).hexdigest()[:32]
    return f"{limit.what}:{digest}:{start}"


def hit(conn: Connection, limit: Limit, thing: str, at: float) -> bool:
    """Count one request for ``thing``; whether it is within the limit."""
    start = int(at // limit.seconds) * limit.seconds
    statement = insert_for(conn, rate_limits).values(
        key=_key(limit, thing, start), hits=1, expires=datetime.fromtimestamp(start + limit.seconds, UTC))
    statement = statement.on_conflict_do_update(index_elements=[rate_limits.c.key],
                                                set_={"hits": rate_limits.c.hits + 1})
    return int(conn.execute(statement.returning(rate_limits.c.hits)).scalar_one()) <= limit.most


def purge(store: Store) -> int:
    """Delete the counters of windows that are over."""
    with store.begin() as conn:
        return int(conn.execute(sa.delete(rate_limits).where(rate_limits.c.expires < now())).rowcount)
