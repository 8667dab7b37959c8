"""Site chrome on an article page: the elements and blocks that are furniture, not the article.

Blog themes wrap articles in navigation, bylines, comment forms, "Related Articles" and clinic ads
in the footer. :func:`strip_chrome` removes the obvious ones from the DOM before trafilatura sees
the page; :func:`is_chrome_text` and :func:`is_ad_text` judge the blocks trafilatura returns.
"""

from __future__ import annotations

import re
from typing import Any

from lxml.html import HtmlElement

__all__ = ["is_ad_text", "is_chrome_text", "strip_chrome", "text_of"]

# Tags that hold site furniture rather than article text. noscript is here, not with script:
# some blogs render only in JavaScript and keep the article in noscript, which the size guard
# in strip_chrome then protects; the same guard keeps an ASP.NET page-wide <form>.
_CHROME_TAGS = frozenset({"nav", "aside", "form", "button", "iframe", "figcaption", "select", "textarea",
                          "noscript", "dialog", "header"})


# class/id words that mark chrome; matched against whole words of the attribute so that
# "comment" does not hit "commentary" and "ad" does not hit "header".
_CHROME_WORDS = frozenset({
    "breadcrumb", "breadcrumbs", "crumbs", "share", "sharing", "sharedaddy", "social", "socials",
    "sociallinks", "addtoany", "related", "relatedposts", "yarpp", "comments", "comment", "respond",
    "reply", "disqus", "cookie", "cookies", "consent", "gdpr", "cmp", "newsletter", "subscribe",
    "subscription", "signup", "advert", "advertisement", "advertising", "ads", "ad", "adsbygoogle",
    "sponsor", "sponsored", "promo", "promoted", "sidebar", "widget", "widgets", "byline", "postmeta",
    "entrymeta", "author-bio", "authorbox", "backtotop", "totop", "scrolltop", "credit", "credits",
    "caption", "wp-caption-text", "popup", "modal", "banner", "pagination", "pager", "navigation",
    "navbar", "menu", "toolbar", "tags", "tagcloud", "complementary", "contentinfo",
})

_WORD_SPLIT = re.compile(r"[\s_\-]+")

# Short blocks whose whole text is chrome, whatever their markup.
_CHROME_TEXT = re.compile(
    r"""^\W*(?:
        leave\s+a\s+(?:reply|comment)|post\s+a\s+comment|add\s+a\s+comment|\d+\s+comments?|
        no\s+comments?(?:\s+yet)?|your\s+email\s+address\s+will\s+not\s+be\s+published|
        required\s+fields\s+are\s+marked|back\s+to\s+top|scroll\s+to\s+top|
        related\s+(?:articles|posts|stories|content|reading)|you\s+(?:may|might)\s+also\s+like|
        read\s+(?:more|next)|share\s+this|share\s+on\s+\w+|print\s+this|
        (?:image|photo|picture)\s+(?:credit|courtesy|source)|(?:photo|image)\s*:|
        we\s+use\s+cookies|this\s+(?:web)?site\s+uses\s+cookies|accept\s+(?:all\s+)?cookies|
        subscribe\s+to\s+(?:our|the)\s+newsletter|sign\s+up\s+for\s+(?:our|the)\s+newsletter|
        tags?\s*:|categor(?:y|ies)\s*:|filed\s+under|previous\s+post|next\s+post|
        (?:share|tweet|email|print|advertisement|sponsored|skip\s+to\s+content|menu|home)\W*$
    )""",
    re.IGNORECASE | re.VERBOSE,
)

# "by admin 0 comment", "Posted by Jane on May 3, 2024 | 4 comments". The name must look like one
# and the line must not end like a sentence, so "By then it was over." stays.
_BYLINE = re.compile(
    r"^\W*(?:[Pp]osted\s+|[Ww]ritten\s+)?(?:by|By|BY)\s+(admin\b|[A-Z][\w.'’-]*)(?:\s+\S+){0,8}$"
)

