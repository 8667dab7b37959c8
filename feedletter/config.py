"""Load and validate sources.yaml.

Every problem is reported as ``file:line: field.path: problem``, one line each, so that staff
editing the file by hand can go straight to the line. Validation is pydantic's; line numbers come
from PyYAML's node marks, matched to pydantic's error locations.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from feedletter.errors import ConfigError

DEFAULT_CONFIG = "sources.yaml"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {value!r}")
    return value


def _check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a valid name (lower-case letters, digits, '-' and '_')")
    return value


def _check_patterns(values: list[str]) -> list[str]:
    for pattern in values:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"bad regular expression {pattern!r}: {exc}") from None
    return values


class Site(_Model):
    base_url: str = "http://localhost:8080"
    archive_dir: str = "public"
    title: str = "feedletter"

    _url = field_validator("base_url")(_check_http_url)


class Source(_Model):
    name: str
    url: str
    tags: list[str] = []
    full_text: Literal["auto", "always", "never"] = "auto"
    include: list[str] = []
    exclude: list[str] = []
    priority: int = 0
    allow_private: bool | None = None
    enabled: bool = True

    _name = field_validator("name")(_check_name)
    _url = field_validator("url")(_check_http_url)
    _patterns = field_validator("include", "exclude")(_check_patterns)


class Schedule(_Model):
    cron: str
    timezone: str = "UTC"

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        fields = value.split()
        if len(fields) != 5:
            raise ValueError(f"cron {value!r} needs 5 fields (minute hour day month weekday)")
        if not croniter.is_valid(value):
            raise ValueError(f"invalid cron expression {value!r}")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown timezone {value!r} (use an IANA name like Europe/Berlin)") from None
        return value


class Select(_Model):
    tags: list[str] = []
    sources: list[str] = []
    include: list[str] = []
    exclude: list[str] = []
    max_stories: int = Field(10, ge=1, le=100)
    min_stories: int = Field(1, ge=0)
    since: str = "last_issue"

    _patterns = field_validator("include", "exclude")(_check_patterns)

    @field_validator("since")
    @classmethod
    def _since(cls, value: str) -> str:
        if value not in ("last_issue", "all") and not re.fullmatch(r"\d+[hd]", value):
            raise ValueError(f"since must be last_issue, all, or a period like 24h or 7d, not {value!r}")
        return value


class Newsletter(_Model):
    name: str
    title: str
    schedule: Schedule | None = None
    select: Select = Select()
    subject: str = "{{ newsletter.title }}: {{ stories[0].title }}"
    preheader: str = ""
    sender: str = Field("feedletter <newsletter@localhost>", alias="from")
    reply_to: str | None = None
    provider: Literal["smtp", "listmonk", "mailchimp", "file"] = "smtp"
    feeds: list[Literal["rss", "atom", "json"]] = ["rss"]
    template: str = "digest"
    postal_address: str = ""
    utm: bool = False
    # Listmonk list IDs or the Mailchimp audience ID for campaign providers (default: the provider's).
    lists: list[str] = []

    _name = field_validator("name")(_check_name)

    @field_validator("sender")
    @classmethod
    def _sender(cls, value: str) -> str:
        if not re.search(r"[^@<>\s]+@[^@<>\s]+\.?[^@<>\s]*", value):
            raise ValueError(f"from needs an email address, got {value!r}")
        return value


class Dkim(_Model):
    """DKIM signing of every SMTP message; the private key comes from a file or the environment."""

    domain: str
    selector: str
    key_file: str | None = None
    key_env: str = "FEEDLETTER_DKIM_KEY"


class SmtpProvider(_Model):
    url_env: str = "FEEDLETTER_SMTP_URL"
    rate_per_second: float | None = None
    dkim: Dkim | None = None
    # 4xx refusals and dropped connections: retried after retry_base, doubled each attempt; one run
    # waits up to retry_wait seconds for them before leaving the rest to the next run.
    retry_base: float = Field(30.0, gt=0)
    retry_wait: float = Field(600.0, ge=0)
    max_attempts: int = Field(5, ge=1)
    bounce_limit: int = Field(3, ge=1)


class ListmonkProvider(_Model):
    url: str = "http://localhost:9000"
    user_env: str = "FEEDLETTER_LISTMONK_USER"
    token_env: str = "FEEDLETTER_LISTMONK_TOKEN"
    lists: list[int] = []
    template_id: int | None = None

    _url = field_validator("url")(_check_http_url)


class MailchimpProvider(_Model):
    key_env: str = "FEEDLETTER_MAILCHIMP_KEY"
    list_id: str = ""
    # Normally derived from the key's data-center suffix (…-us6 → https://us6.api.mailchimp.com/3.0).
    api_url: str | None = None


class FileProvider(_Model):
    dir: str = ".feedletter/outbox"


class Providers(_Model):
    smtp: SmtpProvider = SmtpProvider()
    file: FileProvider = FileProvider()
    listmonk: ListmonkProvider = ListmonkProvider()
    mailchimp: MailchimpProvider = MailchimpProvider()


class Gather(_Model):
    concurrency: int = Field(16, ge=1, le=256)
    per_host: int = Field(4, ge=1, le=64)
    timeout: float = Field(20.0, gt=0)
    max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_failures: int = Field(10, ge=1)
    user_agent: str = "feedletter/0.1 (+https://github.com/feedletter/feedletter)"
    tracking_params: list[str] = []
    interval_minutes: int = Field(60, ge=1)


class Config(_Model):
    store: str = "sqlite:///.feedletter/feedletter.db"
    allow_private: bool = False
    site: Site = Site()
    gather: Gather = Gather()
    sources: list[Source] = []
    newsletters: list[Newsletter] = []
    providers: Providers = Providers()
    templates_dir: str | None = None

    @model_validator(mode="after")
    def _unique_names(self) -> Config:
        for kind, names in (("sources", [s.name for s in self.sources]),
                            ("newsletters", [n.name for n in self.newsletters])):
            seen: set[str] = set()
            for name in names:
                if name in seen:
                    raise ValueError(f"duplicate {kind} name {name!r}")
                seen.add(name)
        return self

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        raise ConfigError(f"no source named {name!r}", thing=self._path)

    def newsletter(self, name: str) -> Newsletter:
        for newsletter in self.newsletters:
            if newsletter.name == name:
                return newsletter
        known = ", ".join(n.name for n in self.newsletters) or "none configured"
        raise ConfigError(f"no newsletter named {name!r} (known: {known})", thing=self._path)

    @property
    def _path(self) -> str:
        return str(getattr(self, "_source_path", DEFAULT_CONFIG))

    def resolve(self, relative: str) -> Path:
        """A path from the config file, taken relative to the file's folder."""
        base = Path(getattr(self, "_source_path", DEFAULT_CONFIG)).resolve().parent
        path = Path(relative)
        return path if path.is_absolute() else base / path

    def store_url(self) -> str:
        """The store URL, with a relative SQLite path taken from the config file's folder."""
        prefix = "sqlite:///"
        if self.store.startswith(prefix) and not self.store.startswith(prefix + "/") \
                and self.store != "sqlite:///:memory:":
            return prefix + str(self.resolve(self.store[len(prefix):]))
        return self.store


