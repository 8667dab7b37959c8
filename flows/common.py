"""What every flow shares: task options, the retry rule, run slots, secret-safe logs, config and store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import sqlalchemy as sa
from prefect import Task, task
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State, TaskRun
from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings

from feedletter import alerts
from feedletter.config import Config, load_config
from feedletter.errors import ConfigError, DeliveryError, FetchError, StoreError
from feedletter.redact import guard_logging, secret_values
from feedletter.store import Store

# Task options for stages that do I/O: explicit back-off, bounded time, and no retry of errors
# that another try cannot fix (bad config, permanent HTTP or SMTP refusals).
IO_RETRIES = 2
IO_DELAYS: list[float] = [5.0, 30.0]
# Stages that only touch the store are bounded in time but not retried: a rerun of the flow is the
# retry, and the store's keys make it safe.
STORE_TIMEOUT = 600.0
SLOT_TIMEOUT = 3600.0  # how long a second run waits for the first one to finish


def retry_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    """Retry only what may pass on another try: transient fetch/delivery errors, I/O, timeouts."""
    del task, task_run
    try:
        state.result()
    except ConfigError:
        return False
    except (FetchError, DeliveryError) as exc:
        return exc.transient
    except StoreError:
        return True
    except (OSError, TimeoutError, sa.exc.OperationalError):
        return True
    except Exception:
        # Our own errors (parse, render, unknown source) and bugs: the same input fails the same way.
        return False
    return False


def io_task_options(timeout: float) -> dict[str, Any]:
    """The options every I/O task is declared with."""
    return {"retries": IO_RETRIES, "retry_delay_seconds": IO_DELAYS, "retry_condition_fn": retry_transient,
            "timeout_seconds": timeout}


def open_config(config_path: str) -> tuple[Config, Store]:
    config = load_config(config_path)
    guard_logging(secret_values([config.store]))
    return config, Store.open(config.store_url())


def ensure_limit(name: str, limit: int = 1) -> None:
    """Create the global concurrency limit ``name`` if it is missing (Prefect ignores missing ones)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(name)
            return
        except ObjectNotFound:
            pass
        # Another run may create it between our read and our write.
        with suppress(ObjectAlreadyExists):
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=limit))


@contextmanager
def run_slot(name: str) -> Iterator[None]:
    """Hold the single slot of limit ``name`` for the block: a second run waits for the first."""
    from prefect.concurrency.sync import concurrency

    ensure_limit(name)
    with concurrency(name, occupy=1, timeout_seconds=SLOT_TIMEOUT, strict=True):
        yield


@task(cache_policy=NO_CACHE, persist_result=False, timeout_seconds=120)
def alert_operators(config: Config, store: Store) -> alerts.AlertCounts:
    """Email operators about new incidents. No retries here: a failed alert stays pending for the next run."""
    return alerts.send_alerts(config, store)


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
