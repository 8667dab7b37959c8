"""What every flow shares: the Prefect runner of the library's stages, the retry rule, one-shot runs."""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from prefect import Task, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
from prefect.utilities.annotations import quote

from feedletter.config import Config
from feedletter.errors import is_transient, masked_errors
from feedletter.redact import mask
from feedletter.runner import Stage
from feedletter.runs import open_config
from feedletter.store import Store

__all__ = ["PrefectRunner", "io_task_options", "library_logs", "masked_errors", "one_shot_flow", "open_project",
           "prefect_task", "retry_transient"]


def open_project(config_path: str) -> tuple[Config, Store]:
    """The run's config and store. A relative ``config_path`` (what ``feedletter deploy`` gives work-pool
    deployments) is found under ``$FEEDLETTER_HOME`` when the worker sets it, else in the working
    directory: so each worker finds the project where it keeps it, at run time."""
    path = Path(config_path)
    home = os.environ.get("FEEDLETTER_HOME")
    if home and not path.is_absolute():
        path = Path(home) / path
    return open_config(str(path))


def retry_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only what may pass on another try: transient fetch/delivery errors, I/O, timeouts."""
    del task, task_run
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc)
    return False


def io_task_options(timeout: float, retries: int = 2, delays: Sequence[float] = (5.0, 30.0)) -> dict[str, Any]:
    """The options every I/O task is declared with."""
    return {"retries": retries, "retry_delay_seconds": list(delays), "retry_condition_fn": retry_transient,
            "timeout_seconds": timeout}


_TASKS: dict[str, Task[..., Any]] = {}


def prefect_task(stage: Stage) -> Task[..., Any]:
    """The Prefect task of a library stage: its name, timeout and (for I/O) the retry rule."""
    made = _TASKS.get(stage.name)
    if made is None or getattr(made.fn, "__wrapped__", None) is not stage.fn:
        options: dict[str, Any] = io_task_options(stage.timeout, stage.retries, stage.delays) \
            if stage.retries else {"timeout_seconds": stage.timeout}
        made = task(name=stage.name, cache_policy=NO_CACHE, persist_result=False, **options)(_masked(stage.fn))
        _TASKS[stage.name] = made
    return made


def _masked(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, raising no exception whose message shows a secret: Prefect keeps ``str(exc)`` as the
    task run's state message (in its database, its events, the UI)."""
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        with masked_errors():
            return fn(*args, **kwargs)

    return call


@contextmanager
def library_logs() -> Iterator[None]:
    """The library's warnings (a source that failed, a wait for a lock, a take-over) in the flow
    run's logs in the Prefect UI; what a terminal shows of them is the command's business."""
    from prefect.logging.handlers import APILogHandler

    logger = logging.getLogger("feedletter")
    handler = APILogHandler()
    handler.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)


class PrefectRunner:
    """Runs each stage of a feedletter run as a task of the current Prefect flow run."""

    mode = "prefect"

    def __init__(self) -> None:
        self._log = cast(logging.LoggerAdapter[logging.Logger], get_run_logger())

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        return self._log

    def stage(self, stage: Stage, *args: Any, **kwargs: Any) -> Any:
        # Quoted, so that Prefect does not walk every field of the arguments (10k entries at 500
        # feeds) looking for futures to wait on; the task still receives the values themselves.
        return prefect_task(stage)(*(quote(a) for a in args), **{k: quote(v) for k, v in kwargs.items()})

    def table(self, key: str, rows: Sequence[Mapping[str, Any]], description: str) -> None:
        masked = [{k: mask(v) if isinstance(v, str) else v for k, v in r.items()} for r in rows]
        create_table_artifact(masked, key=key, description=mask(description))

    def markdown(self, key: str, text: str, description: str) -> None:
        create_markdown_artifact(mask(text), key=key, description=mask(description))


_HEARTBEAT_VARS = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")


@contextmanager
def one_shot_flow() -> Iterator[None]:
    """Run a command's flow without Prefect's flow-run heartbeat, unless the operator configured one.

    The heartbeat thread exists to notice crashed runs of long-lived deployments; a command that
    runs one flow and exits has its exit status for that, and the thread's shutdown (it sleeps in
    one-second steps) can add up to a second (bench/bench_process.py did not separate it from noise).
    Prefect's setting cannot be switched off from the environment (every value must be >= 30), so
    it is set to None for the flow's duration here.
    """
    if any(name in os.environ for name in _HEARTBEAT_VARS):
        yield
        return
    with temporary_settings(updates={PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield
