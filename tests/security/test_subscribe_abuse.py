"""Replays of the ``/subscribe`` attacks of issue 19, on SQLite and on PostgreSQL where configured.

A mail-bomb relay (many posts for one victim), who-is-subscribed oracles (the page, the statements
run), cross-site posts, link scanners and replayed confirm links, an unsubscribe undone by a
stranger, two posts at once, an endless chunked body, a forged ``Host``, missing headers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import warnings
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from feedletter import subscribers
from feedletter.config import Config
from feedletter.schema import rate_limits, subscribe_requests
from feedletter.schema import subscribers as subscribers_table
from feedletter.store import Store, now
from feedletter.web import optin
from feedletter.web.app import MAX_FORM_BYTES, create_app
from tests.conftest import ROOT, postgres_url
from tests.fixtures_email import email_config
from tests.test_web import serving

BASE = "https://news.example.com"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=[
    pytest.mark.postgres, pytest.mark.skipif(postgres_url() is None, reason="set FEEDLETTER_TEST_DATABASE_URL")])]


def _postgres_database(name: str) -> str:
    url = sa.engine.make_url(postgres_url() or "")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def _drop_postgres_database(name: str) -> None:
    admin = sa.create_engine(sa.engine.make_url(postgres_url() or ""), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def web_config(tmp_path: Path, store_url: str, limits: str = "") -> Config:
    return email_config(tmp_path, "    provider: file\n"
                        f"store: {store_url}\n"
                        f"site: {{base_url: '{BASE}', archive_dir: '{tmp_path / 'public'}'}}\n"
                        f"providers: {{file: {{dir: '{tmp_path / 'outbox'}'}}}}\n"
                        + (f"web: {{limits: {{{limits}}}}}\n" if limits else ""))


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fl.db'}"
        return
    name = f"feedletter_websec_{os.getpid()}"
    yield _postgres_database(name)
    _drop_postgres_database(name)


@pytest.fixture
def config(tmp_path: Path, store_url: str) -> Config:
    return web_config(tmp_path, store_url)


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    handle = Store.open(config.store_url())
    yield handle
    handle.close()


def post(app: Any, email: str, *, ip: str = "192.0.2.1", headers: dict[str, str] | None = None,
         newsletter: str = "weekly") -> httpx.Response:
    client = TestClient(app, client=(ip, 50000))
    return client.post("/subscribe", data={"email": email, "newsletter": newsletter}, headers=headers or {})


def queued(store: Store) -> list[str]:
    with store.begin() as conn:
        return list(conn.execute(sa.select(subscribe_requests.c.email).order_by(subscribe_requests.c.id)).scalars())


def mails(tmp_path: Path) -> list[Any]:
    return [message_from_bytes(p.read_bytes(), policy=policy.default)
            for p in sorted((tmp_path / "outbox").glob("*.eml"))]


def confirm_path(msg: Any) -> str:
    found = re.search(rf"{re.escape(BASE)}(/confirm/\S+)", msg.get_body(("plain",)).get_content())
    assert found
    return found.group(1)


def same_page(reply: httpx.Response, email: str) -> str:
    return reply.text.replace(email, "ADDRESS")


def _an_hour_later(store: Store, email: str, hours: float = 1.01) -> None:
    """Move the victim's record (last confirmation mail, unsubscribe) and every rate-limit window back in time."""
    c = subscribers_table.c
    with store.begin() as conn:
        sent, left = conn.execute(sa.select(c.confirm_sent, c.unsubscribed).where(c.email == email)).one()
        back = timedelta(hours=hours)
        conn.execute(subscribers_table.update().where(c.email == email).values(
            confirm_sent=sent and sent - back, unsubscribed=left and left - back))
        conn.execute(sa.delete(rate_limits))


