"""OPML in and out: add a reader's subscription list to sources.yaml, or write the sources as OPML.

Import appends YAML text after the last source instead of re-dumping the file, so that staff's
comments, ordering and quoting survive; the result is validated before it replaces the file.
An outline's ``title`` (else ``text``) becomes the source's ``title:`` and its name, ``htmlUrl`` its
``site:``, and folders (nested outlines) and ``category`` attributes its tags. Export writes the
same attributes back, so that import → export → import loses nothing.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from email.utils import format_datetime
from pathlib import Path

import yaml

from feedletter.config import Config, Source, parse_config
from feedletter.config_fields import check_http_url
from feedletter.errors import ConfigError
from feedletter.store import now

_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Feed:
    """One feed of an OPML file."""

    title: str
    url: str
    tags: tuple[str, ...]
    site: str = ""  # the site's home page (htmlUrl), when it is an http(s) URL


@dataclass(frozen=True)
class Imported:
    text: str  # the new sources.yaml
    added: tuple[Source, ...]
    skipped: tuple[str, ...]  # one line per feed left out, saying why


def slug(text: str, limit: int = 63) -> str:
    value = _SLUG.sub("-", text.lower()).strip("-")[:limit].strip("-")
    return value or "feed"


def read_opml(data: bytes, filename: str = "OPML") -> list[Feed]:
    """The feeds of an OPML document, each with its folders and categories as tags."""
    # Python's expat refuses entity-expansion bombs; OPML needs no DTD, so none is honoured.
    try:
        root = ET.fromstring(data)
    except ET.ParseError as exc:
        raise ConfigError(f"{filename}: not OPML: {exc}") from None
    body = root.find("body")
    if root.tag != "opml" or body is None:
        raise ConfigError(f"{filename}: not OPML (no <opml><body>)")
    feeds: list[Feed] = []

    def walk(node: ET.Element, folders: tuple[str, ...]) -> None:
        for outline in node.findall("outline"):
            label = (outline.get("title") or outline.get("text") or "").strip()
            url = (outline.get("xmlUrl") or "").strip()
            if url:
                tags = [*folders]
                for category in (outline.get("category") or "").split(","):
                    tags += [p for p in category.strip().split("/") if p]
                ordered = tuple(dict.fromkeys(slug(t) for t in tags))
                feeds.append(Feed(label or url, url, ordered, _http_url(outline.get("htmlUrl") or "")))
            walk(outline, (*folders, label) if not url and label else folders)

    walk(body, ())
    return feeds


def _http_url(value: str) -> str:
    try:
        return check_http_url(value.strip())
    except ValueError:
        return ""


def _scalar(value: str) -> str:
    """A YAML scalar that reads back as ``value``: bare when safe, else double-quoted."""
    if re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_./:-]*", value) and yaml.safe_load(value) == value:
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _source_block(feed: Feed, name: str, indent: str) -> str:
    tags = ", ".join(_scalar(t) for t in feed.tags)
    title = " ".join(feed.title.split())
    lines = [f"{indent}- name: {name}", f"{indent}  url: {_scalar(feed.url)}"]
    if title and title != feed.url:
        lines.append(f"{indent}  title: {_scalar(title)}")
    if feed.site:
        lines.append(f"{indent}  site: {_scalar(feed.site)}")
    if tags:
        lines.append(f"{indent}  tags: [{tags}]")
    return "\n".join(lines) + "\n"


def _insertion(text: str) -> tuple[int, int, str, str]:
    """Where new source items go: replace ``text[start:end]`` by ``prefix`` + items indented by ``indent``."""
    node = yaml.compose(text, Loader=yaml.SafeLoader) if text.strip() else None
    for key, value in node.value if isinstance(node, yaml.MappingNode) else ():
        if key.value != "sources":
            continue
        if isinstance(value, yaml.SequenceNode) and value.value and not value.flow_style:
            offset = _line_end(text, max(_last_line(item) for item in value.value))
            return offset, offset, " " * (value.value[0].start_mark.column - 2), ""
        empty = (isinstance(value, yaml.SequenceNode) and not value.value) or \
            (isinstance(value, yaml.ScalarNode) and value.value in ("", "null", "~"))
        if not empty:
            raise ConfigError(f"sources (line {key.start_mark.line + 1}) is written inline; make it a block "
                              "list (one '- name:' per source) to import into it")
        # `sources: []`, or `sources:` with nothing under it: that one line becomes the list
        start = text.rfind("\n", 0, key.start_mark.index) + 1
        return start, _line_end(text, key.start_mark.line), "  ", "sources:\n"
    lead = "" if not text or text.endswith("\n") else "\n"
    return len(text), len(text), "  ", lead + "sources:\n"


def _last_line(node: yaml.Node) -> int:
    """The last line holding part of ``node`` (a block node's end mark is the next token's)."""
    if isinstance(node, yaml.MappingNode | yaml.SequenceNode) and not node.flow_style and node.value:
        children = [v for _, v in node.value] if isinstance(node, yaml.MappingNode) else node.value
        return max([node.start_mark.line, *(_last_line(c) for c in children)])
    end = node.end_mark
    return int(end.line - 1 if end.column == 0 and end.line > node.start_mark.line else end.line)


def _line_end(text: str, line: int) -> int:
    offset = 0
    for _ in range(line + 1):
        found = text.find("\n", offset)
        if found < 0:
            return len(text)
        offset = found + 1
    return offset


def merge_sources(text: str, feeds: list[Feed], config: Config | None) -> Imported:
    """sources.yaml text with ``feeds`` appended as sources; feeds already present are skipped."""
    existing = list(config.sources) if config else []
    known_urls = {s.url.rstrip("/") for s in existing}
    names = {s.name for s in existing}
    blocks: list[Feed] = []
    chosen: list[str] = []
    skipped: list[str] = []
    for feed in feeds:
        if feed.url.rstrip("/") in known_urls:
            skipped.append(f"{feed.url}: already a source")
            continue
        known_urls.add(feed.url.rstrip("/"))
        base = slug(feed.title, 58)
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.add(name)
        blocks.append(feed)
        chosen.append(name)
    if not blocks:
        return Imported(text, (), tuple(skipped))
    start, end, indent, prefix = _insertion(text)
    if start == len(text) and text and not text.endswith("\n"):
        prefix = "\n" + prefix.lstrip("\n")
    items = "".join(_source_block(f, n, indent) for f, n in zip(blocks, chosen, strict=True))
    merged = text[:start] + prefix + items + text[end:]
    parsed, problems = parse_config(merged)
    if problems or parsed is None:
        raise ConfigError([f"after import: {p.format('sources.yaml')}" for p in problems])
    added = tuple(parsed.source(n) for n in chosen)
    return Imported(merged, added, tuple(skipped))


def import_opml(config_file: Path, opml_file: Path) -> Imported:
    """Add the feeds of ``opml_file`` to ``config_file`` (written only if the result validates)."""
    text = config_file.read_text(encoding="utf-8") if config_file.exists() else ""
    config, problems = parse_config(text)
    if problems:
        raise ConfigError([p.format(str(config_file)) for p in problems] +
                          [f"{config_file}: fix the problems above before importing"])
    result = merge_sources(text, read_opml(opml_file.read_bytes(), str(opml_file)), config)
    if result.added:
        partial = config_file.with_name(config_file.name + ".part")
        partial.write_text(result.text, encoding="utf-8")
        partial.replace(config_file)
    return result


def write_opml(config: Config, title: str | None = None) -> str:
    """The sources as OPML 2.0: one folder per first tag, every tag kept in ``category``, each feed under
    the title readers see (``text`` and ``title``) with its site (``htmlUrl``)."""
    root = ET.Element("opml", version="2.0")
    head = ET.SubElement(root, "head")
    ET.SubElement(head, "title").text = title or f"{config.site.title} sources"
    ET.SubElement(head, "dateCreated").text = format_datetime(now())
    body = ET.SubElement(root, "body")
    folders: dict[str, ET.Element] = {}
    titles = config.source_titles()
    for source in config.sources:
        parent = body
        if source.tags:
            parent = folders.get(source.tags[0]) or ET.SubElement(body, "outline", text=source.tags[0])
            folders[source.tags[0]] = parent
        attrs = {"type": "rss", "text": titles[source.name], "title": titles[source.name], "xmlUrl": source.url}
        if source.site:
            attrs["htmlUrl"] = source.site
        if source.tags:
            attrs["category"] = ",".join(f"/{t}" for t in source.tags)
        ET.SubElement(parent, "outline", attrs)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
