"""The per-subscriber parts of a rendered issue: ``%%PLACEHOLDER%%`` tokens, filled in as it is sent.

An issue is rendered once, with a token wherever subscribers differ. When feedletter sends message
by message it fills the tokens in itself (:func:`personalize`); a campaign provider gets the issue
with each token turned into its own merge tag (:func:`to_merge_tags`) and fills them in as it sends.
"""

from __future__ import annotations

import html as htmllib
import re
from collections.abc import Callable, Mapping

__all__ = ["NAME", "PLACEHOLDERS", "UNSUBSCRIBE_URL", "personalize", "to_merge_tags"]

UNSUBSCRIBE_URL = "%%UNSUBSCRIBE_URL%%"
NAME = "%%NAME%%"
PLACEHOLDERS = (UNSUBSCRIBE_URL, NAME)
_NAMELESS = re.compile(r"[ \t]*" + re.escape(NAME))


def personalize(text: str, *, unsubscribe_url: str, name: str = "", html: bool) -> str:
    """Fill the per-subscriber placeholders of one rendered part."""
    quote: Callable[[str], str] = (lambda s: htmllib.escape(s, quote=True)) if html else (lambda s: s)
    if not name.strip():
        # "Hi %%NAME%%," reads "Hi," for a subscriber whose name we do not know.
        text, name = _NAMELESS.sub("", text), ""
    return _replace(text, {UNSUBSCRIBE_URL: quote(unsubscribe_url), NAME: quote(name)})


def to_merge_tags(text: str, tags: Mapping[str, str]) -> str:
    """One rendered part with each placeholder in a provider's own merge syntax (``tags``: one for each)."""
    return _replace(text, tags)


def _replace(text: str, values: Mapping[str, str]) -> str:
    for placeholder in PLACEHOLDERS:
        text = text.replace(placeholder, values[placeholder])
    return text
