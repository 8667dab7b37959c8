"""The digest stages as plain functions: select stories, render the issue, save it, queue it.

Which stories an issue carries, and in what order, is :mod:`feedletter.issue.selection`'s.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, get_args
from urllib.parse import urlsplit

import sqlalchemy as sa

from feedletter.config import Config
from feedletter.config_newsletters import CheckLevel, Checks, Newsletter
from feedletter.deliver import IssueContent
from feedletter.deliver.message import sender_domain
from feedletter.deliver.outbox import queue
from feedletter.errors import FeedletterError, RenderError
from feedletter.issue.render import GMAIL_CLIP_BYTES, CheckResult, Rendered, render_digest, review_digest
from feedletter.issue.selection import last_issue, select_stories
from feedletter.models import Digest, Story
from feedletter.runreport import DigestReport, counted
from feedletter.schema import issue_stories, issues
from feedletter.store import Store, now

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Finding:
    """One pre-send check's outcome for an issue: ``pass``, ``warn``, ``fail``, or ``off`` (not run)."""

    check: str
    outcome: str
    detail: str


@dataclass(frozen=True)
class Prepared:
    """An issue ready to save and send (or to write out, for a dry run)."""

    digest: Digest
    number: int
    rendered: Rendered
    review: CheckResult  # the pre-send checks, run once here
    again: bool = False  # the last issue's stories made again (see prepare_again), for a preview

    @property
    def checks(self) -> tuple[str, ...]:
        """Every problem the checks found, failures first."""
        return (*self.review.failures, *self.review.warnings)


# The checks a newsletter sets a level for (``checks:``), in the order staff read them.
CHECK_NAMES = tuple(name for name, field in Checks.model_fields.items() if field.default in get_args(CheckLevel))


def findings(prepared: Prepared, newsletter: Newsletter) -> list[Finding]:
    """Every pre-send check with its outcome and a line to show: the problem found, or what passed."""
    found: dict[str, list[Finding]] = {}
    for outcome, problems in (("fail", prepared.review.failures), ("warn", prepared.review.warnings)):
        for problem in problems:
            check, _, detail = problem.partition(": ")
            found.setdefault(check, []).append(Finding(check, outcome, detail))
    result = []
    for check in CHECK_NAMES:
        if check in found:
            result += found.pop(check)
        elif getattr(newsletter.checks, check) == "off":
            result.append(Finding(check, "off", f"not checked (checks: {{{check}: off}})"))
        else:
            result.append(Finding(check, "pass", _passed(check, prepared, newsletter)))
    return [*(f for extra in found.values() for f in extra), *result]  # e.g. an empty subject, first


def _passed(check: str, prepared: Prepared, newsletter: Newsletter) -> str:
    rendered = prepared.rendered
    return {
        "html_size": f"HTML is {len(rendered.html.encode('utf-8')) / 1024:.0f} KB (Gmail clips messages over "
                     f"{GMAIL_CLIP_BYTES // 1024} KB)",
        "links": "every link is an absolute http(s) or mailto: URL",
        "alt": "every image has alt text",
        "subject_length": f"subject is {len(rendered.subject)} characters (limit {newsletter.checks.subject_max})",
        "unsubscribe": "an unsubscribe link in the HTML and the text part",
        "postal_address": "a postal address in the footer",
    }.get(check, "passed")


def issue_url(config: Config, newsletter: str, number: int) -> str:
    return f"{config.site.base_url.rstrip('/')}/{newsletter}/{number}/"


def prepare_digest(config: Config, store: Store, newsletter: Newsletter, *,
                   at: datetime | None = None, web_url: str | None = None) -> Prepared | None:
    """Select and render the next issue; None when there are fewer stories than ``min_stories``.

    ``web_url``, the "view in browser" link, is the issue's archive page unless given (a test send's
    points to a copy written for it).
    """
    at = at or now()
    checked = (_checked(newsletter, s) for s in select_stories(config, store, newsletter, at=at))
    chosen = [s for s in checked if s is not None]
    if not chosen or len(chosen) < newsletter.select.min_stories:
        return None
    previous = last_issue(store, newsletter.name)
    return _prepared(config, newsletter, chosen, (previous[0] if previous else 0) + 1, at, web_url)


