"""An issue's email as a web page for anyone: what belongs to one subscriber taken out.

The rendered email holds per-subscriber parts only as ``%%PLACEHOLDER%%`` tokens (see
render.personalize), and its footer tells the reader why they get it. On the web that footer is
wrong ("you receive this because you subscribed" to a visitor who did not), so the block around the
unsubscribe link goes: the innermost element with the class ``footer`` holding it (the built-in
template's footer section), else the innermost block element holding it. Elements with the class
``subscriber-only`` go too, wherever they are: the hook for templates with other personal parts.
Then the links to placeholders and to the page itself ("View in browser") go, and the tokens.
"""

from __future__ import annotations

import html as htmllib
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urlsplit

_PLACEHOLDER_LINK = re.compile(r"<a\b[^>]*\bhref=\"%%[A-Z_]+%%\"[^>]*>.*?</a>", re.S | re.I)
_UNSUBSCRIBE_HREF = re.compile(r"\bhref=\"%%UNSUBSCRIBE_URL%%\"", re.I)
_PLACEHOLDER = re.compile(r"%%[A-Z_]+%%")
_HREF = re.compile(r"(\bhref=\")([^\"]*)(\")", re.I)
_CUT = "\x00"  # where a link was taken out, until the separators around it are tidied
_CUT_WITH_DOTS = re.compile(r"(?:\s*·\s*)?\x00(?:\s*·\s*)?")
_BLOCKS = frozenset({"p", "div", "td", "li", "section", "aside", "footer", "center", "table"})
_VOID = frozenset({"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
                   "track", "wbr"})


def web_copy(html: str, own_url: str) -> str:
    """The email's HTML as a web page: its subscriber-only parts out, unsafe link schemes defused."""
    html = html.replace(_CUT, "")
    html = _without(html, _subscriber_only(html))
    html = _PLACEHOLDER_LINK.sub(_CUT, html)
    html = re.sub(rf"<a\b[^>]*\bhref=\"{re.escape(own_url)}\"[^>]*>.*?</a>", _CUT, html, flags=re.S | re.I)
    # "A · Unsubscribe · B" keeps one separator; a link at either end takes its separator along.
    html = _CUT_WITH_DOTS.sub(lambda m: " · " if m.group(0).count("·") == 2 else "", html)
    html = re.sub(r"\s+as\s+%%NAME%%", "", html)
    html = re.sub(r"\s*%%NAME%%", "", html)  # "Hello %%NAME%%," reads "Hello," to everyone
    html = _PLACEHOLDER.sub("", html)
    return _HREF.sub(lambda m: m.group(1) + _safe_href(m.group(2)) + m.group(3), html)


@dataclass(frozen=True)
class _Element:
    start: int
    end: int  # after its end tag
    tag: str
    classes: frozenset[str]


class _Elements(HTMLParser):
    """Where each element of a document starts and ends, as offsets into its text."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=False)
        self.text = text
        self.lines = [0] + [m.end() for m in re.finditer("\n", text)]
        self.open: list[tuple[str, int, frozenset[str]]] = []
        self.found: list[_Element] = []
        self.feed(text)
        self.close()
        self.found += [_Element(start, len(text), tag, classes) for tag, start, classes in self.open]

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.lines[line - 1] + column

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in _VOID:
            classes = frozenset(next((v or "" for k, v in attrs if k == "class"), "").split())
            self.open.append((tag, self._offset(), classes))

    def handle_endtag(self, tag: str) -> None:
        if all(name != tag for name, _, _ in self.open):
            return  # a stray end tag closes nothing
        end = self.text.find(">", self._offset()) + 1 or len(self.text)
        while self.open:
            name, start, classes = self.open.pop()
            self.found.append(_Element(start, end, name, classes))
            if name == tag:
                break


def _subscriber_only(html: str) -> list[tuple[int, int]]:
    elements = _Elements(html).found
    spans = [(e.start, e.end) for e in elements if "subscriber-only" in e.classes]
    for link in _UNSUBSCRIBE_HREF.finditer(html):
        around = [e for e in elements if e.start < link.start() < e.end]
        holders = [e for e in around if "footer" in e.classes] or [e for e in around if e.tag in _BLOCKS]
        if holders:
            innermost = max(holders, key=lambda e: e.start)
            spans.append((innermost.start, innermost.end))
    return spans


def _without(html: str, spans: list[tuple[int, int]]) -> str:
    kept, position = [], 0
    for start, end in sorted(spans):
        if start >= position:  # one inside a span already cut is gone with it
            kept.append(html[position:start])
            position = end
    return "".join(kept) + html[position:]


def _safe_href(value: str) -> str:
    # Judge the scheme as a browser would read it: entities decoded, control characters ignored.
    probe = "".join(ch for ch in htmllib.unescape(value) if ch > " " and ch != "\x7f")
    try:
        scheme = urlsplit(probe).scheme.lower()
    except ValueError:
        return "#"
    return value if scheme in ("", "http", "https", "mailto") else "#"
