"""FEEDLETTER_SECRET that looks set but is guessable, and links that showed subscribers' row ids (issue 19)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

import pytest
from typer.testing import CliRunner

from feedletter import subscribers
from feedletter.cli import app
from feedletter.config import Config
from feedletter.deliver import unsubscribe_url
from feedletter.store import Store
from feedletter.subscribers import SubscriberError, make_token, read_token
from feedletter.tokens import DEMO_ENV, DEMO_SECRET, MAKE_ONE, opaque_id, row_id, secret
from tests.conftest import SECRET
from tests.fixtures_email import config, store  # noqa: F401 (fixtures)

KEY = secrets.token_bytes(32)


@pytest.mark.parametrize(("value", "why"), [
    ("", "it is not set"),
    ("short-secret", "too short (12 characters"),
    (DEMO_SECRET, "the demo's value"),
    ("change-me", "well-known placeholder"),
    ("Change_Me_In_Production", "well-known placeholder"),
    ("a" * 40, "repeats too few characters"),
    ("abcdefgh" * 4, "repeats a short pattern"),
    ("s3cr3tK3y!" * 3, "repeats a short pattern"),
    ("abcdefghijklmnopqrstuvwxyz", "plain sequence"),
    ("0123456789abcdefghijXY", "plain sequence"),
    ("aaaaaaaabbbbbbbbcdefghij", "too predictable"),
])
def test_weak_secrets_are_refused_with_a_way_to_make_one(monkeypatch: pytest.MonkeyPatch, value: str,
                                                         why: str) -> None:
    monkeypatch.setenv("FEEDLETTER_SECRET", value)
    monkeypatch.delenv(DEMO_ENV, raising=False)
    with pytest.raises(SubscriberError) as refused:
        make_token(1, "unsubscribe")
    message = str(refused.value)
    assert message.startswith("subscribers: FEEDLETTER_SECRET: must be set to a long random string")
    assert why in message and MAKE_ONE in message
    assert value not in message or len(value) < 4  # the refused value itself is not printed


# Ids name the random values by how they were made: every test process (pytest-xdist's workers too)
# must collect the same test ids.
@pytest.mark.parametrize("value", [secrets.token_urlsafe(32), secrets.token_hex(16), SECRET,
                                   "bench-secret-0123456789abcdef0123", "correct horse battery staple xkcd"],
                         ids=["token_urlsafe", "token_hex", "test secret", "bench secret", "passphrase"])
def test_good_secrets_are_taken(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("FEEDLETTER_SECRET", value)
    assert secret() == value.encode()


def test_the_demo_secret_only_in_the_demo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDLETTER_SECRET", DEMO_SECRET)
    monkeypatch.delenv(DEMO_ENV, raising=False)
    with pytest.raises(SubscriberError, match="the demo's value"):
        secret()
    monkeypatch.setenv(DEMO_ENV, "1")  # what demo/run.py sets, with the demo's secret
    assert secret() == DEMO_SECRET.encode()


def test_feedletter_web_refuses_to_start_with_a_weak_secret(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDLETTER_SECRET", "password-password")
    result = CliRunner().invoke(app, ["web", "--config", str(config.resolve("sources.yaml"))])
    assert result.exit_code == 1  # before serving anything; the command line prints the message
    assert "FEEDLETTER_SECRET: must be set to a long random string" in str(result.exception)
    assert "secrets.token_urlsafe(32)" in str(result.exception)


def _payload(token: str) -> str:
    head = token.split(".")[0]
    return base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)).decode()


def test_links_carry_an_opaque_id_not_the_row_id() -> None:
    tokens = [make_token(i, "unsubscribe", key=KEY) for i in (1, 2, 3, 4)]
    ids = [_payload(t).split(".")[1] for t in tokens]
    assert all(len(i) == 17 and i.startswith("x") and not i[1:].isdigit() for i in ids)
    assert len({i[:6] for i in ids}) == 4  # neighbours share nothing visible
    assert [read_token(t, "unsubscribe", key=KEY) for t in tokens] == [1, 2, 3, 4]
    for n in [0, 1, 2**31, 2**63 - 1, *(secrets.randbelow(2**40) for _ in range(200))]:
        assert row_id(opaque_id(n, KEY), KEY) == n
    assert row_id(opaque_id(7, KEY), secrets.token_bytes(32)) != 7  # without the secret, no way back


def test_the_unsubscribe_url_in_messages_hides_the_row_id(config: Config, store: Store) -> None:
    person = subscribers.add(store, "weekly", "ann@example.com")
    url = unsubscribe_url(config, person.id)
    assert f".{person.id}." not in _payload(url.rsplit("/", 1)[1])


def test_links_mailed_before_the_change_keep_working(config: Config, store: Store) -> None:
    """An unsubscribe link made by an older feedletter (the row id in clear, same signature) still
    unsubscribes: it sits in mail people already have, and lasts ten years."""
    person = subscribers.add(store, "weekly", "ann@example.com")
    payload = f"unsubscribe.{person.id}.{int(time.time()) + 3650 * 86400}".encode()
    mac = hmac.new(SECRET.encode(), payload, hashlib.sha256).digest()[:16]
    b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
    assert subscribers.unsubscribe(store, f"{b64(payload)}.{b64(mac)}").status == "unsubscribed"
