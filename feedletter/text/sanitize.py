"""The one sanitizer every piece of feed HTML passes through before it is stored for output.

nh3 (ammonia) does the security work with an allow-list suited to both email clients and the web
archive. A light lxml pass runs first, only for things an allow-list cannot express: dropping
tracking pixels as whole elements and resolving relative URLs. nh3 runs last, so whatever that
pass produces is still cleaned; safety never depends on our own parsing.
"""

from __future__ import annotations

import re
import threading
from urllib.parse import urljoin, urlsplit

import nh3
from lxml import etree
from lxml.html import HtmlElement, fragment_fromstring, tostring

from feedletter.text.whitespace import squash

__all__ = ["html_to_text", "sanitize_html"]

_TAGS = frozenset({
    "p", "br", "a", "strong", "em", "b", "i", "u", "s", "sub", "sup", "small", "mark", "abbr", "cite",
    "q", "ul", "ol", "li", "dl", "dt", "dd", "blockquote", "h2", "h3", "h4", "hr", "img", "figure",
    "figcaption", "pre", "code", "table", "thead", "tbody", "tfoot", "tr", "th", "td", "caption", "div",
    "span",
})
_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "width", "height", "title"},
    "abbr": {"title"},
    "ol": {"start"},
    "th": {"colspan", "rowspan"},
    "td": {"colspan", "rowspan"},
}
# Content of these goes with the tag: the text of a script or a form is never article text.
_DROP_WITH_CONTENT = frozenset({
    "script", "style", "iframe", "object", "embed", "noscript", "template", "svg", "math", "select",
    "textarea", "button", "form", "frame", "frameset", "applet", "head", "title", "xmp", "plaintext",
    "listing", "noembed", "noframes",
})
_LINK_SCHEMES = frozenset({"http", "https", "mailto"})
_IMAGE_SCHEMES = frozenset({"http", "https"})
_URL_ATTRS = {("a", "href"), ("img", "src")}

# Images served to count opens and reads rather than to be seen.
_TRACKER = re.compile(
    r"""(?:feeds\.feedburner\.com/~r/|feedsportal\.com|pixel\.wp\.com|stats\.wordpress\.com|
        google-analytics\.com|doubleclick\.net|/wf/open\b|list-manage\.com/track|/track(?:ing)?/open|
        /(?:open|pixel|beacon|tracker?)\.(?:gif|png|php)\b|\.gif\?.*\b(?:uid|cid|mid)=)""",
    re.IGNORECASE | re.VERBOSE,
)
_TINY = 2  # px: an image this small in either direction is a beacon, not a picture
_PX = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(?:px)?\s*$", re.IGNORECASE)
_STYLE_PX = re.compile(r"(?:^|;)\s*(width|height)\s*:\s*(\d+(?:\.\d+)?)px", re.IGNORECASE)


def _size(value: str | None) -> float | None:
    match = _PX.match(value or "")
    return float(match.group(1)) if match else None


def _is_tracker(img: HtmlElement) -> bool:
    src = img.get("src") or ""
    if _TRACKER.search(src):
        return True
    sizes = [_size(img.get("width")), _size(img.get("height"))]
    sizes += [float(v) for _, v in _STYLE_PX.findall(img.get("style") or "")]
    return any(s is not None and s <= _TINY for s in sizes)


_SCHEME = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.\-]*):")


def _safe_url(value: str, base_url: str | None, schemes: frozenset[str]) -> str | None:
    # Browsers ignore control characters and whitespace inside a scheme ("java\tscript:"), so
    # the scheme is judged on what a browser would see, not on the raw string.
    value = value.strip()
    probe = "".join(ch for ch in value if ch > " " and ch != "\x7f")
    if not probe:
        return None
    match = _SCHEME.match(probe)
    if match:
        if match.group(1).lower() not in schemes:
            return None
        rest = "".join(ch for ch in value.split(":", 1)[1] if ch >= " " and ch != "\x7f")
        return f"{match.group(1).lower()}:{rest.replace(' ', '%20')}"
    if ":" in probe.split("/", 1)[0]:
        return None  # something that might still be read as a scheme
    if not base_url:
        return value.replace(" ", "%20")
    try:
        joined = urljoin(base_url, value)
    except ValueError:
        return None
    scheme = urlsplit(joined).scheme.lower()
    return joined.replace(" ", "%20") if scheme in schemes else None


