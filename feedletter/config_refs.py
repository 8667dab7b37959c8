"""References between the parts of sources.yaml: a newsletter naming a source or a tag that no source has.

Such a newsletter is valid field by field and selects nothing, so staff would only notice an empty
issue. The checks read the file's raw data rather than the validated model, so that they are
reported in the same pass as the field errors: a typo in one source must not hide a misspelt tag
in a newsletter until the typo is fixed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any

from feedletter.config_lines import FieldPath, Lines, Names, Problem, dotted

__all__ = ["unknown_references"]


def _items(value: object) -> list[Mapping[str, Any]]:
    return [item for item in value if isinstance(item, Mapping)] if isinstance(value, list) else []


def _strings(value: object) -> Iterator[tuple[int, str]]:
    for position, item in enumerate(value if isinstance(value, list) else ()):
        if isinstance(item, str):
            yield position, item


def _hint(value: str, known: list[str]) -> str:
    close = difflib.get_close_matches(value, known, n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    if not known:
        return " (no source has any)"
    return f" (known: {', '.join(known)})" if len(known) <= 8 else ""


def unknown_references(data: Mapping[str, Any], lines: Lines, names: Names | None = None) -> list[Problem]:
    """A problem for each source name or tag a newsletter selects that no source has, with a hint."""
    sources = _items(data.get("sources"))
    known_names = [s["name"] for s in sources if isinstance(s.get("name"), str)]
    known_tags = sorted({tag for s in sources for _, tag in _strings(s.get("tags"))})
    problems = []

    def report(path: FieldPath, message: str) -> None:
        problems.append(Problem(lines.get(path, lines.get(path[:-1])), dotted(path, names), message))

    newsletters = data.get("newsletters")
    for index, newsletter in enumerate(newsletters if isinstance(newsletters, list) else []):
        if not isinstance(newsletter, Mapping):
            continue
        select = newsletter.get("select")
        select = select if isinstance(select, Mapping) else {}
        for field_name in ("sources", "pin_sources"):
            for position, name in _strings(select.get(field_name)):
                if name not in known_names:
                    report(("newsletters", index, "select", field_name, position),
                           f"no source named {name!r}{_hint(name, known_names)}")
        for position, tag in _strings(select.get("tags")):
            if tag not in known_tags:
                report(("newsletters", index, "select", "tags", position),
                       f"no source has the tag {tag!r}{_hint(tag, known_tags)}")
        sections = newsletter.get("sections")
        for number, section in enumerate(sections if isinstance(sections, list) else ()):
            if not isinstance(section, Mapping):
                continue
            for position, tag in _strings(section.get("tags")):
                if tag not in known_tags:
                    report(("newsletters", index, "sections", number, "tags", position),
                           f"no source has the tag {tag!r}{_hint(tag, known_tags)}")
    return problems
