"""Render a digest: Jinja2 → MJML → HTML once per issue, a plain-text part, and pre-send checks.

The MJML is compiled once; what differs per subscriber (unsubscribe URL, name) is left as
``%%PLACEHOLDER%%`` tokens (:mod:`feedletter.issue.placeholders`), filled in as each message is sent.
"""

from __future__ import annotations

import html as htmllib
import re
import textwrap
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup
from mjml import mjml2html

from feedletter.config import Config
from feedletter.config_newsletters import Newsletter, Utm
from feedletter.errors import RenderError
from feedletter.issue.contents import arrange, fit_subject, intro_source
from feedletter.issue.placeholders import PLACEHOLDERS, UNSUBSCRIBE_URL
from feedletter.models import Story
from feedletter.text.markdown import markdown_html, markdown_text

GMAIL_CLIP_BYTES = 102 * 1024
SUBJECT_LIMIT = 150  # the default of newsletters[].checks.subject_max


def _builtin_templates() -> Path:
    """The templates shipped with feedletter: the package's copy, or templates/ of a checkout."""
    try:
        found = Path(str(resources.files("feedletter.templates")))
        if (found / "digest.mjml.j2").is_file():
            return found
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "templates"


BUILTIN_TEMPLATES = _builtin_templates()


@dataclass(frozen=True)
class Rendered:
    subject: str
    preheader: str
    html: str
    text: str
    mjml: str
    warnings: tuple[str, ...] = ()


def template_dirs(config: Config) -> list[Path]:
    """Staff templates first (``templates_dir``, else ./templates beside the config), then the built-ins."""
    dirs = []
    if config.templates_dir:
        dirs.append(config.resolve(config.templates_dir))
    else:
        beside = config.resolve("templates")
        if beside.is_dir():
            dirs.append(beside)
    dirs.append(BUILTIN_TEMPLATES)
    return dirs


def _wrap(text: str, width: int = 72, indent: str = "") -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n\n".join(textwrap.fill(" ".join(p.split()), width=width, initial_indent=indent,
                                     subsequent_indent=indent) for p in paragraphs)


def utm_tagger(newsletter: Newsletter, issue: int) -> Callable[[str], str]:
    """A filter that adds the newsletter's UTM parameters to http(s) links (and replaces any it had)."""
    if newsletter.utm is False:
        return lambda url: url
    settings = newsletter.utm if isinstance(newsletter.utm, Utm) else Utm()
    fields = {"newsletter": newsletter.name, "number": str(issue)}
    params = [(f"utm_{key}", value) for key in ("source", "medium", "campaign")
              if (value := getattr(settings, key).format(**fields))]

    def track(url: str) -> str:
        if not url.startswith(("http://", "https://")):
            return url
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("utm_")]
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query + params), parts.fragment))
    return track