def prepare_again(config: Config, store: Store, newsletter: Newsletter, *,
                  web_url: str | None = None) -> Prepared | None:
    """The last issue of ``newsletter`` made again from its stories, with the templates and settings
    of now (no ``select`` filter, which its stories passed once); None before the first issue.

    For staff who edit a template after an issue went out, when no new story would make a next one:
    a preview or test send of it, marked ``again``. Nothing is recorded.
    """
    previous = last_issue(store, newsletter.name)
    if previous is None:
        return None
    number, issued = previous
    with store.begin() as conn:
        ids = [int(i) for i in conn.execute(
            sa.select(issue_stories.c.story_id).join(issues, issues.c.id == issue_stories.c.issue_id)
            .where(issues.c.newsletter == newsletter.name, issues.c.number == number)
            .order_by(issue_stories.c.position)).scalars()]
    checked = (_checked(newsletter, s) for s in select_stories(config, store, newsletter, at=issued, ids=ids))
    chosen = [s for s in checked if s is not None]
    if not chosen:
        return None
    return replace(_prepared(config, newsletter, chosen, number, issued, web_url), again=True)


def _prepared(config: Config, newsletter: Newsletter, chosen: list[Story], number: int, at: datetime,
              web_url: str | None) -> Prepared:
    """Issue ``number`` of ``chosen``, rendered and checked; a story that breaks the rendering is left out."""
    web_url = web_url or issue_url(config, newsletter.name, number)

    def render(stories: list[Story]) -> Rendered:
        return render_digest(config, newsletter, stories, number=number, issued=at, web_url=web_url,
                             source_titles=config.source_titles())

    try:
        rendered = render(chosen)
    except RenderError as whole:
        # One story that breaks the issue (a character MJML cannot take, say) must not hold back the
        # others, run after run: each is rendered alone to find it, and left out with a warning.
        broken = [s for s in chosen if _fails(render, s)] if len(chosen) > 1 else []
        if not broken:
            raise
        for story in broken:
            _left_out(newsletter, story, "it breaks the email's rendering")
        chosen = [s for s in chosen if s not in broken]
        if len(chosen) < max(1, newsletter.select.min_stories):
            raise whole from None
        rendered = render(chosen)
    digest = Digest(newsletter=newsletter.name, title=newsletter.title, subject=rendered.subject,
                    preheader=rendered.preheader, issued=at, stories=tuple(chosen), web_url=web_url)
    return Prepared(digest, number, rendered, review_digest(rendered, newsletter))


def digest_record(prepared: Prepared, titles: dict[str, str] | None = None) -> dict[str, Any]:
    """What was rendered, as the CLI contract's digest.json."""
    d = prepared.digest
    return {
        "newsletter": d.newsletter, "number": prepared.number, "subject": d.subject,
        "preheader": d.preheader, "issued": d.issued.isoformat(), "web_url": d.web_url,
        "checks": list(prepared.checks),
        "stories": [{"title": s.title, "url": s.url, "source": s.source,
                     "published": s.published.isoformat(), "summary": s.summary,
                     "also": [{"source": a.source, "title": a.title, "url": a.url} for a in s.also],
                     "more": [{"source": m.source, "title": m.title, "url": m.url} for m in s.more]}
                    for s in d.stories],
    }


def write_preview(prepared: Prepared, out: Path, message: EmailMessage | None = None) -> list[Path]:
    """Write digest.html/.txt/.mjml/.json; with ``message``, also digest.eml and its headers in the JSON."""
    out.mkdir(parents=True, exist_ok=True)
    record = digest_record(prepared)
    files = {"digest.html": prepared.rendered.html, "digest.txt": prepared.rendered.text,
             "digest.mjml": prepared.rendered.mjml}
    if message is not None:
        record["headers"] = {name: str(value) for name, value in message.items()
                             if name not in ("MIME-Version", "Content-Transfer-Encoding")}
    files["digest.json"] = json.dumps(record, indent=2, ensure_ascii=False) + "\n"
    for name, content in files.items():
        (out / name).write_text(content, encoding="utf-8")
    written = [out / name for name in files]
    if message is not None:
        (out / "digest.eml").write_bytes(message.as_bytes())
        written.append(out / "digest.eml")
    return written


