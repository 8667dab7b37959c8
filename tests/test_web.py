"""The web app: in-process through Starlette's TestClient, and once over a real loopback uvicorn."""

from __future__ import annotations

import re
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
import uvicorn

with warnings.catch_warnings():
    # Starlette would like httpx2 for its TestClient; httpx is what is installed and works.
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from feedletter import subscribers
from feedletter.config import Config
from feedletter.deliver import IssueContent, deliver_issue, unsubscribe_url
from feedletter.deliver.outbox import counts
from feedletter.deliver.providers.smtp import SmtpMailer, SmtpSettings
from feedletter.issue import render
from feedletter.issue.digest import queue_issue
from feedletter.mailsink import MailSink
from feedletter.schema import issues
from feedletter.store import Store, now
from feedletter.subscribers import make_token
from feedletter.web import optin
from feedletter.web.app import create_app
from tests.fixtures_email import config, email_config, render_sample, store  # noqa: F401 (fixtures)

ABOUT = """\
    description: Riverside news, every week.
    schedule: {cron: "0 8 * * MON", timezone: Europe/Berlin}
    logo: {url: "https://cdn.example.org/riverside.png", alt: "Riverside Weekly: the river", width: 120}
"""
ONE_CLICK = {"content": b"List-Unsubscribe=One-Click",
             "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


@pytest.fixture
def client(config: Config, store: Store) -> Iterator[TestClient]:
    # Confirmation mails are sent by send_confirmations() in the tests, not by the app's thread.
    with TestClient(create_app(config, store, send_confirmations=False)) as test_client:
        yield test_client


def _status(store: Store, email: str) -> str:
    return next(s.status for s in subscribers.listing(store, "weekly") if s.email == email)


def test_get_asks_to_confirm_and_changes_nothing(client: TestClient, store: Store) -> None:
    person = subscribers.add(store, "weekly", "ann@example.com")
    token = make_token(person.id, "unsubscribe")
    page = client.get(f"/unsubscribe/{token}")
    assert page.status_code == 200
    text = " ".join(page.text.split())
    assert "<h1>Unsubscribe from Riverside Weekly?</h1>" in text and "ann@example.com" in text
    assert "Nothing has changed yet" in text and "will receive no more" not in text and "unsubscribed" not in text
    # The button posts what RFC 8058 one-click posts, to the same address.
    assert ('<form method="post"> <input type="hidden" name="List-Unsubscribe" value="One-Click"> '
            '<button type="submit">Unsubscribe</button> </form>') in text
    assert '<a href="../weekly/">No, keep my subscription</a>' in text
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "same-origin"
    assert client.head(f"/unsubscribe/{token}").status_code == 200
    assert _status(store, "ann@example.com") == "active"


def test_one_click_post_unsubscribes_and_answers_200_every_time(client: TestClient, store: Store) -> None:
    person = subscribers.add(store, "weekly", "ann@example.com")
    token = make_token(person.id, "unsubscribe")
    for _ in range(2):
        reply = client.post(f"/unsubscribe/{token}", **ONE_CLICK)  # type: ignore[arg-type]
        assert reply.status_code == 200 and "You are unsubscribed" in reply.text
        assert '<a href="../subscribe?newsletter=weekly">Subscribe again</a>' in reply.text
    assert _status(store, "ann@example.com") == "unsubscribed"
    assert "no longer receives Riverside Weekly" in client.get(f"/unsubscribe/{token}").text


def test_one_click_post_as_multipart_works_too(client: TestClient, store: Store) -> None:
    person = subscribers.add(store, "weekly", "bob@example.com")
    reply = client.post(f"/unsubscribe/{make_token(person.id, 'unsubscribe')}",
                        files={"List-Unsubscribe": (None, "One-Click")})
    assert reply.status_code == 200 and _status(store, "bob@example.com") == "unsubscribed"


def test_bad_links_are_refused_without_changing_anything(client: TestClient, store: Store) -> None:
    person = subscribers.add(store, "weekly", "ann@example.com")
    confirm = make_token(person.id, "confirm")
    expired = make_token(person.id, "unsubscribe", issued=time.time() - 11 * 365 * 86400)
    for path, status, words in [(f"/unsubscribe/{confirm}", 400, "is not valid"),
                                (f"/unsubscribe/{confirm[:-2]}xx", 400, "is not valid"),
                                (f"/unsubscribe/{expired}", 400, "has expired"),
                                (f"/unsubscribe/{make_token(999, 'unsubscribe')}", 404, "no longer on our list"),
                                ("/confirm/garbage", 400, "is not valid")]:
        reply = client.post(path, **ONE_CLICK) if path.startswith("/unsub") else client.get(path)  # type: ignore[arg-type]
        assert (reply.status_code, words in reply.text) == (status, True), path
        assert '<a href="../">All newsletters</a>' in reply.text, path  # a way on from a dead end
    assert _status(store, "ann@example.com") == "active"


def _link(eml: Path, kind: str) -> str:
    msg = message_from_bytes(eml.read_bytes(), policy=policy.default)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    found = re.search(rf"https://news\.example\.com(/{kind}/\S+)", text)
    assert found
    return found.group(1)


def test_subscribe_form_then_confirm_link(client: TestClient, config: Config, store: Store, tmp_path: Path) -> None:
    form = client.get("/subscribe?newsletter=weekly")
    assert form.status_code == 200 and "<h1>Riverside Weekly</h1>" in form.text
    assert '<form method="post" action="subscribe">' in form.text
    assert '<input type="hidden" name="newsletter" value="weekly">' in form.text
    assert client.get("/subscribe").text == form.text  # the only newsletter: its form
    reply = client.post("/subscribe", data={"email": "new@example.com", "newsletter": "weekly", "name": "N"})
    assert reply.status_code == 200 and "Check your inbox" in reply.text
    assert '<a href="weekly/">Read past issues of Riverside Weekly</a>' in reply.text
    assert subscribers.listing(store, "weekly") == []  # queued: the request does nothing more
    assert optin.send_confirmations(config, store) == 1
    assert _status(store, "new@example.com") == "pending"
    [eml] = list((tmp_path / "outbox").glob("*.eml"))
    # Opening the link asks first (link scanners open every link); the button's POST confirms.
    for _ in range(2):
        assert client.head(_link(eml, "confirm")).status_code == 200
        page = client.get(_link(eml, "confirm"))
        assert page.status_code == 200 and "<h1>Confirm your subscription to Riverside Weekly</h1>" in page.text
        assert '<form method="post"> <button type="submit">Confirm my subscription</button>' in _page(page)
    assert _status(store, "new@example.com") == "pending"
    confirm = client.post(_link(eml, "confirm"))
    assert confirm.status_code == 200 and "Subscription confirmed" in confirm.text
    assert '<a href="../weekly/">Read past issues of Riverside Weekly</a>' in confirm.text
    assert _status(store, "new@example.com") == "active"
    # Asking again answers the same and mails nothing: the form does not tell who is subscribed.
    again = client.post("/subscribe", data={"email": "new@example.com", "newsletter": "weekly"})
    assert again.status_code == 200 and again.text == reply.text
    assert optin.send_confirmations(config, store) == 0
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1


def test_the_app_mails_confirm_links_from_its_own_thread(config: Config, store: Store, tmp_path: Path) -> None:
    with TestClient(create_app(config, store)) as client:  # the lifespan starts the sender
        reply = client.post("/subscribe", data={"email": "new@example.com", "newsletter": "weekly"})
        assert reply.status_code == 200
        deadline = time.monotonic() + 20
        while not list((tmp_path / "outbox").glob("*.eml")):
            assert time.monotonic() < deadline, "no confirmation mail from the app's thread"
            time.sleep(0.05)
    assert _status(store, "new@example.com") == "pending"


def test_subscribe_form_says_what_the_newsletter_is(tmp_path: Path) -> None:
    config = email_config(tmp_path, ABOUT + f"store: sqlite:///{tmp_path / 'fl.db'}\n")
    handle = Store.open(config.store_url())
    try:
        with TestClient(create_app(config, handle)) as client:
            form = client.get("/subscribe?newsletter=weekly")
    finally:
        handle.close()
    assert form.status_code == 200
    assert ('<img class="logo" src="https://cdn.example.org/riverside.png" alt="Riverside Weekly: the river" '
            'width="120">') in form.text
    assert "<h1>Riverside Weekly</h1>" in form.text
    assert '<p class="description">Riverside news, every week.</p>' in form.text
    assert "A new issue every Monday at 08:00 (Europe/Berlin)." in form.text
    # The logo is the one thing the page loads from elsewhere, and only from the logo's own host.
    assert "img-src https://cdn.example.org;" in form.headers["content-security-policy"]
    assert form.headers["content-security-policy"].startswith("default-src 'none';")


def _page(reply: httpx.Response) -> str:
    assert reply.text.startswith("<!doctype html>") and "<h1>" in reply.text and "</html>" in reply.text
    return " ".join(reply.text.split())


def test_a_refused_address_shows_the_form_again_filled_in(client: TestClient, store: Store) -> None:
    reply = client.post("/subscribe", data={"email": "ann.example.com", "newsletter": "weekly", "name": "Ann"})
    page = _page(reply)
    assert reply.status_code == 400 and "<h1>Check the address</h1>" in page
    assert '<p class="problem" role="alert">“ann.example.com” is not a valid email address.</p>' in page
    assert 'name="email" value="ann.example.com"' in page and 'name="name" value="Ann"' in page
    assert '<a href="weekly/">Read past issues of Riverside Weekly</a>' in page and '<a href="./">' in page
    empty = client.post("/subscribe", data={"email": "", "newsletter": "weekly"})
    assert empty.status_code == 400 and "Please enter an email address." in empty.text
    assert subscribers.listing(store, "weekly") == []


@pytest.mark.parametrize("ask", ["post", "get"])
def test_an_unknown_newsletter_is_a_404_page_listing_the_known_ones(client: TestClient, ask: str) -> None:
    reply = client.post("/subscribe", data={"email": "a@example.com", "newsletter": "monthly"}) if ask == "post" \
        else client.get("/subscribe?newsletter=monthly")
    page = _page(reply)
    assert reply.status_code == 404 and "<h1>Unknown newsletter</h1>" in page
    assert "There is no newsletter called “monthly”." in page
    assert '<a href="subscribe?newsletter=weekly">Riverside Weekly</a>' in page
    assert '<a href="./">All newsletters</a>' in page


def test_several_newsletters_make_a_choice(tmp_path: Path) -> None:
    config = email_config(tmp_path, "  - {name: monthly, title: Riverside Monthly, description: The long reads.}\n"
                          f"store: sqlite:///{tmp_path / 'fl.db'}\n")
    handle = Store.open(config.store_url())
    try:
        with TestClient(create_app(config, handle)) as client:
            reply = client.get("/subscribe")
    finally:
        handle.close()
    page = _page(reply)
    assert reply.status_code == 200 and "Which newsletter would you like?" in page
    assert '<a href="subscribe?newsletter=weekly">Riverside Weekly</a>' in page
    assert ('<a href="subscribe?newsletter=monthly">Riverside Monthly</a><br><span class="meta">The long reads.'
            '</span>') in page


@pytest.mark.parametrize(("data", "status"), [({"email": "nope", "newsletter": "weekly"}, 400),
                                              ({"email": "a@example.com", "newsletter": "monthly"}, 404)])
def test_subscribe_rejects_bad_input(client: TestClient, store: Store, data: dict[str, str], status: int) -> None:
    assert client.post("/subscribe", data=data).status_code == status
    assert subscribers.listing(store, "weekly") == []


def test_subscribe_escapes_what_it_echoes(client: TestClient) -> None:
    reply = client.post("/subscribe", data={"email": "<script>x</script>", "newsletter": "weekly"})
    assert reply.status_code == 400 and "<script>x" not in reply.text and "&lt;script&gt;x" in reply.text
    unknown = client.get('/subscribe?newsletter="><script>y</script>')
    assert unknown.status_code == 404 and "<script>y" not in unknown.text


def test_serves_the_static_archive(client: TestClient, config: Config) -> None:
    archive = config.resolve(config.site.archive_dir)
    (archive / "weekly" / "3").mkdir(parents=True)
    (archive / "index.html").write_text("<h1>Archive</h1>")
    (archive / "weekly" / "3" / "index.html").write_text("<h1>Issue 3</h1>")
    assert client.get("/").text == "<h1>Archive</h1>"
    assert client.get("/weekly/3/").text == "<h1>Issue 3</h1>"
    assert client.get("/weekly/4/").status_code == 404


# --- end to end over loopback: render once, unsubscribe through the server, deliver ----------

@contextmanager
def serving(app: object) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",  # type: ignore[arg-type]
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _issue(config: Config, store: Store, number: int) -> IssueContent:
    rendered = render_sample(config, number=number)
    with store.begin() as conn:
        row = conn.execute(issues.insert().values(
            newsletter="weekly", number=number, issued=now(), subject=rendered.subject, preheader="",
            html=rendered.html, text=rendered.text, mjml=rendered.mjml, data="{}"))
    issue_id = int(row.inserted_primary_key[0])
    queue_issue(store, issue_id, config.newsletter("weekly"))
    return IssueContent(issue_id, config.newsletter("weekly"), rendered.subject, rendered.html, rendered.text)


def _one_click(base: str, message_url: str) -> None:
    reply = httpx.post(base + httpx.URL(message_url).path, content=b"List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status_code == 200


def test_unsubscribed_through_the_server_gets_nothing_more(config: Config, store: Store,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[int] = []
    real = render.mjml2html
    monkeypatch.setattr(render, "mjml2html", lambda *a, **k: compiled.append(1) or real(*a, **k))
    people = [subscribers.add(store, "weekly", f"reader{i}@example.com", f"Reader {i}") for i in range(4)]
    with MailSink() as sink, serving(create_app(config, store)) as base:
        issue = _issue(config, store, 1)  # queued for all four: now in flight
        _one_click(base, unsubscribe_url(config, people[1].id))
        assert deliver_issue(config, store, issue, SmtpMailer(SmtpSettings.from_url(sink.url))).sent == 3
        assert counts(store, issue.issue_id)["skipped"] == 1
        # Each message carries its own working one-click link; reader 2 uses theirs.
        msg = next(r.message() for r in sink.received if r.recipients == ["reader2@example.com"])
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        _one_click(base, msg["List-Unsubscribe"].split("<", 1)[1].split(">", 1)[0])
        second = _issue(config, store, 2)
        deliver_issue(config, store, second, SmtpMailer(SmtpSettings.from_url(sink.url)))
    got = [r.recipients[0] for r in sink.received]
    assert sorted(got) == ["reader0@example.com", "reader0@example.com", "reader2@example.com",
                           "reader3@example.com", "reader3@example.com"]
    assert compiled == [1, 1], "MJML is compiled once per digest, not per subscriber"
    first = sink.received[0].message()
    html = first.get_body(("html",)).get_content()  # type: ignore[union-attr]
    own_link = first["List-Unsubscribe"].split("<", 1)[1].split(">", 1)[0]
    assert "%%" not in html and f'href="{own_link}"' in html


class _UnsubscribeMidBatch:
    """A mailer that, while sending the first message of a batch, lets a later recipient unsubscribe."""

    def __init__(self, inner: SmtpMailer, act: Callable[[], None]) -> None:
        self.name, self.inner, self.act, self.calls = "smtp", inner, act, 0

    def send(self, msg: EmailMessage, sender: str, recipient: str, commit: Callable[[], bool]) -> bool:
        self.calls += 1
        if self.calls == 1:
            self.act()
        return self.inner.send(msg, sender, recipient, commit)

    def close(self, *, abort: bool = False) -> None:
        self.inner.close(abort=abort)


def test_unsubscribe_during_the_batch_being_sent(config: Config, store: Store) -> None:
    people = [subscribers.add(store, "weekly", f"reader{i}@example.com") for i in range(3)]
    with MailSink() as sink, serving(create_app(config, store)) as base:
        issue = _issue(config, store, 1)
        mailer = _UnsubscribeMidBatch(SmtpMailer(SmtpSettings.from_url(sink.url)),
                                      lambda: _one_click(base, unsubscribe_url(config, people[2].id)))
        deliver_issue(config, store, issue, mailer)  # type: ignore[arg-type]
    assert "reader2@example.com" not in [r.recipients[0] for r in sink.received]


@pytest.mark.slow
def test_feedletter_web_command_serves_and_needs_the_secret(tmp_path: Path, config: Config) -> None:
    import os
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": root}
    command = [sys.executable, "-m", "feedletter.cli", "web", "--config", str(tmp_path / "sources.yaml"),
               "--port", str(port)]
    refused = subprocess.run(command, env={**env, "FEEDLETTER_SECRET": ""}, capture_output=True, text=True,
                             timeout=60, check=False)
    assert refused.returncode == 1 and refused.stderr.startswith("subscribers: FEEDLETTER_SECRET: must be set")
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                reply = httpx.get(f"http://127.0.0.1:{port}/subscribe")
                break
            except httpx.TransportError:
                assert process.poll() is None and time.monotonic() < deadline, "feedletter web did not start"
                time.sleep(0.2)
        assert reply.status_code == 200 and "Riverside Weekly" in reply.text
    finally:
        process.terminate()
        process.wait(timeout=10)
