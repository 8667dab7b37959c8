"""Keep secrets out of everything an operator or a log collector can read.

Secrets live in the environment (the SMTP URL's password, API keys, the token-signing secret) or in
the store URL's password. Errors are written not to carry them, and this module is the second line:
every log record that passes a handler it guards is scrubbed of the current secret values, and
text that leaves through other doors (alerts, artifacts, run reports) goes through ``redact``.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

MASK = "***"
SECRET_ENV = ("FEEDLETTER_SECRET", "FEEDLETTER_SMTP_URL", "FEEDLETTER_STORE_URL")
# Environment variables whose names say they hold a credential.
_SECRET_NAME = re.compile(r"(_API_KEY|_TOKEN|_PASSWORD|_SECRET|_SMTP_URL|_DATABASE_URL)$")
# user:password@ in any URL-looking text, whatever the scheme.
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)(?P<pw>[^@\s/]+)(?=@)", re.IGNORECASE)
_MIN_LENGTH = 4  # shorter values would mask ordinary words


def _password(url: str) -> str | None:
    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def _secrets_of(value: str) -> list[str]:
    # A URL is secret by its password only: smtp://127.0.0.1:25 stays readable in logs.
    if "://" in value:
        password = _password(value)
        return [password] if password else []
    return [value]


def secret_values(extra: Iterable[str | None] = (), env: dict[str, str] | None = None) -> list[str]:
    """The secret strings to hide: credential variables, URL passwords, and ``extra`` values or URLs."""
    variables = dict(os.environ) if env is None else env
    found: set[str] = set()
    for name, value in variables.items():
        if value and (name in SECRET_ENV or _SECRET_NAME.search(name)):
            found.update(_secrets_of(value))
    for item in extra:
        if item:
            found.update(_secrets_of(item))
    # Longest first, so that a secret containing another is masked whole.
    return sorted((s for s in found if len(s) >= _MIN_LENGTH), key=len, reverse=True)


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret and every URL password replaced by ``***``."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK, text)


class RedactingFilter(logging.Filter):
    """A handler filter that rewrites each record's message and traceback without secrets."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__("feedletter.redact")
        self.secrets = list(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self.secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self.secrets)
        return True


def guard_logging(secrets: Iterable[str]) -> RedactingFilter:
    """Put one redacting filter on every handler that exists now (root's and each named logger's)."""
    guard = RedactingFilter(secrets)
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [lg for lg in logging.Logger.manager.loggerDict.values() if isinstance(lg, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            for old in [f for f in handler.filters if isinstance(f, RedactingFilter)]:
                handler.removeFilter(old)
            handler.addFilter(guard)
    return guard


__all__ = ["MASK", "RedactingFilter", "guard_logging", "redact", "secret_values"]
