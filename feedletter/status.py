"""What `feedletter status` shows: the last run of each flow and target, and counts from the store."""

from __future__ import annotations

import json
from typing import Any

import sqlalchemy as sa

from feedletter.store import Store, articles, incidents, issues, outbox, runs, sources, stories, subscribers, utc


def last_runs(store: Store) -> list[dict[str, Any]]:
    """The latest run of each (flow, target), newest first."""
    latest = sa.select(sa.func.max(runs.c.id)).group_by(runs.c.flow, runs.c.target).scalar_subquery()
    with store.begin() as conn:
        rows = conn.execute(sa.select(runs).where(runs.c.id.in_(latest)).order_by(runs.c.id.desc())).mappings()
        return [{"flow": r["flow"], "target": r["target"], "status": r["status"], "mode": r["mode"],
                 "host": r["host"], "pid": r["pid"], "started": utc(r["started"]), "finished": utc(r["finished"]),
                 "counts": json.loads(r["counts"] or "{}")} for r in rows]


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


def store_counts(store: Store) -> dict[str, Any]:
    """Counts an operator checks first: source health, content, subscribers, the outbox, open incidents."""
    with store.begin() as conn:
        def count(table: sa.Table) -> int:
            return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())

        health = sa.case((sources.c.disabled, "disabled"), (sources.c.failures > 0, "failing"), else_="ok")
        return {
            "sources": _grouped(conn, health),
            "articles": count(articles),
            "stories": count(stories),
            "issues": count(issues),
            "subscribers": _grouped(conn, subscribers.c.status),
            "outbox": _grouped(conn, outbox.c.state),
            "open_incidents": int(conn.execute(sa.select(sa.func.count()).select_from(incidents)
                                               .where(incidents.c.open_key.is_not(None))).scalar_one()),
        }


__all__ = ["held_locks", "last_runs", "store_counts"]
