"""SMTP delivery: one connection reused across messages, STARTTLS/SSL, AUTH, a rate limit.

A message counts as sent at the moment the outbox records it, and that happens *before* the final
"." of the DATA phase is written: if the process dies before the record, the server drops the
unfinished message; after it, the message is complete. So a rerun after a crash sends nobody twice.
"""

from __future__ import annotations

import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import Field

from feedletter.config_fields import Settings
from feedletter.deliver.dkim import Dkim, DkimSigner
from feedletter.deliver.message import Outgoing
from feedletter.errors import DeliveryError, ProviderUnreachable
from feedletter.plugins import ProviderEntry
from feedletter.redact import secret_env, trimmed

if TYPE_CHECKING:
    from feedletter.config import Config
    from feedletter.config_newsletters import Newsletter


REPLY_LIMIT = 300  # characters of a server's refusal kept in messages and the store


class SmtpProvider(Settings):
    """``providers.smtp``; the server's URL, with its password, comes from the environment only."""

    url_env: str = "FEEDLETTER_SMTP_URL"
    rate_per_second: float | None = None
    dkim: Dkim | None = None
    # 4xx refusals and dropped connections: retried after retry_base, doubled each attempt; one run
    # waits up to retry_wait seconds for them before leaving the rest to the next run.
    retry_base: float = Field(30.0, gt=0)
    retry_wait: float = Field(600.0, ge=0)
    max_attempts: int = Field(5, ge=1)
    bounce_limit: int = Field(3, ge=1)
    # The server unreachable (refused, DNS, TLS, login) for this many messages in a row: the run
    # pauses the issue, its messages stay queued, and the next digest run resumes it.
    pause_after: int = Field(3, ge=1)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl: bool = False
    starttls: bool = False
    timeout: float = 30.0
    cafile: str | None = None

    @classmethod
    def from_url(cls, url: str, env: str = "FEEDLETTER_SMTP_URL") -> SmtpSettings:
        """``smtp://user:pass@host:587?starttls=1`` or ``smtps://user:pass@host:465``.

        ``cafile=/path/ca.pem`` trusts a private certificate authority (a relay inside the network).
        A URL that cannot be read is reported without any part of it: it holds the password.
        """
        def invalid(why: str) -> DeliveryError:
            return DeliveryError("smtp", f"${env} is not a valid URL ({why}); it must look like "
                                 "smtp://user:pass@host:587?starttls=1", transient=False)

        reserved = "percent-encode / ? # @ : in the user name and password, e.g. / as %2F"
        try:
            parts = urlsplit(url)
            port = parts.port
            timeout = float(parse_qs(parts.query).get("timeout", ["30"])[-1])
        except ValueError:
            # urlsplit's own message quotes the URL (an unencoded "/" in the password makes the
            # password's start the port), so it is never shown.
            raise invalid(f"{reserved}, and give the port as a number") from None
        if parts.scheme not in ("smtp", "smtps"):
            raise invalid("the scheme must be smtp or smtps")
        # A "/", "?" or "#" in the password ends the host part early: its "@" lands in the path.
        if "@" in parts.path + parts.query + parts.fragment:
            raise invalid(reserved)
        if not parts.hostname:
            raise invalid("no host")
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        secure = parts.scheme == "smtps"
        return cls(host=parts.hostname, port=port or (465 if secure else 25),
                   username=unquote(parts.username) if parts.username else None,
                   password=unquote(parts.password) if parts.password else None, ssl=secure,
                   starttls=query.get("starttls", "0").lower() in ("1", "true", "yes"),
                   timeout=timeout, cafile=query.get("cafile"))


