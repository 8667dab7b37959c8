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
        for source in wanted:
            row = rows.get(source.name)
            if row is None:
                conn.execute(sources.insert().values(name=source.name, url=source.url,
                                                     configured_url=source.url))
                states[source.name] = SourceState(source.name, source.url)
                continue
            if row.configured_url != source.url:
                conn.execute(sources.update().where(sources.c.name == source.name).values(
                    url=source.url, configured_url=source.url, etag=None, last_modified=None))
                states[source.name] = SourceState(source.name, source.url, failures=row.failures,
                                                  disabled=row.disabled)
                continue
            states[source.name] = _state(row)
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


def record_success(conn: sa.Connection, state: SourceState, result: object, seconds: float) -> None:
    values: dict[str, object] = {"last_fetch": now(), "last_success": now(), "failures": 0,
                                 "next_fetch": None, "last_error": None, "seconds": seconds}
    if isinstance(result, FetchResult):
        values["last_status"] = result.status
        if result.status != 304:
            values.update(etag=result.etag, last_modified=result.last_modified)
        if result.moved_to:
            values["url"] = result.moved_to
        if result.status == 304:
            values.update(new_items=0, duplicates=0)
    conn.execute(sources.update().where(sources.c.name == state.name).values(**values))


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


def record_counts(store: Store, per_source: Mapping[str, tuple[int, int]]) -> None:
    with store.begin() as conn:
        for name, (new, dup) in per_source.items():
            conn.execute(sources.update().where(sources.c.name == name).values(new_items=new, duplicates=dup))


def enable(store: Store, name: str) -> bool:
    with store.begin() as conn:
        result = conn.execute(sources.update().where(sources.c.name == name).values(
            disabled=False, failures=0, next_fetch=None))
        return bool(result.rowcount)
