"""JSON Feed 1.0 and 1.1 read into the same raw item shape the XML engines produce.

JSON Feed is simple enough that a few lines of our own beat a dependency: the fields map one to
one, and parse.py turns the raw items into entries exactly as it does for RSS and Atom.
"""

from __future__ import annotations

import html
import json
from typing import Any

from feedletter.errors import ParseError
from feedletter.ingest.parse.prepare import RawItem


def read_json_feed(text: str, *, url: str) -> tuple[str, str, str, list[RawItem]]:
    """Return ``(title, home link, format, items)`` of a JSON Feed document."""
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ParseError(url, f"malformed JSON feed: {exc}") from None
    except RecursionError:
        raise ParseError(url, "malformed JSON feed: nested too deeply") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("items"), list):
        raise ParseError(url, "not a feed (JSON without an items list)")
    version = str(doc.get("version", ""))
    fmt = "json10" if version.rstrip("/").endswith("/1") else "json11"
    feed_author = _author(doc)
    items = []
    for raw in doc["items"]:
        if not isinstance(raw, dict):
            continue
        content = _text(raw.get("content_html"))
        if content is None and (plain := _text(raw.get("content_text"))) is not None:
            content = "<p>" + html.escape(plain).replace("\n\n", "</p><p>") + "</p>"
        items.append(RawItem(
            guid=_text(raw.get("id")),
            link=_text(raw.get("url")) or _text(raw.get("external_url")),
            # Plain text by the spec, yet publishers leave entities such as &#8217; in it.
            title=html.unescape(_text(raw.get("title")) or ""),
            title_type="text/plain",
            author=_author(raw) or feed_author,
            published=_text(raw.get("date_published")),
            updated=_text(raw.get("date_modified")),
            summary=_text(raw.get("summary")),
            content=content,
            image=_text(raw.get("image")) or _text(raw.get("banner_image")),
        ))
    title = _text(doc.get("title")) or ""
    return title, _text(doc.get("home_page_url")) or "", fmt, items


def _author(obj: dict[str, Any]) -> str | None:
    authors = obj.get("authors")
    if isinstance(authors, list):
        names = [str(a["name"]) for a in authors if isinstance(a, dict) and isinstance(a.get("name"), str)]
        if names:
            return ", ".join(names)
    author = obj.get("author")  # JSON Feed 1.0
    if isinstance(author, dict) and isinstance(author.get("name"), str):
        return str(author["name"])
    return None


def _text(value: Any) -> str | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) else None
