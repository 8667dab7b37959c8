"""The two XML engines behind parse_feed, and the fixes that make their answers agree.

feedparser_rs reads a typical blog feed 40-50x faster than feedparser, so it goes first.
feedparser, slower but the most forgiving reader there is, takes over whenever the fast engine
raises, calls the document malformed, finds no entries, or meets a shape it is known to misread.
Each engine has quirks the other lacks; they are ironed out here so that an entry comes out the
same whichever engine read it.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import feedparser
import feedparser_rs

from feedletter.errors import ParseError
from feedletter.ingest.parse.prepare import RAW_TEXT_FIELDS, Prepared, RawItem

log = logging.getLogger(__name__)
FeedParts = tuple[str, str, str, list[RawItem]]  # title, link, format, items

# feedparser_rs leaves character references in attribute values (an Atom link's href) as
# written; only the XML ones can appear there once parse_prepare has run.
_ATTRIBUTE_REFERENCE = re.compile(r"&(amp|lt|gt|quot|apos|#[0-9]{1,8}|#[xX][0-9A-Fa-f]{1,8});")
_XML_CHARS = {"amp": "&", "lt": "<", "gt": ">", "quot": '"', "apos": "'"}
# Engines write empty XHTML elements as <br/>, <br /> or <br></br> (which browsers read as two
# breaks); one spelling keeps the engines' answers equal.
_EMPTY_ELEMENT = re.compile(
    r"<(area|base|br|col|embed|hr|img|input|link|meta|source|track|wbr)\b([^>]*?)\s*(?:/>|></\1>)")
# "jo@example.org (Jo Doe)" (RSS <author>) or "Jo Doe (jo@example.org)" / "Jo Doe <jo@…>".
_PERSON = re.compile(r"^\s*(?:\S+@\S+\s*\((?P<name1>[^)]+)\)|(?P<name2>[^(<]+?)\s*[(<]\S+@\S+[)>])\s*$")


def read_xml(prepared: Prepared, *, url: str, fast: bool = True) -> FeedParts:
    """Read a prepared XML document with the fast engine, falling back to feedparser."""
    # Bytes that start with markup: given a str starting with "http", feedparser_rs would fetch it.
    body = prepared.text.encode("utf-8")
    if fast:
        origin = _private_origin(url, prepared.text)
        masked = body.replace(origin.encode(), _MASK.encode()) if origin else body
        fast_result, reason = _read_fast(prepared, masked)
        if fast_result is not None:
            parts = _read_result(fast_result, fast=True)
            return _unmask(parts, origin) if origin else parts
        log.debug("parse: %s: feedparser takes over: %s", url, reason)
    # No content-location: feedparser would resolve a bare RSS guid ("post-17") against it as
    # if it were a URL. Links still end absolute, joined with the feed URL by parse_feed.
    try:
        result = feedparser.parse(body, sanitize_html=False, resolve_relative_uris=False,
                                  response_headers={"content-type": "application/xml; charset=utf-8"})
    except Exception as exc:  # its loose parser trips on some broken markup (KeyError, AttributeError)
        raise ParseError(url, f"malformed feed: feedparser failed: {exc.__class__.__name__}") from None
    if not result.entries and result.bozo and not result.feed.get("title"):
        problem = str(result.get("bozo_exception") or "unreadable document")
        raise ParseError(url, f"malformed feed: {problem}")
    return _read_result(result, fast=False)


# feedparser_rs blanks every link to a loopback or private host, which sent every feed of an
# allow_private source (demo, tests, the bench farm) to feedparser at 7x the cost. The feed's own
# origin is swapped for a reserved name while the fast engine reads, and swapped back after.
_MASK = "http://feedletter-private-origin.invalid"


def _private_origin(url: str, text: str) -> str | None:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    try:
        private = host == "localhost" or not ipaddress.ip_address(host).is_global
    except ValueError:
        private = False
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin if private and origin in text and _MASK not in text else None


def _unmask(parts: FeedParts, origin: str) -> FeedParts:
    def back(value: str | None) -> str | None:
        return value.replace(_MASK, origin) if value and _MASK in value else value

    title, link, fmt, items = parts
    fixed = []
    for item in items:
        changes: dict[str, Any] = {name: back(value) for name in RAW_TEXT_FIELDS
                   if (value := getattr(item, name)) and _MASK in value}
        fixed.append(replace(item, **changes) if changes else item)
    return back(title) or "", back(link) or "", fmt, fixed




def _read_fast(prepared: Prepared, body: bytes) -> tuple[Any, str]:
    """feedparser_rs's result, or None and the reason feedparser must read the document."""
    if (shape := _misread_shape(prepared)) is not None:
        return None, shape
    # feedparser_rs fetches its argument when it looks like a URL: only ever hand it markup.
    if not body.lstrip().startswith(b"<"):
        return None, "not markup"
    try:
        # Resolve against xml:base only when there is one: otherwise feedparser_rs would
        # resolve RSS links against the channel link, while the feed URL is the true base.
        result = feedparser_rs.parse_with_limits(body, limits=_LIMITS, sanitize_html=False,
                                                 resolve_relative_uris="xml:base" in prepared.text)
    except Exception as exc:  # any failure of the fast engine means "ask feedparser"
        return None, f"feedparser_rs failed: {exc}"
    if result.bozo:
        return None, f"not well-formed: {result.bozo_exception}"
    if not result.entries:
        return None, "no entries"
    # It also blanks links to loopback and private hosts (which allow_private sources have).
    if not all(_get(e, "link") for e in result.entries):
        return None, "an entry without a link"
    return result, ""


