"""Delivery fixtures: stores on SQLite and (when configured) PostgreSQL, issues with N subscribers.

Also a worker entry point, so that tests can run a send in another process:
    python tests/fixtures_delivery.py CONFIG STORE_URL SMTP_URL ISSUE_ID [die-at-record|die-before-record]
"""

from __future__ import annotations

import os
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from feedletter.config import Config
from feedletter.deliver import IssueContent, RetryPolicy
from feedletter.deliver import outbox as outbox_queue
from feedletter.mailsink import Received
from feedletter.schema import issues, outbox, subscribers
from feedletter.store import Store, now

HTML = ("<html><body><p>Hello %%NAME%%</p><p>A story with caf\u00e9 and = signs.</p>"
        "<a href=\"%%UNSUBSCRIBE_URL%%\">Unsubscribe</a></body></html>")
TEXT = "Hello %%NAME%%\n\nUnsubscribe: %%UNSUBSCRIBE_URL%%\n"
FAST_RETRY = RetryPolicy(base=timedelta(milliseconds=20), wait=timedelta(seconds=20), max_attempts=5)
PG_REASON = "FEEDLETTER_TEST_DATABASE_URL is not set (e.g. postgresql+psycopg://postgres@127.0.0.1:5432/test)"


def postgres_schema_url() -> Iterator[str]:
    """A fresh schema on the test PostgreSQL, dropped afterwards, so reruns and parallel runs never meet."""
    base = os.environ.get("FEEDLETTER_TEST_DATABASE_URL")
    if not base:
        pytest.skip(PG_REASON)
    schema = f"fl_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    joiner = "&" if "?" in base else "?"
    try:
        yield f"{base}{joiner}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
    else:
        yield from postgres_schema_url()


@pytest.fixture
def any_store(store_url: str) -> Iterator[Store]:
    handle = Store.open(store_url)
    yield handle
    handle.close()


def make_issue(config: Config, store: Store, people: int, *, newsletter: str = "weekly",
               html: str = HTML, text: str = TEXT) -> IssueContent:
    """An issue of ``newsletter`` with ``people`` active subscribers, queued in the outbox."""
    stamp = now()
    with store.begin() as conn:
        if people:
            conn.execute(subscribers.insert(), [
                {"newsletter": newsletter, "email": f"reader{i}@example.com", "name": f"Reader {i}",
                 "status": "active", "created": stamp, "confirmed": stamp} for i in range(people)])
        number = conn.execute(sa.select(sa.func.count()).select_from(issues)).scalar_one() + 1
        row = conn.execute(issues.insert().values(newsletter=newsletter, number=number, issued=stamp,
                                                  subject="Weekly: hello", preheader="", html=html, text=text, mjml="",
                                                  data="{}"))
        issue_id = int(row.inserted_primary_key[0])  # type: ignore[index]
    target = config.newsletter(newsletter)
    outbox_queue.queue(store, issue_id, newsletter, "riverside.example")
    return IssueContent(issue_id, target, "Weekly: hello", html, text)


def each_once_but_the_one_on_the_wire(received: list[Received]) -> Counter[str]:
    """Messages per recipient after a sender was killed and a rerun finished the send: nobody twice,
    except the one message whose final dot was on the wire when the kill came, and that one with its
    first copy's Message-ID (see docs/delivery.md, "Two cases can repeat a message").

    The kill lands between the dot and the commit of the message's record (~25 µs of a ~600 µs
    cycle against the loopback sink) in about one run out of twenty: no sender can make the two
    writes one, so that is a second copy, never a lost message.
    """
    got = Counter(r.recipients[0] for r in received)
    twice = [k for k, v in got.items() if v > 1]
    assert len(twice) <= 1 and max(got.values()) <= 2, twice[:5]
    for person in twice:
        ids = {r.message()["Message-ID"] for r in received if r.recipients[0] == person}
        assert len(ids) == 1, ids
    return got


def closed_port() -> int:
    """A loopback port with nothing listening on it: an SMTP server that is down."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def expire_waits(store: Store) -> None:
    """Pretend time passed: back-offs are over and every lease has run out."""
    past = datetime(2000, 1, 1, tzinfo=UTC)
    with store.begin() as conn:
        conn.execute(outbox.update().values(not_before=past))
        conn.execute(outbox.update().where(outbox.c.state == "sending").values(lease_until=past))


def _worker(config_path: str, store_url: str, smtp_url: str, issue_id: int, die: str | None = None) -> None:
    from feedletter.config import load_config
    from feedletter.deliver import deliver_issue, load_issue
    from feedletter.deliver.providers.smtp import SmtpMailer, SmtpSettings

    config = load_config(config_path)
    store = Store.open(store_url)
    if die == "die-at-record":
        _die_once_a_send_is_recorded(store)
    elif die == "die-before-record":
        _die_once_a_dot_is_sent()
    elif die is not None:
        raise SystemExit(f"unknown way to die: {die}")
    counts = deliver_issue(config, store, load_issue(config, store, issue_id),
                           SmtpMailer(SmtpSettings.from_url(smtp_url)), batch=50, policy=FAST_RETRY)
    print(f"sent={counts.sent}", flush=True)


def _die_once_a_dot_is_sent() -> None:
    """Killed in the window no sender can close: the final dot is written, its record not committed."""
    import feedletter.deliver as delivery

    def _seal(record: Any) -> None:
        os._exit(9)  # the kernel still sends the dot: closing a socket flushes what was written

    delivery._Record.seal = _seal  # type: ignore[method-assign]


def _die_once_a_send_is_recorded(store: Store) -> None:
    """The worst moment to be killed: the first record of a send has just been committed."""

    recording: set[int] = set()

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def _seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.startswith("UPDATE outbox SET state = 'sent'"):
            recording.add(id(conn))

    @sa.event.listens_for(store.engine, "commit")
    def _commit(conn: Any) -> None:
        if id(conn) in recording:
            conn.connection.dbapi_connection.commit()
            os._exit(9)


if __name__ == "__main__":
    os.environ.setdefault("FEEDLETTER_SECRET", "test-secret-0123456789abcdef")
    _worker(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), *sys.argv[5:6])
