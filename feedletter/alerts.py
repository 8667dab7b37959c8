"""Operator alerts: a source disabled by its failures, a digest run that failed, a delivery paused.

Each problem is an *incident* in the store, open until its cause is gone: the source is enabled
again; the newsletter has no issue left to send and a digest run delivered one (a run that found
nothing new proves nothing); a paused issue was delivered. An incident is alerted once: the email
goes out through the same mailer machinery as the newsletters and the incident is marked alerted
right after. An alert that could not be sent stays pending, even once its incident is closed, and
every run tries it again until it goes out (a crash between sending and marking is the one case
that repeats it: better twice than never). When the alerts' provider is the newsletters' own and it
is down, the alert goes out with the first run after it recovers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

import sqlalchemy as sa

from feedletter.config import Config
from feedletter.config_newsletters import Newsletter
from feedletter.errors import DeliveryError, FeedletterError, ProviderUnreachable
from feedletter.ingest.health import all_states
from feedletter.redact import mask
from feedletter.schema import incidents
from feedletter.store import Store, now, utc

log = logging.getLogger(__name__)
SOURCE_DISABLED = "source-disabled"
DIGEST_FAILED = "digest-failed"
DELIVERY_PAUSED = "delivery-paused"


@dataclass(frozen=True)
class Incident:
    id: int
    kind: str
    target: str
    opened: datetime
    detail: str
    alerted: datetime | None
    closed: datetime | None = None
    alert_error: str | None = None


@dataclass
class AlertCounts:
    sent: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _open_key(kind: str, target: str) -> str:
    return f"{kind}:{target}"


def open_incident(store: Store, kind: str, target: str, detail: str) -> bool:
    """Record a problem; False when the same problem is already open (and so already alerted)."""
    clean = mask(detail)
    with store.begin() as conn:
        found = conn.execute(sa.select(incidents.c.id).where(
            incidents.c.open_key == _open_key(kind, target))).first()
        if found is not None:
            return False
    try:
        with store.begin() as conn:
            conn.execute(incidents.insert().values(kind=kind, target=target, opened=now(), detail=clean,
                                                   open_key=_open_key(kind, target)))
    except sa.exc.IntegrityError:
        return False  # another run opened it a moment ago
    return True


def close_incident(store: Store, kind: str, target: str) -> bool:
    """Mark a problem resolved, so that the next occurrence alerts again."""
    with store.begin() as conn:
        result = conn.execute(incidents.update().where(incidents.c.open_key == _open_key(kind, target))
                              .values(closed=now(), open_key=None))
        return bool(result.rowcount)


def track_sources(store: Store) -> list[str]:
    """Open an incident for each disabled source and close those of enabled ones; return the new ones."""
    opened = []
    states = all_states(store)
    # Closing is looked up once: a statement and a commit per source cost a 500-feed gather with
    # nothing new 60 ms (on SQLite), for incidents that are nearly always none.
    with store.begin() as conn:
        still_open = set(conn.scalars(sa.select(incidents.c.target).where(
            incidents.c.kind == SOURCE_DISABLED, incidents.c.open_key.is_not(None))))
    for state in states:
        if state.disabled:
            detail = (f"{state.name} ({state.url}) was disabled after {state.failures} failed fetches.\n"
                      f"Last error: {state.last_error or 'unknown'}\n\n"
                      f"When it is fixed: feedletter sources enable {state.name}")
            if open_incident(store, SOURCE_DISABLED, state.name, detail):
                opened.append(state.name)
        elif state.name in still_open:
            close_incident(store, SOURCE_DISABLED, state.name)
    return opened


def digest_failed(store: Store, newsletter: str, error: BaseException | str) -> bool:
    detail = (f"The digest run of {newsletter} failed: {error}\n\n"
              f"Recipients already sent to are recorded; the next run finishes the rest without repeats.\n"
              f"Inspect: feedletter status; feedletter digest {newsletter} --dry-run")
    return open_incident(store, DIGEST_FAILED, newsletter, detail)


def delivery_paused(store: Store, newsletter: str, line: str) -> bool:
    detail = (f"Delivery of {newsletter} stopped: {line}.\n\n"
              f"Its messages stay queued. Once the provider is reachable again, run `feedletter digest "
              f"{newsletter}` to send them now, or the next scheduled run does; nobody gets a copy twice.\n"
              f"Inspect: feedletter outbox; feedletter status")
    return open_incident(store, DELIVERY_PAUSED, newsletter, detail)


def pending(store: Store) -> list[Incident]:
    """Incidents whose alert has not gone out yet: the open ones, and closed ones whose alert failed."""
    tried = incidents.c.alert_error.is_not(None)
    return _incidents(store, incidents.c.alerted.is_(None) & (incidents.c.open_key.is_not(None) | tried))


def open_incidents(store: Store) -> list[Incident]:
    return _incidents(store, incidents.c.open_key.is_not(None))


def _incidents(store: Store, where: sa.ColumnElement[bool]) -> list[Incident]:
    with store.begin() as conn:
        rows = conn.execute(sa.select(incidents).where(where).order_by(incidents.c.id)).mappings().all()
    return [Incident(r["id"], r["kind"], r["target"], utc(r["opened"]) or now(), r["detail"],
                     utc(r["alerted"]), utc(r["closed"]), r["alert_error"]) for r in rows]


def _subject(config: Config, incident: Incident) -> str:
    prefix = config.alerts.subject_prefix if config.alerts else "[feedletter]"
    what = {SOURCE_DISABLED: f"source {incident.target} disabled",
            DIGEST_FAILED: f"digest {incident.target} failed",
            DELIVERY_PAUSED: f"delivery of {incident.target} paused"}.get(incident.kind, incident.kind)
    if incident.closed is not None:
        what += " (resolved)"
    return f"{prefix} {what}"


def alert_message(config: Config, incident: Incident, recipient: str) -> EmailMessage:
    assert config.alerts is not None
    msg = EmailMessage()
    msg["From"] = config.alerts.sender
    msg["To"] = recipient
    msg["Subject"] = mask(_subject(config, incident))
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(f"incident-{incident.id}")
    msg["Auto-Submitted"] = "auto-generated"
    opened = f"Opened {incident.opened.isoformat(timespec='seconds')}."
    if incident.closed is not None:
        # The alert could not go out while it was open (the alerts' provider was down too).
        after = f"Resolved {incident.closed.isoformat(timespec='seconds')}: nothing more to do."
    else:
        after = "You will not hear about this again until it has been resolved."
    # The detail was masked as it was stored; masked again here for incidents stored before that.
    msg.set_content(mask(f"{incident.detail}\n\n{opened}\n{after}\n"))
    return msg


def send_alerts(config: Config, store: Store) -> AlertCounts:
    """Send each pending incident's alert to every operator address; nothing when alerts are off."""
    counts = AlertCounts()
    todo = pending(store)
    if config.alerts is None or not todo:
        for incident in todo:
            log.warning("alert (no alerts address configured): %s", _subject(config, incident))
        return counts
    from feedletter.deliver import make_mailer

    alerts = config.alerts
    # The provider machinery wants a newsletter; this one stands for the operators' channel.
    channel = Newsletter.model_validate({"name": "alerts", "title": "feedletter alerts",
                                         "from": alerts.sender, "provider": alerts.provider})
    try:
        mailer = make_mailer(config, channel)
    except FeedletterError as exc:
        counts.failed, counts.errors = len(todo), [str(exc)]
        _note_error(store, [i.id for i in todo], str(exc))
        return counts
    try:
        for n, incident in enumerate(todo):
            try:
                for recipient in alerts.to:
                    mailer.send(alert_message(config, incident, recipient), alerts.sender, recipient,
                                lambda: True)
            except DeliveryError as exc:
                # An unreachable provider takes none of them: the rest wait for the next run too.
                failed = todo[n:] if isinstance(exc, ProviderUnreachable) else [incident]
                counts.failed += len(failed)
                counts.errors.append(str(exc))
                _note_error(store, [i.id for i in failed], str(exc))
                if isinstance(exc, ProviderUnreachable):
                    break
                continue
            with store.begin() as conn:
                conn.execute(incidents.update().where(incidents.c.id == incident.id)
                             .values(alerted=now(), alert_error=None))
            counts.sent += 1
    finally:
        mailer.close()
    return counts


def _note_error(store: Store, ids: list[int], error: str) -> None:
    log.warning("alerts: %s", error)
    with store.begin() as conn:
        conn.execute(incidents.update().where(incidents.c.id.in_(ids)).values(alert_error=error))


__all__ = ["AlertCounts", "Incident", "close_incident", "delivery_paused", "digest_failed", "open_incident",
           "open_incidents", "pending", "send_alerts", "track_sources"]
