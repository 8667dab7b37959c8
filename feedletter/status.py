"""What `feedletter status` and `feedletter sources status` show: the last runs, the held locks,
counts from the store, and each source's health, named."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from feedletter.config import Config, Source
from feedletter.ingest.health import EntryCounts, SourceState, all_states, state_name
from feedletter.runreport import DigestReport, GatherReport, Paused
from feedletter.schema import articles, incidents, issues, outbox, runs, stories, subscribers
from feedletter.store import Store, now, utc


def last_run_per_target(store: Store) -> list[dict[str, Any]]:
    """The latest run of each (flow, target), newest first."""
    latest = sa.select(sa.func.max(runs.c.id)).group_by(runs.c.flow, runs.c.target).scalar_subquery()
    with store.begin() as conn:
        rows = conn.execute(sa.select(runs).where(runs.c.id.in_(latest)).order_by(runs.c.id.desc())).mappings()
        return [{"flow": r["flow"], "target": r["target"], "status": r["status"], "mode": r["mode"],
                 "host": r["host"], "pid": r["pid"], "started": utc(r["started"]), "finished": utc(r["finished"]),
                 "counts": json.loads(r["counts"] or "{}")} for r in rows]


def run_line(run: Mapping[str, Any]) -> str:
    """A run of :func:`last_run_per_target` in the words its command ended with, less the flow's
    name (``5 sources: 5 ok · 21 new articles · 19 new stories · 2.1 s``); its counts as JSON
    when they are not a gather's or digest's report (an older feedletter's, say)."""
    counts = dict(run["counts"] or {})
    try:
        if run["flow"] == "gather" and counts:
            return GatherReport(**_fields(GatherReport, counts)).line().removeprefix("gather: ")
        if run["flow"] == "digest" and counts:
            found = _fields(DigestReport, counts)
            if isinstance(found.get("paused"), dict):
                found["paused"] = Paused(**found["paused"])
            report = DigestReport(**found)
            return report.line().removeprefix(f"digest {report.newsletter or '?'}: ")
    except (TypeError, ValueError):
        pass
    return json.dumps(counts, default=str) if counts else ""


def _fields(report: type, counts: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(report)}
    return {k: v for k, v in counts.items() if k in names}


def held_locks(store: Store) -> list[dict[str, Any]]:
    """Run locks held now (or left by a run that died and was not yet taken over), with their owner."""
    from feedletter.locks import Owner, holder_alive, holders

    me = Owner.me()
    found = []
    for name, holder in holders(store).items():
        alive = holder_alive(holder, me)
        found.append({"lock": name, "host": holder.host, "pid": holder.pid, "started": holder.started,
                      "lease_until": holder.lease_until,
                      "alive": "unknown (another host)" if alive is None else ("yes" if alive else "no: died")})
    return found


def _grouped(conn: sa.Connection, column: sa.ColumnElement[Any]) -> dict[str, int]:
    rows = conn.execute(sa.select(column, sa.func.count()).group_by(column)).all()
    return {str(key): int(n) for key, n in rows}


def _source_states(config: Config, store: Store) -> dict[str, int]:
    """Sources by state name (see ingest.health.STATES), the names ``sources status`` shows."""
    return dict(Counter(h.state for h in sources_health(config, store)))


def store_counts(store: Store, config: Config | None = None) -> dict[str, Any]:
    """Counts an operator checks first: sources by state (with ``config``), content, subscribers, the
    outbox, open incidents."""
    states = _source_states(config, store) if config is not None else {}
    with store.begin() as conn:
        def count(table: sa.Table) -> int:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

        return {
            "sources": states,
            "articles": count(articles),
            "stories": count(stories),
            "issues": count(issues),
            "subscribers": _grouped(conn, subscribers.c.status),
            "outbox": _grouped(conn, outbox.c.state),
            "open_incidents": int(conn.execute(sa.select(sa.func.count()).select_from(incidents)
                                               .where(incidents.c.open_key.is_not(None))).scalar_one()),
        }


@dataclass(frozen=True)
class SourceHealth:
    """One source of the config as ``feedletter sources status`` shows it.

    ``fetched`` is False for a source never fetched, which has no counts. ``waiting_until`` is set
    while a failing source backs off; otherwise the source is due at the next gather.
    """

    name: str
    state: str
    fetched: bool = False
    last_success: datetime | None = None
    new: int = 0
    not_stored: str = ""
    failures: int = 0
    waiting_until: datetime | None = None
    last_error: str = ""


def sources_health(config: Config, store: Store) -> list[SourceHealth]:
    """Every source of the config, in its order, with its health as stored by the last gathers."""
    states = {s.name: s for s in all_states(store)}
    current = now()
    return [_health(source, states.get(source.name), current) for source in config.sources]


def _health(source: Source, state: SourceState | None, current: datetime) -> SourceHealth:
    name = state_name(state, enabled=source.enabled, at=current)
    if state is None:
        return SourceHealth(source.name, name)
    waiting = state.next_fetch is not None and state.next_fetch > current
    return SourceHealth(source.name, name, fetched=True, last_success=state.last_success, new=state.new_items,
                        not_stored=_not_stored(state.entries), failures=state.failures,
                        waiting_until=state.next_fetch if waiting else None, last_error=state.last_error or "")


def _not_stored(counts: EntryCounts) -> str:
    """Why a fetch's other entries were not stored (``0`` when all were new), each reason by name: a
    single count of duplicates would hide entries lost to a key collision."""
    reasons = [(counts.seen, "seen before"), (counts.repeated, "same GUID/link in feed"),
               (counts.carried, "carried (other feed)"), (counts.removed, "removed"), (counts.filtered, "filtered")]
    return ", ".join(f"{n} {why}" for n, why in reasons if n) or "0"


__all__ = ["SourceHealth", "held_locks", "last_run_per_target", "sources_health", "store_counts"]