def _prepare(html: str, base_url: str | None) -> str:
    """Drop tracking images and make the others' sources absolute; nh3 still cleans the result."""
    try:
        root = fragment_fromstring(html, create_parent="div")
    except (etree.ParserError, ValueError):
        return html
    for img in list(root.iter("img")):
        src = _safe_url(img.get("src") or "", base_url, _IMAGE_SCHEMES)
        if src is None or _is_tracker(img):
            img.drop_tree()  # an image without a usable source shows as a broken box
        else:
            img.set("src", src)
    inner = (root.text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return inner + "".join(tostring(child, encoding="unicode") for child in root)


_SOURCELESS_IMG = re.compile(r"<img\b(?![^>]*\ssrc=)[^>]*>")
# The pre-pass is needed for images, and wherever lxml and nh3's HTML5 parser would disagree in a way
# that loses text: an element whose content is raw text, written self-closing (Blogger's
# ``<iframe … />``), swallows the rest of the post in HTML5 parsing; lxml closes it.
_NEEDS_PREPARE = re.compile(
    r"<(?:img|iframe|script|style|textarea|title|xmp|noembed|noframes|noscript|plaintext)\b", re.IGNORECASE)


class _Base(threading.local):
    url: str | None = None


# One cleaner per process: building nh3's rules costs three times what cleaning an article does.
# Its attribute filter reads the base URL of the call under way from a thread-local, so that
# threads sanitizing at once each resolve against their own.
_base = _Base()


def _keep_attribute(tag: str, attr: str, value: str) -> str | None:
    if (tag, attr) in _URL_ATTRS:
        return _safe_url(value, _base.url, _LINK_SCHEMES if tag == "a" else _IMAGE_SCHEMES)
    if attr in ("width", "height"):
        return value if _size(value) is not None else None
    return value


_CLEANER = nh3.Cleaner(
    tags=set(_TAGS),
    clean_content_tags=set(_DROP_WITH_CONTENT),
    attributes={tag: set(attrs) for tag, attrs in _ATTRIBUTES.items()},
    attribute_filter=_keep_attribute,
    url_schemes=set(_LINK_SCHEMES),
    link_rel="noopener noreferrer",
    strip_comments=True,
)


def sanitize_html(html: str, base_url: str | None = None) -> str:
    """Clean untrusted HTML for email and web output.

    Keeps a small allow-list of tags and attributes, makes links and images absolute against
    ``base_url``, allows only http/https/mailto links, drops tracking pixels, and adds
    ``rel="noopener noreferrer"`` to links.
    """
    if not html or not html.strip():
        return ""
    # Links are resolved by the attribute filter; most HTML needs no pre-pass at all.
    if _NEEDS_PREPARE.search(html):
        html = _prepare(html, base_url)
    _base.url = base_url
    try:
        cleaned = _CLEANER.clean(html)
    finally:
        _base.url = None
    # nh3's parser can surface an <img> that the pre-pass never saw (inside <svg><script>, say); one
    # left without a usable source is dropped here too, so that sanitizing twice changes nothing.
    return _SOURCELESS_IMG.sub("", cleaned).strip()


# --- plain text --------------------------------------------------------------------------------

_BLOCKS = frozenset({
    "p", "div", "section", "article", "header", "footer", "main", "aside", "blockquote", "figure",
    "figcaption", "h1", "h2", "h3", "h4", "h5", "h6", "table", "ul", "ol", "dl", "dt", "dd",
    "hr", "pre", "address", "nav",
})
_SKIP = frozenset({"script", "style", "head", "title", "noscript", "template", "iframe", "object"})


def html_to_text(html: str) -> str:
    """Readable plain text: blank lines between paragraphs, "- " or "1. " before list items."""
    if not html or not html.strip():
        return ""
    try:
        # The wrapping lxml.html's fragment_fromstring does, on lxml's plain elements: a third of
        # the parse time, with the same tree.
        # (etree.HTML's default parser is per thread; a parser object may not be shared.)
        root = etree.HTML(f"<html><body>{html}</body></html>").find("body")
    except (etree.ParserError, ValueError):
        root = None
    if root is None:
        return " ".join(html.split())
    out: list[str] = []
    _walk(root, out, [])
    text = "".join(out)
    text = "\n".join([line.strip() for line in text.split("\n")])
    # str.replace finds runs of newlines ten times faster than re.sub(r"\n{3,}") scans for them.
    while "\n\n\n" in text:
        text = text.replace("\n\n\n", "\n\n")
    return text.strip()


def _walk(el: etree._Element, out: list[str], lists: list[list[int]]) -> None:
    tag = el.tag if isinstance(el.tag, str) else ""
    if tag in _SKIP:
        return
    if tag == "pre":
        out.append("\n\n" + "".join(el.itertext()).strip("\n") + "\n\n")
        return
    nested_list = tag in ("ul", "ol") and bool(lists)
    if tag in _BLOCKS:
        out.append("\n" if nested_list else "\n\n")
    if tag == "tr":
        out.append("\n")
    if tag == "br":
        out.append("\n")
    if tag in ("td", "th") and el.getprevious() is not None:
        out.append(" | ")
    if tag in ("ul", "ol"):
        lists.append([0 if tag == "ol" else -1])
    if tag == "li":
        marker = "- "
        if lists and lists[-1][0] >= 0:
            lists[-1][0] += 1
            marker = f"{lists[-1][0]}. "
        out.append(marker if out and out[-1].endswith("\n") else "\n" + marker)
    if tag and el.text:
        out.append(_squash(el.text))
    for child in el:
        if isinstance(child.tag, str):
            _walk(child, out, lists)
        if child.tail:
            out.append(_squash(child.tail))
    if tag in ("ul", "ol") and lists:
        lists.pop()
    if tag in _BLOCKS:
        out.append("\n" if nested_list else "\n\n")


def _squash(text: str) -> str:
    # Runs of whitespace become one space. split/join does it 5x faster than re.sub(r"\s+") (both
    # use str.isspace's notion of whitespace); a space at either end is kept, as the regex kept it.
    if not text:
        return text
    inner = squash(text)
    if not inner:
        return " "
    return (" " if text[0].isspace() else "") + inner + (" " if text[-1].isspace() else "")
