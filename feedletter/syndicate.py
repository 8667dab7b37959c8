"""Publish issues: an RSS 2.0 feed per newsletter (feedgen) and a static HTML archive.

Everything is rebuilt from the store, deterministically, so a rebuild gives the same bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2
import sqlalchemy as sa
from feedgen.feed import FeedGenerator

from feedletter.config import Config, Newsletter
from feedletter.render import template_dirs
from feedletter.store import Store, issues, utc


@dataclass(frozen=True)
class IssueRow:
    number: int
    subject: str
    preheader: str
    issued: datetime
    html: str


def load_issues(store: Store, newsletter: str) -> list[IssueRow]:
    with store.begin() as conn:
        rows = conn.execute(sa.select(issues.c.number, issues.c.subject, issues.c.preheader, issues.c.issued,
                                      issues.c.html).where(issues.c.newsletter == newsletter)
                            .order_by(issues.c.number.desc())).all()
    return [IssueRow(r.number, r.subject, r.preheader, utc(r.issued), r.html) for r in rows]  # type: ignore[arg-type]


def web_copy(html: str) -> str:
    """The email's HTML as a web page: the per-subscriber parts taken out."""
    html = re.sub(r'<a href="%%UNSUBSCRIBE_URL%%"[^>]*>.*?</a>', "", html, flags=re.S)
    return html.replace("%%NAME%%", "").replace(" as .", ".")


def rss_feed(config: Config, newsletter: Newsletter, rows: list[IssueRow]) -> bytes:
    base = config.site.base_url.rstrip("/")
    home = f"{base}/{newsletter.name}/"
    fg = FeedGenerator()
    fg.title(newsletter.title)
    fg.link(href=home, rel="alternate")
    fg.link(href=f"{home}rss.xml", rel="self")
    fg.description(f"Every issue of {newsletter.title}")
    fg.language("en")
    fg.generator("feedletter")
    if rows:
        fg.lastBuildDate(rows[0].issued)
    for row in reversed(rows):  # feedgen prepends: add oldest first so the newest ends on top
        entry = fg.add_entry()
        url = f"{home}{row.number}/"
        entry.id(url)
        entry.guid(url, permalink=True)
        entry.link(href=url)
        entry.title(row.subject)
        entry.description(row.preheader or row.subject)
        entry.pubDate(row.issued)
    return bytes(fg.rss_str(pretty=True))


def syndicate(config: Config, store: Store) -> list[Path]:
    """Write every newsletter's feed and archive under ``site.archive_dir``; return the files written."""
    root = config.resolve(config.site.archive_dir)
    env = jinja2.Environment(loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(config)]),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    written: list[Path] = []
    for newsletter in config.newsletters:
        rows = load_issues(store, newsletter.name)
        folder = root / newsletter.name
        folder.mkdir(parents=True, exist_ok=True)
        if "rss" in newsletter.feeds:
            written.append(_write(folder / "rss.xml", rss_feed(config, newsletter, rows)))
        index = env.get_template("archive/index.html.j2").render(
            newsletter=newsletter.model_dump(), issues=rows, base=config.site.base_url.rstrip("/"))
        written.append(_write(folder / "index.html", index.encode("utf-8")))
        for row in rows:
            written.append(_write(folder / str(row.number) / "index.html", web_copy(row.html).encode("utf-8")))
    return written


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_bytes() != data:
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)
    return path