def test_many_posts_for_one_victim_send_one_mail_an_hour(config: Config, store: Store, tmp_path: Path) -> None:
    app = create_app(config, store, send_confirmations=False)
    replies = [post(app, "victim@example.com", ip=f"198.51.100.{i}") for i in range(60)]  # 60 clients
    assert {r.status_code for r in replies} == {200} and len({r.text for r in replies}) == 1
    assert queued(store) == ["victim@example.com"] * 3  # web.limits.address_per_day
    assert optin.send_confirmations(config, store) == 1
    assert [m["To"] for m in mails(tmp_path)] == ["victim@example.com"]
    assert queued(store) == []
    # Within the hour nothing more goes out, however the requests arrive; an hour later, one more.
    _an_hour_later(store, "victim@example.com", hours=0.9)
    post(app, "victim@example.com")
    assert optin.send_confirmations(config, store) == 0
    _an_hour_later(store, "victim@example.com")
    for _ in range(5):
        post(app, "victim@example.com")
    assert optin.send_confirmations(config, store) == 1
    assert len(mails(tmp_path)) == 2


def test_limits_per_client_ip_and_per_newsletter(tmp_path: Path, store_url: str) -> None:
    config = web_config(tmp_path, store_url, "ip_per_hour: 5, newsletter_per_hour: 8")
    store = Store.open(config.store_url())
    try:
        app = create_app(config, store, send_confirmations=False)
        pages = {same_page(post(app, f"reader{i}@example.com", ip="203.0.113.7"), f"reader{i}@example.com")
                 for i in range(10)}
        assert len(queued(store)) == 5 and len(pages) == 1  # one client: 5 an hour, the same page for all
        for i in range(10, 20):
            pages.add(same_page(post(app, f"reader{i}@example.com", ip=f"203.0.113.{i}"), f"reader{i}@example.com"))
        assert len(queued(store)) == 8 and len(pages) == 1  # the newsletter: 8 an hour from everyone
    finally:
        store.close()


def test_limits_hold_across_processes(config: Config, store: Store, tmp_path: Path) -> None:
    """Counted in the store: requests in another process and through another handle count too."""
    script = ("import sys; from feedletter.config import load_config; from feedletter.store import Store; "
              "from feedletter.web import optin; c = load_config(sys.argv[1]); s = Store.open(c.store_url()); "
              "print(sum(optin.request(c, s, 'weekly', 'victim@example.com', client='192.0.2.9') for _ in range(2)))")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "sources.yaml")], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)}, check=False)
    assert done.stdout.strip() == "2", done.stderr
    other = Store.open(config.store_url())
    try:
        post(create_app(config, other, send_confirmations=False), "victim@example.com")
        post(create_app(config, store, send_confirmations=False), "victim@example.com")
    finally:
        other.close()
    assert queued(store) == ["victim@example.com"] * 3


def test_the_answer_and_the_work_are_the_same_whoever_the_address_is(config: Config, store: Store) -> None:
    """No oracle: a new, a waiting, a subscribed and an unsubscribed address get the same page, from the
    same SQL statements, none of which reads the subscribers (so the time taken cannot differ by them)."""
    subscribers.add(store, "weekly", "pending@example.com", status="pending")
    subscribers.add(store, "weekly", "active@example.com")
    subscribers.add(store, "weekly", "gone@example.com")
    subscribers.remove(store, "weekly", "gone@example.com")
    app = create_app(config, store, send_confirmations=False)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    seen = {}
    sa.event.listen(store.engine, "before_cursor_execute", record)
    try:
        for email in ("new@example.com", "pending@example.com", "active@example.com", "gone@example.com"):
            statements.clear()
            reply = post(app, email)
            seen[email] = (reply.status_code, same_page(reply, email), list(statements))
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", record)
    assert len({(status, page) for status, page, _ in seen.values()}) == 1
    runs = {tuple(run) for _, _, run in seen.values()}
    assert len(runs) == 1
    [run] = runs
    assert len(run) == 4 and not any("subscribers " in s or "subscribers\n" in s for s in run)
    assert all(("rate_limits" in s) for s in run[:3]) and "subscribe_requests" in run[3]


