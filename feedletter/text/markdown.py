"""Staff-written Markdown (a newsletter's intro) as email HTML and as plain text.

Only a small, safe subset is read: paragraphs, line breaks, *emphasis*, **strong**, bullet and
numbered lists, and links to http(s) and mailto: addresses. Everything else (raw HTML, headings,
images, code, other link schemes) stays as the characters that were typed, escaped in the HTML.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence

from markdown_it import MarkdownIt
from markdown_it.token import Token

__all__ = ["markdown_html", "markdown_text"]

_LINK_SCHEMES = ("http://", "https://", "mailto:")
# Mail clients ignore <style> more often than inline styles, so the few block tags carry their own.
_STYLES = {
    "paragraph_open": "margin:0 0 12px;",
    "bullet_list_open": "margin:0 0 12px;padding-left:22px;",
    "ordered_list_open": "margin:0 0 12px;padding-left:22px;",
    "list_item_open": "margin:0 0 4px;",
}


def _parser() -> MarkdownIt:
    md = MarkdownIt("zero", {"html": False, "linkify": False, "typographer": False})
    md.enable(["list", "newline", "escape", "entity", "emphasis", "link", "autolink"])
    # A link whose target is refused is left as the text that was typed.
    md.validateLink = lambda url: url.strip().lower().startswith(_LINK_SCHEMES)  # type: ignore[method-assign]
    return md


_MD = _parser()


def markdown_html(source: str, *, link_color: str = "#1d5fa8") -> str:
    """The Markdown as HTML for an email: escaped, with inline styles on blocks and links."""
    tokens = _MD.parse(source)
    for token in tokens:
        if token.type in _STYLES:
            token.attrSet("style", _STYLES[token.type])
        for child in token.children or ():
            if child.type == "link_open":
                child.attrSet("style", f"color:{link_color};")
    return str(_MD.renderer.render(tokens, _MD.options, {})).strip()


def markdown_text(source: str, width: int = 72) -> str:
    """The Markdown as plain text: markers dropped, links as ``words <url>``, lists as - or 1. items."""
    blocks: list[tuple[str, int]] = []  # (text, which top-level list it is in; 0: none)
    lists: list[int | None] = []  # one per open list: None for bullets, else the next number
    marker, top = "", 0
    for token in _MD.parse(source):
        if token.type in ("bullet_list_open", "ordered_list_open"):
            top += not lists
            lists.append(None if token.type == "bullet_list_open" else int(token.attrGet("start") or 1))
        elif token.type in ("bullet_list_close", "ordered_list_close"):
            lists.pop()
        elif token.type == "list_item_open":
            number = lists[-1]
            marker = "  " * (len(lists) - 1) + ("- " if number is None else f"{number}. ")
            if number is not None:
                lists[-1] = number + 1
        elif token.type == "inline":
            indent = "  " * len(lists)
            first, marker = marker or indent, ""
            lines = _inline_text(token.children or ()).split("\n")
            wrapped = [textwrap.fill(" ".join(line.split()), width=width, initial_indent=first if i == 0 else indent,
                                     subsequent_indent=" " * len(first) if i == 0 else indent)
                       for i, line in enumerate(lines)]
            blocks.append(("\n".join(wrapped), top if lists else 0))
    out = ""
    for i, (text, in_list) in enumerate(blocks):
        if i:
            out += "\n" if in_list and blocks[i - 1][1] == in_list else "\n\n"
        out += text
    return out


def _inline_text(children: Sequence[Token]) -> str:
    out: list[str] = []
    href, start = "", 0
    for child in children:
        if child.type in ("text", "html_inline"):
            out.append(child.content)
        elif child.type == "softbreak":
            out.append(" ")
        elif child.type == "hardbreak":
            out.append("\n")
        elif child.type == "link_open":
            href, start = str(child.attrGet("href") or ""), len(out)
        elif child.type == "link_close":
            words = "".join(out[start:])
            shown = href.removeprefix("mailto:")
            if words.strip() not in (href, shown):
                out.append(f" <{shown}>")
    return "".join(out)