def save_issue(store: Store, prepared: Prepared) -> int:
    """Store the issue and mark its stories as used by this newsletter; return the issue id."""
    d = prepared.digest
    with store.begin() as conn:
        row = conn.execute(issues.insert().values(
            newsletter=d.newsletter, number=prepared.number, issued=d.issued, subject=d.subject,
            preheader=d.preheader, html=prepared.rendered.html, text=prepared.rendered.text,
            mjml=prepared.rendered.mjml, data=json.dumps(digest_record(prepared), ensure_ascii=False)))
        issue_id = int(row.inserted_primary_key[0])  # type: ignore[index]
        placed = [{"issue_id": issue_id, "story_id": s.id, "newsletter": d.newsletter, "position": i,
                   "more_of": None} for i, s in enumerate(d.stories)]
        # A subject's other stories were carried too, under their entry: they must not come back.
        placed += [{"issue_id": issue_id, "story_id": m.story_id, "newsletter": d.newsletter,
                    "position": len(placed) + k, "more_of": s.id}
                   for k, (s, m) in enumerate((s, m) for s in d.stories for m in s.more if m.story_id is not None)]
        conn.execute(issue_stories.insert(), placed)
    return issue_id


def queue_issue(store: Store, issue_id: int, newsletter: Newsletter) -> int:
    return queue(store, issue_id, newsletter.name, sender_domain(newsletter.sender))


def pending_issues(store: Store, newsletter: str) -> list[int]:
    """Issues with outbox rows still to send: a crashed run's work, finished before anything new."""
    from feedletter.schema import outbox

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


def _fails(render: Callable[[list[Story]], Rendered], story: Story) -> bool:
    try:
        render([story])
    except RenderError:
        return True
    return False


def _web(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _checked(newsletter: Newsletter, story: Story) -> Story | None:
    """``story`` as an issue may carry it: left out (None, with a warning) when its own link is not an
    http(s) URL, whatever ``checks.links`` says; other sites' links that are not go, the story stays."""
    if not _web(story.url):
        _left_out(newsletter, story, f"its link {story.url[:80]!r} is not an http(s) URL")
        return None
    also = tuple(a for a in story.also if _web(a.url))
    more = tuple(m for m in story.more if _web(m.url))
    image = story.image if story.image and _web(story.image) else None
    if (also, more, image) != (story.also, story.more, story.image):
        return replace(story, also=also, more=more, image=image)
    return story


def _left_out(newsletter: Newsletter, story: Story, why: str) -> None:
    log.warning("digest %s: left out the story %r from %s (%s): %s", newsletter.name, story.title[:80],
                story.source, story.url[:200], why, extra={"cause": "story left out of the issue", "kind": "story"})


def run_markdown(prepared: Prepared, report: DigestReport) -> str:
    """What a digest run sent, as the Markdown of the run's Prefect artifact."""
    outbox = report.outbox or {}
    size = len(prepared.rendered.html.encode())
    lines = [f"# {prepared.digest.subject}", "",
             f"Issue {prepared.number} of **{prepared.digest.newsletter}** · "
             f"{counted(report.stories or 0, 'story', 'stories')} · "
             f"HTML {size / 1024:.1f} KB", "",
             "| recipients | queued | sent | failed | skipped |", "|---|---|---|---|---|",
             f"| {sum(outbox.values())} | {outbox['queued'] + outbox['sending']} | {outbox['sent']} | "
             f"{outbox['failed']} | {outbox['skipped']} |", "",
             f"Archive: [{prepared.digest.web_url}]({prepared.digest.web_url})", "", "## Stories"]
    if report.paused is not None:
        lines[4:4] = [f"**Paused**: {report.paused.reason}; the next digest run resumes it.", ""]
    lines += [f"- [{s.title}]({s.url}) ({s.source}, {len(s.also)} more)" for s in prepared.digest.stories]
    lines += ["", "## Pre-send checks", *(f"- {c}" for c in prepared.checks)] if prepared.checks else \
        ["", "## Pre-send checks", "- all passed (size under the clipping limit, links, unsubscribe)"]
    return "\n".join(lines)
