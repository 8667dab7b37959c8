"""Feeds of a newsletter: RSS 2.0 and Atom 1.0 (feedgen) and JSON Feed 1.1, of issues or of stories.

An item's content is built from the stored story data through the archive's templates, then passed
through the one sanitizer: the email's HTML is a whole document with per-subscriber parts, not a
fragment a feed reader should be handed. Dates are the issues' own, never the time of the build,
and every id is the item's permanent web address, so a rebuild gives the same bytes.
"""

from __future__ import annotations

import html as htmllib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from feedgen.feed import FeedGenerator
from jinja2.sandbox import SandboxedEnvironment
from lxml import etree

from feedletter.config import Config
from feedletter.config_newsletters import Newsletter
from feedletter.publish.archive import http_url
from feedletter.publish.issues import EPOCH, Addresses, PublishedIssue, addresses, feed_formats, feed_path
from feedletter.text.sanitize import sanitize_html

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
_ATOM_NS = "http://www.w3.org/2005/Atom"


@dataclass(frozen=True)
class Item:
    """One feed item, whatever the format: an issue, or a story of an issue."""

    id: str  # the item's permanent web address
    url: str  # where a reader goes from the item
    title: str
    summary: str
    html: str  # sanitized
    date: datetime


@dataclass(frozen=True)
class Channel:
    title: str
    description: str
    home: str
    url: str  # the feed's own address (self link)
    hub: str | None
    author: str
    items: tuple[Item, ...]

    @property
    def updated(self) -> datetime:
        return max((i.date for i in self.items), default=EPOCH)


def feeds(config: Config, newsletter: Newsletter, issues: list[PublishedIssue],
          env: SandboxedEnvironment) -> Iterator[tuple[str, bytes]]:
    """Every feed file of one newsletter: (path inside its folder, bytes)."""
    where = addresses(config, newsletter)
    context = {"newsletter": newsletter.model_dump(), "addresses": where, "source_titles": config.source_titles()}
    recent = issues[:config.site.feed_items]
    issue_items = tuple(Item(id=where.issue(i.number), url=where.issue(i.number), title=i.subject,
                             summary=i.preheader or i.subject, date=i.issued,
                             html=_content(env, "archive/feed_issue.html.j2", where.issue(i.number),
                                           issue=i, **context)) for i in recent)
    stories = [(issue, story) for issue in issues for story in issue.stories][:config.site.feed_items]
    story_items = tuple(Item(id=where.story(s.id), url=http_url(s.url) or where.story(s.id), title=s.title,
                             summary=s.summary or s.title, date=issue.issued,
                             html=_content(env, "archive/feed_story.html.j2", where.story(s.id),
                                           story=s, **context)) for issue, s in stories)
    for kind in feed_formats(newsletter):
        yield feed_path(kind), _FORMATS[kind](_channel(config, newsletter, where, kind, False, issue_items))
        if "stories" in newsletter.feeds:
            yield feed_path(kind, True), _FORMATS[kind](_channel(config, newsletter, where, kind, True, story_items))


def _channel(config: Config, newsletter: Newsletter, where: Addresses, kind: str, stories: bool,
             items: tuple[Item, ...]) -> Channel:
    if stories:
        title, description = f"{newsletter.title}: stories", f"Every story {newsletter.title} has carried"
    else:  # feed readers show this under the title: what the newsletter is, when staff said so
        title = newsletter.title
        description = " ".join(newsletter.description.split()) or f"Every issue of {newsletter.title}"
    return Channel(title=title, description=description, home=where.home, url=where.feed(kind, stories),
                   hub=config.site.websub_hub, author=newsletter.title, items=items)


def _content(env: SandboxedEnvironment, template: str, base: str, **context: Any) -> str:
    return sanitize_html(env.get_template(template).render(**context), base_url=base)


def _generator(channel: Channel) -> FeedGenerator:
    fg = FeedGenerator()
    fg.id(channel.url)
    fg.title(channel.title)
    fg.description(channel.description)
    fg.subtitle(channel.description)
    fg.author(name=channel.author)
    fg.link(href=channel.url, rel="self")
    if channel.hub:
        fg.link(href=channel.hub, rel="hub")
    fg.link(href=channel.home, rel="alternate")  # last: feedgen makes the last link RSS's <link>
    fg.language("en")
    fg.generator("feedletter")
    fg.updated(channel.updated)  # also RSS lastBuildDate; feedgen would otherwise stamp "now"
    for item in reversed(channel.items):  # feedgen prepends: oldest first leaves the newest on top
        entry = fg.add_entry()
        entry.id(item.id)
        entry.guid(item.id, permalink=True)
        entry.title(item.title)
        entry.link(href=item.url, rel="alternate")
        # RSS readers take <description> as HTML: the plain-text summary goes in escaped.
        entry.summary(htmllib.escape(item.summary, quote=False), type="html")
        entry.content(item.html, type="html")
        entry.published(item.date)
        entry.updated(item.date)
    return fg


def rss(channel: Channel) -> bytes:
    document = etree.fromstring(_generator(channel).rss_str())
    if channel.hub:
        # feedgen writes only the self link into RSS; WebSub subscribers look for rel="hub" beside it.
        rss_channel = document.find("channel")
        assert rss_channel is not None
        self_link = rss_channel.find(f"{{{_ATOM_NS}}}link")
        hub = etree.Element(f"{{{_ATOM_NS}}}link", href=channel.hub, rel="hub")
        if self_link is not None:
            self_link.addnext(hub)
        else:
            rss_channel.append(hub)
    return bytes(etree.tostring(document, pretty_print=True, xml_declaration=True, encoding="UTF-8"))


def atom(channel: Channel) -> bytes:
    return bytes(_generator(channel).atom_str(pretty=True))


def json_feed(channel: Channel) -> bytes:
    feed: dict[str, Any] = {"version": JSON_FEED_VERSION, "title": channel.title, "home_page_url": channel.home,
                            "feed_url": channel.url, "description": channel.description, "language": "en",
                            "authors": [{"name": channel.author}]}
    if channel.hub:
        feed["hubs"] = [{"type": "WebSub", "url": channel.hub}]
    feed["items"] = [{"id": i.id, "url": i.url, "title": i.title, "summary": i.summary, "content_html": i.html,
                      "date_published": rfc3339(i.date)} for i in channel.items]
    return (json.dumps(feed, ensure_ascii=False, indent=2) + "\n").encode("utf-8")


def rfc3339(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_FORMATS = {"rss": rss, "atom": atom, "json": json_feed}
