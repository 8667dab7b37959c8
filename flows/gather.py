"""The gather flow: fetch → store → extract → group → summarize, one Prefect task per stage."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any, TypeVar, cast

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.utilities.annotations import quote

from feedletter import alerts, gather, health, stories
from feedletter.config import Config
from feedletter.fetch import Fetcher
from feedletter.store import Store
from flows.common import STORE_TIMEOUT, alert_operators, io_task_options, open_config, run_slot

T = TypeVar("T")


def _unwalked(value: T) -> T:
    """``value`` quoted, so that Prefect does not walk every field of it (10k entries at 500 feeds)
    looking for futures to wait on; the task still receives ``value`` itself."""
    return cast(T, quote(value))


@task(cache_policy=NO_CACHE, persist_result=False, **io_task_options(timeout=900))
def fetch_sources(config: Config, store: Store, fetcher: Fetcher, only: list[str],
                  progress: Callable[[int], None] | None = None) -> list[gather.SourceResult]:
    return gather.fetch_sources(config, store, fetcher, only=only, progress=progress)


@task(cache_policy=NO_CACHE, persist_result=False, timeout_seconds=STORE_TIMEOUT)
def store_entries(config: Config, store: Store, results: list[gather.SourceResult]) -> gather.StoreCounts:
    return gather.store_entries(config, store, results)


@task(cache_policy=NO_CACHE, persist_result=False, **io_task_options(timeout=900))
def extract_articles(config: Config, store: Store, fetcher: Fetcher) -> gather.ExtractCounts:
    return gather.extract_articles(config, store, fetcher)


@task(cache_policy=NO_CACHE, persist_result=False, timeout_seconds=STORE_TIMEOUT)
def group_articles(config: Config, store: Store) -> stories.GroupCounts:
    return stories.group(config, store)


@task(cache_policy=NO_CACHE, persist_result=False, timeout_seconds=STORE_TIMEOUT)
def summarize_stories(config: Config, store: Store) -> tuple[int, int]:
    return stories.summarize(config, store)


@flow(name="gather", log_prints=False)
def gather_flow(config_path: str = "sources.yaml", sources: list[str] | None = None,
                progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Gather new articles from every due source and group them into summarized stories.

    ``progress`` (the CLI's progress bar) is called as each source is fetched.
    """
    log = get_run_logger()
    config, store = open_config(config_path)
    started = time.monotonic()
    status = "failed"
    try:
        # Two gathers at once would fetch every source twice: the second waits for the first.
        with run_slot("gather"):
            run_id = store.start_run("gather", ",".join(sources or []))
            try:
                report = _gather(config, store, sources, started, progress)
                log.info("gather: %s", report)
                status = "completed"
            finally:
                store.finish_run(run_id, status, locals().get("report", {}))
        return report
    finally:
        store.close()


def _gather(config: Config, store: Store, sources: list[str] | None, started: float,
            progress: Callable[[int], None] | None) -> dict[str, Any]:
    log = get_run_logger()
    with gather.make_fetcher(config) as fetcher:
        results = fetch_sources(_unwalked(config), store, fetcher, list(sources or []), progress)
        for r in results:
            if r.status == "error":
                log.warning("%s", r.error)
        log.info("fetch: %d sources, %d ok, %d not modified, %d errors, %d skipped", len(results),
                 *(sum(r.status == s for r in results) for s in ("ok", "not_modified", "error", "skipped")))
        for name in alerts.track_sources(store):
            log.error("%s: disabled after repeated failures", name)
        counts = store_entries(_unwalked(config), store, _unwalked(results))
        t = counts.total
        log.info("store: %d new; not stored: %d seen before, %d repeated within their feed, "
                 "%d carried (another feed's article), %d removed, %d filtered", len(counts.new_ids),
                 t.seen, t.repeated, t.carried, t.removed, t.filtered)
        extracted = extract_articles(_unwalked(config), store, fetcher)
    grouped = group_articles(_unwalked(config), store)
    summarized, cached = summarize_stories(_unwalked(config), store)
    log.info("group: %d new stories, %d joined; summarize: %d (%d cached)", grouped.new_stories,
             grouped.joined, summarized, cached)
    if alerts.pending(store):
        alert_operators(config, store)
    report = {
        "sources": len(results),
        "fetched": sum(r.status == "ok" for r in results),
        "not_modified": sum(r.status == "not_modified" for r in results),
        "errors": sum(r.status == "error" for r in results),
        "skipped": sum(r.status == "skipped" for r in results),
        "new": len(counts.new_ids), "seen": counts.total.seen, "repeated": counts.total.repeated,
        "carried": counts.total.carried, "removed": counts.total.removed, "filtered": counts.total.filtered,
        # Stored, and marked as a copy of an article of another feed by the grouping.
        "near_duplicates": grouped.near_duplicates,
        "extracted": extracted.extracted, "extract_errors": extracted.failed,
        "stories_new": grouped.new_stories, "stories_joined": grouped.joined,
        "summarized": summarized, "summaries_cached": cached,
        "seconds": round(time.monotonic() - started, 3),
    }
    _health_artifact(store, results)
    return report


def _health_artifact(store: Store, results: list[gather.SourceResult]) -> None:
    by_name = {r.source: r for r in results}
    rows = []
    for state in health.all_states(store):
        result = by_name.get(state.name)
        rows.append({"source": state.name, "status": "disabled" if state.disabled else
                     (result.status if result else "idle"), "new": state.new_items,
                     "duplicates": state.duplicates, "seen": state.entries.seen,
                     "repeated": state.entries.repeated, "carried": state.entries.carried,
                     "removed": state.entries.removed, "filtered": state.entries.filtered,
                     "seconds": round(state.seconds or 0, 3),
                     "failures": state.failures, "last_error": state.last_error or ""})
    create_table_artifact(rows, key="feed-health", description="Feed health after this gather run")


__all__ = ["asdict", "gather_flow"]
