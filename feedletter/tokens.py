"""Signed links for subscribers: the secret that signs them, the opaque id they carry, the tokens.

A token is ``base64(payload).base64(mac)``, the payload ``purpose.id.expires`` and, for confirm links,
``.nonce``:

- ``id`` is ``x`` and 16 hex digits: the subscriber's row id through a keyed permutation (a four-round
  Feistel network whose round function is HMAC-SHA256 under the secret). Links do not show how many
  subscribers there are or who came before whom; only the secret maps the id back. Links made by
  earlier versions carry the plain row id and keep working until they expire.
- ``nonce`` is the subscriber's current confirmation (``subscribers.confirm_nonce``): a confirm link
  works once, and no longer after an unsubscribe.

``FEEDLETTER_SECRET`` is the key. A weak one (empty, short, a pattern, a placeholder, the demo's
published value outside ``make demo``) is refused with a way to make a good one.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import itertools
import math
import os
import time
from collections import Counter
from dataclasses import dataclass

from feedletter.errors import SubscriberError

SECRET_ENV = "FEEDLETTER_SECRET"
# `make demo` (demo/run.py) sets this value and DEMO_ENV=1; anywhere else the value is public, so refused.
DEMO_SECRET = "demo-only-secret-change-me-in-production"
DEMO_ENV = "FEEDLETTER_DEMO"
MAKE_ONE = 'python -c "import secrets; print(secrets.token_urlsafe(32))"'
MIN_LENGTH = 16
_PLACEHOLDERS = {"changeme", "changemeinproduction", "secret", "secretkey", "mysecret", "password", "feedletter",
                 "feedlettersecret", "yoursecret", "yoursecrethere", "pleasechangeme", "replaceme", "example"}
TOKEN_DAYS = {"confirm": 7, "unsubscribe": 3650}


def weakness(value: str) -> str | None:
    """Why ``value`` would make a guessable key, or None when it is good enough."""
    if not value:
        return "it is not set"
    if value == DEMO_SECRET:
        return None if os.environ.get(DEMO_ENV) == "1" else "this is the demo's value, which anyone can read"
    if "".join(c for c in value.lower() if c.isalnum()) in _PLACEHOLDERS:
        return "this is a well-known placeholder"
    if len(value) < MIN_LENGTH:
        return f"it is too short ({len(value)} characters, at least {MIN_LENGTH})"
    if len(set(value)) < 8:
        return "it repeats too few characters"
    if (value + value).find(value, 1) < len(value):
        return "it repeats a short pattern"
    if _steps(value) >= 0.75:
        return "it is mostly a plain sequence (abc…, 123…)"
    counts = Counter(value)
    bits = -sum(n * math.log2(n / len(value)) for n in counts.values())
    if bits < 64:
        return f"it is too predictable (about {bits:.0f} bits, at least 64)"
    return None


def _steps(value: str) -> float:
    """The share of neighbouring characters that go up or down by one (abcd, 4321)."""
    pairs = list(itertools.pairwise(value))
    return sum(abs(ord(after) - ord(before)) == 1 for before, after in pairs) / max(len(pairs), 1)


def secret() -> bytes:
    value = os.environ.get(SECRET_ENV, "")
    problem = weakness(value)
    if problem:
        raise SubscriberError(SECRET_ENV, f"must be set to a long random string (it signs the links in every "
                                          f"email): {problem}; make one with: {MAKE_ONE}")
    return value.encode("utf-8")


@dataclass(frozen=True)
class Link:
    """What a verified token says: whose it is and, for a confirm link, which confirmation."""

    subscriber_id: int
    nonce: str | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@functools.lru_cache(maxsize=8)
def _round_keys(key: bytes) -> tuple[bytes, ...]:
    return tuple(hmac.new(key, f"feedletter subscriber id, round {r}".encode(), hashlib.sha256).digest()
                 for r in range(4))


def _round(key: bytes, half: int) -> int:
    return int.from_bytes(hmac.new(key, half.to_bytes(4, "big"), hashlib.sha256).digest()[:4], "big")


def opaque_id(subscriber_id: int, key: bytes) -> str:
    """The row id as links show it: a keyed permutation of 64 bits, so distinct ids never collide."""
    if not 0 <= subscriber_id < 1 << 64:
        raise ValueError(f"subscriber id out of range: {subscriber_id}")
    left, right = subscriber_id >> 32, subscriber_id & 0xFFFFFFFF
    for round_key in _round_keys(key):
        left, right = right, left ^ _round(round_key, right)
    return f"x{left << 32 | right:016x}"


def row_id(opaque: str, key: bytes) -> int:
    left, right = int(opaque[1:17], 16) >> 32, int(opaque[1:17], 16) & 0xFFFFFFFF
    for round_key in reversed(_round_keys(key)):
        left, right = right ^ _round(round_key, left), left
    return left << 32 | right


def make_token(subscriber_id: int, purpose: str, *, key: bytes | None = None, issued: float | None = None,
               nonce: str | None = None) -> str:
    key = key or secret()
    expires = int((issued or time.time()) + TOKEN_DAYS[purpose] * 86400)
    payload = f"{purpose}.{opaque_id(subscriber_id, key)}.{expires}{'.' + nonce if nonce else ''}".encode()
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    return f"{_b64(payload)}.{_b64(mac)}"


def read_link(token: str, purpose: str, *, key: bytes | None = None) -> Link:
    """Whose link a token is; SubscriberError if forged, expired or made for another use."""
    key = key or secret()
    try:
        payload_b64, mac_b64 = token.split(".", 1)
        payload, mac = _unb64(payload_b64), _unb64(mac_b64)
        kind, sid, expires, *rest = payload.decode().split(".")
        if len(rest) > 1 or not expires.isdigit():
            raise ValueError(expires)
    except (ValueError, UnicodeDecodeError):
        raise SubscriberError("token", "malformed") from None
    expected = hmac.new(key, payload, hashlib.sha256).digest()[:16]
    if not hmac.compare_digest(mac, expected):
        raise SubscriberError("token", "bad signature")
    if kind != purpose:
        raise SubscriberError("token", f"made for {kind}, not {purpose}")
    if int(expires) < time.time():
        raise SubscriberError("token", "expired")
    if sid.isdigit():  # made before ids were opaque: signed all the same
        return Link(int(sid), rest[0] if rest else None)
    if len(sid) != 17 or sid[0] != "x":
        raise SubscriberError("token", "malformed")
    try:
        return Link(row_id(sid, key), rest[0] if rest else None)
    except ValueError:
        raise SubscriberError("token", "malformed") from None


def read_token(token: str, purpose: str, *, key: bytes | None = None) -> int:
    """The subscriber id a token was made for; SubscriberError if forged, expired or for another use."""
    return read_link(token, purpose, key=key).subscriber_id
