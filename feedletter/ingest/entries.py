"""The CPU-bound half of gathering: a fetched feed, or article page, made ready for the store.

Parsing, sanitizing, stripping boilerplate and hashing run here, in worker processes when a run
has many feeds (see :mod:`feedletter.workers`). Everything these functions take and give back
pickles, and this module imports neither the store nor the config: a worker process starts with
only what it needs (about a third of the imports of :mod:`feedletter.ingest.gather`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from feedletter.errors import FeedletterError
from feedletter.ingest import extract
from feedletter.ingest.identity import canonical_url, content_hash, legacy_entry_key
from feedletter.ingest.parse import feeds as parse
from feedletter.ingest.rules import EntryRules
from feedletter.models import Entry, ParsedFeed
from feedletter.patterns import matches_any
from feedletter.stories import minhash
from feedletter.stories.features import features_json
from feedletter.stories.minhash import pack_signature
from feedletter.text import boilerplate, sanitize

__all__ = ["EntryRules", "Page", "Prepared", "extract_page", "prepare_feed"]


@dataclass(frozen=True)
class Prepared:
    """One feed entry made ready for the store: sanitized, keyed, hashed, filtered."""

    key: str
    canonical: str
    url: str
    title: str
    author: str | None
    published: datetime | None
    html: str
    text: str
    content_hash: str
    needs_text: bool
    signature: bytes | None = None  # the near-duplicate signature, packed; None while the text is a teaser
    # The same-story features as grouping stores them (feedletter.stories.features.features_json); None while
    # the text is a teaser.
    features: str | None = None
    legacy_key: str = ""  # the key an older feedletter stored this entry under, when it differs from key
    # Other entries of the same feed have the same canonical URL: it identifies none of them.
    shared_url: bool = False
    image: str | None = None  # the entry's picture: an absolute http(s) URL
    image_alt: str = ""


def prepare_feed(body: bytes, url: str, content_type: str | None, rules: EntryRules, tracking: tuple[str, ...],
                 current: datetime) -> tuple[ParsedFeed, tuple[Prepared, ...], int] | str:
    """Parse a fetched feed and prepare its entries; a parse failure comes back as its message.

    Also gives the number of entries that include/exclude filtered out.
    """
    try:
        feed = parse.parse_feed(body, url=url, source=rules.name, content_type=content_type, now=current,
                                extra_tracking=tracking, max_entries=rules.max_entries)
    except FeedletterError as exc:
        return str(exc)
    kept = [e for e in feed.entries if _matches(rules, e)]
    made = [_fields(rules, e, feed.link, tracking) for e in kept]
    _tell_apart(made, tracking)
    found = _hashed_and_read([(f["title"], f["text"]) for f in made if not f["needs_text"]])
    prepared = tuple(Prepared(**f, signature=None if f["needs_text"] else found[f["title"], f["text"]][0],
                              features=None if f["needs_text"] else found[f["title"], f["text"]][1])
                     for f in made)
    # The entries travel as Prepared; the feed keeps only its own metadata.
    return replace(feed, entries=()), prepared, len(feed.entries) - len(kept)


# What this process made lately of each (title, text): its packed signature and its features. The
# same post comes in several feeds (a blog's feed and its category feeds, a syndicated copy), and a
# worker that meets it again takes what it made then. Held for the last _MADE_HELD texts (a few MB).
_MADE: dict[tuple[str, str], tuple[bytes | None, str]] = {}
_MADE_HELD = 1000


def _hashed_and_read(told: Sequence[tuple[str, str]]) -> dict[tuple[str, str], tuple[bytes | None, str]]:
    """The packed near-duplicate signature and the same-story features of each (title, text).

    Hashed here, in the parse workers, rather than in the grouping stage after the store (which
    reads the value back), and the whole feed's at once: a fraction of hashing article by article.
    The features too: read here, beside the other feeds' downloads, grouping finds them stored and
    needs no worker processes of its own (measured on the farm's 10k articles: 1.6 s of CPU moved,
    parsing 0.5-0.9 s longer, grouping 1.1-1.3 s shorter and without its two 43 MB workers).
    """
    found = {pair: _MADE.get(pair) for pair in told}
    new = [pair for pair, made in found.items() if made is None]
    for pair, sig in zip(new, minhash.article_signatures(new), strict=True):
        found[pair] = _MADE[pair] = (pack_signature(sig), features_json(*pair))
    while len(_MADE) > _MADE_HELD:
        del _MADE[next(iter(_MADE))]  # the oldest first
    return {pair: made for pair, made in found.items() if made is not None}


def _tell_apart(made: list[dict[str, Any]], tracking: Sequence[str]) -> None:
    """Settle each entry's canonical URL against the rest of its feed.

    Where a feed's links differ only by fragment (one page a day, a fragment per post), the
    fragment is what tells the posts apart, so their canonical URLs keep it: a tombstone or a
    carrier then means one post, not the whole page. Where entries with different keys still share
    a canonical URL (a sponsor post linking to the sponsor, a broken link on every entry), it is
    marked shared and the store step does not take it to mean "same article".
    """
    anchors = [canonical_url(f["url"], tracking, keep_fragment=True) if "#" in f["url"] else f["canonical"]
               for f in made]
    forms: dict[str, set[str]] = {}
    for f, anchor in zip(made, anchors, strict=True):
        if f["canonical"]:
            forms.setdefault(f["canonical"], set()).add(anchor)
    keys: dict[str, set[str]] = {}
    for f, anchor in zip(made, anchors, strict=True):
        if len(forms.get(f["canonical"], ())) > 1:
            f["canonical"] = anchor
        if f["canonical"]:
            keys.setdefault(f["canonical"], set()).add(f["key"])
    for f in made:
        f["shared_url"] = len(keys.get(f["canonical"], ())) > 1


def _matches(rules: EntryRules, entry: Entry) -> bool:
    if not rules.include and not rules.exclude:
        return True
    haystack = f"{entry.title}\n{entry.summary}\n{entry.content}"
    # The same pattern rules as a newsletter's select: plain words match whole words, else a regex.
    if rules.include and not matches_any(rules.include, haystack):
        return False
    return not matches_any(rules.exclude, haystack)


def _fields(rules: EntryRules, entry: Entry, feed_link: str, tracking: Sequence[str]) -> dict[str, Any]:
    """A :class:`Prepared` entry's fields but its signature (which :func:`prepare_feed` hashes per feed):
    its HTML sanitized once, its text, hash and canonical URL."""
    body = entry.content or entry.summary
    html = sanitize.sanitize_html(body, base_url=entry.link or feed_link)
    full = sanitize.html_to_text(html)
    text = boilerplate.strip_boilerplate(full)
    # The teaser test reads the body's text as sanitized (what was made of it here), not as sent.
    teaser = rules.full_text == "always" or (
        rules.full_text == "auto" and extract.is_teaser(entry.summary, entry.content, body_text=full))
    title = entry.title or "(untitled)"
    return {"key": entry.key, "canonical": canonical_url(entry.link, tracking) if entry.link else "",
            "url": entry.link, "title": title, "author": entry.author, "published": entry.published,
            "html": html, "text": text, "content_hash": content_hash(entry.title, text),
            "needs_text": teaser and bool(entry.link),
            "legacy_key": legacy_entry_key(entry.guid, entry.link, tracking) or "",
            "image": entry.image, "image_alt": entry.image_alt}


@dataclass(frozen=True)
class Page:
    """An article page as the store keeps it: sanitized HTML, plain text and its picture."""

    html: str
    text: str
    image: str | None = None


def extract_page(body: bytes, url: str) -> Page | str:
    """A fetched article page's sanitized HTML, plain text and picture, or the extraction error."""
    try:
        found = extract.extract(body, url=url)
    except FeedletterError as exc:
        return str(exc)
    html = sanitize.sanitize_html(found.html, base_url=url) if found.html else ""
    return Page(html, boilerplate.strip_boilerplate(found.text), found.image)
