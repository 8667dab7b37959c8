"""Keep secrets out of every string that leaves the process.

Secrets live in the environment (the SMTP URL's password, API keys and tokens, the token-signing
secret) or in the store URL's password. One registry per process, :data:`SECRETS`, knows them:

- every variable a ``*_env`` setting of the config names, registered as the config is read
  (``load_config``), and whatever a provider reads through :func:`secret_env` (a provider's
  default variable, when the file has no section for it);
- every variable whose name says it holds a credential (``…_KEY``, ``…_TOKEN``, ``…_SECRET``,
  ``…_PASSWORD``, ``…_PASS``, ``…_AUTH``, ``…_CREDENTIALS``, ``…_SMTP_URL``, ``…_DATABASE_URL``),
  looked up again whenever the environment changes.

Each secret is known in the forms it is printed in: as set, percent-encoded, JSON- and
repr-escaped; a URL by its password (as written and decoded), so that ``smtp://news:***@mail:587``
stays readable. Values shorter than :data:`MIN_LENGTH` are not masked: ``admin`` or ``25`` would
mask ordinary words and numbers everywhere. A user name alone is not a secret; with its password
(``user:password`` and its Basic-auth encoding) it is.

:func:`mask` is the one door: log records (a record factory, so every handler, Prefect's too),
the CLI's stdout and stderr (:func:`guard_streams`), exception messages (``FeedletterError`` masks
its own; :func:`feedletter.errors.masked_errors` the rest before they reach Prefect), the store's error columns
(``schema.MaskedText``), alert mails and artifacts all pass through it.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import suppress
from typing import IO, Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote

MASK = "***"
MIN_LENGTH = 6  # shorter values would mask ordinary words and numbers
SECRET_ENV = ("FEEDLETTER_SECRET", "FEEDLETTER_SMTP_URL", "FEEDLETTER_STORE_URL")
# Environment variables whose names say they hold a credential: a word of the name (between "_").
_SECRET_NAME = re.compile(r"(?:^|_)(?:API_?KEY|KEY|TOKEN|SECRET|PASSWORD|PASSWD|PASS|AUTH|CREDENTIALS?)(?:_|$)"
                          r"|_(?:SMTP|DATABASE|STORE)_URL$", re.IGNORECASE)
# Query parameters that carry a credential in a URL (?token=…, ?api_key=…).
_SECRET_PARAM = re.compile(r"key|token|secret|password|passwd|auth|sig", re.IGNORECASE)
# user:password@ in any URL-looking text, whatever the scheme.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)(?P<pw>[^@\s/]+)(?=@)", re.IGNORECASE)
# An HTTP credential as a server may echo it back: "Authorization: Basic dXNlcjp0b2tlbg==".
_AUTH_HEADER = re.compile(r"(?P<head>\b(?:Basic|Bearer|Token)\s+)(?P<cred>[A-Za-z0-9._~+/=-]{8,})")


def _url_userinfo(value: str) -> tuple[str, str | None] | None:
    """A URL's user and password as written (still percent-encoded), found without ``urlsplit``:
    a password with an unencoded ``/``, ``?`` or ``#`` is split wrongly by it, or makes it raise."""
    scheme, sep, rest = value.partition("://")
    if not sep or not re.fullmatch(r"[a-zA-Z][a-zA-Z0-9+.-]*", scheme) or "@" not in rest:
        return None
    userinfo = rest[:rest.rfind("@")]
    user, colon, password = userinfo.partition(":")
    return user, (password if colon else None)


def _parts(value: str) -> set[str]:
    """The secret parts of a value: a URL's password (as written and decoded) and credential query
    parameters, so that the rest of the URL stays readable; a key file's lines; else the value."""
    value = value.strip()
    if "://" in value and "\n" not in value:
        found: set[str] = set()
        userinfo = _url_userinfo(value)
        if userinfo is not None and userinfo[1]:
            found.update({userinfo[1], unquote(userinfo[1])})
        query = value.partition("?")[2].partition("#")[0]
        found.update(v for k, v in parse_qsl(query) if _SECRET_PARAM.search(k))
        return found
    lines = [line.strip() for line in value.splitlines()]
    # A PEM key's base64 lines, so that a quoted part of the key is masked too.
    return {value, *(line for line in lines if len(lines) > 1 and len(line) >= 16 and not line.startswith("-----"))}


