"""The plain data model every stage takes and returns.

Every feed format is normalized into :class:`Entry` at the parse boundary; the store turns
entries into :class:`Article` rows; dedupe and cluster group articles into :class:`Story`;
render turns stories into a :class:`Digest`. Nothing here knows about feedparser, SQL or Prefect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Entry:
    """One item of one feed, as published (HTML fields not yet sanitized)."""

    source: str
    key: str
    title: str
    link: str
    guid: str | None = None
    published: datetime | None = None  # always timezone-aware UTC when set
    author: str | None = None
    summary: str = ""  # HTML
    content: str = ""  # HTML; empty for teaser-only feeds
    image: str | None = None  # an absolute http(s) URL of the entry's picture
    image_alt: str = ""


@dataclass(frozen=True)
class ParsedFeed:
    """A feed document after parsing: its own metadata and its entries."""

    title: str
    link: str
    entries: tuple[Entry, ...]
    format: str = ""  # "rss20", "atom10", "json11", ...
    capped: int = 0  # entries left out as older than the newest gather.max_entries
    dropped_links: int = 0  # item links dropped for not being http(s)


@dataclass(frozen=True)
class Extracted:
    """The readable part of an article page, boilerplate removed."""

    text: str
    html: str = ""
    title: str | None = None
    author: str | None = None
    published: datetime | None = None
    image: str | None = None  # the page's og:image (or twitter:image), absolute http(s)


@dataclass(frozen=True)
class Document:
    """The unit dedupe, cluster and summarize work on: an id, a title and plain text."""

    id: str
    title: str
    text: str
    url: str | None = None
    source: str | None = None
    published: datetime | None = None


@dataclass(frozen=True)
class Article:
    """A stored article: sanitized HTML, extracted text, and where it came from."""

    id: int
    source: str
    key: str
    url: str
    title: str
    published: datetime
    text: str
    html: str = ""
    author: str | None = None
    content_hash: str = ""
    duplicate_of: int | None = None
    story_id: int | None = None
    image: str | None = None  # an absolute http(s) URL
    image_alt: str = ""

    def as_document(self) -> Document:
        return Document(
            id=str(self.id),
            title=self.title,
            text=self.text,
            url=self.url,
            source=self.source,
            published=self.published,
        )


@dataclass(frozen=True)
class Coverage:
    """Another telling: an 'also covered by' link of a story, or a 'more on this' link of a subject.

    ``story_id`` is set on 'more on this' links: the story an issue carries under another's entry.
    """

    source: str
    title: str
    url: str
    story_id: int | None = None


@dataclass(frozen=True)
class Story:
    """One story: a lead article, its summary and the other sites that covered it.

    In an issue, a story also stands for its subject: ``more`` lists the subject's other stories
    (other events of one kind, told by other sites), which the issue carries under this entry.
    """

    id: int
    title: str
    url: str
    source: str
    published: datetime
    summary: str
    tags: tuple[str, ...] = ()
    also: tuple[Coverage, ...] = ()
    image: str | None = None  # the lead's picture, else another telling's; an absolute http(s) URL
    more: tuple[Coverage, ...] = ()
    image_alt: str = ""


@dataclass(frozen=True)
class Digest:
    """One issue of one newsletter: what was rendered and sent."""

    newsletter: str
    title: str
    subject: str
    preheader: str
    issued: datetime
    stories: tuple[Story, ...]
    web_url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Subscriber:
    id: int
    newsletter: str
    email: str
    name: str = ""
    status: str = "active"  # pending | active | unsubscribed | bounced
