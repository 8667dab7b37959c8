"""The digest flow: finish any interrupted send, then prepare → save → send → publish.

The stages and their order are the library's (``feedletter.runs.digest_run``); this flow runs
them as Prefect tasks, so that scheduled and operator runs show in the Prefect UI, and logs the
run's report.
"""

from __future__ import annotations

from collections.abc import Callable

from prefect import flow, get_run_logger

from feedletter.runs import DigestReport, digest_run
from feedletter_flows.common import PrefectRunner, library_logs, masked_errors, open_project


@flow(name="digest")
def digest_flow(newsletter: str, config_path: str = "sources.yaml",
                progress: Callable[[int], None] | None = None) -> DigestReport:
    """Build and send the next issue of one newsletter, and publish it to its feeds and archive.

    ``progress`` (the CLI's progress bar) is called as each message is sent.
    """
    # What the flow raises becomes its state message in Prefect: shown without secrets.
    with masked_errors():
        config, store = open_project(config_path)
        try:
            with library_logs():
                report = digest_run(config, store, PrefectRunner(), newsletter, progress=progress)
        finally:
            store.close()
    get_run_logger().info("%s", report.line())
    return report
