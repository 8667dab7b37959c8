"""Load and validate sources.yaml.

Every problem is reported as ``file:line: field.path: problem``, one line each, so that staff
editing the file by hand can go straight to the line. Validation is pydantic's; line numbers come
from PyYAML's node marks (:mod:`feedletter.config_lines`), matched to pydantic's error locations.
"""

from __future__ import annotations

import difflib
import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from feedletter.config_lines import Lines, Problem, dotted, duplicate_names, error_problem, line_of, node_lines
from feedletter.errors import ConfigError

DEFAULT_CONFIG = "sources.yaml"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _check_http_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {value!r}")
    if any(c.isspace() for c in value.strip()) or not parts.hostname or ".." in parts.hostname:
        raise ValueError(f"not a valid URL (spaces or an empty host part): {value!r}")
    try:
        parts.port  # noqa: B018 - urlsplit checks the port only when asked
    except ValueError:
        raise ValueError(f"not a valid URL (bad port): {value!r}") from None
    return value.strip()


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
    # Syndication: archive index page size, items per feed, and an optional WebSub hub to ping.
    archive_per_page: int = Field(20, ge=1, le=1000)
    feed_items: int = Field(20, ge=1, le=1000)
    websub_hub: str | None = None
    # Where the archive's Subscribe links go: the form ``feedletter web`` serves, by default; null for none.
    subscribe_url: str | None = "{base_url}/subscribe?newsletter={newsletter}"

    _url = field_validator("base_url")(_check_http_url)

    @field_validator("subscribe_url")
    @classmethod
    def _subscribe(cls, value: str | None) -> str | None:
        if not value or not value.strip():
            return None
        unknown = set(re.findall(r"{([^}]*)}", value)) - {"base_url", "newsletter"}
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)} (use {{base_url}} or {{newsletter}})")
        _check_http_url(value.replace("{base_url}", "https://example.com").replace("{newsletter}", "n"))
        return value.strip()

    @field_validator("websub_hub")
    @classmethod
    def _hub(cls, value: str | None) -> str | None:
        return None if value is None else _check_http_url(value)


class Source(_Model):
    name: str
    url: str
    title: str | None = None  # how readers see the site's name; default: the name, title-cased
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
    max_per_source: int = Field(2, ge=0)  # 0: no cap
    min_stories: int = Field(1, ge=0)
    since: str = "last_issue"
    min_quality: int = Field(0, ge=0)
    pin_sources: list[str] = []
    pin_keywords: list[str] = []

    _patterns = field_validator("include", "exclude", "pin_keywords")(_check_patterns)

    @field_validator("since")
    @classmethod
    def _since(cls, value: str) -> str:
        if value not in ("last_issue", "all") and not re.fullmatch(r"\d+[hd]", value):
            raise ValueError(f"since must be last_issue, all, or a period like 24h or 7d, not {value!r}")
        return value


CheckLevel = Literal["fail", "warn", "off"]


class Checks(_Model):
    """What each pre-send check does when it finds a problem: stop the digest, warn, or nothing."""

    html_size: CheckLevel = "fail"
    links: CheckLevel = "fail"
    alt: CheckLevel = "warn"
    subject_length: CheckLevel = "warn"
    unsubscribe: CheckLevel = "fail"
    postal_address: CheckLevel = "warn"
    subject_max: int = Field(150, ge=20, le=998)

    @field_validator("html_size", "links", "alt", "subject_length", "unsubscribe", "postal_address", mode="before")
    @classmethod
    def _yaml_off(cls, value: object) -> object:
        # YAML 1.1 reads a bare ``off`` as false; staff mean the word.
        return "off" if value is False else value


class Utm(_Model):
    """UTM parameters added to outgoing story links; ``{newsletter}`` and ``{number}`` are filled in."""

    source: str = "{newsletter}"
    medium: str = "email"
    campaign: str = "{newsletter}-{number}"

    @field_validator("source", "medium", "campaign")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        unknown = set(re.findall(r"{([^}]*)}", value)) - {"newsletter", "number"}
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)} (use {{newsletter}} or {{number}})")
        return value


class Logo(_Model):
    """An image at the top of the email; width is capped so it never widens the 600 px layout."""

    url: str
    alt: str = Field(min_length=1)
    width: int = Field(160, ge=16, le=600)

    _url = field_validator("url")(_check_http_url)


