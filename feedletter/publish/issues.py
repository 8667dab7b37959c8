"""The issues of a newsletter as they were published, read back from the store for syndication.

An issue's stories come from the record saved with it (``issues.data``, what the email showed), in
the order of ``issue_stories``: a summary refreshed after sending must not rewrite the archive, and
the same store must always give the same files. Everything here is plain data; nothing is rendered.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from feedletter.config import Config
from feedletter.config_newsletters import Newsletter
from feedletter.errors import SyndicateError
from feedletter.models import Coverage
from feedletter.schema import issue_stories, issues
from feedletter.store import Store, utc
from feedletter.stories.stages import load_stories

FEED_FILES = {"rss": "rss.xml", "atom": "atom.xml", "json": "feed.json"}
FEED_TYPES = {"rss": "application/rss+xml", "atom": "application/atom+xml", "json": "application/feed+json"}
FEED_NAMES = {"rss": "RSS", "atom": "Atom", "json": "JSON Feed"}
# What an empty feed reports as its last update: a fixed instant, never "now", so rebuilds match.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class PublishedStory:
    id: int
    title: str
    url: str
    source: str
    source_title: str
    published: datetime | None
    summary: str
    also: tuple[Coverage, ...]
    issue: int
    more: tuple[Coverage, ...] = ()


@dataclass(frozen=True)
class PublishedIssue:
    id: int
    newsletter: str
    number: int
    subject: str
    preheader: str
    issued: datetime
    html: str
    stories: tuple[PublishedStory, ...]


@dataclass(frozen=True)
class Addresses:
    """Where one newsletter's pages and feeds live: absolute URLs for feeds, folder names for files."""

    base: str
    newsletter: str

    @property
    def home(self) -> str:
        return f"{self.base}/{self.newsletter}/"

    def issue(self, number: int) -> str:
        # The same address digest.issue_url gives the email's "view in browser" link.
        return f"{self.home}{number}/"

    def story(self, story_id: int) -> str:
        return f"{self.home}stories/{story_id}/"

    def feed(self, kind: str, stories: bool = False) -> str:
        return self.home + feed_path(kind, stories)


def feed_path(kind: str, stories: bool = False) -> str:
    """A feed's file path inside the newsletter's folder."""
    return ("stories/" if stories else "") + FEED_FILES[kind]


def feed_formats(newsletter: Newsletter) -> list[str]:
    return [kind for kind in ("rss", "atom", "json") if kind in newsletter.feeds]


def feed_paths(newsletter: Newsletter) -> list[str]:
    """Every feed file of the newsletter, in the order ``feeds.feeds`` writes them."""
    stories = "stories" in newsletter.feeds
    return [path for kind in feed_formats(newsletter)
            for path in (feed_path(kind), *([feed_path(kind, True)] if stories else []))]


def addresses(config: Config, newsletter: Newsletter) -> Addresses:
    return Addresses(config.site.base_url.rstrip("/"), newsletter.name)


def load_issues(config: Config, store: Store, newsletter: Newsletter) -> list[PublishedIssue]:
    """Every issue of ``newsletter``, newest first, with its stories in the order they were sent."""
    return _load(config, store, issues.c.newsletter == newsletter.name)


def load_issue(config: Config, store: Store, issue_id: int) -> PublishedIssue:
    """One saved issue, as ``load_issues`` gives it."""
    found = _load(config, store, issues.c.id == issue_id)
    if not found:
        raise SyndicateError(f"issue {issue_id}", "no such issue in the store")
    return found[0]


def _load(config: Config, store: Store, which: sa.ColumnElement[bool]) -> list[PublishedIssue]:
    with store.begin() as conn:
        rows = conn.execute(sa.select(issues.c.id, issues.c.newsletter, issues.c.number, issues.c.subject,
                                      issues.c.preheader, issues.c.issued, issues.c.html, issues.c.data)
                            .where(which).order_by(issues.c.number.desc())).all()
        placed = conn.execute(sa.select(issue_stories.c.issue_id, issue_stories.c.story_id)
                              .join(issues, issues.c.id == issue_stories.c.issue_id)
                              .where(which, issue_stories.c.more_of.is_(None))
                              .order_by(issue_stories.c.issue_id, issue_stories.c.position)).all()
    story_ids: dict[int, list[int]] = {}
    for issue_id, story_id in placed:
        story_ids.setdefault(issue_id, []).append(story_id)
    titles = config.source_titles()
    out = []
    for row in rows:
        ids = story_ids.get(row.id, [])
        record = _record(row.data)
        told = record.get("stories")
        if isinstance(told, list) and len(told) == len(ids):
            stories = tuple(_from_record(i, s, titles, row.number) for i, s in zip(ids, told, strict=True))
        else:  # an issue saved without its record: the stories as the store has them now
            stories = tuple(PublishedStory(s.id, s.title, s.url, s.source, titles.get(s.source, s.source),
                                           s.published, s.summary, s.also, row.number)
                            for s in load_stories(store, ids, {}))
        issued = (utc(row.issued) or EPOCH).replace(microsecond=0)
        out.append(PublishedIssue(row.id, row.newsletter, row.number, row.subject, row.preheader, issued,
                                  row.html, stories))
    return out


def _record(data: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except (TypeError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _from_record(story_id: int, told: dict[str, Any], titles: dict[str, str], issue: int) -> PublishedStory:
    source = str(told.get("source") or "")
    also, more = (tuple(Coverage(source=str(a.get("source") or ""), title=str(a.get("title") or ""),
                                 url=str(a.get("url") or "")) for a in told.get(name) or [] if isinstance(a, dict))
                  for name in ("also", "more"))
    return PublishedStory(id=story_id, title=str(told.get("title") or ""), url=str(told.get("url") or ""),
                          source=source, source_title=titles.get(source, source),
                          published=_date(told.get("published")), summary=str(told.get("summary") or ""),
                          also=also, issue=issue, more=more)


def _date(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return utc(datetime.fromisoformat(value))
    except ValueError:
        return None
