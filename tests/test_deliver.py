"""Delivery through the outbox to a real SMTP server (aiosmtpd on loopback)."""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import replace
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiosmtpd.controller import Controller
from fixtures_delivery import FAST_RETRY, expire_waits, make_issue
from fixtures_tls import self_signed

from feedletter import subscribers
from feedletter.config import Config
from feedletter.deliver import IssueContent, RetryPolicy, build_message, deliver_issue, make_mailer, outbox
from feedletter.deliver.dkim import Dkim
from feedletter.deliver.message import IssueMessage
from feedletter.deliver.providers.smtp import SmtpMailer, SmtpProvider, SmtpSettings
from feedletter.errors import DeliveryError
from feedletter.issue.digest import queue_issue
from feedletter.mailsink import MailSink
from feedletter.models import Subscriber
from feedletter.schema import issues
from feedletter.schema import outbox as outbox_rows
from feedletter.schema import subscribers as subscriber_rows
from feedletter.store import Store, now

HTML = "<html><body><p>Hello %%NAME%%</p><a href=\"%%UNSUBSCRIBE_URL%%\">Unsubscribe</a></body></html>"
TEXT = "Hello\n\nUnsubscribe: %%UNSUBSCRIBE_URL%%\n"


def _issue(config: Config, store: Store, people: int) -> IssueContent:
    newsletter = config.newsletter("weekly")
    for i in range(people):
        subscribers.add(store, "weekly", f"reader{i}@example.com", f"Reader {i}")
    with store.begin() as conn:
        row = conn.execute(issues.insert().values(newsletter="weekly", number=1, issued=now(), subject="Hi",
                                                  preheader="", html=HTML, text=TEXT, mjml="", data="{}"))
        issue_id = int(row.inserted_primary_key[0])
    queue_issue(store, issue_id, newsletter)
    return IssueContent(issue_id, newsletter, "Weekly: hello", HTML, TEXT)


def _mailer(sink: MailSink) -> SmtpMailer:
    return SmtpMailer(SmtpSettings.from_url(sink.url))


def test_one_message_per_subscriber_with_both_parts_and_unsubscribe_headers(
        demo_config: Config, store: Store, sink: MailSink) -> None:
    issue = _issue(demo_config, store, 3)
    counts = deliver_issue(demo_config, store, issue, _mailer(sink))
    assert counts.sent == 3
    received = sink.received
    assert sorted(r.recipients[0] for r in received) == [f"reader{i}@example.com" for i in range(3)]
    for item in received:
        msg = item.message()
        assert msg.get_content_type() == "multipart/alternative"
        kinds = [part.get_content_type() for part in msg.iter_parts()]
        assert kinds == ["text/plain", "text/html"]
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        unsubscribe = msg["List-Unsubscribe"]
        assert "<https://news.example.com/unsubscribe/" in unsubscribe and "<mailto:" in unsubscribe
        token_url = unsubscribe.split("<", 1)[1].split(">", 1)[0]
        assert token_url in msg.get_body(("html",)).get_content()
        assert token_url in msg.get_body(("plain",)).get_content()
        assert "%%" not in msg.as_string()
        assert msg["Message-ID"].startswith("<fl.")


def test_a_rerun_sends_nothing_twice(demo_config: Config, store: Store, sink: MailSink) -> None:
    issue = _issue(demo_config, store, 4)
    deliver_issue(demo_config, store, issue, _mailer(sink))
    again = deliver_issue(demo_config, store, issue, _mailer(sink))
    assert again.sent == 0
    assert queue_issue(store, issue.issue_id, issue.newsletter) == 0
    assert len(sink.received) == 4
    assert outbox.counts(store, issue.issue_id)["sent"] == 4


