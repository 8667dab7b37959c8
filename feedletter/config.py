"""Load and validate sources.yaml.

Every problem is reported as ``file:line: field.path: problem``, one line each, so that staff
editing the file by hand can go straight to the line. Validation is pydantic's; line numbers come
from PyYAML's node marks (:mod:`feedletter.config_lines`), matched to pydantic's error locations.
The ``providers:`` sections and the summarizer's are the plug-ins' own models
(:mod:`feedletter.plugins`); the checks that render templates are :mod:`feedletter.validate`'s.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from feedletter.config_fields import Schedule, Sections, Settings, check_http_url, check_name, check_patterns, one_of
from feedletter.config_lines import Problem, duplicate_names, error_problem, item_names, node_lines
from feedletter.config_newsletters import Newsletter
from feedletter.config_refs import unknown_references
from feedletter.errors import ConfigError
from feedletter.plugins import PROVIDERS, SUMMARIZERS
from feedletter.redact import register_config

DEFAULT_CONFIG = "sources.yaml"


class Site(Settings):
    base_url: str = "http://localhost:8080"
    archive_dir: str = "public"
    title: str = "feedletter"
    # Syndication: archive index page size, items per feed, and an optional WebSub hub to ping.
    archive_per_page: int = Field(20, ge=1, le=1000)
    feed_items: int = Field(20, ge=1, le=1000)
    websub_hub: str | None = None
    # Where the archive's Subscribe links go: the form ``feedletter web`` serves, by default; null for none.
    subscribe_url: str | None = "{base_url}/subscribe?newsletter={newsletter}"

    _url = field_validator("base_url")(check_http_url)

    @field_validator("subscribe_url")
    @classmethod
    def _subscribe(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        unknown = set(re.findall(r"{([^}]*)}", value)) - {"base_url", "newsletter"}
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)} (use {{base_url}} or {{newsletter}})")
        check_http_url(value.replace("{base_url}", "https://example.com").replace("{newsletter}", "n"))
        return value.strip()

    @field_validator("websub_hub")
    @classmethod
    def _hub(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)


class Source(Settings):
    name: str
    url: str
    title: str | None = None  # how readers see the site's name; default: the name, title-cased
    site: str | None = None  # the site's home page (OPML's htmlUrl)
    tags: list[str] = []
    full_text: Literal["auto", "always", "never"] = "auto"
    include: list[str] = []
    exclude: list[str] = []
    priority: int = 0
    allow_private: bool | None = None
    enabled: bool = True

    _name = field_validator("name")(check_name)
    _url = field_validator("url")(check_http_url)
    _patterns = field_validator("include", "exclude")(check_patterns)

    @field_validator("site")
    @classmethod
    def _site(cls, value: str | None) -> str | None:
        return None if value is None else check_http_url(value)


class WebLimits(Settings):
    """Subscribe requests the web form takes; more are answered the same and dropped (see docs/security.md)."""

    address_per_day: int = Field(3, ge=1)  # for one email address, over all newsletters
    ip_per_hour: int = Field(20, ge=1)  # from one client IP address
    newsletter_per_hour: int = Field(500, ge=1)  # for one newsletter, from everyone


class Web(Settings):
    """``feedletter web``: the subscribe form's limits."""

    limits: WebLimits = WebLimits()


class Gather(Settings):
    concurrency: int = Field(16, ge=1, le=256)
    per_host: int = Field(4, ge=1, le=64)
    processes: int | None = Field(None, ge=0, le=64)  # parse workers; None: one per CPU, 0: in the fetch threads
    timeout: float = Field(20.0, gt=0)
    max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_failures: int = Field(10, ge=1)
    max_entries: int = Field(1000, ge=1)  # per feed: the newest this many; an archive feed's rest is left out
    user_agent: str = "feedletter/0.1 (+https://github.com/feedletter/feedletter)"
    tracking_params: list[str] = []
    interval_minutes: int = Field(60, ge=1)
    schedule: Schedule | None = None  # a cron for gather, instead of the interval


