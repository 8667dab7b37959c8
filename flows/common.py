"""What every flow shares: retry rules for I/O tasks, and opening the config and the store."""

from __future__ import annotations

from typing import Any

from prefect import Task
from prefect.client.schemas.objects import State, TaskRun

from feedletter.config import Config, load_config
from feedletter.errors import ConfigError, DeliveryError, FetchError
from feedletter.store import Store

# Task options for stages that do I/O: explicit back-off, bounded time, and no retry of errors
# that another try cannot fix (bad config, permanent HTTP or SMTP refusals).
IO_RETRIES = 2
IO_DELAYS: list[float] = [5.0, 30.0]


def retry_transient(task: Task[Any, Any], task_run: TaskRun, state: State[Any]) -> bool:
    del task, task_run
    try:
        state.result()
    except ConfigError:
        return False
    except (FetchError, DeliveryError) as exc:
        return exc.transient
    except Exception:
        return True
    return False


def open_config(config_path: str) -> tuple[Config, Store]:
    config = load_config(config_path)
    return config, Store.open(config.store_url())