def test_unsubscribed_while_in_flight_receives_nothing(demo_config: Config, store: Store, sink: MailSink) -> None:
    issue = _issue(demo_config, store, 3)
    subscribers.remove(store, "weekly", "reader1@example.com")
    deliver_issue(demo_config, store, issue, _mailer(sink))
    assert sorted(r.recipients[0] for r in sink.received) == ["reader0@example.com", "reader2@example.com"]
    assert outbox.counts(store, issue.issue_id)["skipped"] == 1


@pytest.mark.parametrize("transient", ["421 4.7.0 too busy, closing", "451 4.3.0 try again later"])
def test_transient_refusal_is_retried_in_the_same_run_and_permanent_one_fails(
        demo_config: Config, store: Store, sink: MailSink, transient: str) -> None:
    issue = _issue(demo_config, store, 3)
    tries: dict[str, int] = {}

    def rule(recipient: str, number: int) -> str | None:
        del number
        tries[recipient] = tries.get(recipient, 0) + 1
        if recipient == "reader0@example.com" and tries[recipient] <= 2:
            return transient
        if recipient == "reader2@example.com":
            return "550 5.1.1 no such user"
        return None

    sink.set_rule(rule)
    counts = deliver_issue(demo_config, store, issue, _mailer(sink), policy=FAST_RETRY)
    assert counts.sent == 2 and counts.retried == 2 and counts.failed == 1
    assert tries == {"reader0@example.com": 3, "reader1@example.com": 1, "reader2@example.com": 1}
    assert sorted(r.recipients[0] for r in sink.received) == ["reader0@example.com", "reader1@example.com"]
    assert outbox.counts(store, issue.issue_id) == {"queued": 0, "sending": 0, "sent": 2, "failed": 1,
                                                     "skipped": 0}


def test_retries_beyond_the_wait_are_left_for_the_next_run(demo_config: Config, store: Store,
                                                          sink: MailSink) -> None:
    issue = _issue(demo_config, store, 2)
    sink.set_rule(lambda recipient, number: "451 later" if number == 1 else None)
    no_wait = RetryPolicy(base=timedelta(seconds=30), wait=timedelta(0))
    first = deliver_issue(demo_config, store, issue, _mailer(sink), policy=no_wait)
    assert (first.sent, first.retried) == (1, 1)
    assert outbox.counts(store, issue.issue_id)["queued"] == 1
    expire_waits(store)
    assert deliver_issue(demo_config, store, issue, _mailer(sink), policy=no_wait).sent == 1
    assert len(sink.received) == 2


@pytest.mark.parametrize("drop_at", [2, 5])
def test_dropped_connection_mid_batch_loses_and_repeats_nothing(
        demo_config: Config, store: Store, sink: MailSink, drop_at: int) -> None:
    issue = _issue(demo_config, store, 8)
    sink.set_rule(lambda recipient, number: "DROP" if number == drop_at else None)
    first = deliver_issue(demo_config, store, issue, _mailer(sink), policy=FAST_RETRY)
    second = deliver_issue(demo_config, store, issue, _mailer(sink), policy=FAST_RETRY)
    assert second.sent == 0
    got = sorted(r.recipients[0] for r in sink.received)
    assert got == sorted(f"reader{i}@example.com" for i in range(8))
    assert first.sent + second.sent == 8


# --- SMTP features against real aiosmtpd servers --------------------------------------------------

class _Recorder:
    """An aiosmtpd handler that keeps each message with the session (connection) it came on."""

    def __init__(self) -> None:
        self.messages: list[tuple[int, str, bytes]] = []

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        content = envelope.content  # type: ignore[attr-defined]
        self.messages.append((id(session), envelope.rcpt_tos[0], content))  # type: ignore[attr-defined]
        return "250 OK"


