"""The gather flow: fetch → store → extract → group → summarize, one Prefect task per stage.

The stages and their order are the library's (``feedletter.runs.gather_run``); this flow runs
them as Prefect tasks, so that scheduled and operator runs show in the Prefect UI, and logs the
run's report.
"""

from __future__ import annotations

from collections.abc import Callable

from prefect import flow, get_run_logger

from feedletter.runs import GatherReport, gather_run
from feedletter_flows.common import PrefectRunner, library_logs, masked_errors, open_project


@flow(name="gather", log_prints=False)
def gather_flow(config_path: str = "sources.yaml", sources: list[str] | None = None,
                progress: Callable[[int], None] | None = None) -> GatherReport:
    """Gather new articles from every due source and group them into summarized stories.

    ``progress`` (the CLI's progress bar) is called as each source is fetched.
    """
    # What the flow raises becomes its state message in Prefect: shown without secrets.
    with masked_errors():
        config, store = open_project(config_path)
        try:
            with library_logs():
                report = gather_run(config, store, PrefectRunner(), sources=sources, progress=progress)
        finally:
            store.close()
    get_run_logger().info("%s", report.line())
    return report
