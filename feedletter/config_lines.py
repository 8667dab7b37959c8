"""Where in sources.yaml a problem is: line numbers from PyYAML's node marks, matched to field paths.

pydantic reports a field path (``newsletters[0].schedule.cron``); staff need a line. The YAML is
composed once into ``{path: line}`` and each problem looks its field up, falling back to the nearest
parent that exists in the file.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import BaseModel

from feedletter.config_fields import Sections

FieldPath = tuple[str | int, ...]
Lines = dict[FieldPath, int]
Names = Mapping[FieldPath, str]


@dataclass(frozen=True)
class Problem:
    """One mistake in a config file: where it is (file, line, field path) and what is wrong."""

    line: int | None
    path: str
    message: str
    file: str = ""

    def format(self, filename: str | None = None) -> str:
        """``file:line: field.path: problem``, with ``filename`` for a problem found in text alone."""
        file = self.file if filename is None else filename
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def __str__(self) -> str:
        return self.format()


def line_of(text: str, path: FieldPath) -> int | None:
    """The line of a field in YAML text (or of its nearest existing parent); None if unparsable."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None
    lines = dict(node_lines(node)) if node is not None else {}
    while path and path not in lines:
        path = path[:-1]
    return lines.get(path)


def node_lines(node: yaml.Node, path: FieldPath = ()) -> Iterator[tuple[FieldPath, int]]:
    yield path, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value
            yield (*path, name, "<key>"), key.start_mark.line + 1
            yield from node_lines(value, (*path, name))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from node_lines(item, (*path, index))


def error_problem(err: Mapping[str, Any], lines: Lines, root: type[BaseModel],
                  names: Names | None = None) -> Problem:
    """A pydantic error as a Problem on the line of the field it names."""
    loc: FieldPath = tuple(p for p in err["loc"]
                           if not (isinstance(p, str) and p.startswith(("function-", "literal["))))
    kind = err["type"]
    message = str(err["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        key = loc[-1]
        line = lines.get((*loc, "<key>"))
        allowed = _allowed_fields(loc[:-1], root)
        hint = difflib.get_close_matches(str(key), allowed, n=1)
        message = f"unknown field {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else _belongs(key, loc, root))
    else:
        line = None
        probe = loc
        while line is None and probe:
            line = lines.get(probe)
            probe = probe[:-1]
        if kind == "missing":
            message = "required field is missing"
            line = lines.get(loc[:-1], line)
        else:
            message = _plain(kind, loc, err.get("input"), message)
    if line is None:
        line = lines.get((), 1)
    return Problem(line, dotted(loc, names), message)


def _plain(kind: str, loc: FieldPath, value: Any, message: str) -> str:
    """pydantic's message for a value of the wrong type, said in the file's terms, with the value given."""
    shown = repr(value) if isinstance(value, (str, int, float, bool)) or value is None else "this"
    if kind == "list_type":
        return f"needs a list, e.g. [{value}]" if isinstance(value, (str, int, float)) else "needs a list: [a, b]"
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"needs a whole number, not {shown}"
    if kind in ("float_parsing", "float_type"):
        return f"needs a number, not {shown}"
    if kind in ("bool_parsing", "bool_type"):
        return f"needs true or false, not {shown}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        if len(loc) == 2 and loc[0] == "sources" and isinstance(value, str):
            return f"a source needs a name and a URL: write {{name: my-blog, url: {value}}}"
        return f"needs fields (name: value, one a line or {{a: 1, b: 2}}), not {shown}"
    if kind == "string_type":
        return f"needs text, not {shown}"
    if kind in ("literal_error", "greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        # YAML reads yes, no, on and off as true and false: "full_text: yes" arrives as True.
        return message.replace("Input should be", "must be") + f", not {shown}"
    return message


def _belongs(key: str | int, loc: FieldPath, root: type[BaseModel]) -> str:
    """Where an unknown field ``key`` is a known one: a provider's settings written in a newsletter."""
    if len(loc) > 1 and key in _allowed_fields(("providers",), root):
        return f" (a provider's settings go in the top-level section providers: {key}:)"
    return ""


def dotted(loc: FieldPath, names: Names | None = None) -> str:
    """``newsletters[0] (weekly).select.tags[1]``: a field path, each named list item with its name."""
    out = ""
    for depth, part in enumerate(loc, 1):
        if isinstance(part, int):
            name = (names or {}).get(loc[:depth])
            out += f"[{part}] ({name})" if name else f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def item_names(data: Mapping[str, Any]) -> Names:
    """The ``name`` of each source and newsletter by its path, so that a problem can say which one it is."""
    names: dict[FieldPath, str] = {}
    for kind in ("sources", "newsletters"):
        items = data.get(kind)
        for index, item in enumerate(items if isinstance(items, list) else ()):
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and name.strip():
                names[(kind, index)] = name
    return names


def _allowed_fields(parent: FieldPath, root: type[BaseModel]) -> list[str]:
    model: Any = root
    for part in parent:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            model = model.section_model(part) if issubclass(model, Sections) else None
            if model is None:
                return []
            continue
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    names = []
    for name, field in model.model_fields.items():
        names.append(field.alias or name)
    return names + (model.section_names() if issubclass(model, Sections) else [])


def duplicate_names(data: Mapping[str, Any], lines: Lines, names: Names | None = None) -> list[Problem]:
    """Names used twice, each on its own line (a model validator would only know the file)."""
    problems = []
    for kind in ("sources", "newsletters"):
        items = data.get(kind)
        if not isinstance(items, list):
            continue
        first: dict[str, int] = {}
        for index, item in enumerate(items):
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                continue
            line = lines.get((kind, index, "name"), lines.get((kind, index)))
            if name in first:
                problems.append(Problem(line, dotted((kind, index, "name"), names),
                                        f"duplicate {kind} name {name!r} (first used on line {first[name]})"))
            else:
                first[name] = line or 0
    return problems
