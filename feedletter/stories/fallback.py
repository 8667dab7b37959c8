"""A short post's summary: its first paragraph of prose, for a story none of whose sentences qualifies.

Short posts end up here: a title-less microblog post (its title is its own first words, cut), a
podcast's one-line description without a full stop, a search alert's snippet ending in "...".
Without this their entry would show the title alone, often cut mid-sentence.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from feedletter.stories.sentences import LIST_ITEM, is_code, text_blocks, title_ends, title_words
from feedletter.text.whitespace import truncate_words

__all__ = ["first_paragraph"]

_LINK = re.compile(r"\b(?:https?://|www\.)\S")


def first_paragraph(title: str, texts: Sequence[str], *, max_chars: int, min_words: int) -> str:
    """The first paragraph of prose in ``texts`` that says more than ``title``, cut to ``max_chars``;
    "" when there is none.

    Chrome is dropped line by line as for any summary; code, list items and lines of data or of
    fewer than ``min_words`` words never qualify, nor does a paragraph that is the title with a
    name or two added. A paragraph the title is a cut of reads on from the cut.
    """
    heading = title_words(title)
    known = set(heading)
    completes = title.rstrip().endswith(("…", "...")) and len(heading) >= 3
    for text in texts:
        for block in text_blocks(text.splitlines(), drop_boilerplate=True):
            link = _LINK.search(block)
            if link is not None:  # "… Download it at: https://…": the sentences before the link
                block = block[:max(block.rfind(end, 0, link.start()) for end in (". ", "! ", "? ")) + 1]
            tokens = block.split()
            if len(tokens) < min_words or LIST_ITEM.match(block) is not None or is_code(block, tokens):
                continue
            # Prose: nearly every token has a letter ("19:45:21", "1--688401--19" have none).
            if 5 * sum(not any(c.isalpha() for c in t) for t in tokens) > len(tokens):
                continue
            said = title_words(block)
            if completes and said[:len(heading)] == heading and len(said) > len(heading):
                # Only what the title leaves out: "…of journalism." under "Conferences that ignore
                # blogging are not about the future…".
                end = title_ends(block, heading)[-1]
                return "…" + truncate_words(block[end:].lstrip(" \t,;:-–—"), max_chars - 1)
            # It must say more than the title: "Dr. Kalish: Nasal Steroids" under "Nasal Steroids" does not.
            if len([w for w in said if w not in known]) < min_words:
                continue
            return truncate_words(block, max_chars)
    return ""
