"""Per-source fetch state and health: validators, errors, back-off, disabling."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import sqlalchemy as sa

from feedletter.config import Source
from feedletter.ingest.fetch import FetchResult
from feedletter.schema import sources
from feedletter.store import Store, now, utc

BACKOFF_BASE = timedelta(minutes=5)
BACKOFF_MAX = timedelta(hours=24)


# A fetch that brought no entries (a 304, an error) leaves no counts of an earlier one behind.
_NOTHING = {"new_items": 0, "duplicates": 0, "seen": 0, "repeated": 0, "carried": 0, "removed": 0, "filtered": 0}


@dataclass
class EntryCounts:
    """What became of one source's entries in one store step: each entry is counted once."""

    new: int = 0
    seen: int = 0  # stored by an earlier run (under this feed, or as its carrier): normal, not a loss
    repeated: int = 0  # the same GUID (or, without one, link) as an earlier entry of this feed
    carried: int = 0  # the same article as another feed's: recorded as a carrier of that article
    removed: int = 0  # removed by staff: a tombstone keeps it out
    filtered: int = 0  # left out by the source's include/exclude

    @property
    def duplicates(self) -> int:
        """Entries that were an article already met: the single count kept before the reasons."""
        return self.seen + self.repeated + self.carried

    def add(self, other: EntryCounts) -> None:
        for name in _REASONS:
            setattr(self, name, getattr(self, name) + getattr(other, name))


_REASONS = ("new", "seen", "repeated", "carried", "removed", "filtered")


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
    entries: EntryCounts = field(default_factory=EntryCounts)


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
                       new_items=m["new_items"], duplicates=m["duplicates"], seconds=m["seconds"],
                       entries=EntryCounts(m["new_items"], m["seen"], m["repeated"], m["carried"], m["removed"],
                                           m["filtered"]))


def all_states(store: Store) -> list[SourceState]:
    with store.begin() as conn:
        return [_state(r) for r in conn.execute(sa.select(sources).order_by(sources.c.name))]


def record_successes(conn: sa.Connection, done: Sequence[tuple[SourceState, object, float]], *,
                    validators: bool = True) -> None:
    """Record successful fetches (a 200 or a 304) in one executemany: health, and (``validators``)
    the server's ETag/Last-Modified and a moved URL.

    The gather records a 200's validators only with the entries it brought (``record_validators``,
    in the store step's transaction): a run killed in between fetches the feed in full again,
    instead of getting a 304 for entries it never stored.
    """
    if not done:
        return
    stamp = now()
    rows = []
    for state, result, seconds in done:
        fetched = result if isinstance(result, FetchResult) else None
        fresh = validators and fetched is not None and fetched.status != 304
        rows.append({
            "b_name": state.name, "last_fetch": stamp, "last_success": stamp, "failures": 0,
            "next_fetch": None, "last_error": None, "seconds": seconds,
            "last_status": fetched.status if fetched else None,
            # A 304 keeps the validators that earned it; a 200 brings the server's new ones.
            "etag": fetched.etag if fresh and fetched else state.etag,
            "last_modified": fetched.last_modified if fresh and fetched else state.last_modified,
            "url": (fetched.moved_to if validators and fetched and fetched.moved_to else state.url),
            **_NOTHING})
    statement = sources.update().where(sources.c.name == sa.bindparam("b_name")).values(
        {k: sa.bindparam(k) for k in rows[0] if k != "b_name"})
    conn.execute(statement, rows)


def record_validators(conn: sa.Connection, done: Sequence[tuple[str, object]]) -> None:
    """Record what a 200 said for next time (ETag, Last-Modified, a permanent move): (source, FetchResult)."""
    rows = [{"b_name": name, "etag": r.etag, "last_modified": r.last_modified, "moved": r.moved_to}
            for name, r in done if isinstance(r, FetchResult) and r.status != 304]
    if not rows:
        return
    conn.execute(sources.update().where(sources.c.name == sa.bindparam("b_name")).values(
        etag=sa.bindparam("etag"), last_modified=sa.bindparam("last_modified"),
        url=sa.func.coalesce(sa.bindparam("moved", type_=sa.Text), sources.c.url)), rows)


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
        next_fetch=now() + backoff(failures, retry_after), **_NOTHING))
    return disable and not state.disabled


def record_counts(conn: sa.Connection, per_source: Mapping[str, EntryCounts]) -> None:
    """Store what became of each source's entries in its last fetch: new, and why the others were not."""
    rows = [{"b_name": name, "new_items": c.new, "duplicates": c.duplicates, "seen": c.seen,
             "repeated": c.repeated, "carried": c.carried, "removed": c.removed, "filtered": c.filtered}
            for name, c in per_source.items()]
    if rows:
        conn.execute(sources.update().where(sources.c.name == sa.bindparam("b_name")).values(
            {k: sa.bindparam(k) for k in rows[0] if k != "b_name"}), rows)


def enable(store: Store, name: str) -> bool:
    with store.begin() as conn:
        result = conn.execute(sources.update().where(sources.c.name == name).values(
            disabled=False, failures=0, next_fetch=None))
        return bool(result.rowcount)


# A source's state, under one name wherever it is shown (`sources status`, `status`, the feed-health
# artifact): in the order an operator looks at them.
STATES = ("ok", "failing", "backing off", "disabled", "off in config", "never fetched")


def state_name(state: SourceState | None, *, enabled: bool, at: datetime) -> str:
    """The name of a source's state at ``at``: one of :data:`STATES`.

    ``failing`` is due for another try at the next gather; ``backing off`` waits until ``next_fetch``;
    ``disabled`` waits for `feedletter sources enable NAME`; ``off in config`` is ``enabled: false``.
    """
    if state is None:
        return "never fetched" if enabled else "off in config"
    if state.disabled:
        return "disabled"
    if not enabled:
        return "off in config"
    if state.failures:
        return "backing off" if state.next_fetch is not None and state.next_fetch > at else "failing"
    return "ok"

