"""Subscribers: CSV import with line numbers, the CLI, tokens, and double opt-in by real mail."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import time
from collections.abc import Callable
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from typer.testing import CliRunner

from feedletter import subscribers
from feedletter.cli import app
from feedletter.config import Config
from feedletter.deliver.outbox import queue
from feedletter.errors import DeliveryError
from feedletter.mailsink import MailSink
from feedletter.schema import issues, subscribe_requests
from feedletter.store import Store, now
from feedletter.subscribers import SubscriberError, import_csv, make_token, read_token
from feedletter.web import optin
from tests.conftest import SECRET
from tests.fixtures_email import config, email_config, store  # noqa: F401 (fixtures)

KEY = b"k" * 32


def test_csv_import_reports_every_bad_line_and_adds_nothing(store: Store) -> None:
    text = 'email,name\nann@example.com,Ann\nnot-an-address,Bob\n"cy@example.com","Cy, Jr."\nd@@x,Dee\n'
    result = import_csv(store, "weekly", text, filename="people.csv")
    assert result.added == 0
    assert result.problems == ("people.csv:3: email: not a valid address: 'not-an-address'",
                               "people.csv:5: email: not a valid address: 'd@@x'")
    assert subscribers.listing(store, "weekly") == []


def test_csv_import_with_bom_and_odd_header_case(store: Store) -> None:
    result = import_csv(store, "weekly", "\ufeffEmail , Name\nann@example.com,Ann\nANN@example.com,Ann again\n")
    assert (result.added, result.existing, result.problems) == (1, 1, ())
    [ann] = subscribers.listing(store, "weekly")
    assert (ann.email, ann.name, ann.status) == ("ann@example.com", "Ann", "active")
    with pytest.raises(SubscriberError, match="subscribers: CSV: the header row must name an 'email' column"):
        import_csv(store, "weekly", "address\nann@example.com\n")


def test_reimport_never_undoes_an_unsubscribe(store: Store) -> None:
    import_csv(store, "weekly", "email\nann@example.com\nbob@example.com\n")
    assert subscribers.remove(store, "weekly", "ANN@example.com")
    again = import_csv(store, "weekly", "email\nann@example.com\nbob@example.com\n")
    assert (again.added, again.existing, again.kept_unsubscribed) == (0, 1, 1)
    assert subscribers.add(store, "weekly", "ann@example.com").status == "unsubscribed"
    assert [s.email for s in subscribers.active(store, "weekly")] == ["bob@example.com"]


def test_tokens_are_signed_purpose_bound_and_expire() -> None:
    token = make_token(42, "unsubscribe", key=KEY)
    assert read_token(token, "unsubscribe", key=KEY) == 42
    with pytest.raises(SubscriberError, match="bad signature"):
        read_token(token, "unsubscribe", key=b"x" * 32)
    mac = token.split(".")[1]
    forged = make_token(43, "unsubscribe", key=KEY).split(".")[0] + "." + mac
    with pytest.raises(SubscriberError, match="bad signature"):
        read_token(forged, "unsubscribe", key=KEY)
    with pytest.raises(SubscriberError, match="made for unsubscribe, not confirm"):
        read_token(token, "confirm", key=KEY)
    old = make_token(42, "confirm", key=KEY, issued=time.time() - 8 * 86400)
    with pytest.raises(SubscriberError, match="expired"):
        read_token(old, "confirm", key=KEY)
    with pytest.raises(SubscriberError, match="malformed"):
        read_token("nonsense", "confirm", key=KEY)


def test_secret_must_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDLETTER_SECRET", "short")
    with pytest.raises(SubscriberError, match="FEEDLETTER_SECRET: must be set"):
        make_token(1, "confirm")


def _confirm_link(raw: bytes) -> str:
    msg = message_from_bytes(raw, policy=policy.default)
    text = msg.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    link = re.search(r"https?://\S+/confirm/\S+", text)
    assert link and link.group(0) in html
    return link.group(0)


def test_double_opt_in_over_smtp(tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    config = email_config(tmp_path, f"store: sqlite:///{tmp_path / 'fl.db'}\n")
    with MailSink() as sink:
        monkeypatch.setenv("FEEDLETTER_SMTP_URL", sink.url)
        person = optin.subscribe(config, store, "weekly", "new@example.com", "New Reader")
        assert person.status == "pending"
        [mail] = sink.received
        assert mail.recipients == ["new@example.com"] and mail.sender == "news@riverside.example"
        msg = mail.message()
        assert msg["Subject"] == "Confirm your subscription to Riverside Weekly"
        assert msg["Auto-Submitted"] == "auto-generated" and "List-Unsubscribe" not in msg
        link = _confirm_link(mail.data)
        # Pending people get no digest.
        with store.begin() as conn:
            issue = conn.execute(issues.insert().values(newsletter="weekly", number=1, issued=now(), subject="s",
                                                        preheader="", html="", text="", mjml="", data="{}"))
        assert queue(store, int(issue.inserted_primary_key[0]), "weekly", "riverside.example") == 0
        assert subscribers.confirm(store, link.rsplit("/", 1)[1]).status == "active"
        assert subscribers.confirm(store, link.rsplit("/", 1)[1]).status == "active"  # twice is harmless
        # Asking again once active sends nothing more.
        assert optin.subscribe(config, store, "weekly", "NEW@example.com").status == "active"
        assert len(sink.received) == 1


def _confirm_tokens(outbox: Path) -> list[str]:
    return [_confirm_link(eml.read_bytes()).rsplit("/", 1)[1] for eml in sorted(outbox.glob("*.eml"))]


def test_a_confirm_link_works_once_and_cannot_undo_a_later_unsubscribe(config: Config, store: Store,
                                                                         tmp_path: Path) -> None:
    optin.subscribe(config, store, "weekly", "a@example.com")
    [first] = _confirm_tokens(tmp_path / "outbox")
    assert subscribers.confirm(store, first).status == "active"
    subscribers.remove(store, "weekly", "a@example.com")
    with pytest.raises(SubscriberError, match=r"a@example\.com: is unsubscribed; this link no longer works"):
        subscribers.confirm(store, first)
    # Their own new request mails a new link at once (the first since they left), and changes nothing
    # until they use it: the old link stays dead.
    assert optin.subscribe(config, store, "weekly", "a@example.com").status == "unsubscribed"
    # The mails are named by Message-ID, whose time part counts hundredths of a second: two mails
    # that close may sort either way, so the new link is the one that is not the first.
    [second] = [token for token in _confirm_tokens(tmp_path / "outbox") if token != first]
    with pytest.raises(SubscriberError, match="this link no longer works"):
        subscribers.confirm(store, first)
    assert subscribers.confirm(store, second).status == "active"
    assert subscribers.confirm(store, second).status == "active"  # again: harmless, nothing changes


def test_confirm_links_made_before_nonces_still_work_for_those_waiting(config: Config, store: Store) -> None:
    """Links mailed by an older feedletter carried the plain row id and no nonce: they still confirm a
    person left pending then, and nobody else."""
    waiting = subscribers.add(store, "weekly", "old@example.com", status="pending")
    old_style = make_token(waiting.id, "confirm").split(".")  # re-signed with the row id in clear
    payload = f"confirm.{waiting.id}.{int(time.time()) + 86400}".encode()
    mac = hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()[:16]
    legacy = f"{_b64(payload)}.{_b64(mac)}"
    assert old_style[0] != legacy.split(".")[0]
    assert subscribers.confirm(store, legacy).status == "active"
    subscribers.remove(store, "weekly", "old@example.com")
    with pytest.raises(SubscriberError, match="is unsubscribed"):
        subscribers.confirm(store, legacy)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class _FailingFirst:
    """A mailer whose server refuses for a while, then takes the message into ``got``."""

    def __init__(self, got: list[EmailMessage], failures: int) -> None:
        self.name, self.got, self.failures = "smtp", got, failures

    def send(self, msg: EmailMessage, sender: str, recipient: str, commit: Callable[[], bool]) -> bool:
        if self.failures:
            self.failures -= 1
            raise DeliveryError("smtp", "451 try again later", transient=True)
        self.got.append(msg)
        return True

    def close(self, *, abort: bool = False) -> None:
        pass


def test_a_confirmation_that_fails_is_sent_again_later_with_the_same_link(config: Config, store: Store) -> None:
    got: list[EmailMessage] = []
    mailer = _FailingFirst(got, failures=1)
    assert optin.request(config, store, "weekly", "ann@example.com", client="192.0.2.1")
    assert optin.send_confirmations(config, store, mailers=lambda *_: mailer) == 0
    assert optin.send_confirmations(config, store, mailers=lambda *_: mailer) == 0  # waits out its back-off
    with store.begin() as conn:  # the back-off is over
        conn.execute(subscribe_requests.update().values(lease_until=now() - timedelta(seconds=1)))
    assert optin.send_confirmations(config, store, mailers=lambda *_: mailer) == 1
    token = _confirm_link(got[0].as_bytes()).rsplit("/", 1)[1]
    assert subscribers.confirm(store, token).status == "active"


def test_cli_add_import_list_remove_and_confirm(tmp_path: Path, config: Config) -> None:
    runner = CliRunner()
    cfg = ["--config", str(tmp_path / "sources.yaml")]
    csv_file = tmp_path / "people.csv"
    csv_file.write_text("email,name\nann@example.com,Ann\nbad,Bob\n")
    result = runner.invoke(app, ["subscribers", "import", str(csv_file), "-n", "weekly", *cfg])
    assert result.exit_code == 1 and f"{csv_file}:3: email: not a valid address: 'bad'" in result.output
    csv_file.write_text("email,name\nann@example.com,Ann\nbob@example.com,Bob\n")
    result = runner.invoke(app, ["subscribers", "import", str(csv_file), "-n", "weekly", *cfg])
    assert result.exit_code == 0 and "2 subscribers imported into weekly" in result.output
    (tmp_path / "one.csv").write_text("email\nfay@example.com\n")
    result = runner.invoke(app, ["subscribers", "import", str(tmp_path / "one.csv"), "-n", "weekly", *cfg])
    assert result.output.strip() == "1 subscriber imported into weekly"
    result = runner.invoke(app, ["subscribers", "add", "cy@example.com", "-n", "weekly", "--name", "Cy", *cfg])
    assert result.output.strip() == "cy@example.com: active"
    result = runner.invoke(app, ["subscribers", "add", "dee@example.com", "-n", "weekly", "--confirm", *cfg])
    assert result.output.strip() == "dee@example.com: pending (confirmation email sent)"
    [eml] = list((tmp_path / "outbox").glob("*.eml"))
    token = _confirm_link(eml.read_bytes()).rsplit("/", 1)[1]
    result = runner.invoke(app, ["subscribers", "remove", "bob@example.com", "-n", "weekly", *cfg])
    assert result.output.strip() == "bob@example.com: unsubscribed"
    result = runner.invoke(app, ["subscribers", "add", "bob@example.com", "-n", "weekly", *cfg])
    assert "bob@example.com: unsubscribed (left unsubscribed" in result.output
    result = runner.invoke(app, ["subscribers", "list", "-n", "weekly", *cfg])
    assert result.output.splitlines() == ["ann@example.com\tAnn\tactive", "bob@example.com\tBob\tunsubscribed",
                                          "fay@example.com\t\tactive", "cy@example.com\tCy\tactive",
                                          "dee@example.com\t\tpending"]
    store = Store.open(config.store_url())
    assert subscribers.confirm(store, token).email == "dee@example.com"
    store.close()
    result = runner.invoke(app, ["subscribers", "remove", "zed@example.com", "-n", "weekly", *cfg])
    assert result.exit_code == 1


def test_cli_list_and_remove_name_a_misspelt_newsletter_and_say_when_there_is_nobody(tmp_path: Path,
                                                                                    config: Config) -> None:
    runner = CliRunner()
    cfg = ["--config", str(tmp_path / "sources.yaml")]
    result = runner.invoke(app, ["subscribers", "list", "-n", "weekly", *cfg])
    assert result.exit_code == 0 and result.stdout == ""
    assert "weekly: no subscribers yet" in result.stderr
    for command in (["list"], ["remove", "ann@example.com"]):
        result = runner.invoke(app, ["subscribers", *command, "-n", "weeky", *cfg])
        # The error reaches feedletter.cli.main, which prints it as "config: FILE: …" and exits 1.
        assert "no newsletter named 'weeky' (known: weekly)" in str(result.exception), command
