"""Full text of an article page: trafilatura for the main content, plus our own chrome removal.

Trafilatura finds the main content well, but blog themes wrap articles in chrome it sometimes
keeps (bylines, comment forms, "Related Articles", clinic ads in the footer). The obvious chrome
leaves the DOM before trafilatura sees it, and chrome-looking blocks leave its output
(:mod:`feedletter.ingest.chrome` tells which).
Metadata is read from the untouched page, because bylines and dates live in the chrome we remove.
Nothing here touches the network: trafilatura is only handed markup we already have.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from html import escape
from urllib.parse import urljoin

from lxml import etree
from lxml.html import HtmlElement

from feedletter.errors import ExtractError
from feedletter.ingest.chrome import is_ad_text, is_chrome_text, strip_chrome, text_of
from feedletter.models import Extracted
from feedletter.text.sanitize import html_to_text
from feedletter.text.whitespace import squash_tail

__all__ = ["extract", "is_teaser"]


# Without extensive search htmldate never calls dateparser, whose locale loading costs seconds;
# a feed entry carries its own date anyway, so the page date only fills a gap.
_DATE_PARAMS = {"original_date": True, "extensive_search": False, "outputformat": "%Y-%m-%dT%H:%M:%S%z"}


def _metadata(tree: HtmlElement, url: str | None) -> tuple[str | None, str | None, datetime | None]:
    from trafilatura.metadata import extract_metadata  # imported late: see extract()

    try:
        meta = extract_metadata(tree, url, dict(_DATE_PARAMS), False, set())
    except Exception:  # metadata is a bonus; a broken byline must not lose the article
        return None, None, None
    return meta.title or None, meta.author or None, _utc_date(meta.date)


def _utc_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def extract(html: str | bytes, url: str | None = None, *, fast: bool = False,
            images: bool = True) -> Extracted:
    """Return the readable part of an article page.

    ``fast`` skips trafilatura's fallback extractors (about twice as fast, a little less recall).
    Raises :class:`ExtractError` when the page has no usable main content.
    """
    # Imported here: it takes a fifth of a second, and the gather workers that only parse feeds
    # (is_teaser) never need it.
    import trafilatura

    name = url or "document"
    if not html.strip():
        raise ExtractError(name, "empty page")
    tree = trafilatura.load_html(html)
    if tree is None:
        raise ExtractError(name, "not an HTML document")
    # metadata first: bylines and dates sit in the chrome strip_chrome removes; extract_metadata
    # only reads the tree (trafilatura itself runs it on the tree it then extracts from)
    title, author, published = _metadata(tree, url)
    image = _page_image(tree, url)
    if url:
        # trafilatura resolves "../x" against the site root, not the page; lxml gets it right
        # and honours <base href>
        tree.make_links_absolute(url, resolve_base_href=True, handle_failures="discard")
    strip_chrome(tree)
    doc = trafilatura.bare_extraction(
        tree, url=url, fast=fast, include_comments=False, include_tables=True,
        include_images=images, include_formatting=True, include_links=True, with_metadata=False,
    )
    body = getattr(doc, "body", None)
    if body is None:
        raise ExtractError(name, "no main content found")
    blocks = _blocks(body, title)
    text = "\n\n".join(plain for _, plain in blocks if plain)
    if not text.strip():
        raise ExtractError(name, "no main content found")
    return Extracted(text=text, html="\n".join(html for html, _ in blocks), title=title,
                     author=author, published=published, image=image)


def _page_image(tree: HtmlElement, url: str | None) -> str | None:
    """The picture the page offers for sharing (og:image, else twitter:image), when it is http(s)."""
    for name in ("og:image", "og:image:url", "og:image:secure_url", "twitter:image"):
        for value in tree.xpath(f'//meta[@property="{name}" or @name="{name}"]/@content'):
            found = urljoin(url or "", str(value).strip())
            if found.lower().startswith(("http://", "https://")) and len(found) <= 2048 and " " not in found:
                return str(found)
    return None


def _blocks(body: etree._Element, title: str | None) -> list[tuple[str, str]]:
    """Turn trafilatura's XML body into (simple HTML, plain text) blocks, chrome dropped."""
    out: list[tuple[str, str]] = []
    norm_title = " ".join((title or "").split()).casefold()
    for el in body:
        text = text_of(el)
        if el.tag != "graphic" and (not text or is_chrome_text(text) or is_ad_text(text, strict=True)):
            continue
        if el.tag == "head" and text.casefold() == norm_title and not out:
            continue  # the title is carried separately; repeating it opens every digest twice
        html = _to_html(el)
        if el.tag == "list":
            plain = "\n".join("- " + _plain_text(i) for i in el if i.tag == "item" and text_of(i))
        elif el.tag == "graphic":
            plain = ""
        else:
            plain = _plain_text(el)
        if html:
            out.append((html, plain))
    return out