_BYLINE_NOT_NAMES = frozenset({
    "the", "then", "now", "that", "this", "way", "contrast", "comparison", "default", "design", "far",
    "all", "means", "no",
})

# Calls to subscribe, follow, download or comment, and disclosures: short blocks that speak to
# the reader about the site rather than about the story.
_PROMPT = re.compile(
    r"""please\s+subscribe|subscribe\s+(?:now|today)|already\s+a\s+subscriber|never\s+miss\s+(?:a|the)\b|
        sign(?:ing)?\s+up\s+(?:for|to)\s+(?:our|the)\s+\w*\s*newsletter|follow\s+us\s+on|
        follow\s+.{1,40}\s+on\s+(?:twitter|facebook|instagram|x\b)|download\s+(?:the|our)\s+.{0,40}\bapps?\b|
        we\s+want\s+to\s+hear\s+what\s+you\s+think|letters?\s+to\s+the\s+editor\s+via|
        (?:contains|may\s+contain)\s+(?:affiliate\s+links|references\s+to\s+products)|
        (?:earn|receive)\s+(?:a\s+)?(?:commission|compensation)|all\s+rights\s+reserved|
        straight\s+to\s+your\s+(?:phone|inbox)|
        ^\W*(?:credit|source|via)\s*:|^view\s+(?:all\s+)?comments|^(?:©|copyright\s+(?:©\s*)?\d{4})|
        ^(?:news\s+|release\s+|publish(?:ed)?\s+|posted\s+)?date\s*:|
        ^[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|info|news|co|io)$""",
    re.IGNORECASE | re.VERBOSE,
)

_PROMPT_BLOCK = 300

_COUNTER = re.compile(r"\b\d+\s+(?:comments?|shares?|likes?|views?)\b", re.IGNORECASE)

_PHONE = re.compile(r"(?:\+?\d{1,3}[\s.-]?)?\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}|\b\d{3}-\d{4}\b")

_ADDRESS = re.compile(r"\b(?:suite|ste\.?|street|st\.|avenue|ave\.?|road|rd\.|blvd|way|floor)\b",
                      re.IGNORECASE)


_CALL_TO_ACTION = re.compile(r"\b(?:call|book|schedule|appointment|contact\s+us|visit\s+us)\b",
                             re.IGNORECASE)


_SHORT_BLOCK = 160  # chars: chrome lines are short; article paragraphs rarely are

_AD_BLOCK = 400


def _is_chrome_named(el: HtmlElement) -> bool:
    """Whether a class/id/role token names chrome: "share-buttons", "l-sidebar", "post-meta".

    Only a token's first or last word counts, so "sticky-sidebar-parent" (an article wrapper
    that merely has a sidebar next to it) does not.
    """
    raw = f"{el.get('class', '')} {el.get('id', '')} {el.get('role', '')}".lower()
    for token in raw.split():
        parts = [p for p in _WORD_SPLIT.split(token) if p]
        if not parts:
            continue
        if (token in _CHROME_WORDS or parts[0] in _CHROME_WORDS or parts[-1] in _CHROME_WORDS
                or token.replace("-", "").replace("_", "") in _CHROME_WORDS):
            return True
    return False


def text_of(el: Any) -> str:
    return " ".join("".join(el.itertext()).split())


def is_chrome_text(text: str) -> bool:
    if not text or len(text) > _PROMPT_BLOCK:
        return False
    if _PROMPT.search(text):
        return True
    if len(text) > _SHORT_BLOCK:
        return False
    if _CHROME_TEXT.match(text):
        return True
    byline = _BYLINE.match(text)
    if byline and text[-1] not in ".!?:" and byline.group(1).casefold() not in _BYLINE_NOT_NAMES:
        return True
    return bool(_COUNTER.search(text)) and len(text) < 60


def is_ad_text(text: str, *, strict: bool = False) -> bool:
    """A short block with a phone number and an address or call to action: a practice's ad.

    ``strict`` (for paragraphs trafilatura already judged to be article text) wants both an
    address and a call to action, so "call the crisis line at 555-010-0199" in a story stays.
    """
    if not text or len(text) > _AD_BLOCK or not _PHONE.search(text):
        return False
    address, action = bool(_ADDRESS.search(text)), bool(_CALL_TO_ACTION.search(text))
    return address and action if strict else address or action