class Newsletter(_Model):
    name: str
    title: str
    description: str = ""  # what the newsletter is, for the archive and the subscribe form
    schedule: Schedule | None = None
    select: Select = Select()
    subject: str = "{{ newsletter.title }}: {{ stories[0].title }}"
    preheader: str = ""
    sender: str = Field("feedletter <newsletter@localhost>", alias="from")
    reply_to: str | None = None
    provider: Literal["smtp", "listmonk", "mailchimp", "file"] = "smtp"
    feeds: list[Literal["rss", "atom", "json", "stories"]] = ["rss"]
    template: str = "digest"
    postal_address: str = ""
    utm: bool | Utm = False
    checks: Checks = Checks()
    logo: Logo | None = None
    # Listmonk list IDs or the Mailchimp audience ID for campaign providers (default: the provider's).
    lists: list[str] = []

    _name = field_validator("name")(_check_name)

    @field_validator("feeds")
    @classmethod
    def _feeds(cls, value: list[str]) -> list[str]:
        # "stories" adds a stories feed in each listed format, so it needs a format beside it.
        if "stories" in value and not set(value) - {"stories"}:
            raise ValueError("stories needs a feed format beside it (rss, atom or json)")
        return value

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
    processes: int | None = Field(None, ge=0, le=64)  # parse workers; None: one per CPU, 0: in the fetch threads
    timeout: float = Field(20.0, gt=0)
    max_bytes: int = Field(10 * 1024 * 1024, ge=1024)
    max_failures: int = Field(10, ge=1)
    user_agent: str = "feedletter/0.1 (+https://github.com/feedletter/feedletter)"
    tracking_params: list[str] = []
    interval_minutes: int = Field(60, ge=1)
    schedule: Schedule | None = None  # a cron for gather, instead of the interval


class Alerts(_Model):
    """Where operators hear about disabled sources and failed digest runs."""

    to: list[str]
    sender: str = Field("feedletter <alerts@localhost>", alias="from")
    provider: Literal["smtp", "file"] = "smtp"
    subject_prefix: str = "[feedletter]"

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


class Llm(_Model):
    base_url: str
    model: str
    api_key_env: str = "OPENAI_API_KEY"
    timeout: float = Field(30.0, gt=0)

    _url = field_validator("base_url")(_check_http_url)


class Stories(_Model):
    """How articles become stories and how stories are summarized."""

    window_days: int = Field(7, ge=1, le=90)
    near_duplicate: float = Field(0.7, gt=0, le=1)
    same_story: float = Field(0.24, gt=0, le=1)
    same_subject: float = Field(0.04, gt=0, le=1)
    summary_sentences: int = Field(3, ge=1, le=10)
    summary_chars: int = Field(600, ge=80, le=4000)
    summarizer: Literal["extractive", "llm"] = "extractive"
    llm: Llm | None = None

    @model_validator(mode="after")
    def _llm_settings(self) -> Stories:
        if self.summarizer == "llm" and self.llm is None:
            raise ValueError("summarizer: llm needs stories.llm: {base_url, model}")
        return self


class Config(_Model):
    store: str = "sqlite:///.feedletter/feedletter.db"
    allow_private: bool = False
    site: Site = Site()
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
        # PyYAML's wording ("expected <block end>") means little to staff; most slips are indentation.
        hint = " (check the indentation and quotes of this line and the one above)"
        return None, [Problem(line, "", f"YAML syntax: {problem}{hint}")]
    if data is None:
        data = {}
    if not isinstance(data, dict):
        return None, [Problem(1, "", "the top level must be a mapping of settings")]
    lines = dict(node_lines(node)) if node is not None else {}
    # Checked on the raw data, before pydantic, so that each duplicate keeps its own line number.
    extra = duplicate_names(data, lines)
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems = [error_problem(err, lines, Config) for err in exc.errors()]
        # The model's own duplicate check has no line; the one above does.
        return None, [p for p in problems if not (extra and p.message.startswith("duplicate "))] + extra
    extra += _unknown_references(config, lines)
    return (None, extra) if extra else (config, [])


def _unknown_references(config: Config, lines: Lines) -> list[Problem]:
    """A newsletter naming a source that does not exist selects nothing: say so, with a hint."""
    names = [s.name for s in config.sources]
    problems = []
    for index, newsletter in enumerate(config.newsletters):
        for field_name in ("sources", "pin_sources"):
            for position, name in enumerate(getattr(newsletter.select, field_name)):
                if name in names:
                    continue
                hint = difflib.get_close_matches(name, names, n=1)
                path = ("newsletters", index, "select", field_name, position)
                problems.append(Problem(lines.get(path, lines.get(path[:-1])), dotted(path),
                                        f"no source named {name!r}"
                                        + (f" (did you mean {hint[0]!r}?)" if hint else "")))
    return problems


def check_file(path: str | os.PathLike[str] | None = None) -> tuple[Config | None, list[str]]:
    """Everything ``feedletter validate`` checks, as ``file:line: field: problem`` lines."""
    file = config_path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        return None, [f"{file}: cannot read: {exc.strerror or exc}"]
    config, problems = parse_config(text)
    if problems or config is None:
        return None, [p.format(str(file)) for p in problems]
    object.__setattr__(config, "_source_path", str(file))
    from feedletter.issue.render import missing_templates  # render is heavy; only validate needs it here

    out = []
    for problem in missing_templates(config):
        field_path, message = problem.split(": ", 1)
        index = int(field_path.split("[", 1)[1].split("]", 1)[0])
        line = line_of(text, ("newsletters", index, "template"))
        out.append(Problem(line, field_path, message).format(str(file)))
    return (None, out) if out else (config, [])
