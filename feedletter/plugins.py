"""Mail providers and summarizers, found by name instead of being listed wherever they are used.

A mail provider is one module in ``feedletter/deliver/providers/`` named after it (``smtp.py`` is
the ``smtp`` provider) that declares ``PROVIDER``, a :class:`ProviderEntry`: its settings model
(its section under ``providers:``), whether it sends one message per subscriber or the whole issue
as one campaign, and the factory that builds its sender. A summarizer declares ``SUMMARIZER``, a
:class:`SummarizerEntry`, the same way; its settings are the ``stories.<name>`` section. Config
validation, delivery, opt-in, alerts, preview and the summarize stage ask :data:`PROVIDERS` and
:data:`SUMMARIZERS`.

A built-in's module is imported when its name is first looked up, so that reading the config for
a gather does not load SMTP or HTTP clients; and this module imports no pydantic, as the
extractive summarizer's module, which declares an entry, is loaded into worker processes without
it. A plug-in from elsewhere, or a test, calls ``register``. How the plug-ins' sections of
sources.yaml are read is :class:`feedletter.config_fields.Sections`'s.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, Protocol, TypeVar

from feedletter.errors import ConfigError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from feedletter.config import Config
    from feedletter.config_newsletters import Newsletter
    from feedletter.deliver import Mailer
    from feedletter.deliver.campaign import CampaignClient
    from feedletter.stories.summarize import Summarizer

__all__ = ["PROVIDERS", "SUMMARIZERS", "ProviderEntry", "Registry", "SummarizerEntry"]

S = TypeVar("S", bound="BaseModel")


@dataclass(frozen=True)
class ProviderEntry(Generic[S]):
    """A mail provider: ``per-subscriber`` ones build a Mailer, ``campaign`` ones a CampaignClient."""

    name: str
    settings: type[S]
    kind: Literal["per-subscriber", "campaign"]
    factory: Callable[[Config, Newsletter], Mailer | CampaignClient]

    def settings_in(self, config: Config) -> S:
        """This provider's section of ``providers:``; its defaults when the file has none."""
        return config.providers.section(self.name, self.settings) or self.settings()


@dataclass(frozen=True)
class SummarizerEntry:
    """A summarizer; ``settings`` is None when it has nothing to configure."""

    name: str
    settings: type[BaseModel] | None
    factory: Callable[[Config], Summarizer]


class Entry(Protocol):
    """What a registry needs of its entries."""

    @property
    def name(self) -> str: ...

    @property
    def settings(self) -> type[BaseModel] | None: ...


E = TypeVar("E", bound=Entry)


class Registry(Generic[E]):
    """Entries of one kind by name: the built-ins, in the order ``builtins`` gives, then registered ones."""

    def __init__(self, noun: str, attribute: str, builtins: Callable[[], Mapping[str, str]]) -> None:
        self.noun = noun  # what messages call an entry: "provider"
        self.attribute = attribute  # what a built-in's module declares: "PROVIDER"
        self._builtins = builtins  # name -> module, known without importing the modules
        self._entries: dict[str, E] = {}

    def names(self) -> list[str]:
        return list(dict.fromkeys([*self._builtins(), *self._entries]))

    def __contains__(self, name: object) -> bool:
        return name in self._entries or name in self._builtins()

    def get(self, name: str) -> E:
        entry = self._entries.get(name)
        if entry is None:
            module = self._builtins().get(name)
            if module is None:
                raise ConfigError(f"no {self.noun} named {name!r} (known: {', '.join(self.names())})")
            entry = getattr(importlib.import_module(module), self.attribute)
            assert entry.name == name, f"{module}.{self.attribute} is named {entry.name!r}, not {name!r}"
            self._entries[name] = entry
        return entry

    def register(self, entry: E) -> E:
        """Add (or replace) an entry; the config file may name it from now on."""
        self._entries[entry.name] = entry
        return entry

    def unregister(self, name: str) -> None:
        """Forget a registered entry; a built-in of that name is imported again when next asked for."""
        self._entries.pop(name, None)


@cache
def _provider_modules() -> dict[str, str]:
    # Listed from the folder: importing the package would run feedletter.deliver's __init__ and
    # load the outbox and the message builder just to read a config.
    folder = Path(__file__).parent / "deliver" / "providers"
    return {m.name: f"feedletter.deliver.providers.{m.name}" for m in pkgutil.iter_modules([str(folder)])}


def _summarizer_modules() -> dict[str, str]:
    return {"extractive": "feedletter.stories.summarize", "llm": "feedletter.stories.llm"}


PROVIDERS: Registry[ProviderEntry[Any]] = Registry("provider", "PROVIDER", _provider_modules)
SUMMARIZERS: Registry[SummarizerEntry] = Registry("summarizer", "SUMMARIZER", _summarizer_modules)
