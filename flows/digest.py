"""The digest flow: finish any interrupted send, then select → render → save → queue → deliver → publish.

The stages and their order are the library's (``feedletter.runs.digest_run``); this flow runs
them as Prefect tasks, so that scheduled and operator runs show in the Prefect UI.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import flow

from feedletter.runs import digest_run
from flows.common import PrefectRunner, library_logs, open_config


@flow(name="digest")
def digest_flow(newsletter: str, config_path: str = "sources.yaml",
                progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Build and send the next issue of one newsletter, and publish it to its feeds and archive.

    ``progress`` (the CLI's progress bar) is called as each message is sent.
    """
    config, store = open_config(config_path)
    try:
        with library_logs():
            return digest_run(config, store, PrefectRunner(), newsletter, progress=progress)
    finally:
        store.close()