def _drop(el: HtmlElement) -> None:
    parent = el.getparent()
    if parent is None:
        return
    # keep the tail: it is text of the parent, not of the dropped element
    if el.tail and el.tail.strip():
        prev = el.getprevious()
        if prev is not None:
            prev.tail = (prev.tail or "") + el.tail
        else:
            parent.text = (parent.text or "") + el.tail
    parent.remove(el)


_NEVER_TEXT = ("script", "style", "template", "svg")

_LONG_PARAGRAPH = 150  # chars of non-link text: prose, not a menu or a teaser list


class _Measure:
    """Text length, link-text length and "holds prose" for every element, computed in one pass."""

    def __init__(self, root: HtmlElement) -> None:
        self.size: dict[HtmlElement, int] = {}
        self.links: dict[HtmlElement, int] = {}
        self.prose: dict[HtmlElement, bool] = {}
        # reversed document order visits every descendant before its ancestor
        for el in reversed(list(root.iter())):
            size = len((el.text or "").strip())
            links = 0
            prose = False
            for child in el:
                size += self.size.get(child, 0) + len((child.tail or "").strip())
                links += self.links.get(child, 0)
                prose = prose or self.prose.get(child, False)
            if el.tag == "a":
                links = size
            self.size[el], self.links[el] = size, links
            self.prose[el] = prose or (el.tag in ("p", "blockquote") and size - links >= _LONG_PARAGRAPH)

    def holds_article(self, el: HtmlElement, total: int) -> bool:
        share = self.size.get(el, 0) / total
        return share >= 0.3 or (self.prose.get(el, False) and share >= 0.1)


def strip_chrome(tree: HtmlElement) -> HtmlElement:
    """Remove breadcrumbs, share widgets, comment forms, ads and similar chrome from a page tree.

    An element that looks like it holds the article (a large share of the page's text, or prose
    paragraphs and a fair share) is never removed, so a theme that puts "has-sidebar" or
    "comments-open" on the article wrapper keeps its article.
    """
    body = tree.find(".//body")
    root = body if body is not None else tree
    for el in list(root.iter(*_NEVER_TEXT)):
        _drop(el)
    measure = _Measure(root)
    total = max(measure.size.get(root, 0), 1)
    for el in list(root.iter()):
        if not isinstance(el.tag, str) or el is root or el.getparent() is None:
            continue
        if _in_dropped(el, root):
            continue
        style = (el.get("style") or "").replace(" ", "").lower()
        hidden = "display:none" in style or el.get("hidden") is not None
        site_part = el.tag in _CHROME_TAGS or el.tag == "footer"
        if el.tag == "header" and any(a.tag in ("article", "main") for a in el.iterancestors()):
            site_part = False  # an article's own header holds its title and standfirst
        if site_part or hidden or _is_chrome_named(el):
            if el.tag == "figcaption" or not measure.holds_article(el, total):
                _drop(el)
            elif el.tag not in _CHROME_TAGS:
                # a wrapper named like chrome that holds the article: trafilatura would drop
                # it for its name, so take the name away
                for attr in ("class", "id", "role"):
                    el.attrib.pop(attr, None)
            continue
        if el.tag in _SHORT_TAGS and measure.size.get(el, 0) <= _AD_BLOCK:
            text = text_of(el)
            if is_chrome_text(text) or is_ad_text(text, strict=el.tag in ("p", "li")):
                _drop(el)
    return tree


_SHORT_TAGS = frozenset({"p", "div", "span", "li", "h2", "h3", "h4", "h5", "h6", "section", "small",
                         "address", "ul"})


def _in_dropped(el: HtmlElement, root: HtmlElement) -> bool:
    """Whether an ancestor was already removed (iteration runs over a snapshot of the tree)."""
    node = el.getparent()
    while node is not None and node is not root:
        node = node.getparent()
    return node is None