def _forms(secret: str) -> set[str]:
    """``secret`` as it may be printed: as is, percent-encoded, JSON- and repr-escaped."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1], repr(secret)[1:-1]}
    return {f for f in forms if len(f) >= MIN_LENGTH}


def forms_of(value: str) -> set[str]:
    """Every string to mask for one secret value (a token, a key, a URL with a password)."""
    return {form for part in _parts(value) if len(part) >= MIN_LENGTH for form in _forms(part)}


def _named_secret(name: str) -> bool:
    return name in SECRET_ENV or bool(_SECRET_NAME.search(name))


def secret_values(extra: Iterable[str | None] = (), env: Mapping[str, str] | None = None) -> list[str]:
    """The strings to hide: variables named as credentials, and ``extra`` values or URLs; longest first."""
    variables = os.environ if env is None else env
    found: set[str] = set()
    for name, value in variables.items():
        if value and _named_secret(name):
            found |= forms_of(value)
    for item in extra:
        if item:
            found |= forms_of(item)
    # Longest first, so that a secret containing another is masked whole.
    return sorted(found, key=len, reverse=True)


class Secrets:
    """The process's secrets: those registered (the config's, a provider's) and the environment's
    credential-named variables, kept up to date as the environment changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._registered: set[str] = set()
        self._env_seen: dict[Any, Any] | None = None
        self._values: list[str] = []

    def add(self, value: str | None) -> None:
        """Register a secret value (or a URL holding one) for the life of the process."""
        if not value:
            return
        new = forms_of(value) - self._registered
        if new:
            with self._lock:
                self._registered |= new
                self._env_seen = None

    def add_env(self, name: str) -> str | None:
        """The value of ``$name``, registered as a secret."""
        value = os.environ.get(name)
        self.add(value)
        return value

    def values(self) -> list[str]:
        """Every secret string, longest first."""
        # os.environ's own mapping, compared in a microsecond; looking the names up takes ~100.
        raw = getattr(os.environ, "_data", None)
        env_now = dict(raw) if isinstance(raw, dict) else dict(os.environ)
        with self._lock:
            if env_now != self._env_seen:
                found = set(self._registered)
                found.update(secret_values())
                self._values = sorted(found, key=len, reverse=True)
                self._env_seen = env_now
            return self._values

    def clear(self) -> None:
        """Forget the registered secrets (tests); the environment's are looked up again."""
        with self._lock:
            self._registered.clear()
            self._env_seen = None


SECRETS = Secrets()


def secret_env(name: str) -> str | None:
    """Read a secret from the environment; from now on it is masked wherever it would be printed."""
    return SECRETS.add_env(name)


def register_pair(user: str, password: str) -> None:
    """A password, and with its user name as HTTP Basic auth sends them (``user:password``, base64)."""
    SECRETS.add(password)
    pair = f"{user}:{password}"
    SECRETS.add(pair)
    SECRETS.add(base64.b64encode(pair.encode()).decode())


def register_config(config: Any) -> None:
    """Register the secret of every ``*_env`` setting in a loaded config (and its store URL's
    password), and mask log records from now on.

    A ``user_env`` names a user name, which is masked only together with its password.
    """
    guard_logging()
    for setting, name in _env_settings(config):
        if not setting.startswith("user"):
            SECRETS.add_env(name)
    SECRETS.add(getattr(config, "store", None))
    for value in secret_values():
        SECRETS.add(value)


def _env_settings(node: Any) -> Iterator[tuple[str, str]]:
    """(setting, variable) for every ``*_env`` setting in a tree of pydantic models, lists and dicts."""
    from pydantic import BaseModel

    if isinstance(node, BaseModel):
        items: Iterable[tuple[str, Any]] = list(node) + list((node.model_extra or {}).items())
    elif isinstance(node, dict):
        items = node.items()
    elif isinstance(node, list | tuple):
        items = (("", item) for item in node)
    else:
        return
    for key, value in items:
        if isinstance(key, str) and key.endswith("_env") and isinstance(value, str):
            yield key, value
        else:
            yield from _env_settings(value)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret, every URL password and every HTTP credential replaced by ``***``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    text = _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)
    return _AUTH_HEADER.sub(lambda m: m.group("head") + MASK, text)


def mask(text: str) -> str:
    """``text`` without any secret the process knows of."""
    return redact(text, SECRETS.values())


def trimmed(text: str, limit: int = 300) -> str:
    """A remote party's words (an error body, a server's reply), masked and then cut to ``limit``."""
    clean = " ".join(mask(text).split())
    return clean if len(clean) <= limit else clean[:limit - 1] + "…"


# -- exceptions -----------------------------------------------------------------------------------

def mask_exception(exc: BaseException) -> bool:
    """Mask an exception's message in place; False when its text still shows a secret."""
    with suppress(AttributeError, TypeError):  # an exception class that fixes its args
        exc.args = tuple(mask(a) if isinstance(a, str) else a for a in exc.args)
    if isinstance(exc, OSError):
        for attribute in ("strerror", "filename", "filename2"):
            value = getattr(exc, attribute, None)
            if isinstance(value, str):
                setattr(exc, attribute, mask(value))
    text = str(exc)
    return mask(text) == text


# -- log records and streams ----------------------------------------------------------------------

_factory_lock = threading.Lock()


def _masked_record(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: logging reports that itself, later
            return record
        clean = mask(message)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[0] is not None:
            record.exc_text = mask(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = mask(record.stack_info)
        return record

    factory.masks_secrets = True  # type: ignore[attr-defined]
    return factory


def guard_logging() -> None:
    """Mask every log record as it is made, whichever logger and handler (Prefect's API and console
    handlers too) it goes to. Idempotent."""
    with _factory_lock:
        current = logging.getLogRecordFactory()
        if not getattr(current, "masks_secrets", False):
            logging.setLogRecordFactory(_masked_record(current))


class MaskedStream:
    """A text stream that masks what is written to it (the CLI's stdout and stderr)."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def write(self, text: Any) -> int:
        if isinstance(text, str):
            self._stream.write(mask(text))
            return len(text)
        return self._stream.write(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def guard_streams() -> None:
    """Mask what this process prints on stdout and stderr (tracebacks included). Idempotent."""
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, MaskedStream):
            setattr(sys, name, MaskedStream(stream))


__all__ = ["MASK", "MIN_LENGTH", "SECRETS", "MaskedStream", "Secrets", "forms_of", "guard_logging", "guard_streams",
           "mask", "mask_exception", "redact", "register_config", "register_pair", "secret_env",
           "secret_values", "trimmed"]
