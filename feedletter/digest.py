"""The digest stages as plain functions: select stories, render the issue, save it, queue it.

Selection order is documented in the README: a story's score is ``2 × sources covering it +
recency (1 / (1 + age in days)) + source priority``; pinned words in the title come first.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from feedletter.config import Config, Newsletter
from feedletter.deliver import IssueContent
from feedletter.deliver.message import sender_domain
from feedletter.deliver.outbox import queue
from feedletter.errors import FeedletterError
from feedletter.models import Digest, Story
from feedletter.render import Rendered, check_digest, render_digest
from feedletter.store import Store, articles, issue_stories, issues, now, stories, utc
from feedletter.stories import load_stories


@dataclass(frozen=True)
class Prepared:
    """An issue ready to save and send (or to write out, for a dry run)."""

    digest: Digest
    number: int
    rendered: Rendered
    checks: tuple[str, ...]


def _source_tags(config: Config) -> dict[str, tuple[str, ...]]:
    return {s.name: tuple(s.tags) for s in config.sources}


def source_titles(config: Config) -> dict[str, str]:
    return {s.name: s.name.replace("-", " ").title() for s in config.sources}


def last_issue(store: Store, newsletter: str) -> tuple[int, datetime] | None:
    with store.begin() as conn:
        row = conn.execute(sa.select(issues.c.number, issues.c.issued).where(issues.c.newsletter == newsletter)
                           .order_by(issues.c.number.desc()).limit(1)).first()
    return None if row is None else (row.number, utc(row.issued))  # type: ignore[return-value]


def _period(since: str) -> timedelta | None:
    match = re.fullmatch(r"(\d+)([hd])", since)
    if not match:
        return None
    amount = int(match.group(1))
    return timedelta(hours=amount) if match.group(2) == "h" else timedelta(days=amount)


def select_stories(config: Config, store: Store, newsletter: Newsletter, *,
                   at: datetime | None = None) -> list[Story]:
    """The stories the next issue of ``newsletter`` carries, best first."""
    at = at or now()
    sel = newsletter.select
    query = (sa.select(stories.c.id, stories.c.created).where(stories.c.summary != "")
             .where(~stories.c.id.in_(sa.select(issue_stories.c.story_id)
                                      .where(issue_stories.c.newsletter == newsletter.name))))
    previous = last_issue(store, newsletter.name)
    if sel.since == "last_issue" and previous is not None:
        query = query.where(stories.c.created > previous[1])
    with store.begin() as conn:
        ids = [r.id for r in conn.execute(query)]
    candidates = load_stories(store, ids, _source_tags(config))
    period = _period(sel.since)
    priority = {s.name: s.priority for s in config.sources}
    tags = _source_tags(config)
    chosen = []
    for story in candidates:
        carriers = [story.source, *(a.source for a in story.also)]
        if period is not None and story.published < at - period:
            continue
        if sel.sources and not set(carriers) & set(sel.sources):
            continue
        story_tags = {t for name in carriers for t in tags.get(name, ())}
        if sel.tags and not story_tags & set(sel.tags):
            continue
        haystack = f"{story.title}\n{story.summary}"
        if sel.include and not any(re.search(p, haystack, re.IGNORECASE) for p in sel.include):
            continue
        if any(re.search(p, haystack, re.IGNORECASE) for p in sel.exclude):
            continue
        chosen.append(story)

    def score(story: Story) -> tuple[float, float, int]:
        age_days = max(0.0, (at - story.published).total_seconds() / 86400)
        value = 2 * (1 + len(story.also)) + 1 / (1 + age_days) + priority.get(story.source, 0)
        return (-value, -story.published.timestamp(), story.id)

    chosen.sort(key=score)
    return chosen[:sel.max_stories]


def issue_url(config: Config, newsletter: str, number: int) -> str:
    return f"{config.site.base_url.rstrip('/')}/{newsletter}/{number}/"


def prepare_digest(config: Config, store: Store, newsletter: Newsletter, *,
                   at: datetime | None = None) -> Prepared | None:
    """Select and render the next issue; None when there are fewer stories than ``min_stories``."""
    at = at or now()
    chosen = select_stories(config, store, newsletter, at=at)
    if not chosen or len(chosen) < newsletter.select.min_stories:
        return None
    previous = last_issue(store, newsletter.name)
    number = (previous[0] if previous else 0) + 1
    web_url = issue_url(config, newsletter.name, number)
    rendered = render_digest(config, newsletter, chosen, number=number, issued=at, web_url=web_url,
                             source_titles=source_titles(config))
    digest = Digest(newsletter=newsletter.name, title=newsletter.title, subject=rendered.subject,
                    preheader=rendered.preheader, issued=at, stories=tuple(chosen), web_url=web_url)
    return Prepared(digest, number, rendered, tuple(check_digest(rendered, newsletter)))


def digest_record(prepared: Prepared, titles: dict[str, str] | None = None) -> dict[str, Any]:
    """What was rendered, as the CLI contract's digest.json."""
    d = prepared.digest
    return {
        "newsletter": d.newsletter, "number": prepared.number, "subject": d.subject,
        "preheader": d.preheader, "issued": d.issued.isoformat(), "web_url": d.web_url,
        "checks": list(prepared.checks),
        "stories": [{"title": s.title, "url": s.url, "source": s.source,
                     "published": s.published.isoformat(), "summary": s.summary,
                     "also": [{"source": a.source, "title": a.title, "url": a.url} for a in s.also]}
                    for s in d.stories],
    }