@dataclass(frozen=True)
class Problem:
    line: int | None
    path: str
    message: str

    def format(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


def config_path(path: str | os.PathLike[str] | None = None) -> Path:
    return Path(path or os.environ.get("FEEDLETTER_CONFIG") or DEFAULT_CONFIG)


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem with its line."""
    file = config_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", thing=str(file)) from None
    config, problems = parse_config(text)
    if problems or config is None:
        raise ConfigError([p.format(str(file)) for p in problems])
    object.__setattr__(config, "_source_path", str(file))
    return config


def parse_config(text: str) -> tuple[Config | None, list[Problem]]:
    """Validate YAML text; return the config or the problems, each with its line number."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        return None, [Problem(line, "", f"YAML syntax: {problem}")]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [Problem(1, "", "the top level must be a mapping of settings")]
    lines = dict(_node_lines(node)) if node is not None else {}
    try:
        return Config.model_validate(data), []
    except ValidationError as exc:
        return None, [_problem(err, lines, data) for err in exc.errors()]


def _node_lines(node: yaml.Node, path: tuple[str | int, ...] = ()) -> Iterator[tuple[tuple[str | int, ...], int]]:
    yield path, node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value
            yield (*path, name, "<key>"), key.start_mark.line + 1
            yield from _node_lines(value, (*path, name))
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            yield from _node_lines(item, (*path, index))


def _problem(err: Mapping[str, Any], lines: dict[tuple[str | int, ...], int], data: Any) -> Problem:
    loc: tuple[str | int, ...] = tuple(p for p in err["loc"] if not (isinstance(p, str) and
                                                                      p.startswith(("function-", "literal["))))
    kind = err["type"]
    message = str(err["msg"]).removeprefix("Value error, ")
    if kind == "extra_forbidden":
        key = loc[-1]
        line = lines.get((*loc, "<key>"))
        allowed = _allowed_fields(loc[:-1], data)
        hint = difflib.get_close_matches(str(key), allowed, n=1)
        message = f"unknown field {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
    else:
        line = None
        probe = loc
        while line is None and probe:
            line = lines.get(probe)
            probe = probe[:-1]
        if kind == "missing":
            message = "required field is missing"
            line = lines.get(loc[:-1], line)
    if line is None:
        line = lines.get((), 1)
    return Problem(line, _dotted(loc), message)


def _dotted(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _allowed_fields(parent: tuple[str | int, ...], data: Any) -> list[str]:
    model: Any = Config
    for part in parent:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    names = []
    for name, field in model.model_fields.items():
        names.append(field.alias or name)
    return names
