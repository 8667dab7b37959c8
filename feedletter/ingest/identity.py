"""Stable identities: one place computes the key of an entry and the canonical form of a URL."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from feedletter.text.whitespace import squash

TRACKING_PARAMS = frozenset({"fbclid", "gclid", "dclid", "msclkid", "mc_cid", "mc_eid", "ref",
                             "ref_src", "igshid", "yclid", "_hsenc", "_hsmi", "mkt_tok"})
TRACKING_PREFIXES = ("utm_",)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical_url(url: str, extra_tracking: Iterable[str] = (), *, keep_fragment: bool = False) -> str:
    """The form of ``url`` under which two links to the same page compare equal.

    Scheme and host are lower-cased, ``http`` and ``https`` are folded together, the default
    port, tracking parameters and a trailing slash are dropped, and the remaining query
    parameters are sorted. The fragment is dropped too unless ``keep_fragment``: it names a
    place in a page, which is also how some feeds tell their posts apart (one page a day,
    ``#a080605`` per post).
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
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query)), parts.fragment if keep_fragment else ""))


def content_hash(*parts: str) -> str:
    """A short, stable hash of text, whitespace-normalized."""
    joined = "\x1f".join(squash(p) for p in parts)
    return hashlib.sha256(joined.encode("utf-8")).hexdigest()[:32]


def entry_key(guid: str | None, link: str | None, title: str = "", body: str = "",
              extra_tracking: Iterable[str] = ()) -> str:
    """The stable key of an entry: its GUID as given, else its canonical URL with the fragment kept,
    else a hash of its content.

    The GUID is the publisher's identity for the entry and is not rewritten: two GUIDs that differ
    only by fragment (or by anything a canonical URL drops) are two entries. Recognising the same
    post in two feeds is the canonical URL's job (``Prepared.canonical``), not the key's.
    """
    if guid and guid.strip():
        return "guid:" + guid.strip()
    if link and link.strip():
        return "url:" + canonical_url(link, extra_tracking, keep_fragment=True)
    return "hash:" + content_hash(title, body)


def legacy_entry_key(guid: str | None, link: str | None, extra_tracking: Iterable[str] = ()) -> str | None:
    """The key feedletter gave this entry before GUIDs were kept as given, when it differs from
    :func:`entry_key`'s: URL-shaped GUIDs and links were canonicalized without their fragment.

    Stores made before then hold articles under this form; the store step looks it up so that
    they are recognised instead of stored a second time.
    """
    if guid and guid.strip():
        g = guid.strip()
        if not g.startswith(("http://", "https://")):
            return None
        return "url:" + canonical_url(g, extra_tracking)
    if link and "#" in link:
        old = "url:" + canonical_url(link, extra_tracking)
        return None if old == "url:" + canonical_url(link, extra_tracking, keep_fragment=True) else old
    return None


def tombstone_of_url(canonical: str) -> str:
    """The tombstone key that keeps an article's canonical URL from coming back under another key."""
    return "url:" + canonical
