"""Deliver into a folder of .eml files: for previews, the demo, and sites that hand mail on by file."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING

from feedletter.config_fields import Settings
from feedletter.deliver.message import Outgoing
from feedletter.plugins import ProviderEntry

if TYPE_CHECKING:
    from feedletter.config import Config
    from feedletter.config_newsletters import Newsletter


class FileProvider(Settings):
    """``providers.file``: the folder, relative to the config file."""

    dir: str = ".feedletter/outbox"


class FileMailer:
    name = "file"

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)

    def send(self, msg: EmailMessage | Outgoing, sender: str, recipient: str, commit: Callable[[], bool]) -> bool:
        self.directory.mkdir(parents=True, exist_ok=True)
        message_id, data = (msg.message_id, msg.data) if isinstance(msg, Outgoing) \
            else (str(msg["Message-ID"]), msg.as_bytes())
        stem = re.sub(r"[^A-Za-z0-9._-]+", "_", message_id.strip("<>"))
        final = self.directory / f"{stem}.eml"
        partial = final.with_suffix(".eml.part")
        partial.write_bytes(data)
        # As with SMTP, the record comes before the message is complete: a crash in between leaves a
        # .part file behind, never a second message.
        if not commit():
            partial.unlink(missing_ok=True)
            return False
        partial.replace(final)
        return True

    def close(self, *, abort: bool = False) -> None:
        del abort


def file_mailer(config: Config, newsletter: Newsletter) -> FileMailer:
    del newsletter  # one folder for all newsletters
    return FileMailer(config.resolve(PROVIDER.settings_in(config).dir))


PROVIDER = ProviderEntry("file", FileProvider, "per-subscriber", file_mailer)
