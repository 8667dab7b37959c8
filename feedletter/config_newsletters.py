"""A newsletter's settings in sources.yaml: what it selects, its checks, its look (logo, sections,
intro, greeting), where it sends. Part of :class:`feedletter.config.Config`.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from feedletter.config_fields import Schedule, Settings, check_http_url, check_name, check_patterns, one_of
from feedletter.plugins import PROVIDERS

__all__ = ["CheckLevel", "Checks", "Logo", "Newsletter", "Section", "Select", "Utm"]


class Select(Settings):
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

    _patterns = field_validator("include", "exclude", "pin_keywords")(check_patterns)

    @field_validator("since")
    @classmethod
    def _since(cls, value: str) -> str:
        if value not in ("last_issue", "all") and not re.fullmatch(r"\d+[hd]", value):
            raise ValueError(f"since must be last_issue, all, or a period like 24h or 7d, not {value!r}")
        return value


CheckLevel = Literal["fail", "warn", "off"]


class Checks(Settings):
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


class Utm(Settings):
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


class Logo(Settings):
    """An image at the top of the email; width is capped so it never widens the 600 px layout."""

    url: str
    alt: str = Field(min_length=1)
    width: int = Field(160, ge=16, le=600)

    _url = field_validator("url")(check_http_url)


class Section(Settings):
    """A heading in the email: stories from sources with one of ``tags`` go under ``title``.

    A story goes under the first section that matches it; a section without tags takes the stories
    no other section took (without one, they close the issue under "More stories").
    """

    title: str = Field(min_length=1, max_length=80)
    tags: list[str] = []


class Newsletter(Settings):
    name: str
    title: str
    description: str = ""  # what the newsletter is, for the archive and the subscribe form
    schedule: Schedule | None = None
    select: Select = Select()
    subject: str = "{{ newsletter.title }}: {{ stories[0].title }}"
    preheader: str = ""
    sender: str = Field("feedletter <newsletter@localhost>", alias="from")
    reply_to: str | None = None
    provider: str = "smtp"  # a registered mail provider (feedletter.plugins.PROVIDERS)
    feeds: list[Literal["rss", "atom", "json", "stories"]] = ["rss"]
    template: str = "digest"
    postal_address: str = ""
    utm: bool | Utm = False
    checks: Checks = Checks()
    logo: Logo | None = None
    # Listmonk list IDs or the Mailchimp audience ID for campaign providers (default: the provider's).
    lists: list[str] = []
    greeting: str = ""  # e.g. "Hi %%NAME%%,"; a subscriber without a name reads "Hi,"
    intro: str = ""  # Markdown shown above the stories
    intro_file: str | None = None  # or a Markdown file, relative to the config file
    sections: list[Section] = []

    _name = field_validator("name")(check_name)

    @field_validator("provider")
    @classmethod
    def _provider(cls, value: str) -> str:
        return one_of(value, PROVIDERS.names())

    @field_validator("greeting")
    @classmethod
    def _greeting(cls, value: str) -> str:
        unknown = sorted(set(re.findall(r"%%[A-Z_]+%%", value)) - {"%%NAME%%"})
        if unknown:
            raise ValueError(f"a greeting can only use %%NAME%%, not {', '.join(unknown)}")
        return value

    @model_validator(mode="after")
    def _one_intro(self) -> Newsletter:
        if self.intro and self.intro_file is not None:
            raise ValueError("intro and intro_file are both set: keep one")
        return self

    @field_validator("sections")
    @classmethod
    def _sections(cls, value: list[Section]) -> list[Section]:
        titles = [s.title for s in value]
        twice = sorted({t for t in titles if titles.count(t) > 1})
        if twice:
            raise ValueError(f"two sections are titled {twice[0]!r}")
        if sum(not s.tags for s in value) > 1:
            raise ValueError("only one section can leave out tags (it takes the stories no other section took)")
        return value

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