def test_an_unsubscribe_is_not_undone_by_a_stranger(config: Config, store: Store, tmp_path: Path) -> None:
    """Posting the address of someone who left mails them one confirm link (the first since they left)
    and changes nothing; more requests bring at most one a day; their old confirm link stays dead."""
    app = create_app(config, store, send_confirmations=False)
    post(app, "ann@example.com")
    optin.send_confirmations(config, store)
    [first] = mails(tmp_path)
    client = TestClient(app)
    assert client.post(confirm_path(first)).status_code == 200
    subscribers.remove(store, "weekly", "ann@example.com")
    for i in range(3):
        post(app, "ann@example.com", ip=f"192.0.2.{10 + i}")
    assert optin.send_confirmations(config, store) == 1
    assert [s.status for s in subscribers.listing(store, "weekly")] == ["unsubscribed"]
    replay = client.post(confirm_path(first))
    assert replay.status_code == 409 and "this link no longer works" in replay.text
    _an_hour_later(store, "ann@example.com", hours=23)
    post(app, "ann@example.com")
    assert optin.send_confirmations(config, store) == 0  # one a day after an unsubscribe
    _an_hour_later(store, "ann@example.com", hours=24.1)
    post(app, "ann@example.com")
    assert optin.send_confirmations(config, store) == 1
    *_, second, third = mails(tmp_path)
    assert client.post(confirm_path(third)).status_code == 200
    assert [s.status for s in subscribers.listing(store, "weekly")] == ["active"]
    assert client.post(confirm_path(second)).status_code == 200  # used: harmless, nothing changes


def test_link_scanners_never_confirm(config: Config, store: Store, tmp_path: Path) -> None:
    app = create_app(config, store, send_confirmations=False)
    post(app, "ann@example.com")
    optin.send_confirmations(config, store)
    path = confirm_path(mails(tmp_path)[0])
    client = TestClient(app)
    for _ in range(3):
        assert client.head(path).status_code == 200 and client.get(path).status_code == 200
    assert [s.status for s in subscribers.listing(store, "weekly")] == ["pending"]
    assert client.post(path).status_code == 200
    assert [s.status for s in subscribers.listing(store, "weekly")] == ["active"]


@pytest.mark.parametrize(("headers", "refused"), [
    ({"Origin": "https://evil.example"}, True),
    ({"Origin": "null"}, True),
    ({"Referer": "https://evil.example/page"}, True),
    ({"Origin": "https://news.example.com.evil.example"}, True),
    ({"Origin": BASE}, False),
    ({"Referer": f"{BASE}/subscribe?newsletter=weekly"}, False),
    ({}, False),  # no browser: no visitor to abuse
])
def test_cross_site_form_posts_are_refused(config: Config, store: Store, headers: dict[str, str],
                                           refused: bool) -> None:
    reply = post(create_app(config, store, send_confirmations=False), "ann@example.com", headers=headers)
    assert reply.status_code == (403 if refused else 200)
    assert queued(store) == ([] if refused else ["ann@example.com"])


def test_cross_site_confirm_and_unsubscribe(config: Config, store: Store, tmp_path: Path) -> None:
    app = create_app(config, store, send_confirmations=False)
    post(app, "ann@example.com")
    optin.send_confirmations(config, store)
    path = confirm_path(mails(tmp_path)[0])
    evil = {"Origin": "https://evil.example"}
    client = TestClient(app)
    assert client.post(path, headers=evil).status_code == 403
    assert client.post(path, headers={"Origin": BASE}).status_code == 200
    [person] = subscribers.listing(store, "weekly")
    token = subscribers.make_token(person.id, "unsubscribe")
    assert client.post(f"/unsubscribe/{token}", headers=evil, data={"x": "y"}).status_code == 403
    assert [s.status for s in subscribers.listing(store, "weekly")] == ["active"]
    # RFC 8058: the mail provider's one-click POST works from anywhere, with no token but the link's.
    assert client.post(f"/unsubscribe/{token}", headers=evil, content=b"List-Unsubscribe=One-Click").status_code \
        == 200
    assert [s.status for s in subscribers.listing(store, "weekly")] == ["unsubscribed"]