# Its default stops at 10,000 entries and calls the rest malformed, which sent archive feeds to
# feedparser at 100x the cost (46,000 entries: 27 s instead of 0.3 s). The body is already capped by
# gather.max_bytes, and parse_feed keeps only the newest gather.max_entries.
_LIMITS = feedparser_rs.ParserLimits(max_entries=1_000_000)


def _misread_shape(prepared: Prepared) -> str | None:
    """The RSS shapes feedparser_rs is known to misread, if the document has one."""
    if prepared.root == "feed":
        return None
    text = prepared.text
    first_item = text.find("<item")
    # A channel-level itunes:summary is harmless; only the items' matter.
    if first_item >= 0 and text.find("<itunes:summary", first_item) >= 0 \
            and text.find("<description", first_item) >= 0:
        return "itunes:summary next to description (feedparser_rs drops the description)"
    pos = text.find("<author")
    while pos >= 0:
        end = text.find("</author>", pos)
        if end < 0:
            return None
        if text.find("<title", pos, end) >= 0:
            return "an <author> with a <title> child (feedparser_rs takes it for the item's)"
        pos = text.find("<author", end)
    return None


def _read_result(result: Any, *, fast: bool) -> FeedParts:
    feed = _get(result, "feed")
    feed_author = _person(feed)
    items = [_raw_item(e, feed_author, fast=fast) for e in _get(result, "entries") or ()]
    link = _get(feed, "link") or ""
    return (_get(feed, "title") or "", _attribute(link) if fast else link,
            _get(result, "version") or "", items)


def _raw_item(e: Any, feed_author: str | None, *, fast: bool) -> RawItem:
    detail = _get(e, "title_detail")
    # feedparser files itunes:summary as a text/plain content block ahead of content:encoded.
    blocks = [b for b in _get(e, "content") or () if _get(b, "value")]
    blocks.sort(key=lambda b: "html" not in (_get(b, "type") or ""))
    content = _empty_elements(_get(blocks[0], "value")) if blocks else None
    summary = _get(e, "summary")
    link = _get(e, "link")
    return RawItem(
        guid=_get(e, "id"),
        link=_attribute(link) if fast and link else link,
        title=_get(e, "title"),
        title_type=(_get(detail, "type") if detail is not None else None) or "text/html",
        # Atom entries without an author inherit the feed's; feedparser does not do that itself.
        author=_person(e) or feed_author,
        published=_get(e, "published"),
        updated=_get(e, "updated"),
        summary=_empty_elements(summary) if summary else summary,
        content=content,
        image=_image(e, fast=fast),
    )


_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif")


def _image(e: Any, *, fast: bool) -> str | None:
    """The item's own picture: an image media:content, else media:thumbnail, else an image enclosure."""
    def is_image(kind: str | None, medium: str | None, url: str) -> bool:
        if medium:
            return medium == "image"
        if kind and kind not in ("unknown", ""):
            return kind.startswith("image/")
        return url.lower().split("?", 1)[0].endswith(_IMAGE_SUFFIXES)

    found: list[str] = []
    for m in _get(e, "media_content") or ():
        url = _get(m, "url")
        if isinstance(url, str) and url and is_image(_get(m, "type"), _get(m, "medium"), url):
            found.append(url)
    for m in _get(e, "media_thumbnail") or ():
        url = _get(m, "url")
        if isinstance(url, str) and url:
            found.append(url)
    for m in _get(e, "enclosures") or ():
        url = _get(m, "href") or _get(m, "url")
        if isinstance(url, str) and url and is_image(_get(m, "type"), None, url):
            found.append(url)
    if not found:
        return None
    return _attribute(found[0].strip()) if fast else found[0].strip()


def _person(obj: Any) -> str | None:
    """The first author the item names (dc:creator, itunes:author, <author>, Atom <name>).

    Both engines list every author in document order, while their single ``author`` fields
    disagree (feedparser keeps the last, feedparser_rs prefers dc:creator); the list is the
    one answer they share. An e-mail address next to a name is dropped.
    """
    authors = _get(obj, "authors") or ()
    first = _get(authors[0], "name") if authors else None
    for candidate in (first, _get(obj, "author")):
        if isinstance(candidate, str) and candidate.strip():
            m = _PERSON.match(candidate)
            if m:
                return (m.group("name1") or m.group("name2")).strip()
            return candidate.strip()
    return None


def _empty_elements(markup: str) -> str:
    if "/>" not in markup and "></" not in markup:
        return markup
    return _EMPTY_ELEMENT.sub(r"<\1\2 />", markup)


def _attribute(value: str) -> str:
    def one(m: re.Match[str]) -> str:
        ref = m.group(1)
        if ref[0] != "#":
            return _XML_CHARS[ref]
        code = int(ref[2:], 16) if ref[1] in "xX" else int(ref[1:])
        return chr(code) if 0 < code < 0x110000 else m.group(0)

    return _ATTRIBUTE_REFERENCE.sub(one, value)


def _get(obj: Any, name: str) -> Any:
    # feedparser hands out dicts, feedparser_rs objects with attributes.
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)
