"""``feedletter validate``: the config file, then what only rendering shows, as one list of problems.

Reading the file (:func:`feedletter.config.parse_config`) finds what is wrong with its values. The
templates are checked here, apart, because it takes rendering them: each newsletter's templates must
exist and render a sample story, so that a Jinja2 or MJML mistake is reported, with its template and
line, long before a scheduled digest meets it.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, datetime

from feedletter.config import Config, config_path, parse_config
from feedletter.config_lines import Problem, dotted, line_of
from feedletter.errors import RenderError
from feedletter.issue.contents import intro_source
from feedletter.issue.render import render_digest, template_dirs
from feedletter.models import Coverage, Story

__all__ = ["SAMPLE_STORY", "Problem", "check_file", "template_problems"]

SAMPLE_STORY = Story(id=0, title="Sample story", url="https://example.com/story", source="sample",
                     published=datetime(2026, 1, 5, 8, 0, tzinfo=UTC), summary="A sample summary.",
                     also=(Coverage("other", "Sample story, told again", "https://example.org/story"),))


def check_file(path: str | os.PathLike[str] | None = None) -> tuple[Config | None, list[Problem]]:
    """Everything ``feedletter validate`` checks: the config, or the problems, each with its file and line."""
    file = config_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Problem(None, "", f"cannot read: {exc.strerror or exc}", str(file))]
    config, problems = parse_config(text)
    if problems or config is None:
        return None, [replace(p, file=str(file)) for p in problems]
    object.__setattr__(config, "_source_path", str(file))
    problems = [replace(p, file=str(file)) for p in template_problems(config, text)]
    return (None, problems) if problems else (config, [])


def template_problems(config: Config, text: str = "") -> list[Problem]:
    """A problem for each newsletter whose templates are missing or fail to render.

    ``text``, the config file's, gives each problem the line of the newsletter's ``template``.
    """
    dirs = template_dirs(config)
    problems = []
    for index, newsletter in enumerate(config.newsletters):
        names = (newsletter.template + ".mjml.j2", newsletter.template + ".txt.j2")
        messages = [f"{name} not found (looked in {', '.join(str(d) for d in dirs)})"
                    for name in names if not any((d / name).is_file() for d in dirs)]
        try:
            intro_source(config, newsletter)
        except RenderError as exc:  # the intro_file cannot be read: rendering would fail on it, not the template
            intro = ("newsletters", index, "intro_file")
            problems.append(Problem(line_of(text, intro) if text else None, dotted(intro), str(exc)))
        else:
            if not messages:
                try:
                    render_digest(config, newsletter, [SAMPLE_STORY], number=1, issued=SAMPLE_STORY.published,
                                  web_url=f"{config.site.base_url.rstrip('/')}/{newsletter.name}/1/",
                                  source_titles={})
                except RenderError as exc:
                    messages.append(str(exc))
        path = ("newsletters", index, "template")
        problems += [Problem(line_of(text, path) if text else None, dotted(path), m) for m in messages]
    return problems
