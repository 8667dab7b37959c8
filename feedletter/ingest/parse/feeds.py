"""Parse: feed bytes in, :class:`~feedletter.models.ParsedFeed` of :class:`Entry` out.

RSS 0.9x/1.0/2.0, Atom 0.3/1.0 and JSON Feed 1.0/1.1 all end as the same entries. The bytes are
first decoded and defused (parse_prepare), then read by feedparser_rs, about 50x faster than
feedparser even with feedparser's sanitizer off (bench/bench_parse.py); feedparser, the most
forgiving reader there is, takes over when the fast engine fails, reports a malformed document,
finds no entries or meets a shape it misreads (parse_engines). Both engines' answers go through
the same normalization below, so an entry is the same whichever engine read it
(tests/test_parse.py checks that on every fixture; bench/eval_feeds.py on real feeds).
"""

from __future__ import annotations

import email.utils
import html
import re
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urljoin

import feedparser

from feedletter.ingest import identity
from feedletter.ingest.parse.json_feed import read_json_feed
from feedletter.ingest.parse.prepare import RAW_TEXT_FIELDS, RawItem, prepare
from feedletter.ingest.parse.xml_feeds import read_xml
from feedletter.models import Entry, ParsedFeed
from feedletter.text.controls import strip_controls
from feedletter.text.whitespace import truncate_words

__all__ = ["entry_record", "parse_date", "parse_feed"]

_TAG = re.compile(r"<[^>]*>")
_SPACE = re.compile(r"\s+")
_FUTURE_SLACK = timedelta(days=1)


def parse_feed(data: bytes, *, url: str, source: str, content_type: str | None = None,
               now: datetime | None = None, extra_tracking: Iterable[str] = (),
               fast: bool = True, max_entries: int | None = None) -> ParsedFeed:
    """Parse one feed document fetched from ``url`` for the source named ``source``.

    ``now`` dates entries that carry no usable date (default: the current time) and bounds
    dates in the future. ``fast=False`` skips the fast engine (for comparisons and benches).
    ``max_entries`` keeps only that many of the newest entries (the feed's ``capped`` says how many
    went). Every field loses its control characters and bidi overrides; an item link that is not
    http(s) is dropped (counted in ``dropped_links``), and a title is cut at a word past
    :data:`MAX_TITLE` characters. Raises :class:`ParseError` for an empty, malformed or non-feed document.
    """
    extra_tracking = tuple(extra_tracking)
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    # The body decides over the header: servers label XML feeds as JSON and the reverse.
    if head.startswith(b"{") or (content_type and "json" in content_type.lower()
                                 and not head.startswith(b"<")):
        text = data.decode("utf-8-sig", errors="replace")
        title, link, fmt, items = read_json_feed(text, url=url)
    else:
        prepared = prepare(data, url=url, content_type=content_type)
        title, link, fmt, items = read_xml(prepared, url=url, fast=fast)
    reference = (now or datetime.now(UTC)).astimezone(UTC)
    items = [_clean(item) for item in items]
    capped = 0
    if max_entries is not None and len(items) > max_entries:
        # The newest, in document order: a 46,000-entry archive feed cost a minute and 900 MB whole.
        newest = sorted(range(len(items)), key=lambda i: _published(items[i], reference), reverse=True)
        kept = set(newest[:max_entries])
        capped = len(items) - max_entries
        items = [item for i, item in enumerate(items) if i in kept]
    dropped = sum(1 for item in items if item.link and item.link.strip() and not _web_link(item.link, url))
    entries = tuple(_entry(item, source=source, base=url, reference=reference,
                           extra_tracking=extra_tracking) for item in items)
    return ParsedFeed(title=strip_controls(_plain(title)), link=_web_link(link, url) or url if link else url,
                      entries=entries, format=fmt, capped=capped, dropped_links=dropped)


MAX_TITLE = 300
_MAX_AUTHOR = 200


def _clean(item: RawItem) -> RawItem:
    """``item`` without control characters, noncharacters and bidi overrides in any of its fields."""
    changes = {name: cleaned for name in RAW_TEXT_FIELDS
               if (value := getattr(item, name)) and (cleaned := strip_controls(value)) != value}
    return replace(item, **changes) if changes else item


def _web_link(raw: str, base: str) -> str:
    """``raw`` made absolute against ``base`` when it is an http(s) link; "" for anything else
    (javascript:, data:, mailto:, a relative link on a feed that is not on the web)."""
    link = urljoin(base, raw.strip())
    return link if link[:8].lower().startswith(("http://", "https://")) else ""


