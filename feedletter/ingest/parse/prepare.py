"""Turn the raw bytes of a feed into safe, well-formed UTF-8 text before any parser sees it.

Two jobs happen here, and both must happen before feedparser or feedparser_rs touches the
document:

* **Decoding.** A byte order mark wins, then the HTTP charset, then the XML declaration, then
  UTF-8, then Windows-1252 (what "Latin-1 without a declaration" means on the real web). The
  result is re-encoded as UTF-8 without a declaration, so both parsers read the same characters.
* **Defusing.** The DOCTYPE (with any internal subset) is cut out of the prolog, and every named
  entity reference other than the five XML ones is rewritten: a known HTML name becomes a
  numeric character reference, anything else becomes literal text. No declared entity can then
  be expanded by anyone, so billion-laughs, quadratic blow-up and external (``SYSTEM``) entities
  are inert, and feeds that use ``&nbsp;`` without declaring it become well-formed.
"""

from __future__ import annotations

import codecs
import html.entities
import re
from dataclasses import dataclass, fields
from html import unescape
from urllib.parse import urljoin

from feedletter.errors import ParseError

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# Declared names mapped to the supersets browsers actually use for them.
_SUPERSETS = {
    "gb2312": "gb18030", "gbk": "gb18030", "x-gbk": "gb18030",
    "iso-8859-1": "cp1252", "latin-1": "cp1252", "latin1": "cp1252", "us-ascii": "cp1252",
    "ascii": "cp1252", "iso8859-1": "cp1252",
}
_XML_DECL_ENCODING = re.compile(rb"""^\s*<\?xml[^>]{0,200}?encoding\s*=\s*["']([A-Za-z0-9._:-]{1,40})["']""")
_CHARSET = re.compile(r"""charset\s*=\s*["']?([A-Za-z0-9._:-]+)""", re.I)
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_CONTROL_BYTES = bytes(range(32)).translate(None, b"\t\n\r")
_XML_DECL = re.compile(r"^\s*<\?xml.*?\?>", re.S)
_PROLOG_ITEM = re.compile(r"<!--.*?(?:-->|\Z)|<\?.*?(?:\?>|\Z)|<!(DOCTYPE|ENTITY)|<([A-Za-z_][\w.:-]*)|<",
                          re.S | re.I)
# A reference a strict parser would reject or expand from a declaration: anything but the five
# XML names and numeric references, or a bare ampersand.
_LOOSE_REFERENCE = re.compile(
    r"&(?!(?:amp|lt|gt|quot|apos|#[0-9]{1,8}|#[xX][0-9A-Fa-f]{1,8});)(?:([A-Za-z][A-Za-z0-9._-]{0,40});)?")
_DECLARATION_TOKEN = re.compile(r"<!--|[\"'\[\]>]")
_HTML_ROOTS = frozenset({"html", "head", "body", "div", "p", "table", "a", "script", "meta", "title"})
FEED_ROOTS = frozenset({"rss", "feed", "rdf", "channel"})


@dataclass(frozen=True)
class RawItem:
    """One entry as an engine read it, before parse.py normalizes it into an Entry."""

    guid: str | None = None
    link: str | None = None
    title: str | None = None
    title_type: str = "text/html"
    author: str | None = None
    published: str | None = None
    updated: str | None = None
    summary: str | None = None
    content: str | None = None
    image: str | None = None  # the item's own picture (media:content, media:thumbnail, an image enclosure)


# RawItem's text fields: what cleaning and unmasking go over.
RAW_TEXT_FIELDS = tuple(f.name for f in fields(RawItem) if f.type in ("str | None", "str"))


@dataclass(frozen=True)
class Prepared:
    """A defused document: its text, the root element's local name and the encoding used."""

    text: str
    root: str
    encoding: str


def decode(data: bytes, content_type: str | None = None) -> tuple[str, str]:
    """Decode feed bytes to text, returning ``(text, encoding used)``."""
    for bom, name in _BOMS:
        if data.startswith(bom):
            return data[len(bom):].decode(name, errors="replace"), name
    if data.startswith((b"<\x00?\x00", b"\x00<\x00?")):
        # UTF-16 without a byte order mark: the declaration's "<?" gives the byte order away.
        name = "utf-16-le" if data[0] == 0x3C else "utf-16-be"
        return data.decode(name, errors="replace"), name
    candidates: list[str] = []
    if content_type and (m := _CHARSET.search(content_type)):
        candidates.append(m.group(1))
    if m2 := _XML_DECL_ENCODING.match(data):
        candidates.append(m2.group(1).decode("ascii"))
    candidates += ["utf-8", "cp1252"]
    for name in candidates:
        codec = _codec(name)
        if codec is None:
            continue
        if codec == "cp1252" and _is_utf8(data):
            # A server or declaration claiming Latin-1 for bytes that are valid UTF-8 with
            # non-ASCII text is far more often wrong than a real Latin-1 text is valid UTF-8.
            codec = "utf-8"
        try:
            return data.decode(codec), codec
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


def _codec(name: str) -> str | None:
    name = name.strip().lower()
    name = _SUPERSETS.get(name, name)
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


