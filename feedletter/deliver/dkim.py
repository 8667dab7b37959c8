"""DKIM signing (RFC 6376) of outgoing messages with dkimpy, when a key is configured."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from feedletter.config_fields import Settings
from feedletter.errors import DeliveryError
from feedletter.redact import secret_env

if TYPE_CHECKING:
    from feedletter.config import Config

# The headers a receiver shows or acts on; signing them keeps them from being altered in transit.
SIGNED_HEADERS = (b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"list-id",
                  b"list-unsubscribe", b"list-unsubscribe-post", b"mime-version", b"content-type")


class Dkim(Settings):
    """``providers.smtp.dkim``: sign every SMTP message; the private key comes from a file or the environment."""

    domain: str
    selector: str
    key_file: str | None = None
    key_env: str = "FEEDLETTER_DKIM_KEY"


class DkimSigner:
    def __init__(self, domain: str, selector: str, private_key: bytes) -> None:
        self.domain = domain.encode("ascii")
        self.selector = selector.encode("ascii")
        self.private_key = private_key
        # Fail at start-up on a bad key, not on the first subscriber.
        self.sign(b"From: a@" + self.domain + b"\r\nSubject: key check\r\n\r\nkey check\r\n")

    def sign(self, data: bytes) -> bytes:
        """The message with a DKIM-Signature header prepended (relaxed/relaxed canonicalization)."""
        dkimpy = _dkimpy()
        try:
            header: bytes = dkimpy.sign(data, self.selector, self.domain, self.private_key,
                                 canonicalize=(b"relaxed", b"relaxed"), include_headers=list(SIGNED_HEADERS))
        except dkimpy.DKIMException as exc:
            raise DeliveryError(f"dkim {self.selector.decode()}._domainkey.{self.domain.decode()}",
                                f"cannot sign: {exc}", transient=False) from None
        return header.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + data

    @classmethod
    def from_config(cls, config: Config, settings: Dkim) -> DkimSigner:
        if settings.key_file:
            path = config.resolve(settings.key_file)
            try:
                key = path.read_bytes()
            except OSError as exc:
                raise DeliveryError("dkim", f"{path}: cannot read key: {exc.strerror or exc}",
                                    transient=False) from None
        else:
            text = secret_env(settings.key_env)
            if not text:
                raise DeliveryError("dkim", f"${settings.key_env} is not set (a PEM private key) and no "
                                    "key_file is configured", transient=False)
            key = text.encode()
        return cls(settings.domain, settings.selector, key)


def _dkimpy() -> Any:
    # Imported on first use: only sites that configure DKIM need dkimpy installed.
    try:
        import dkim  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise DeliveryError("dkim", "signing needs dkimpy (pip install dkimpy)", transient=False) from None
    return dkim
