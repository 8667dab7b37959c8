"""Staff patterns, as sources' and newsletters' ``include`` / ``exclude`` write them.

A plain word or phrase matches whole words only, case-insensitively (``ad`` does not match
"read"); anything else is a regular expression. Kept apart from :mod:`feedletter.issue.selection` so
that the gather workers can filter entries without importing the store.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

__all__ = ["compile_pattern", "matches_any"]

# Words, spaces, apostrophes and hyphens only: staff wrote a word or a phrase, not a regex.
_PLAIN = re.compile(r"[\w\s'’-]+")


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A staff pattern: whole words for a plain word or phrase, else a regular expression."""
    if _PLAIN.fullmatch(pattern) and pattern.strip():
        words = r"\s+".join(re.escape(w) for w in pattern.split())
        return re.compile(rf"(?<!\w){words}(?!\w)", re.IGNORECASE)
    return re.compile(pattern, re.IGNORECASE)


def matches_any(patterns: Iterable[str], text: str) -> bool:
    return any(compile_pattern(p).search(text) for p in patterns)
