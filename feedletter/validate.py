"""``feedletter validate``: the config file, then what only rendering shows, as one list of problems.

Reading the file (:func:`feedletter.config.parse_config`) finds what is wrong with its values. The
templates are checked here, apart, because it takes rendering them: each newsletter's templates must
exist and render a sample issue, so that a Jinja2 or MJML mistake is reported, with its template and
line, long before a scheduled digest meets it. The sample's stories take every branch the default
templates have (a lead with a picture, a story with a picture, other tellings and more on its subject,
one with neither summary nor picture, one in each section), so that a mistake in any of them shows.
The templates are checked even when the file has other problems (against the parts of it that are
valid), so that staff see every problem in one run.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import yaml
from pydantic import ValidationError

from feedletter.config import Config, by_line, config_path, parse_config
from feedletter.config_lines import FieldPath, Lines, Problem, dotted, node_lines
from feedletter.config_newsletters import Newsletter
from feedletter.errors import RenderError
from feedletter.issue.contents import intro_source
from feedletter.issue.render import render_digest, template_dirs
from feedletter.models import Coverage, Story

__all__ = ["SAMPLE_STORY", "Problem", "check_file", "sample_stories", "template_problems", "usable_parts"]

SAMPLE_STORY = Story(id=0, title="Sample story", url="https://example.com/story", source="sample",
                     published=datetime(2026, 1, 5, 8, 0, tzinfo=UTC), summary="A sample summary.",
                     also=(Coverage("other", "Sample story, told again", "https://example.org/story"),))


def sample_stories(newsletter: Newsletter) -> list[Story]:
    """The sample issue's stories for ``newsletter``: see the module's docstring."""
    picture = "https://example.com/picture.jpg"
    stories = [
        replace(SAMPLE_STORY, image=picture, image_alt="A sample picture"),
        replace(SAMPLE_STORY, id=1, title="Another sample story", url="https://example.com/another", image=picture,
                more=(Coverage("other", "A story on the same subject", "https://example.org/same-subject"),)),
        replace(SAMPLE_STORY, id=2, title="A story told in its title alone", url="https://example.com/title",
                summary="", also=()),
    ]
    for k, section in enumerate(s for s in newsletter.sections if s.tags):
        stories.append(replace(SAMPLE_STORY, id=3 + k, title=f"A story for {section.title}",
                               url=f"https://example.com/section-{k}", tags=(section.tags[0],)))
    return stories


def check_file(path: str | os.PathLike[str] | None = None) -> tuple[Config | None, list[Problem]]:
    """Everything ``feedletter validate`` checks: the config, or every problem at once, sorted by line."""
    file = config_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [Problem(None, "", f"cannot read: {exc.strerror or exc}", str(file))]
    config, problems = parse_config(text)
    # With problems in the file, the templates are still checked: against the parts that are valid.
    usable, positions = (config, None) if config is not None else usable_parts(text)
    if usable is not None:
        object.__setattr__(usable, "_source_path", str(file))
        problems = by_line(problems + template_problems(usable, text, positions))
    problems = [replace(p, file=str(file)) for p in problems]
    return (None, problems) if problems else (config, [])


def template_problems(config: Config, text: str = "", positions: Sequence[int] | None = None) -> list[Problem]:
    """A problem for each newsletter whose templates are missing or fail to render.

    ``text``, the config file's, gives each problem the line of the newsletter's ``template``;
    ``positions`` are the newsletters' indexes in the file when some of them were left out.
    """
    dirs = template_dirs(config)
    lines = _lines(text)
    problems = []
    for index, newsletter in zip(positions or range(len(config.newsletters)), config.newsletters, strict=True):
        names = (newsletter.template + ".mjml.j2", newsletter.template + ".txt.j2")
        messages = [f"{name} not found (looked in {', '.join(str(d) for d in dirs)})"
                    for name in names if not any((d / name).is_file() for d in dirs)]
        path: FieldPath = ("newsletters", index, "template")
        label = dotted(path, {("newsletters", index): newsletter.name})
        try:
            intro_source(config, newsletter)
        except RenderError as exc:  # the intro_file cannot be read: rendering would fail on it, not the template
            intro: FieldPath = ("newsletters", index, "intro_file")
            intro_line = next((lines[p] for p in (intro, intro[:-1]) if p in lines), None)
            problems.append(Problem(intro_line, dotted(intro, {("newsletters", index): newsletter.name}), str(exc)))
        else:
            if not messages:
                try:
                    render_digest(config, newsletter, sample_stories(newsletter), number=1,
                                  issued=SAMPLE_STORY.published,
                                  web_url=f"{config.site.base_url.rstrip('/')}/{newsletter.name}/1/",
                                  source_titles={})
                except RenderError as exc:
                    messages.append(str(exc))
        line = next((lines[p] for p in (path, path[:-1]) if p in lines), None)
        problems += [Problem(line, label, m) for m in messages]
    return problems


def _lines(text: str) -> Lines:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader) if text else None
    except yaml.YAMLError:
        return {}
    return dict(node_lines(node)) if node is not None else {}


def usable_parts(text: str) -> tuple[Config | None, list[int]]:
    """A config of what is valid in a file with problems, to check its newsletters' templates anyway.

    The top-level settings that validate on their own and each newsletter with its bad fields left
    out (a missing name or title filled in); with the index in the file of each newsletter kept.
    """
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return None, []
    if not isinstance(data, dict):
        return None, []
    kept = {}
    for key, value in data.items():
        if key in ("sources", "newsletters"):
            continue
        try:
            Config.model_validate({key: value})
        except ValidationError:
            continue
        kept[key] = value
    newsletters, positions, used = [], [], set()
    items = data.get("newsletters")
    for index, item in enumerate(items if isinstance(items, list) else ()):
        fields = _valid_newsletter(item)
        if fields is None:
            continue
        if fields["name"] in used:  # a duplicate name is reported already; its templates still count
            fields["name"] = f"newsletter-{index}"
        used.add(fields["name"])
        newsletters.append(fields)
        positions.append(index)
    try:
        return Config.model_validate({**kept, "newsletters": newsletters}), positions
    except ValidationError:
        return None, []


PLACEHOLDERS = {"name": "newsletter", "title": "Newsletter"}


def _valid_newsletter(item: object) -> dict[str, Any] | None:
    """``item``'s fields with those that fail validation left out, or None if it cannot be saved."""
    if not isinstance(item, dict):
        return None
    fields = dict(item)
    for _ in range(3):
        try:
            Newsletter.model_validate(fields)
        except ValidationError as exc:
            for err in exc.errors():
                key = err["loc"][0] if err["loc"] else None
                if key in PLACEHOLDERS:
                    fields[str(key)] = PLACEHOLDERS[str(key)]
                elif isinstance(key, str) and key in fields:
                    del fields[key]
                else:
                    return None
            continue
        return fields
    return None
