"""What a source's settings say about its entries, apart from the code that applies it.

Kept out of :mod:`feedletter.ingest.entries` so that a gather can set the rules of every source
without importing the parsing code (feedparser, numpy and the rest: a quarter of a second), which
a run where every feed answers 304 never needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feedletter.config import Source

__all__ = ["EntryRules"]


@dataclass(frozen=True)
class EntryRules:
    """What a source's settings say about its entries: which to keep, and whether to fetch pages."""

    name: str
    full_text: str = "auto"  # auto | always | never
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    max_entries: int | None = None  # the newest this many of the feed's entries; None: all

    @classmethod
    def of(cls, source: Source, max_entries: int | None = None) -> EntryRules:
        return cls(source.name, source.full_text, tuple(source.include), tuple(source.exclude), max_entries)
