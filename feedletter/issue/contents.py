"""What an issue says around its stories: their sections, the intro, and a subject that fits.

Plain functions over the config and :class:`~feedletter.models.Story`; the template sees their
results (see :func:`feedletter.issue.render.render_digest`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from feedletter.config import Config
from feedletter.config_newsletters import Newsletter, Section
from feedletter.errors import RenderError
from feedletter.models import Story

__all__ = ["REST_TITLE", "SUBJECT_FIT", "Part", "arrange", "fit_subject", "intro_source"]

SUBJECT_FIT = 70  # characters: what phone inboxes show of a subject before they cut it themselves
REST_TITLE = "More stories"


@dataclass(frozen=True)
class Part:
    """One run of stories under a heading; ``title`` is empty when the newsletter has no sections."""

    title: str
    stories: tuple[Story, ...]


def arrange(stories: Sequence[Story], sections: Sequence[Section]) -> list[Part]:
    """The stories under their sections, in section order, each story in the first section it matches.

    A story matches a section when its source has one of the section's tags. Stories no tagged
    section takes go under the section without tags, else under "More stories" at the end. Within
    a section the stories keep the order they were selected in; empty sections are left out.
    """
    if not sections:
        return [Part("", tuple(stories))]
    placed: list[list[Story]] = [[] for _ in sections]
    rest: list[Story] = []
    for story in stories:
        tags = set(story.tags)
        found = next((i for i, section in enumerate(sections) if tags & set(section.tags)), None)
        (rest if found is None else placed[found]).append(story)
    catch_all = next((i for i, section in enumerate(sections) if not section.tags), None)
    if catch_all is not None:
        placed[catch_all], rest = rest, []
    parts = [Part(section.title, tuple(got)) for section, got in zip(sections, placed, strict=True) if got]
    return parts + ([Part(REST_TITLE, tuple(rest))] if rest else [])


def fit_subject(subject: str, lead_title: str, others: int, limit: int = SUBJECT_FIT) -> str:
    """The subject cut at a word to ``limit`` characters, with " +N more" when it names the lead story.

    The count is added when it fits beside the whole subject, or when the subject has to be cut
    anyway and enough of it is left to read; a subject that fits without the count is never cut
    to make room for it.
    """
    subject = " ".join(subject.split())
    lead = " ".join(lead_title.split())
    more = f" +{others} more" if others > 0 and lead and lead[:20] in subject else ""
    if len(subject) + len(more) <= limit:
        return subject + more
    if len(subject) <= limit:
        return subject
    if more:
        cut = _cut(subject, limit - len(more) - 1)
        if len(cut) >= limit // 2:
            return f"{cut}…{more}"
    return _cut(subject, limit - 1) + "…"


def _cut(text: str, room: int) -> str:
    """At most ``room`` characters of ``text``, ending at a word (mid-word only for a giant word)."""
    if len(text) <= room:
        return text
    head = text[:room + 1]
    cut = head.rsplit(" ", 1)[0] if " " in head else ""
    if len(cut) < room // 2:
        cut = text[:room]
    return cut.rstrip(" ,;:–—-·")


def intro_source(config: Config, newsletter: Newsletter) -> str:
    """The intro's Markdown: ``intro``, else the text of ``intro_file`` (relative to the config)."""
    if newsletter.intro_file is None:
        return newsletter.intro
    path = config.resolve(newsletter.intro_file)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise RenderError(str(path), f"cannot read the intro_file: {reason}") from None
