"""A real SMTP server on loopback that keeps what it receives: for the demo, previews and tests.

It can also misbehave on purpose (refuse some recipients, answer 4xx for a while, drop the
connection) so that delivery can be tested against a real server rather than a mock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

# A rule sees (recipient, message number) and answers None to accept, or an SMTP reply to refuse;
# the special reply "DROP" closes the connection without answering.
Rule = Callable[[str, int], str | None]


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    def message(self) -> EmailMessage:
        return message_from_bytes(self.data, policy=policy.default)  # type: ignore[return-value,unused-ignore]


@dataclass
class _Handler:
    save_dir: Path | None
    rule: Rule | None = None
    received: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    seen: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self.lock:
            self.seen += 1
            number = self.seen
        recipients = [str(r) for r in envelope.rcpt_tos]
        if self.rule is not None:
            verdict = self.rule(recipients[0], number)
            if verdict == "DROP":
                if server.transport is not None:
                    server.transport.close()
                return "421 closing"
            if verdict:
                return verdict
        data = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        item = Received(str(envelope.mail_from), recipients, data)
        with self.lock:
            self.received.append(item)
            index = len(self.received)
        if self.save_dir is not None:
            self.save_dir.mkdir(parents=True, exist_ok=True)
            (self.save_dir / f"{index:05d}.eml").write_bytes(data)
        return "250 Message accepted"


class MailSink:
    """Start with ``with MailSink() as sink:``; ``sink.url`` is the smtp:// URL to send to."""

    def __init__(self, *, port: int = 0, save_dir: Path | None = None, rule: Rule | None = None) -> None:
        self.handler = _Handler(save_dir, rule)
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=port or _free_port(),
                                     ready_timeout=10, data_size_limit=50 * 1024 * 1024)

    @property
    def port(self) -> int:
        return int(self.controller.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

    def set_rule(self, rule: Rule | None) -> None:
        self.handler.rule = rule

    def start(self) -> MailSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
