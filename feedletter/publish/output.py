"""What an output is: a ``name`` and ``publish(config, store, issue)`` giving a :class:`Report`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from feedletter.config import Config
from feedletter.publish.issues import PublishedIssue
from feedletter.store import Store

__all__ = ["Output", "Report"]


@dataclass(frozen=True)
class Report:
    """What an output did for one issue: ``count`` things published (``unit``: files, pings, posts),
    and the problems it met without failing (a hub that was down)."""

    output: str
    count: int = 0
    unit: str = ""
    problems: tuple[str, ...] = ()


class Output(Protocol):
    name: str

    def publish(self, config: Config, store: Store, issue: PublishedIssue) -> Report: ...