def write_preview(prepared: Prepared, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    files = {"digest.html": prepared.rendered.html, "digest.txt": prepared.rendered.text,
             "digest.mjml": prepared.rendered.mjml,
             "digest.json": json.dumps(digest_record(prepared), indent=2, ensure_ascii=False) + "\n"}
    for name, content in files.items():
        (out / name).write_text(content, encoding="utf-8")
    return [out / name for name in files]


def save_issue(store: Store, prepared: Prepared) -> int:
    """Store the issue and mark its stories as used by this newsletter; return the issue id."""
    d = prepared.digest
    with store.begin() as conn:
        row = conn.execute(issues.insert().values(
            newsletter=d.newsletter, number=prepared.number, issued=d.issued, subject=d.subject,
            preheader=d.preheader, html=prepared.rendered.html, text=prepared.rendered.text,
            mjml=prepared.rendered.mjml, data=json.dumps(digest_record(prepared), ensure_ascii=False)))
        issue_id = int(row.inserted_primary_key[0])  # type: ignore[index]
        conn.execute(issue_stories.insert(), [
            {"issue_id": issue_id, "story_id": s.id, "newsletter": d.newsletter, "position": i}
            for i, s in enumerate(d.stories)])
    return issue_id


def queue_issue(store: Store, issue_id: int, newsletter: Newsletter) -> int:
    return queue(store, issue_id, newsletter.name, sender_domain(newsletter.sender))


def pending_issues(store: Store, newsletter: str) -> list[int]:
    """Issues with outbox rows still to send: a crashed run's work, finished before anything new."""
    from feedletter.store import outbox

    with store.begin() as conn:
        return list(conn.execute(sa.select(sa.distinct(outbox.c.issue_id)).join(issues)
                                 .where(issues.c.newsletter == newsletter,
                                        outbox.c.state.in_(("queued", "sending")))
                                 .order_by(outbox.c.issue_id)).scalars())


def issue_content(config: Config, store: Store, issue_id: int) -> IssueContent:
    with store.begin() as conn:
        row = conn.execute(sa.select(issues).where(issues.c.id == issue_id)).mappings().first()
    if row is None:
        raise FeedletterError("digest", f"no issue with id {issue_id}")
    return IssueContent(issue_id, config.newsletter(row["newsletter"]), row["subject"], row["html"], row["text"])


def article_count(store: Store) -> int:
    with store.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(articles)).scalar_one())