def environment(config: Config, newsletter: Newsletter, number: int) -> SandboxedEnvironment:
    # Templates are staff-edited files: sandboxed, strict about undefined names, HTML-escaped.
    env = SandboxedEnvironment(
        loader=jinja2.FileSystemLoader([str(d) for d in template_dirs(config)]),
        autoescape=jinja2.select_autoescape(enabled_extensions=("mjml.j2", "html.j2", "mjml", "html"),
                                            default_for_string=False),
        undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["wrap"] = _wrap
    env.filters["track"] = utm_tagger(newsletter, number)
    return env


def story_context(story: Story, source_titles: Mapping[str, str], number: int = 1) -> dict[str, Any]:
    """A story as templates see it; ``number`` is its place in the issue, ``anchor`` its in-mail target."""
    return {
        "number": number, "anchor": f"story-{number}",
        "id": story.id, "title": story.title, "url": story.url, "source": story.source,
        "source_title": source_titles.get(story.source, story.source), "published": story.published,
        "summary": story.summary, "tags": story.tags, "image": story.image, "image_alt": story.image_alt,
        "also": [{"source": a.source, "source_title": source_titles.get(a.source, a.source),
                  "title": a.title, "url": a.url} for a in story.also],
        "more": [{"source": m.source, "source_title": source_titles.get(m.source, m.source),
                  "title": m.title, "url": m.url} for m in story.more],
    }


def render_subject(template: str, context: Mapping[str, Any]) -> str:
    env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
    try:
        return " ".join(env.from_string(template).render(**context).split())
    except jinja2.TemplateError as exc:
        raise RenderError("subject", f"template error: {exc}") from None


def render_digest(config: Config, newsletter: Newsletter, stories: list[Story], *, number: int,
                  issued: datetime, web_url: str | None, source_titles: Mapping[str, str]) -> Rendered:
    """Render the issue's MJML, HTML and text once, with per-subscriber placeholders left in."""
    if not stories:
        raise RenderError(newsletter.name, "no stories to render")
    # The issue shows its stories section by section; "stories" is that order, numbered.
    parts = arrange(stories, newsletter.sections)
    stories = [story for part in parts for story in part.stories]
    shown = [story_context(s, source_titles, i) for i, s in enumerate(stories, 1)]
    sections, start = [], 0
    for part in parts:
        sections.append({"title": part.title, "stories": shown[start:start + len(part.stories)]})
        start += len(part.stories)
    intro = intro_source(config, newsletter)
    base_url = config.site.base_url.rstrip("/")
    context: dict[str, Any] = {
        "newsletter": newsletter.model_dump(by_alias=False), "number": number, "issued": issued,
        "stories": shown, "sections": sections, "web_url": web_url, "lang": "en", "subscriber_name_slot": False,
        "greeting": newsletter.greeting, "intro_html": Markup(markdown_html(intro)) if intro.strip() else "",
        "intro_text": markdown_text(intro) if intro.strip() else "",
        "site": {"title": config.site.title, "url": base_url, "host": urlsplit(base_url).netloc},
    }
    subject = fit_subject(render_subject(newsletter.subject, context), stories[0].title, len(stories) - 1)
    preheader = render_subject(newsletter.preheader, context) if newsletter.preheader else _preheader(stories)
    context.update(subject=subject, preheader=preheader)
    env = environment(config, newsletter, number)
    mjml = _render_template(env, f"{newsletter.template}.mjml.j2", context)
    text = _render_template(env, f"{newsletter.template}.txt.j2", context)
    html = compile_mjml(mjml, f"{newsletter.template}.mjml.j2")
    return Rendered(subject=subject, preheader=preheader, html=html, text=text, mjml=mjml)


def _preheader(stories: list[Story]) -> str:
    titles = " · ".join(s.title for s in stories[1:4])
    more = f"{stories[0].summary[:90].rsplit(' ', 1)[0]}…" if stories[0].summary else ""
    return (f"Also: {titles}" if titles else more)[:140]


def _render_template(env: jinja2.Environment, name: str, context: Mapping[str, Any]) -> str:
    try:
        return env.get_template(name).render(**context)
    except jinja2.TemplateNotFound as exc:
        raise RenderError(name, f"template not found (looked in: {env.loader.searchpath})"  # type: ignore[union-attr]
                          if exc.name == name else f"included template {exc.name!r} not found") from None
    except jinja2.TemplateSyntaxError as exc:
        raise RenderError(f"{exc.name or name}:{exc.lineno}", f"template syntax error: {exc.message}") from None
    except jinja2.TemplateError as exc:
        where = _template_frame(exc, [Path(p) for p in env.loader.searchpath])  # type: ignore[union-attr]
        raise RenderError(where or name, f"template error: {exc}") from None


def _template_frame(exc: BaseException, dirs: list[Path]) -> str:
    """``name:line`` of the innermost template frame (Jinja2 maps its frames to template lines)."""
    tb, where = exc.__traceback__, ""
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if filename.endswith(".j2"):
            path = Path(filename)
            shown = next((path.relative_to(d).as_posix() for d in dirs if path.is_relative_to(d)), path.name)
            where = f"{shown}:{tb.tb_lineno}"
        tb = tb.tb_next
    return where


_KNOWN_TAGS = {"mjml", "mj-head", "mj-body", "mj-title", "mj-preview", "mj-attributes", "mj-all", "mj-class",
               "mj-style", "mj-font", "mj-breakpoint", "mj-raw", "mj-section", "mj-column", "mj-group",
               "mj-text", "mj-button", "mj-image", "mj-divider", "mj-spacer", "mj-table", "mj-wrapper",
               "mj-hero", "mj-social", "mj-social-element", "mj-navbar", "mj-navbar-link", "mj-accordion",
               "mj-accordion-element", "mj-accordion-title", "mj-accordion-text", "mj-carousel",
               "mj-carousel-image", "mj-include", "mj-html-attributes", "mj-html-attribute",
               "mj-selector"}


_TAG = re.compile(r"<(/?)(mj-[a-z-]+|mjml)\b(?:[^>\"']|\"[^\"]*\"|'[^']*')*?(/?)>")
# mj-text, mj-button … hold HTML that MJML passes through untouched; their tags are not checked.
_ENDING = {"mj-text", "mj-button", "mj-table", "mj-raw", "mj-navbar-link", "mj-social-element",
           "mj-accordion-title", "mj-accordion-text", "mj-style", "mj-title", "mj-preview"}


def _mjml_structure(mjml: str, name: str) -> None:
    """Unknown, unclosed or crossed MJML tags, with the line of the rendered MJML they are on.

    mjml-python silently repairs or drops bad markup, so a typo in a staff template would send a
    broken email without a word; this walk finds the problem first and says where.
    """
    def where(pos: int) -> str:
        line = mjml.count("\n", 0, pos) + 1
        text = mjml.splitlines()[line - 1].strip() if mjml.strip() else ""
        return f"{name}: rendered MJML line {line} ({text[:60]!r})"

    # Blank out comments (keeping their newlines) so that commented-out tags are not checked.
    scanned = re.sub(r"<!--.*?-->", lambda m: re.sub(r"[^\n]", " ", m.group()), mjml, flags=re.S)
    stack: list[tuple[str, int]] = []
    for match in _TAG.finditer(scanned):
        closing, tag, selfclosing = match.groups()
        if tag not in _KNOWN_TAGS:
            raise RenderError(where(match.start()), f"unknown MJML tag <{closing}{tag}>")
        if stack and stack[-1][0] in _ENDING and not (closing and tag == stack[-1][0]):
            # Its content is HTML, never MJML: an MJML tag here means its own end tag is missing.
            opened, at = stack[-1]
            raise RenderError(where(match.start()), f"<{closing}{tag}> inside <{opened}> opened on line "
                                                    f"{mjml.count(chr(10), 0, at) + 1} (is its </{opened}> missing?)")
        if selfclosing:
            continue
        if not closing:
            stack.append((tag, match.start()))
            continue
        if not stack:
            raise RenderError(where(match.start()), f"</{tag}> closes nothing")
        opened, at = stack.pop()
        if opened != tag:
            raise RenderError(where(match.start()), f"</{tag}> closes <{opened}> opened on line "
                                                    f"{mjml.count(chr(10), 0, at) + 1}")
    if stack:
        raise RenderError(where(stack[-1][1]), f"<{stack[-1][0]}> is never closed")


def compile_mjml(mjml: str, name: str = "digest.mjml.j2") -> str:
    """Compile MJML to HTML, after checking the tags that mjml-python would otherwise pass over."""
    _mjml_structure(mjml, name)
    try:
        return str(mjml2html(mjml, fonts={}))
    except Exception as exc:  # mjml-python raises bare ValueErrors and parser errors
        raise RenderError(name, f"MJML error: {exc}") from None


class CheckResult(NamedTuple):
    """Pre-send findings split by the newsletter's ``checks`` levels: failures stop the digest."""

    failures: tuple[str, ...]
    warnings: tuple[str, ...]


def _findings(rendered: Rendered, newsletter: Newsletter) -> Iterator[tuple[str, str]]:
    """(check name, problem) for everything wrong, whatever its level."""
    size = len(rendered.html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        yield "html_size", f"HTML is {size / 1024:.0f} KB; Gmail clips messages over 102 KB (use fewer stories)"
    limit = newsletter.checks.subject_max
    if len(rendered.subject) > limit:
        yield "subject_length", f"subject is {len(rendered.subject)} characters (limit {limit}): " \
                                f"{rendered.subject[:60]!r}…"
    for part, body in (("HTML", rendered.html), ("text", rendered.text)):
        if UNSUBSCRIBE_URL not in body:
            yield "unsubscribe", f"no unsubscribe link in the {part} part (the template must use {UNSUBSCRIBE_URL})"
    if not newsletter.postal_address.strip():
        yield "postal_address", "no postal address in the footer (set newsletters[].postal_address)"
    targets = set(re.findall(r"<a\s[^>]*?\b(?:id|name)=\"([^\"]+)\"", rendered.html))
    for href in dict.fromkeys(re.findall(r"<a\s[^>]*?href=\"([^\"]*)\"", rendered.html)):
        if href in PLACEHOLDERS or (href.startswith("#") and href[1:] in targets):
            continue  # a placeholder, or a link to a story further down the same email
        # Read as a browser reads it: entities decoded, whitespace and control characters dropped
        # (" java\tscript:" is javascript: to a browser, a relative link to urlsplit).
        parts = urlsplit("".join(ch for ch in htmllib.unescape(href) if ch > " " and ch != "\x7f"))
        if parts.scheme == "mailto" or (parts.scheme in ("http", "https") and parts.netloc):
            continue
        kind = "relative" if not parts.scheme else f"{parts.scheme}:"
        yield "links", f"{kind} link {href[:80]!r}: email links must be absolute http(s) URLs"
    for img in re.findall(r"<img\b[^>]*>", rendered.html):
        if not re.search(r'\salt="[^"]+"', img):
            src = re.search(r'\ssrc="([^"]*)"', img)
            yield "alt", f"image without alt text: {(src.group(1) if src else img)[:80]}"


def review_digest(rendered: Rendered, newsletter: Newsletter) -> CheckResult:
    """Run the pre-send checks; each problem is filed as a failure or a warning per ``newsletter.checks``."""
    failures: list[str] = []
    warnings: list[str] = []
    if not rendered.subject.strip():
        failures.append("subject: the subject is empty")
    for check, problem in _findings(rendered, newsletter):
        level = getattr(newsletter.checks, check)
        if check == "links" and not problem.startswith("relative"):
            # A javascript:, data: or file: link is never sent, whatever ``checks.links`` says: stories
            # with one are left out before rendering, so this one is the template's or the intro's.
            level = "fail"
        if level != "off":
            (failures if level == "fail" else warnings).append(f"{check}: {problem}")
    return CheckResult(tuple(failures), tuple(warnings))

