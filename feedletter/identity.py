"""Stable identities: one place computes the key of an entry and the canonical form of a URL."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from feedletter.whitespace import squash

TRACKING_PARAMS = frozenset({"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "ref",
                             "ref_src", "igshid", "yclid", "_hsenc", "_hsmi", "mkt_tok"})
TRACKING_PREFIXES = ("utm_",)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str, extra_tracking: Iterable[str] = ()) -> str:
    """The form of ``url`` under which two links to the same page compare equal.

    Scheme and host are lower-cased, ``http`` and ``https`` are folded together, the default
    port, the fragment, tracking parameters and a trailing slash are dropped, and the remaining
    query parameters are sorted.
    """
    url = url.strip()
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return url
    scheme = parts.scheme.lower()
    if scheme == "http":
        scheme = "https"
    host = (parts.hostname or "").lower().rstrip(".")
    if host.startswith("www."):
        host = host[4:]
    port = parts.port
    netloc = host if port is None or port == _DEFAULT_PORTS.get(parts.scheme.lower()) else f"{host}:{port}"
    drop = TRACKING_PARAMS | {p.lower() for p in extra_tracking}
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if k.lower() not in drop and not k.lower().startswith(TRACKING_PREFIXES)]
    path = re.sub(r"/{2,}", "/", parts.path) or "/"
    if len(path) > 1:
        path = path.rstrip("/")
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query)), ""))


def content_hash(*parts: str) -> str:
    """A short, stable hash of text, whitespace-normalized."""
    joined = "\x1f".join(squash(p) for p in parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:32]


def entry_key(guid: str | None, link: str | None, title: str = "", body: str = "",
              extra_tracking: Iterable[str] = ()) -> str:
    """The stable key of an entry: its GUID, else its canonical URL, else a hash of its content.

    A GUID that is itself a URL is canonicalized too, so that the same post syndicated with a
    tracking-laden permalink as GUID still gets one key.
    """
    if guid and guid.strip():
        g = guid.strip()
        if g.startswith(("http://", "https://")):
            return "url:" + canonical_url(g, extra_tracking)
        return "guid:" + g
    if link and link.strip():
        return "url:" + canonical_url(link, extra_tracking)
    return "hash:" + content_hash(title, body)


def tombstone_of_url(canonical: str) -> str:
    """The tombstone key that keeps an article's canonical URL from coming back under another key."""
    return "url:" + canonical