def _is_utf8(data: bytes) -> bool:
    if data.isascii():
        return False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def prepare(data: bytes, *, url: str, content_type: str | None = None) -> Prepared:
    """Decode and defuse an XML feed document; raise :class:`ParseError` if it is no feed."""
    if not data.strip():
        raise ParseError(url, "empty document")
    text, encoding = decode(data, content_type)
    # XML parsers see every line end as \n; feedparser_rs keeps \r\n inside CDATA, so fold
    # them here for both engines.
    text = text.lstrip("\ufeff \t\r\n").replace("\r\n", "\n").replace("\r", "\n")
    if _may_hold_controls(data, encoding) and _CONTROL.search(text):
        # Stray control characters (pasted from word processors) are forbidden in XML: drop
        # them rather than let a whole feed fall to the slow, lenient engine.
        text = _CONTROL.sub("", text)
    start = text.find("<")
    if start < 0:
        raise ParseError(url, "not a feed (no XML markup)")
    # Some servers emit junk (blank lines, PHP notices) before the declaration.
    text = _XML_DECL.sub("", text[start:], count=1)
    text, root = _strip_prolog(text)
    if root is None:
        raise ParseError(url, "not a feed (no root element)")
    local = root.rsplit(":", 1)[-1].lower()
    if local in _HTML_ROOTS:
        embedded = _embedded_feed(text)
        if embedded is None:
            links = feed_links(text, url)
            raise ParseError(url, "not a feed (looks like HTML)" + (
                f"; the page names its feed: {links[0]} (use that as the source's url)" if links else ""))
        text, local = embedded
    if local not in FEED_ROOTS:
        raise ParseError(url, f"not a feed (root element <{root}>)")
    return Prepared(_rewrite_references(text), local, encoding)


_LINK_TAG = re.compile(r"<link\b[^>]*>", re.I)
_ATTRIBUTE = re.compile(r"""([a-zA-Z-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'>]+))""")
_FEED_TYPES = ("application/rss+xml", "application/atom+xml", "application/feed+json", "application/json")


def feed_links(page: str, url: str) -> list[str]:
    """The feeds an HTML page names in its ``<link rel="alternate" type="…">`` tags, as absolute URLs.

    How a blog's home page tells readers where its feed is: what staff paste as a source's url is
    often the page, not the feed.
    """
    found: list[str] = []
    for tag in _LINK_TAG.findall(page[:200_000]):
        attrs = {m.group(1).lower(): unescape(m.group(2) or m.group(3) or m.group(4) or "")
                 for m in _ATTRIBUTE.finditer(tag)}
        if ("alternate" in attrs.get("rel", "").lower().split() and attrs.get("href")
                and attrs.get("type", "").lower().split(";")[0].strip() in _FEED_TYPES):
            link = urljoin(url, attrs["href"].strip())
            if link.startswith(("http://", "https://")) and link not in found:
                found.append(link)
    return found


_EMBEDDED_ROOT = re.compile(r"<(feed|rss)\b[^>]*>")


def _embedded_feed(text: str) -> tuple[str, str] | None:
    """A whole feed element inside an XHTML page (a feed saved or served wrapped in a page), or None.

    Only an Atom ``<feed>`` that declares its namespace, or an ``<rss>``, counts, and it must close:
    a page that merely mentions feeds stays "not a feed".
    """
    m = _EMBEDDED_ROOT.search(text)
    if m is None or (m.group(1) == "feed" and "http://www.w3.org/2005/Atom" not in m.group(0)):
        return None
    end = text.rfind(f"</{m.group(1)}>")
    if end < m.start():
        return None
    return text[m.start():end + len(m.group(1)) + 3], m.group(1)


def _may_hold_controls(data: bytes, encoding: str) -> bool:
    # A regex over the text costs more than the parsing; in an ASCII-compatible encoding a
    # control character is a control byte, which bytes.translate finds ten times faster.
    if encoding.startswith(("utf-16", "utf-32")):
        return True
    return len(data.translate(None, _CONTROL_BYTES)) != len(data)


def _strip_prolog(text: str) -> tuple[str, str | None]:
    """Remove DOCTYPE and stray ENTITY declarations before the root; return the root's name."""
    pos = 0
    while True:
        m = _PROLOG_ITEM.search(text, pos)
        if m is None:
            return text, None
        if m.group(2):
            return text, m.group(2)
        if m.group(1):
            end = _declaration_end(text, m.end())
            text = text[:m.start()] + text[end:]
            pos = m.start()
        elif m.group(0) == "<":
            return text, None
        else:
            pos = m.end()


def _declaration_end(text: str, pos: int) -> int:
    """Index just past the ``>`` closing a markup declaration, honouring quotes, comments and
    ``[...]``; jumps from one special character to the next so a huge subset stays cheap."""
    depth = 0
    n = len(text)
    while (m := _DECLARATION_TOKEN.search(text, pos)) is not None:
        token = m.group(0)
        pos = m.end()
        if token in ('"', "'", "<!--"):
            close = text.find("-->" if token == "<!--" else token, pos)
            if close < 0:
                return n
            pos = close + (3 if token == "<!--" else 1)
        elif token == "[":
            depth += 1
        elif token == "]":
            depth = max(0, depth - 1)
        elif depth == 0:
            return pos
    return n


def _rewrite_references(text: str) -> str:
    """Rewrite loose references everywhere but in CDATA sections, where they are literal text."""
    if "&" not in text:
        return text
    out: list[str] = []
    pos = 0
    while pos < len(text):
        start = text.find("<![CDATA[", pos)
        if start < 0:
            start = len(text)
        segment = text[pos:start]
        out.append(_LOOSE_REFERENCE.sub(_rewrite_reference, segment) if "&" in segment else segment)
        end = text.find("]]>", start)
        end = len(text) if end < 0 else end + 3
        out.append(text[start:end])
        pos = end
    return "".join(out)


def _rewrite_reference(m: re.Match[str]) -> str:
    name = m.group(1)
    if name is None:
        return "&amp;"
    chars = html.entities.html5.get(name + ";")
    if chars is None:
        return "&amp;" + name + ";"
    return "".join(f"&#{ord(c)};" for c in chars)
