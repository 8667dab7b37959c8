"""How a run's stages are called: one stage order, two ways to run it.

The gather and digest runs (``feedletter.runs``) name their stages in order and hand each call to a
:class:`Runner`. With a Prefect API configured, the flows in ``flows/`` pass a runner that makes
each stage a Prefect task (retries, timeouts, the UI). Without one, a one-off command passes
:class:`InProcess`, which calls the stages directly with the same retry rule and no server.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from feedletter.errors import is_transient

T = TypeVar("T")

IO_RETRIES = 2
IO_DELAYS: tuple[float, ...] = (5.0, 30.0)
STORE_TIMEOUT = 600.0


@dataclass(frozen=True)
class Stage:
    """One stage of a run: the library function and how it may be retried and bounded in time.

    Stages that only touch the store are not retried (a rerun of the flow is the retry, and the
    store's keys make it safe); stages that do network I/O retry transient errors with back-off.
    """

    name: str
    fn: Callable[..., Any]
    timeout: float = STORE_TIMEOUT
    retries: int = 0
    delays: tuple[float, ...] = field(default=IO_DELAYS)


def io_stage(name: str, fn: Callable[..., Any], timeout: float) -> Stage:
    return Stage(name, fn, timeout=timeout, retries=IO_RETRIES)


class Runner(Protocol):
    mode: str  # "prefect" | "in-process", recorded with the run

    @property
    def log(self) -> logging.Logger | logging.LoggerAdapter[logging.Logger]: ...

    def stage(self, stage: Stage, *args: Any, **kwargs: Any) -> Any: ...

    def table(self, key: str, rows: Sequence[Mapping[str, Any]], description: str) -> None: ...

    def markdown(self, key: str, text: str, description: str) -> None: ...


class InProcess:
    """Call each stage in this process; retry transient errors as the Prefect tasks would.

    Timeouts are not enforced here (a command's operator sees it and can interrupt it).
    """

    mode = "in-process"

    def __init__(self, log: logging.Logger | None = None, sleep: Callable[[float], None] = time.sleep) -> None:
        self._log = log or logging.getLogger("feedletter.run")
        self._sleep = sleep
        self.artifacts: dict[str, Any] = {}

    @property
    def log(self) -> logging.Logger:
        return self._log

    def stage(self, stage: Stage, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(stage.retries + 1):
            try:
                return stage.fn(*args, **kwargs)
            except Exception as exc:
                if attempt >= stage.retries or not is_transient(exc):
                    raise
                delay = stage.delays[min(attempt, len(stage.delays) - 1)]
                self._log.warning("%s: %s; trying again in %.0f s", stage.name, exc, delay)
                self._sleep(delay)
        raise AssertionError("unreachable")

    def table(self, key: str, rows: Sequence[Mapping[str, Any]], description: str) -> None:
        self.artifacts[key] = list(rows)

    def markdown(self, key: str, text: str, description: str) -> None:
        self.artifacts[key] = text


__all__ = ["IO_DELAYS", "IO_RETRIES", "STORE_TIMEOUT", "InProcess", "Runner", "Stage", "io_stage"]
