"""The digest flow: finish any interrupted send, then select → render → save → queue → deliver → publish."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from feedletter import digest, syndicate
from feedletter.config import Config, Newsletter
from feedletter.deliver import DeliveryCounts, deliver_issue, make_mailer
from feedletter.deliver import outbox as outbox_queue
from feedletter.errors import RenderError
from feedletter.store import Store
from flows.common import IO_DELAYS, IO_RETRIES, open_config, retry_transient


@task(cache_policy=NO_CACHE, persist_result=False)
def render_digest(config: Config, store: Store, newsletter: Newsletter) -> digest.Prepared | None:
    return digest.prepare_digest(config, store, newsletter)


@task(cache_policy=NO_CACHE, persist_result=False)
def save_issue(store: Store, prepared: digest.Prepared, newsletter: Newsletter) -> int:
    issue_id = digest.save_issue(store, prepared)
    digest.queue_issue(store, issue_id, newsletter)
    return issue_id


@task(cache_policy=NO_CACHE, persist_result=False, retries=IO_RETRIES, retry_delay_seconds=IO_DELAYS,
      retry_condition_fn=retry_transient, timeout_seconds=3600)
def deliver_digest(config: Config, store: Store, issue_id: int,
                   progress: Callable[[int], None] | None = None) -> DeliveryCounts:
    content = digest.issue_content(config, store, issue_id)
    return deliver_issue(config, store, content, make_mailer(config, content.newsletter), progress=progress)


@task(cache_policy=NO_CACHE, persist_result=False)
def syndicate_outputs(config: Config, store: Store) -> int:
    return len(syndicate.syndicate(config, store))


@flow(name="digest")
def digest_flow(newsletter: str, config_path: str = "sources.yaml",
                progress: Callable[[int], None] | None = None) -> dict[str, Any]:
    """Build and send the next issue of one newsletter, and publish it to its feeds and archive.

    ``progress`` (the CLI's progress bar) is called as each message is sent.
    """
    log = get_run_logger()
    config, store = open_config(config_path)
    target = config.newsletter(newsletter)
    run_id = store.start_run("digest", newsletter)
    report: dict[str, Any] = {"newsletter": newsletter, "issue": None, "sent": 0, "failed": 0}
    status = "failed"
    try:
        for pending in digest.pending_issues(store, newsletter):
            log.info("finishing issue %s left unsent by an earlier run", pending)
            done = deliver_digest(config, store, pending, progress)
            report["sent"] += done.sent
        prepared = render_digest(config, store, target)
        if prepared is None:
            log.info("%s: nothing new to send (fewer than %s stories)", newsletter, target.select.min_stories)
            report["skipped"] = "no new stories"
            status = "completed"
            return report
        for problem in prepared.checks:
            log.warning("pre-send check: %s", problem)
        blocking = [p for p in prepared.checks if "clips" in p or "unsubscribe" in p]
        if blocking:
            raise RenderError(newsletter, "; ".join(blocking))
        issue_id = save_issue(store, prepared, target)
        counts = deliver_digest(config, store, issue_id, progress)
        files = syndicate_outputs(config, store)
        report.update(issue=prepared.number, subject=prepared.digest.subject,
                      stories=len(prepared.digest.stories), sent=report["sent"] + counts.sent,
                      failed=counts.failed, published_files=files,
                      outbox=outbox_queue.counts(store, issue_id))
        _issue_artifact(prepared, report)
        status = "completed"
        return report
    finally:
        store.finish_run(run_id, status, report)
        store.close()


def _issue_artifact(prepared: digest.Prepared, report: dict[str, Any]) -> None:
    lines = [f"# {prepared.digest.subject}", "", f"Issue {prepared.number} · {report['stories']} stories · "
             f"{len(prepared.rendered.html.encode()) // 1024} KB HTML", "",
             f"Outbox: {report['outbox']}", "", f"Web: {prepared.digest.web_url}", "", "## Stories"]
    lines += [f"- [{s.title}]({s.url}) ({s.source}, {len(s.also)} more)" for s in prepared.digest.stories]
    if prepared.checks:
        lines += ["", "## Pre-send checks", *(f"- {c}" for c in prepared.checks)]
    create_markdown_artifact("\n".join(lines), key=f"digest-{prepared.digest.newsletter}",
                             description="What this digest run sent")