class Alerts(Settings):
    """Where operators hear about disabled sources and failed digest runs."""

    to: list[str]
    sender: str = Field("feedletter <alerts@localhost>", alias="from")
    provider: str = "smtp"  # a provider that sends single messages
    subject_prefix: str = "[feedletter]"

    @field_validator("provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        if value in PROVIDERS and PROVIDERS.get(value).kind == "per-subscriber":
            return value
        return one_of(value, [n for n in PROVIDERS.names() if PROVIDERS.get(n).kind == "per-subscriber"])

    @field_validator("to", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value

    @field_validator("to")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for address in value:
            if not re.fullmatch(r"[^@<>\s]+@[^@<>\s]+", address):
                raise ValueError(f"not an email address: {address!r}")
        return value


class Providers(Sections):
    """``providers:``: each mail provider's settings under its name."""

    plugins = PROVIDERS


class Stories(Sections):
    """How articles become stories and how stories are summarized (a summarizer's settings: its name)."""

    plugins = SUMMARIZERS

    window_days: int = Field(7, ge=1, le=90)
    near_duplicate: float = Field(0.7, gt=0, le=1)
    same_story: float = Field(0.24, gt=0, le=1)
    same_subject: float = Field(0.04, gt=0, le=1)
    summary_sentences: int = Field(3, ge=1, le=10)
    summary_chars: int = Field(600, ge=80, le=4000)
    summarizer: str = "extractive"

    @field_validator("summarizer")
    @classmethod
    def _summarizer(cls, value: str) -> str:
        return one_of(value, SUMMARIZERS.names())

    @model_validator(mode="after")
    def _summarizer_settings(self) -> Stories:
        # Only a summarizer the file names is looked up: reading a config need not load the default's module.
        chosen = self.summarizer
        model = SUMMARIZERS.get(chosen).settings if "summarizer" in self.model_fields_set else None
        required = [name for name, field in model.model_fields.items() if field.is_required()] if model else []
        if required and chosen not in (self.model_extra or {}):
            raise ValueError(f"summarizer: {chosen} needs stories.{chosen}: {{{', '.join(required)}}}")
        return self


class Config(Settings):
    store: str = "sqlite:///.feedletter/feedletter.db"
    allow_private: bool = False
    site: Site = Site()
    web: Web = Web()
    gather: Gather = Gather()
    sources: list[Source] = []
    newsletters: list[Newsletter] = []
    providers: Providers = Providers()
    templates_dir: str | None = None
    alerts: Alerts | None = None
    stories: Stories = Stories()

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

    def source_titles(self) -> dict[str, str]:
        """Each source's name as readers see it: its title, else its name in title case."""
        return {s.name: s.title or s.name.replace("-", " ").title() for s in self.sources}

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
    # Its secrets are masked from here on, wherever they would be printed or stored.
    register_config(config)
    return config


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_config(text: str) -> tuple[Config | None, list[Problem]]:
    """Validate YAML text; return the config or the problems, each with its line number."""
    try:
        # libyaml's loader where PyYAML has it: a 500-source file took 0.13 s in the pure-Python one,
        # a good part of a gather with nothing new.
        node = yaml.compose(text, Loader=_LOADER)
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        problem = getattr(exc, "problem", None) or str(exc)
        # PyYAML's wording ("expected <block end>") means little to staff; most slips are indentation.
        hint = " (check the indentation and quotes of this line and the one above)"
        return None, [Problem(line, "", f"YAML syntax: {problem}{hint}")]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [Problem(1, "", "the top level must be a mapping of settings")]
    lines = dict(node_lines(node)) if node is not None else {}
    names = item_names(data)
    # Checked on the raw data, before pydantic, so that each duplicate keeps its own line number and
    # a newsletter's references are reported beside every field error, in one pass.
    duplicates = duplicate_names(data, lines, names)
    extra = duplicates + unknown_references(data, lines, names)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = [error_problem(err, lines, Config, names) for err in exc.errors()]
        # The model's own duplicate check has no line; the one above does.
        problems = [p for p in problems if not (duplicates and p.message.startswith("duplicate "))]
        return None, by_line(problems + extra)
    return (None, by_line(extra)) if extra else (config, [])


def by_line(problems: list[Problem]) -> list[Problem]:
    """Problems in the order of the file (those without a line first); stable for one line."""
    return sorted(problems, key=lambda p: p.line or 0)