class SmtpMailer:
    """Send messages over one reused SMTP connection, reconnecting when it drops."""

    name = "smtp"

    def __init__(self, settings: SmtpSettings, *, rate_per_second: float | None = None,
                 tls_context: ssl.SSLContext | None = None, signer: DkimSigner | None = None) -> None:
        self.settings = settings
        self.interval = 1.0 / rate_per_second if rate_per_second else 0.0
        self.tls_context = tls_context or ssl.create_default_context(cafile=settings.cafile)
        self.signer = signer
        self._conn: smtplib.SMTP | None = None
        self._last = 0.0

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            conn: smtplib.SMTP
            if s.ssl:
                conn = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=self.tls_context)
            else:
                conn = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            # The final "." goes out alone, after the outbox record; without NODELAY, Nagle's
            # algorithm holds it until the server's delayed ACK (~40 ms per message on Linux).
            if conn.sock is not None:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn.ehlo()
            if s.starttls:
                conn.starttls(context=self.tls_context)
                conn.ehlo()
            if s.username:
                conn.login(s.username, s.password or "")
        # Whatever fails before the first message is the server's or the setup's, the same for
        # every recipient: ProviderUnreachable, which delivery counts against nobody (see deliver).
        except smtplib.SMTPAuthenticationError as exc:
            raise ProviderUnreachable(f"smtp://{s.host}:{s.port}", f"authentication failed ({exc.smtp_code})",
                                      transient=False) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise ProviderUnreachable(f"smtp://{s.host}:{s.port}", f"server refuses the setup: {exc}",
                                      transient=False) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise ProviderUnreachable(f"smtp://{s.host}:{s.port}", f"cannot connect: {exc}") from None
        return conn

    def send(self, msg: EmailMessage | Outgoing, sender: str, recipient: str, commit: Callable[[], bool]) -> bool:
        """Send one message; ``commit`` records it just before the end of DATA, and its ``seal`` (the
        outbox's record has one) makes the record final right after the end of DATA.

        Returns False when ``commit`` said no (another worker owns the row): nothing was sent.
        Raises DeliveryError (transient for 4xx and dropped connections, permanent for 5xx), and
        ProviderUnreachable when no connection could be made (or logged in) at all.
        """
        data = msg.data if isinstance(msg, Outgoing) else msg.as_bytes()
        if self.signer is not None:
            data = self.signer.sign(data)
        body = smtplib._quote_periods(data)  # type: ignore[attr-defined]
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        if self.interval:
            wait = self._last + self.interval - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        self._last = time.monotonic()
        fresh = self._conn is None
        if fresh:
            self._conn = self._connect()
        try:
            return self._transaction(body, sender, recipient, commit)
        except _Stale:
            if fresh:
                raise self._lost_at_once() from None
            # The server hung up while the connection sat idle (a timeout between messages): nothing
            # of this message was sent, so a new connection may carry it at once.
            self._conn = self._connect()
            try:
                return self._transaction(body, sender, recipient, commit)
            except _Stale:
                raise self._lost_at_once() from None

    def _lost_at_once(self) -> ProviderUnreachable:
        """A new connection that the server closed before the first command: it takes nobody's mail."""
        return ProviderUnreachable(f"smtp://{self.settings.host}:{self.settings.port}",
                                   "connection lost before MAIL FROM")

    def _transaction(self, body: bytes, sender: str, recipient: str, commit: Callable[[], bool]) -> bool:
        conn = self._conn
        assert conn is not None
        try:
            code, reply = conn.mail(sender)
        except (smtplib.SMTPServerDisconnected, OSError):
            self.close(abort=True)
            raise _Stale() from None
        try:
            if code != 250:
                self._reset()
                raise _refused(recipient, "MAIL FROM", code, reply)
            code, reply = conn.rcpt(recipient)
            if code not in (250, 251):
                self._reset()
                raise _refused(recipient, "RCPT TO", code, reply)
            code, reply = conn.docmd("DATA")
            if code != 354:
                self._reset()
                raise _refused(recipient, "DATA", code, reply)
            conn.send(body)
            if not commit():
                # Not ours any more: hang up mid-DATA so the server discards the message.
                self.close(abort=True)
                return False
            conn.send(b".\r\n")
            # The outbox's record commits now, right after the dot and before the server answers:
            # a process killed in between the two writes (microseconds) sends the message again;
            # one killed during the commit, had it come before the dot, would have lost it.
            seal: Callable[[], None] | None = getattr(commit, "seal", None)
            if seal is not None:
                seal()
            code, reply = conn.getreply()
            if code != 250:
                raise _refused(recipient, "end of DATA", code, reply)
            return True
        except (smtplib.SMTPServerDisconnected, OSError) as exc:
            self.close(abort=True)
            # Lost before the server's answer to the final dot: most servers drop an unanswered
            # message, so it goes again (with the same Message-ID, which lets receivers dedupe).
            raise DeliveryError(recipient, f"connection lost: {exc or exc.__class__.__name__}",
                                transient=True) from None

    def _reset(self) -> None:
        if self._conn is not None:
            try:
                self._conn.rset()
            except (smtplib.SMTPException, OSError):
                self.close(abort=True)

    def close(self, *, abort: bool = False) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if abort:
                conn.close()
            else:
                conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()


def smtp_mailer(config: Config, newsletter: Newsletter) -> SmtpMailer:
    """The SMTP mailer every newsletter shares, from ``providers.smtp`` and ``$FEEDLETTER_SMTP_URL``."""
    del newsletter  # one server for all newsletters
    settings = PROVIDER.settings_in(config)
    url = secret_env(settings.url_env)
    if not url:
        raise DeliveryError("smtp", f"${settings.url_env} is not set (smtp://user:pass@host:587?starttls=1)",
                            transient=False)
    signer = None if settings.dkim is None else DkimSigner.from_config(config, settings.dkim)
    return SmtpMailer(SmtpSettings.from_url(url, settings.url_env), rate_per_second=settings.rate_per_second,
                      signer=signer)


PROVIDER = ProviderEntry("smtp", SmtpProvider, "per-subscriber", smtp_mailer)


class _Stale(Exception):
    """The connection was gone before this message's first command."""


def _refused(recipient: str, step: str, code: int, reply: bytes) -> DeliveryError:
    # A server's reply may quote what it was sent: masked, then trimmed like a provider's error body.
    text = trimmed(reply.decode("utf-8", "replace"), REPLY_LIMIT)
    return DeliveryError(recipient, f"{step} refused: {code} {text}", transient=400 <= code < 500)