def _authenticator(logins: list[bytes]) -> Any:
    from aiosmtpd.smtp import AuthResult, LoginPassword

    def check(server: object, session: object, envelope: object, mechanism: str, data: object) -> AuthResult:
        assert isinstance(data, LoginPassword)
        logins.append(data.login)
        # handled=False: aiosmtpd then answers 535 itself instead of leaving the client waiting.
        return AuthResult(success=data.login == b"mailer" and data.password == b"s3cret p@ss", handled=False)

    return check


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
def test_tls_and_auth_against_a_self_signed_server(demo_config: Config, store: Store, tmp_path: Path,
                                                   mode: str) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    recorder, logins = _Recorder(), []
    port = _free_port()
    options: dict[str, Any] = {"authenticator": _authenticator(logins), "auth_required": True}
    if mode == "starttls":
        options.update(tls_context=server_tls, require_starttls=True)
    else:
        # Implicit TLS: aiosmtpd cannot tell the session is encrypted, so let it offer AUTH anyway.
        options.update(ssl_context=server_tls, auth_require_tls=False)
    controller = Controller(recorder, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        scheme, query = ("smtp", "starttls=1&") if mode == "starttls" else ("smtps", "")
        url = f"{scheme}://mailer:s3cret%20p%40ss@127.0.0.1:{port}?{query}cafile={cert}"
        issue = _issue(demo_config, store, 3)
        counts = deliver_issue(demo_config, store, issue, SmtpMailer(SmtpSettings.from_url(url)), policy=FAST_RETRY)
        assert counts.sent == 3
        assert len({session for session, _, _ in recorder.messages}) == 1, "one connection for all messages"
        assert logins == [b"mailer"]
        wrong = SmtpMailer(SmtpSettings.from_url(url.replace("s3cret", "guess")))
        with pytest.raises(DeliveryError, match="authentication failed") as refused:
            wrong.send(_plain_message(), "news@riverside.example", "x@example.com", lambda: True)
        assert not refused.value.transient
        untrusted = SmtpMailer(SmtpSettings.from_url(url.split("cafile=")[0]))
        with pytest.raises(DeliveryError, match="cannot connect"):
            untrusted.send(_plain_message(), "news@riverside.example", "x@example.com", lambda: True)
    finally:
        controller.stop()


def _plain_message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"], msg["Message-ID"] = "news@riverside.example", "x@example.com", "t", "<t@x>"
    msg.set_content("hello")
    return msg


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_rate_limit_spaces_messages(demo_config: Config, store: Store, sink: MailSink) -> None:
    issue = _issue(demo_config, store, 6)
    started = time.monotonic()
    deliver_issue(demo_config, store, issue, SmtpMailer(SmtpSettings.from_url(sink.url), rate_per_second=10),
                  policy=FAST_RETRY)
    assert time.monotonic() - started >= 0.5  # 6 messages at 10/s: at least 5 gaps of 0.1 s
    assert len(sink.received) == 6


def test_permanent_refusals_mark_the_subscriber_bounced_after_the_limit(
        demo_config: Config, store: Store, sink: MailSink) -> None:
    sink.set_rule(lambda recipient, number: "550 5.1.1 no such user" if recipient == "reader1@example.com" else None)
    policy = RetryPolicy(base=timedelta(milliseconds=10), wait=timedelta(seconds=5), bounce_limit=2)
    first = _issue(demo_config, store, 2)
    deliver_issue(demo_config, store, first, _mailer(sink), policy=policy)
    assert subscribers.get(store, 2).status == "active"  # type: ignore[union-attr]
    second = make_issue(demo_config, store, 0)
    deliver_issue(demo_config, store, second, _mailer(sink), policy=policy)
    assert subscribers.get(store, 2).status == "bounced"  # type: ignore[union-attr]
    third = make_issue(demo_config, store, 0)
    assert outbox.counts(store, third.issue_id)["queued"] == 1  # only reader0 is queued now


def test_reconnects_when_the_server_dropped_an_idle_connection(demo_config: Config, store: Store,
                                                               tmp_path: Path) -> None:
    issue = _issue(demo_config, store, 4)
    port = _free_port()
    first_server = MailSink(port=port).start()
    mailer = SmtpMailer(SmtpSettings.from_url(first_server.url))
    items = outbox.claim(store, issue.issue_id, "me", limit=4)
    assert mailer.send(_plain_message(), "news@riverside.example", items[0].email, lambda: True)
    first_server.stop()  # the server goes away while our connection sits idle
    with MailSink(port=port) as second_server:
        assert mailer.send(_plain_message(), "news@riverside.example", items[1].email, lambda: True)
        mailer.close()
        assert [r.recipients[0] for r in second_server.received] == [items[1].email]


def test_dkim_signature_verifies_against_the_public_key(demo_config: Config, store: Store, sink: MailSink,
                                                        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import base64

    import dkim
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    (tmp_path / "dkim.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.TraditionalOpenSSL,
                                                          serialization.NoEncryption()))
    public = base64.b64encode(key.public_key().public_bytes(serialization.Encoding.DER,
                                                            serialization.PublicFormat.SubjectPublicKeyInfo))
    smtp = SmtpProvider(dkim=Dkim(domain="riverside.example", selector="fl2025", key_file=str(tmp_path / "dkim.pem")))
    config = demo_config.model_copy(update={"providers": demo_config.providers.model_copy(update={"smtp": smtp})})
    object.__setattr__(config, "_source_path", demo_config._path)
    monkeypatch.setenv("FEEDLETTER_SMTP_URL", sink.url)
    issue = _issue(config, store, 2)
    assert deliver_issue(config, store, issue, make_mailer(config, issue.newsletter), policy=FAST_RETRY).sent == 2
    looked_up: list[bytes] = []

    def dns(name: bytes, timeout: int = 5) -> bytes:
        looked_up.append(name)
        return b"v=DKIM1; k=rsa; p=" + public

    for item in sink.received:
        assert item.data.startswith(b"DKIM-Signature:")
        assert dkim.verify(item.data, dnsfunc=dns)
        tampered = item.data.replace(b"Subject: Weekly: hello", b"Subject: Weekly: HELLO")
        assert not dkim.verify(tampered, dnsfunc=dns)
    assert looked_up[0] == b"fl2025._domainkey.riverside.example."


def test_issue_message_matches_build_message(demo_config: Config) -> None:
    newsletter = demo_config.newsletter("weekly")
    person = Subscriber(7, "weekly", "zoe@example.com", "Zoë \"Z\" Ünal\n")
    html = ("<p>Hi %%NAME%%</p><p>caf\u00e9 = \u2603 " + "x" * 300 + "</p>\n.\n"
            '<a href="%%UNSUBSCRIBE_URL%%">u</a>')
    text = "Hi %%NAME%%\n" + "\u00e9" * 200 + "\n.\nUnsubscribe: %%UNSUBSCRIBE_URL%%\n"
    url = "https://news.example.com/unsubscribe/tok&en"
    fast = IssueMessage(sender=newsletter.sender, subject="Café news ☃", html=html, text=text,
                        list_id="weekly", reply_to="Desk <desk@riverside.example>")
    data = fast.for_subscriber(person, message_id="<m@x>", unsubscribe_url=url).data
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")
    got = message_from_bytes(data, policy=policy.default)
    want = build_message(sender=newsletter.sender, subscriber=Subscriber(7, "weekly", "zoe@example.com",
                                                                         'Zoë "Z" Ünal'),
                         subject="Café news ☃", html=html, text=text, message_id="<m@x>", unsubscribe_url=url,
                         list_id="weekly", reply_to="Desk <desk@riverside.example>")
    want = message_from_bytes(want.as_bytes(), policy=policy.default)
    for header in ("From", "To", "Subject", "Message-ID", "Reply-To", "List-Unsubscribe", "List-Unsubscribe-Post",
                   "List-Id", "Precedence", "Auto-Submitted"):
        assert str(got[header]) == str(want[header]), header
    for kind in ("plain", "html"):
        assert got.get_body((kind,)).get_content() == want.get_body((kind,)).get_content()  # type: ignore[union-attr]
    assert "Zoë &quot;Z&quot; Ünal" in got.get_body(("html",)).get_content()  # type: ignore[union-attr]


def test_file_provider_writes_one_eml_per_subscriber_once(demo_config: Config, store: Store) -> None:
    config = demo_config.model_copy(update={"newsletters": [demo_config.newsletter("weekly").model_copy(
        update={"provider": "file"})]})
    object.__setattr__(config, "_source_path", demo_config._path)
    issue = _issue(config, store, 3)
    mailer = make_mailer(config, issue.newsletter)
    assert deliver_issue(config, store, issue, mailer, policy=FAST_RETRY).sent == 3
    assert deliver_issue(config, store, issue, make_mailer(config, issue.newsletter), policy=FAST_RETRY).sent == 0
    files = sorted(config.resolve(config.providers.file.dir).glob("*"))
    assert len(files) == 3 and all(f.suffix == ".eml" for f in files)
    parsed = message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.parametrize("subject", [
    "Riverside Weekly: Kingfisher Footbridge opens across the Wren… +9 more",
    "Новости недели: мост через реку открыт после девятнадцати месяцев работ",
    "A plain ASCII subject long enough that the header has to be folded once or twice"])
def test_a_long_subject_reads_back_exactly_with_no_doubled_space(subject: str) -> None:
    """Python's folding encodes only the non-ASCII words and leaves a space at the end of the folded
    line, which mail clients unfold into two ("across the  Wren…"): the subject is encoded whole."""
    person = Subscriber(7, "weekly", "zoe@example.com", "Zoë")
    message = IssueMessage(sender="Weekly <news@riverside.example>", subject=subject, html="<p>x</p>", text="x",
                           list_id="weekly")
    data = message.for_subscriber(person, message_id="<m@x>", unsubscribe_url="https://n.example/u/t").data
    assert all(len(line) <= 78 for line in data.split(b"\r\n\r\n")[0].split(b"\r\n") if line.startswith(
        (b"Subject", b" ")))
    assert message_from_bytes(data, policy=policy.default)["Subject"] == subject
    # A test send (and a dry run's digest.eml) is one EmailMessage made by build_message: the same.
    single = build_message(sender="Weekly <news@riverside.example>", subscriber=person, subject=subject,
                           html="<p>x</p>", text="x", message_id="<m@x>",
                           unsubscribe_url="https://n.example/u/t", list_id="weekly", test=True)
    data = single.as_bytes()
    assert all(len(line) <= 78 for line in data.split(b"\r\n\r\n")[0].split(b"\r\n"))
    assert message_from_bytes(data, policy=policy.default)["Subject"].lstrip() == f"[TEST] {subject}"
    assert single["Subject"] == f"[TEST] {subject}"


# --- an unreachable provider: the issue pauses, its messages stay queued ----------------------------

FAST_PAUSE = replace(FAST_RETRY, pause_gap=timedelta(milliseconds=50))


def _refusing_login(port: int) -> Controller:
    from aiosmtpd.smtp import AuthResult

    def no(*args: object) -> AuthResult:
        return AuthResult(success=False, handled=False)

    return Controller(_Recorder(), hostname="127.0.0.1", port=port, authenticator=no, auth_required=True,
                      auth_require_tls=False)


@pytest.mark.parametrize("outage, cause", [
    ("nothing listening", "connection refused"),
    ("no such host", "host not found"),
    ("TLS to a plain server", "TLS error"),
    ("login refused", "authentication failed"),
])
def test_an_unreachable_server_pauses_the_issue_within_seconds_and_blames_no_one(
        demo_config: Config, store: Store, outage: str, cause: str) -> None:
    port = _free_port()
    url = {"nothing listening": f"smtp://127.0.0.1:{port}", "no such host": "smtp://mail.feedletter-test.invalid:25",
           "TLS to a plain server": f"smtps://127.0.0.1:{port}",
           "login refused": f"smtp://mailer:wrong@127.0.0.1:{port}"}[outage]
    server = MailSink(port=port).start() if outage == "TLS to a plain server" else \
        _refusing_login(port) if outage == "login refused" else None
    if isinstance(server, Controller):
        server.start()
    issue = _issue(demo_config, store, 5)
    done: list[int] = []
    started = time.monotonic()
    try:
        counts = deliver_issue(demo_config, store, issue, SmtpMailer(SmtpSettings.from_url(url)),
                               policy=FAST_PAUSE, progress=done.append)
    finally:
        if server is not None:
            server.stop()
    assert time.monotonic() - started < 10
    assert counts.paused == f"SMTP unreachable ({cause}) after 3 tries"
    assert (counts.sent, counts.failed, counts.retried, done) == (0, 0, 0, [])
    # Paused, not failed: every message still queued, due at once, no try counted, no bounce.
    assert outbox.counts(store, issue.issue_id)["queued"] == 5
    [state] = outbox.deliveries(store, issue_ids=[issue.issue_id])
    assert (state.state, state.paused) == ("paused", counts.paused)
    with store.begin() as conn:
        rows = conn.execute(sa.select(outbox_rows.c.attempts, outbox_rows.c.not_before)).all()
        bounces = conn.execute(sa.select(sa.func.sum(subscriber_rows.c.bounces))).scalar_one()
    assert all(attempts == 0 and not_before is None for attempts, not_before in rows) and bounces == 0


def test_a_paused_issue_is_delivered_once_the_server_is_back(demo_config: Config, store: Store) -> None:
    port = _free_port()
    issue = _issue(demo_config, store, 5)
    mailer = SmtpMailer(SmtpSettings.from_url(f"smtp://127.0.0.1:{port}"))
    assert deliver_issue(demo_config, store, issue, mailer, policy=FAST_PAUSE).paused
    with MailSink(port=port) as back:
        done: list[int] = []
        counts = deliver_issue(demo_config, store, issue, SmtpMailer(SmtpSettings.from_url(back.url)),
                               policy=FAST_PAUSE, progress=done.append)
        assert (counts.sent, counts.paused, sum(done)) == (5, None, 5)
        assert sorted(r.recipients[0] for r in back.received) == [f"reader{i}@example.com" for i in range(5)]
    [state] = outbox.deliveries(store, issue_ids=[issue.issue_id])
    assert (state.state, state.paused, state.counts["sent"]) == ("delivered", None, 5)


def test_progress_counts_recipients_not_attempts(demo_config: Config, store: Store, sink: MailSink) -> None:
    issue = _issue(demo_config, store, 3)
    tries: dict[str, int] = {}

    def rule(recipient: str, number: int) -> str | None:
        tries[recipient] = tries.get(recipient, 0) + 1
        return "451 4.3.0 later" if tries[recipient] <= 3 else None

    sink.set_rule(rule)
    done: list[int] = []
    counts = deliver_issue(demo_config, store, issue, _mailer(sink), policy=FAST_RETRY, progress=done.append)
    assert counts.sent == 3 and sum(tries.values()) == 12
    assert sum(done) == 3  # the bar reads 3/3, not 12/3


def test_a_run_waiting_out_a_back_off_says_what_it_waits_for(demo_config: Config, store: Store, sink: MailSink,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    issue = _issue(demo_config, store, 2)
    sink.set_rule(lambda recipient, number: "451 4.3.0 later" if number == 1 else None)
    policy = RetryPolicy(base=timedelta(seconds=1.5), wait=timedelta(seconds=30))
    with caplog.at_level("WARNING", logger="feedletter.deliver"):
        counts = deliver_issue(demo_config, store, issue, _mailer(sink), policy=policy)
    assert counts.sent == 2
    said = [r.getMessage() for r in caplog.records if "waiting to retry" in r.getMessage()]
    assert said and said[0].startswith("weekly: waiting to retry 1 message refused for now (the next in")