def _plain_text(el: etree._Element) -> str:
    """Text of one block, keeping its line breaks: "Chapter from the book<lb/>entitled" must not
    run together into "bookentitled"."""
    parts: list[str] = []

    def walk(node: etree._Element) -> None:
        parts.append(node.text or "")
        for child in node:
            if child.tag == "lb":
                parts.append("\n")
            elif child.tag == "cell":  # a table row reads as one line: "Fees | 0.60% | 0.40%"
                parts.append((" | " if child.getprevious() is not None else "") + text_of(child))
            elif child.tag in ("list", "item", "p", "head", "quote", "row"):
                parts.append("\n")
                walk(child)
                parts.append("\n")
            else:
                walk(child)
            parts.append(child.tail or "")

    walk(el)
    lines = (" ".join(line.split()) for line in "".join(parts).split("\n"))
    return "\n".join(line for line in lines if line)


_HI_TAGS = {"#b": "strong", "#i": "em", "#u": "u", "#t": "code", "#sup": "sup", "#sub": "sub"}


def _to_html(el: etree._Element) -> str:
    tag = el.tag
    inner = _inner_html(el)
    if tag == "p":
        return f"<p>{inner}</p>" if inner.strip() else ""
    if tag == "head":
        level = (el.get("rend") or "h2").lstrip("h")
        n = min(max(int(level) if level.isdigit() else 2, 2), 3)
        return f"<h{n}>{inner}</h{n}>"
    if tag == "list":
        kind = "ol" if el.get("rend") == "ol" else "ul"
        items = "".join(f"<li>{_inner_html(i)}</li>" for i in el if i.tag == "item")
        return f"<{kind}>{items}</{kind}>" if items else ""
    if tag == "quote":
        return f"<blockquote>{inner}</blockquote>"
    if tag == "code":
        return f"<pre><code>{escape(''.join(el.itertext()))}</code></pre>"
    if tag == "graphic":
        return _img(el)
    if tag == "table":
        rows = "".join(
            "<tr>" + "".join(f"<td>{_inner_html(c)}</td>" for c in row if c.tag == "cell") + "</tr>"
            for row in el if row.tag == "row"
        )
        return f"<table>{rows}</table>" if rows else ""
    return f"<p>{inner}</p>" if inner.strip() else ""


def _img(el: etree._Element) -> str:
    src = el.get("src")
    if not src:
        return ""
    alt = el.get("alt") or el.get("title") or ""
    return f'<img src="{escape(src)}" alt="{escape(alt)}">'


def _inner_html(el: etree._Element) -> str:
    parts = [escape(el.text or "")]
    for child in el:
        parts.append(_inline(child))
        parts.append(escape(child.tail or ""))
    return "".join(parts).strip()


def _inline(el: etree._Element) -> str:
    inner = _inner_html(el)
    if el.tag == "ref":
        target = el.get("target")
        return f'<a href="{escape(target)}">{inner}</a>' if target else inner
    if el.tag == "hi":
        tag = _HI_TAGS.get(el.get("rend") or "")
        return f"<{tag}>{inner}</{tag}>" if tag else inner
    if el.tag == "lb":
        return "<br>"
    if el.tag == "graphic":
        return _img(el)
    if el.tag == "list":
        return _to_html(el)
    if el.tag == "code":
        return f"<code>{inner}</code>"
    return inner


_TEASER_TAIL = re.compile(
    r"(?:…|\.\.\.|\[…\]|\[\.\.\.\]|read\s+more\W*|continue\s+reading\W*|more\s*»)\s*$",
    re.IGNORECASE,
)
_TEASER_LENGTH = 600
_TAIL_WINDOW = 200  # characters: far more than the longest "continue reading »" with its punctuation


def is_teaser(summary_html: str, content_html: str, *, body_text: str | None = None) -> bool:
    """Whether a feed entry only teases its article, so ``full_text: auto`` should fetch the page.

    ``body_text``, when the caller has it, is the text of the entry's body (its content, else its
    summary), which then need not be made from the HTML again.
    """
    # Only the end can say "read more": the regex would try every position of a long body, and
    # folding the whole body's whitespace took as long as the rest of the test.
    content = squash_tail(body_text if body_text is not None and content_html else html_to_text(content_html),
                          _TAIL_WINDOW)
    if content:
        return _ends_as_teaser(content)
    # A summary is short when its fold is: its last _TEASER_LENGTH characters then are all of it.
    summary = squash_tail(body_text if body_text is not None and not content_html else html_to_text(summary_html),
                          _TEASER_LENGTH)
    return _ends_as_teaser(summary[-_TAIL_WINDOW:]) or len(summary) < _TEASER_LENGTH


def _ends_as_teaser(tail: str) -> bool:
    """``_TEASER_TAIL.search(tail) is not None``, searching only a tail that could match.

    Every ending the regex finds closes on … ... ] or », or else, before its trailing non-word
    characters, on the e of "more" or the g of "reading" (no other character matches e or g when
    case is ignored). The search would try each of the tail's 200 positions in turn: most bodies
    end on a full stop after some other word, and this tells them apart at once.
    """
    end = len(tail)
    while end and not (tail[end - 1].isalnum() or tail[end - 1] == "_"):  # \W, as the regex reads it
        end -= 1
    if tail[end - 1:end] not in ("e", "E", "g", "G") and not tail.rstrip().endswith(("…", "...", "]", "»")):
        return False
    return _TEASER_TAIL.search(tail) is not None
