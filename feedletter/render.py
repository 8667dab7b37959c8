"""Render a digest: Jinja2 → MJML → HTML once per issue, a plain-text part, and pre-send checks.

The MJML is compiled once; what differs per subscriber (unsubscribe URL, name) is left as
``%%PLACEHOLDER%%`` tokens and filled in by :func:`personalize` with proper escaping.
"""

from __future__ import annotations

import html as htmllib
import re
import textwrap
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from mjml import mjml2html

from feedletter.config import Config, Newsletter
from feedletter.errors import RenderError
from feedletter.models import Story

GMAIL_CLIP_BYTES = 102 * 1024
SUBJECT_LIMIT = 150
PLACEHOLDERS = ("%%UNSUBSCRIBE_URL%%", "%%NAME%%")


def _builtin_templates() -> Path:
    """The templates shipped with feedletter: the package's copy, or templates/ of a checkout."""
    try:
        found = Path(str(resources.files("feedletter.templates")))
        if (found / "digest.mjml.j2").is_file():
            return found
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[1] / "templates"


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


def missing_templates(config: Config) -> list[str]:
    """``newsletters[i].template: …`` for each newsletter whose template files cannot be found."""
    dirs = template_dirs(config)
    problems = []
    for index, newsletter in enumerate(config.newsletters):
        for suffix in (".mjml.j2", ".txt.j2"):
            name = newsletter.template + suffix
            if not any((d / name).is_file() for d in dirs):
                where = ", ".join(str(d) for d in dirs)
                problems.append(f"newsletters[{index}].template: {name} not found (looked in {where})")
    return problems


def _wrap(text: str, width: int = 72, indent: str = "") -> str:
    paragraphs = [p for p in re.split(r"\n\s*\n", text) if p.strip()]
    return "\n\n".join(textwrap.fill(" ".join(p.split()), width=width, initial_indent=indent,
                                     subsequent_indent=indent) for p in paragraphs)


def utm_tagger(newsletter: Newsletter, issue: int) -> Callable[[str], str]:
    def track(url: str) -> str:
        if not newsletter.utm or not url.startswith(("http://", "https://")):
            return url
        parts = urlsplit(url)
        query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if not k.startswith("utm_")]
        query += [("utm_source", newsletter.name), ("utm_medium", "email"),
                  ("utm_campaign", f"{newsletter.name}-{issue}")]
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
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


def story_context(story: Story, source_titles: Mapping[str, str]) -> dict[str, Any]:
    return {
        "id": story.id, "title": story.title, "url": story.url, "source": story.source,
        "source_title": source_titles.get(story.source, story.source), "published": story.published,
        "summary": story.summary, "tags": story.tags,
        "also": [{"source": a.source, "source_title": source_titles.get(a.source, a.source),
                  "title": a.title, "url": a.url} for a in story.also],
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
    context: dict[str, Any] = {
        "newsletter": newsletter.model_dump(by_alias=False), "number": number, "issued": issued,
        "stories": [story_context(s, source_titles) for s in stories], "web_url": web_url,
        "lang": "en", "subscriber_name_slot": False,
    }
    subject = render_subject(newsletter.subject, context)
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
        line = _template_line(exc)
        raise RenderError(f"{name}{line}", f"template error: {exc}") from None


def _template_line(exc: BaseException) -> str:
    tb = exc.__traceback__
    line = ""
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(".j2"):
            line = f":{tb.tb_lineno}"
        tb = tb.tb_next
    return line


_KNOWN_TAGS = {"mjml", "mj-head", "mj-body", "mj-title", "mj-preview", "mj-attributes", "mj-all", "mj-class",
               "mj-style", "mj-font", "mj-breakpoint", "mj-raw", "mj-section", "mj-column", "mj-group",
               "mj-text", "mj-button", "mj-image", "mj-divider", "mj-spacer", "mj-table", "mj-wrapper",
               "mj-hero", "mj-social", "mj-social-element", "mj-navbar", "mj-navbar-link", "mj-accordion",
               "mj-accordion-element", "mj-accordion-title", "mj-accordion-text", "mj-carousel",
               "mj-carousel-image", "mj-include", "mj-html-attributes", "mj-html-attribute",
               "mj-selector"}


def compile_mjml(mjml: str, name: str = "digest.mjml.j2") -> str:
    """Compile MJML to HTML; mjml-python validates nothing, so unknown tags are checked here."""
    for match in re.finditer(r"<(mj-[a-z-]+)", mjml):
        if match.group(1) not in _KNOWN_TAGS:
            line = mjml.count("\n", 0, match.start()) + 1
            raise RenderError(f"{name}:{line}", f"unknown MJML tag <{match.group(1)}> (rendered output)")
    try:
        return str(mjml2html(mjml, fonts={}))
    except Exception as exc:  # mrml raises its own exception types
        raise RenderError(name, f"MJML error: {exc}") from None


def personalize(text: str, *, unsubscribe_url: str, name: str = "", html: bool) -> str:
    """Fill the per-subscriber placeholders of one rendered part."""
    quote: Callable[[str], str] = (lambda s: htmllib.escape(s, quote=True)) if html else (lambda s: s)
    return text.replace("%%UNSUBSCRIBE_URL%%", quote(unsubscribe_url)).replace("%%NAME%%", quote(name))


def check_digest(rendered: Rendered, newsletter: Newsletter) -> list[str]:
    """Pre-send checks; each problem is one line naming what is wrong."""
    problems = []
    size = len(rendered.html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        problems.append(f"HTML is {size // 1024} KB; Gmail clips messages over 102 KB")
    if len(rendered.subject) > SUBJECT_LIMIT:
        problems.append(f"subject is {len(rendered.subject)} characters (limit {SUBJECT_LIMIT})")
    if not rendered.subject.strip():
        problems.append("subject is empty")
    if "%%UNSUBSCRIBE_URL%%" not in rendered.html or "%%UNSUBSCRIBE_URL%%" not in rendered.text:
        problems.append("no unsubscribe link (the template must use %%UNSUBSCRIBE_URL%% in both parts)")
    if not newsletter.postal_address:
        problems.append("no postal address (newsletters[].postal_address)")
    for href in re.findall(r'<a\s[^>]*href="([^"]*)"', rendered.html):
        if href in PLACEHOLDERS:
            continue
        scheme = urlsplit(htmllib.unescape(href)).scheme
        if scheme not in ("http", "https", "mailto"):
            problems.append(f"link is not absolute http(s): {href[:80]!r}")
    for img in re.findall(r"<img\b[^>]*>", rendered.html):
        if not re.search(r'\salt="[^"]*"', img):
            problems.append(f"image without alt text: {img[:80]}")
    return problems