def entry_record(entry: Entry) -> dict[str, str | None]:
    """The JSON-lines record of ``feedletter parse``: one flat dict per entry."""
    published = None
    if entry.published is not None:
        published = entry.published.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    return {"title": entry.title, "link": entry.link, "key": entry.key, "published": published,
            "author": entry.author, "summary": entry.summary, "content": entry.content}


def _entry(item: RawItem, *, source: str, base: str, reference: datetime,
           extra_tracking: tuple[str, ...]) -> Entry:
    link = _web_link(item.link, base) if item.link and item.link.strip() else ""
    if not link and item.guid and item.guid.strip().startswith(("http://", "https://")):
        link = item.guid.strip()  # an RSS guid is a permalink unless it says otherwise
    summary = item.summary or ""
    content = item.content or ""
    if content == summary:
        # feedparser copies the only body into both fields; keep it once, as content.
        summary = ""
    title = truncate_words(_title(item), MAX_TITLE)
    if not title:
        title = _excerpt(content or summary) or link
    guid = item.guid.strip() if item.guid and item.guid.strip() else None
    return Entry(
        source=source,
        key=identity.entry_key(guid, link, title, content or summary, extra_tracking),
        title=title,
        link=link,
        guid=guid,
        published=_published(item, reference),
        author=truncate_words(_SPACE.sub(" ", item.author).strip(), _MAX_AUTHOR) or None if item.author else None,
        summary=summary,
        content=content,
        **_picture(item.image, content or summary, link or base),
    )


# The first <img> of an entry's HTML, with its alt text when it has one.
_IMG = re.compile(r"<img\b[^>]*?\bsrc\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s>]+))[^>]*>", re.IGNORECASE)
_ALT = re.compile(r"\balt\s*=\s*(?:\"([^\"]*)\"|'([^']*)')", re.IGNORECASE)
_MAX_IMAGE_URL = 2048
# A tracking pixel or a spacer: 1-2 px wide or high, or named like one.
_TINY = re.compile(r"""\b(?:width|height)\s*=\s*["']?[0-2](?:px)?["'\s/>]""", re.IGNORECASE)
_PIXEL_NAME = re.compile(r"(?:pixel|spacer|blank|transparent|beacon|tracking|1x1)[^/]*\.(?:gif|png)\b", re.IGNORECASE)


def _is_pixel(tag: str) -> bool:
    return _TINY.search(tag) is not None or _PIXEL_NAME.search(tag) is not None


def _picture(image: str | None, markup: str, base: str) -> dict[str, str]:
    """``image`` and ``image_alt`` for an Entry: the item's own picture, else the first image of its HTML.

    Only an absolute http(s) URL is kept (a data: URI, a tracking pixel's javascript: or a relative
    path that joins to nothing is no picture for an email).
    """
    alt = ""
    if not image and "<img" in markup.lower():
        for m in _IMG.finditer(markup):
            if _is_pixel(m.group(0)):
                continue  # a tracking pixel or a spacer is no picture
            image = html.unescape(m.group(1) or m.group(2) or m.group(3) or "")
            a = _ALT.search(m.group(0))
            alt = _SPACE.sub(" ", html.unescape(a.group(1) or a.group(2) or "")).strip() if a else ""
            break
    if not image:
        return {}
    url = urljoin(base, image.strip())
    if not url.lower().startswith(("http://", "https://")) or len(url) > _MAX_IMAGE_URL or any(
            c.isspace() or c in "<>\"" for c in url):
        return {}
    return {"image": url, "image_alt": alt[:300]}


def _title(item: RawItem) -> str:
    raw = item.title or ""
    if "html" in item.title_type:
        return _plain(raw)
    # A plain-text title holding "&amp;" is escaped twice by its publisher, never meant literally;
    # the engines also disagree on which Atom 0.3 titles are plain.
    return _SPACE.sub(" ", html.unescape(raw)).strip()


def _plain(markup: str) -> str:
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", markup))).strip()


def _excerpt(markup: str, limit: int = 80) -> str:
    text = _plain(markup)
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


def _published(item: RawItem, reference: datetime) -> datetime:
    when = parse_date(item.published) or parse_date(item.updated) or reference
    # A date far in the future would pin an entry to the top of every digest.
    return reference if when > reference + _FUTURE_SLACK else when


def parse_date(value: str | None) -> datetime | None:
    """A feed date (RFC 822, ISO 8601 or one of the forms feedparser knows) as aware UTC."""
    if not value or not value.strip():
        return None
    value = value.strip()
    parsed: datetime | None = None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            parsed = None
    if parsed is None:
        # feedparser's registry of date handlers covers the odd forms real feeds use.
        struct = feedparser.datetimes._parse_date(value)
        if struct is None:
            return None
        try:
            year, month, day, hour, minute, second = struct[:6]
            parsed = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