def test_concurrent_posts_and_senders_never_fail(config: Config, store: Store, tmp_path: Path) -> None:
    """Twenty posts of one address at once over a real server, then two senders at once, two store
    handles (as two processes would have): no error, one subscriber row, one mail."""
    barrier = threading.Barrier(20)
    statuses: list[int] = []
    with serving(create_app(config, store, send_confirmations=False)) as base:
        def one(i: int) -> None:
            barrier.wait(timeout=30)
            statuses.append(httpx.post(f"{base}/subscribe", data={"email": "race@example.com", "newsletter": "weekly"},
                                       headers={"X-Forwarded-For": f"198.51.100.{i}"}, timeout=30).status_code)
        threads = [threading.Thread(target=one, args=(i,)) for i in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
    assert statuses == [200] * 20
    with store.begin() as conn:  # let the senders race over many requests for one address
        conn.execute(subscribe_requests.insert(), [{"newsletter": "weekly", "email": "race@example.com", "name": "",
                                                    "requested": now()}] * 10)
    handles = [Store.open(config.store_url()) for _ in range(2)]
    sent: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def drain(handle: Store) -> None:
        start.wait(timeout=30)
        try:
            sent.append(optin.send_confirmations(config, handle, batch=1))
        except BaseException as exc:  # reported below
            errors.append(exc)

    try:
        senders = [threading.Thread(target=drain, args=(h,)) for h in handles]
        for t in senders:
            t.start()
        for t in senders:
            t.join(timeout=60)
    finally:
        for handle in handles:
            handle.close()
    assert errors == [] and sum(sent) == 1 and len(mails(tmp_path)) == 1
    assert [s.email for s in subscribers.listing(store, "weekly")] == ["race@example.com"]
    assert queued(store) == []


def test_staff_adds_of_one_address_at_once_never_fail(config: Config, store: Store) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(8)

    def add(i: int) -> None:
        barrier.wait(timeout=30)
        try:
            subscribers.add(store, "weekly", "same@example.com" if i % 2 else "Same@example.com")
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(subscribers.listing(store, "weekly")) in (1, 2)  # one per spelling at worst, never an error


def test_an_endless_chunked_body_is_cut_off_at_the_limit(config: Config, store: Store) -> None:
    """No Content-Length, chunks without end: the app stops reading just past the limit and answers 413."""
    import anyio

    app = create_app(config, store, send_confirmations=False)
    pulled = 0
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        assert pulled < 10_000, "the app reads on and on"
        return {"type": "http.request", "body": b"e" * 4096, "more_body": True}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    for path in ("/subscribe", f"/confirm/{subscribers.make_token(1, 'confirm', nonce='n')}"):
        pulled = 0
        messages.clear()
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
                 "scheme": "https", "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"",
                 "headers": [(b"host", b"news.example.com"), (b"transfer-encoding", b"chunked"),
                             (b"content-type", b"application/x-www-form-urlencoded")],
                 "client": ("192.0.2.1", 50000), "server": ("news.example.com", 443)}
        anyio.run(app, scope, receive, send)
        assert messages[0]["status"] == 413, path
        assert pulled * 4096 <= MAX_FORM_BYTES + 4096, path
    assert queued(store) == []


def test_redirects_use_the_base_url_not_the_host_header(config: Config, store: Store) -> None:
    (config.resolve(config.site.archive_dir) / "weekly").mkdir(parents=True)
    (config.resolve(config.site.archive_dir) / "weekly" / "index.html").write_text("<h1>Weekly</h1>")
    client = TestClient(create_app(config, store, send_confirmations=False), follow_redirects=False)
    for host in ("evil.example", "news.example.com"):
        reply = client.get("/weekly", headers={"Host": host})
        assert reply.status_code in (301, 302, 307, 308)
        assert reply.headers["location"] == f"{BASE}/weekly/"


def test_pages_and_the_archive_send_security_headers(config: Config, store: Store) -> None:
    archive = config.resolve(config.site.archive_dir)
    archive.mkdir(parents=True, exist_ok=True)
    (archive / "index.html").write_text("<h1>Archive</h1>")
    client = TestClient(create_app(config, store, send_confirmations=False))
    for path in ("/", "/subscribe", "/nothing-here", "/confirm/garbage", f"/unsubscribe/{'x' * 20}"):
        reply = client.get(path)
        assert reply.headers["x-content-type-options"] == "nosniff", path
        assert reply.headers["referrer-policy"] in ("same-origin", "strict-origin-when-cross-origin"), path
        policy_ = reply.headers["content-security-policy"]
        assert policy_.startswith("default-src 'none';") and "frame-ancestors 'none'" in policy_, path
        assert "script-src" not in policy_, path
