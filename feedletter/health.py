"""Per-source fetch state and health: validators, errors, back-off, disabling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from feedletter.config import Source
from feedletter.fetch import FetchResult
from feedletter.store import Store, now, sources, utc

BACKOFF_BASE = timedelta(minutes=5)
BACKOFF_MAX = timedelta(hours=24)


@dataclass(frozen=True)
class SourceState:
    name: str
    url: str
    etag: str | None = None
    last_modified: str | None = None
    failures: int = 0
    next_fetch: datetime | None = None
    disabled: bool = False
    last_success: datetime | None = None
    last_error: str | None = None
    new_items: int = 0
    duplicates: int = 0
    seconds: float | None = None


def load_states(store: Store, wanted: Sequence[Source]) -> dict[str, SourceState]:
    """The stored state of each source, creating rows for new ones.

    A source whose configured URL changed starts afresh (no validators), while a URL that the
    source moved to by a permanent redirect is kept for as long as the config is unchanged.
    """
    states: dict[str, SourceState] = {}
    with store.begin() as conn:
        rows = {r.name: r for r in conn.execute(sa.select(sources))}
        added: list[dict[str, str]] = []
        for source in wanted:
            row = rows.get(source.name)
            if row is None:
                added.append({"name": source.name, "url": source.url, "configured_url": source.url})
                states[source.name] = SourceState(source.name, source.url)
                continue
            if row.configured_url != source.url:
                conn.execute(sources.update().where(sources.c.name == source.name).values(
                    url=source.url, configured_url=source.url, etag=None, last_modified=None))
                states[source.name] = SourceState(source.name, source.url, failures=row.failures,
                                                  disabled=row.disabled)
                continue
            states[source.name] = _state(row)
        if added:
            conn.execute(sources.insert(), added)
    return states


def _state(row: sa.Row[tuple[object, ...]]) -> SourceState:
    m = row._mapping
    return SourceState(name=m["name"], url=m["url"], etag=m["etag"], last_modified=m["last_modified"],
                       failures=m["failures"], next_fetch=utc(m["next_fetch"]), disabled=m["disabled"],
                       last_success=utc(m["last_success"]), last_error=m["last_error"],
                       new_items=m["new_items"], duplicates=m["duplicates"], seconds=m["seconds"])


def all_states(store: Store) -> list[SourceState]:
    with store.begin() as conn:
        return [_state(r) for r in conn.execute(sa.select(sources).order_by(sources.c.name))]


def record_successes(conn: sa.Connection, done: Sequence[tuple[SourceState, object, float]]) -> None:
    """Record successful fetches (a 200 or a 304) in one executemany: validators, moved URL, health."""
    if not done:
        return
    stamp = now()
    rows = []
    for state, result, seconds in done:
        fetched = result if isinstance(result, FetchResult) else None
        fresh = fetched is not None and fetched.status != 304
        rows.append({
            "b_name": state.name, "last_fetch": stamp, "last_success": stamp, "failures": 0,
            "next_fetch": None, "last_error": None, "seconds": seconds,
            "last_status": fetched.status if fetched else None,
            # A 304 keeps the validators that earned it; a 200 brings the server's new ones.
            "etag": fetched.etag if fresh and fetched else state.etag,
            "last_modified": fetched.last_modified if fresh and fetched else state.last_modified,
            "url": (fetched.moved_to if fetched and fetched.moved_to else state.url),
            "new_items": 0, "duplicates": 0})
    statement = sources.update().where(sources.c.name == sa.bindparam("b_name")).values(
        {k: sa.bindparam(k) for k in rows[0] if k != "b_name"})
    conn.execute(statement, rows)


def backoff(failures: int, retry_after: float | None = None) -> timedelta:
    delay: timedelta = min(BACKOFF_BASE * (2 ** min(20, max(0, failures - 1))), BACKOFF_MAX)
    if retry_after is not None:
        delay = max(delay, timedelta(seconds=min(retry_after, BACKOFF_MAX.total_seconds())))
    return delay


def record_failure(conn: sa.Connection, state: SourceState, error: str, max_failures: int, *,
                   retry_after: float | None = None) -> bool:
    """Record a failed fetch; return True when this failure disabled the source."""
    failures = state.failures + 1
    disable = failures >= max_failures
    conn.execute(sources.update().where(sources.c.name == state.name).values(
        last_fetch=now(), last_error=error, failures=failures, disabled=disable,
        next_fetch=now() + backoff(failures, retry_after), new_items=0, duplicates=0))
    return disable and not state.disabled


def record_counts(conn: sa.Connection, per_source: Mapping[str, tuple[int, int]]) -> None:
    """Store how many new and duplicate entries each source's last fetch brought."""
    rows = [{"b_name": name, "new_items": new, "duplicates": dup} for name, (new, dup) in per_source.items()]
    if rows:
        conn.execute(sources.update().where(sources.c.name == sa.bindparam("b_name")).values(
            new_items=sa.bindparam("new_items"), duplicates=sa.bindparam("duplicates")), rows)


def enable(store: Store, name: str) -> bool:
    with store.begin() as conn:
        result = conn.execute(sources.update().where(sources.c.name == name).values(
            disabled=False, failures=0, next_fetch=None))
        return bool(result.rowcount)
