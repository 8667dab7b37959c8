"""The static web archive: an index of issues per newsletter, one page per issue, one per story.

Every link between pages is relative and every page is ``folder/index.html``, so the archive works
from ``feedletter web``, from any static host, and from a sub-path such as ``/archive/``. An issue's
page is the email itself with what belongs to one subscriber taken out (``web_copy``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from feedletter.config import Config
from feedletter.config_newsletters import Newsletter
from feedletter.issue.render import template_dirs
from feedletter.publish.about import about
from feedletter.publish.issues import (
    FEED_NAMES,
    FEED_TYPES,
    Addresses,
    PublishedIssue,
    addresses,
    feed_formats,
    feed_path,
)
from feedletter.publish.web_copy import web_copy


@dataclass(frozen=True)
class Alternate:
    """One feed as a page links to it: ``<link rel="alternate">`` and a visible link."""

    path: str  # relative to the newsletter's folder
    type: str
    title: str
    format: str  # "RSS", "Atom", "JSON Feed"
    stories: bool  # the stories feed, else the issues feed


def http_url(value: str) -> str:
    """The URL if a browser may follow it from our pages, else empty: stored URLs came from feeds."""
    return value if urlsplit(value.strip()).scheme in ("http", "https") else ""


def day(value: datetime) -> str:
    return f"{value.day} {value:%B %Y}"


def environment(config: Config) -> SandboxedEnvironment:
    # Staff may override these templates like the email's: sandboxed, escaped, strict about names.
    env = SandboxedEnvironment(loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(config)]),
                               autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                               lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["http_url"] = http_url
    env.filters["day"] = day
    return env


def alternates(newsletter: Newsletter) -> list[Alternate]:
    kinds = feed_formats(newsletter)
    out = [Alternate(feed_path(kind), FEED_TYPES[kind], f"{newsletter.title} ({FEED_NAMES[kind]})",
                     FEED_NAMES[kind], False) for kind in kinds]
    if "stories" in newsletter.feeds:
        out += [Alternate(feed_path(kind, True), FEED_TYPES[kind],
                          f"{newsletter.title}: stories ({FEED_NAMES[kind]})", FEED_NAMES[kind], True)
                for kind in kinds]
    return out


class Archive:
    """Renders one newsletter's pages; yields (path inside the archive, HTML) pairs."""

    def __init__(self, config: Config, newsletter: Newsletter, env: SandboxedEnvironment) -> None:
        self.config = config
        self.newsletter = newsletter
        self.env = env
        self.where: Addresses = addresses(config, newsletter)
        self.feeds = alternates(newsletter)
        self.common: dict[str, Any] = {"site_title": config.site.title, "newsletter": newsletter.model_dump(),
                                       "about": about(config, newsletter), "alternates": self.feeds,
                                       "source_titles": config.source_titles()}

    def pages(self, issues: list[PublishedIssue]) -> Iterator[tuple[str, str]]:
        yield from self.index_pages(issues)
        for position, issue in enumerate(issues):
            newer = issues[position - 1].number if position > 0 else None
            older = issues[position + 1].number if position + 1 < len(issues) else None
            yield f"{issue.number}/index.html", self.issue_page(issue, newer=newer, older=older)
            for story in issue.stories:
                yield f"stories/{story.id}/index.html", self._render(
                    "archive/story.html.j2", up="../../", top="../../../", story=story,
                    canonical=self.where.story(story.id))

    def index_pages(self, issues: list[PublishedIssue]) -> Iterator[tuple[str, str]]:
        size = self.config.site.archive_per_page
        count = max(1, -(-len(issues) // size))
        for page in range(1, count + 1):
            up = "" if page == 1 else "../../"
            newer = None if page == 1 else (up if page == 2 else f"{up}page/{page - 1}/")
            older = f"{up}page/{page + 1}/" if page < count else None
            canonical = self.where.home + ("" if page == 1 else f"page/{page}/")
            html = self._render("archive/index.html.j2", up=up, top=up + "../", page=page, pages=count,
                                issues=issues[(page - 1) * size: page * size], previous_page=newer,
                                next_page=older, canonical=canonical)
            yield ("index.html" if page == 1 else f"page/{page}/index.html"), html

    def issue_page(self, issue: PublishedIssue, *, newer: int | None, older: int | None) -> str:
        context = {"up": "../", "canonical": self.where.issue(issue.number), "stories": issue.stories,
                   "newer": newer, "older": older}
        head = self._render("archive/issue_head.html.j2", **context)
        nav = self._render("archive/issue_nav.html.j2", **context)
        foot = self._render("archive/issue_foot.html.j2", **context)
        page = web_copy(issue.html, self.where.issue(issue.number))
        page, found = re.subn(r"</head>", lambda _: head + "</head>", page, count=1, flags=re.I)
        if not found:
            page = head + page
        page, found = re.subn(r"<body\b[^>]*>", lambda m: m.group(0) + nav, page, count=1, flags=re.I)
        if not found:
            page = nav + page
        page, found = re.subn(r"</body>", lambda _: foot + "</body>", page, count=1, flags=re.I)
        return page if found else page + foot

    def _render(self, name: str, **context: Any) -> str:
        return self.env.get_template(name).render(**self.common, **context)


def home_page(config: Config, env: SandboxedEnvironment, issues: dict[str, list[PublishedIssue]]) -> str:
    """The archive's root: every newsletter, what it is, how many issues it has and how to get it."""
    listed = [{"name": n.name, "about": about(config, n), "count": len(issues.get(n.name, [])),
               "latest": issues[n.name][0].issued if issues.get(n.name) else None} for n in config.newsletters]
    return env.get_template("archive/home.html.j2").render(
        site_title=config.site.title, newsletters=listed, alternates=[], up="", canonical=None)
