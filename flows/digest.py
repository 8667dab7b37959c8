"""The digest flow: finish any interrupted send, then select → render → save → queue → deliver → publish."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE

from feedletter import alerts, digest, syndicate
from feedletter.config import Config, Newsletter
from feedletter.deliver import DeliveryCounts, send_issue
from feedletter.deliver import outbox as outbox_queue
from feedletter.errors import DeliveryError, RenderError
from feedletter.redact import redact, secret_values
from feedletter.render import review_digest
from feedletter.store import Store
from flows.common import STORE_TIMEOUT, alert_operators, io_task_options, open_config, run_slot


@task(cache_policy=NO_CACHE, persist_result=False, timeout_seconds=STORE_TIMEOUT)
def render_digest(config: Config, store: Store, newsletter: Newsletter) -> digest.Prepared | None:
    return digest.prepare_digest(config, store, newsletter)


@task(cache_policy=NO_CACHE, persist_result=False, timeout_seconds=STORE_TIMEOUT)
def save_issue(store: Store, prepared: digest.Prepared, newsletter: Newsletter) -> int:
    issue_id = digest.save_issue(store, prepared)
    digest.queue_issue(store, issue_id, newsletter)
    return issue_id


@task(cache_policy=NO_CACHE, persist_result=False, **io_task_options(timeout=3600))
def deliver_digest(config: Config, store: Store, issue_id: int,
                   progress: Callable[[int], None] | None = None) -> DeliveryCounts:
    # Every provider: per-subscriber SMTP or file sends, or one Listmonk/Mailchimp campaign.
    return send_issue(config, store, issue_id, progress=progress)


@task(cache_policy=NO_CACHE, persist_result=False, timeout_seconds=STORE_TIMEOUT)
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
    try:
        target = config.newsletter(newsletter)
        # One run of a newsletter at a time; the outbox would still stop a double send if not.
        with run_slot(f"digest-{newsletter}"):
            report = _guarded_run(config, store, target, progress)
        log.info("digest: %s", report)
        return report
    finally:
        store.close()


def _guarded_run(config: Config, store: Store, target: Newsletter,
                 progress: Callable[[int], None] | None) -> dict[str, Any]:
    """Run one digest, record it, and tell operators if it failed (once until a run succeeds)."""
    log = get_run_logger()
    run_id = store.start_run("digest", target.name)
    report: dict[str, Any] = {"newsletter": target.name, "issue": None, "sent": 0, "failed": 0}
    status = "failed"
    try:
        _run_digest(config, store, target, report, progress)
        status = "completed" if "skipped" not in report else "skipped"
        alerts.close_incident(store, alerts.DIGEST_FAILED, target.name)
        return report
    except Exception as exc:
        report["error"] = redact(str(exc), secret_values([config.store]))
        if alerts.digest_failed(store, target.name, report["error"]):
            log.error("%s: alerting operators", report["error"])
        if alerts.pending(store):
            try:
                alert_operators(config, store)
            except Exception as alert_exc:  # the run's own error is the one to raise
                log.warning("alerts: %s", alert_exc)
        raise
    finally:
        store.finish_run(run_id, status, report)


def _run_digest(config: Config, store: Store, target: Newsletter, report: dict[str, Any],
                progress: Callable[[int], None] | None) -> None:
    log = get_run_logger()
    name = target.name
    for pending in digest.pending_issues(store, name):
        log.info("finishing issue %s left unsent by an earlier run", pending)
        done = deliver_digest(config, store, pending, progress)
        report["sent"] += done.sent
        report["failed"] += done.failed
    prepared = render_digest(config, store, target)
    if prepared is None:
        log.info("%s: nothing new to send (fewer than %s new stories): no issue, no email", name,
                 target.select.min_stories)
        report["skipped"] = "no new stories"
        _skipped_artifact(target)
        return
    log.info("render: issue %s, %d stories, %d KB", prepared.number, len(prepared.digest.stories),
             len(prepared.rendered.html.encode()) // 1024)
    review = review_digest(prepared.rendered, target)
    for problem in review.warnings:
        log.warning("pre-send check: %s", problem)
    if review.failures:
        raise RenderError(name, "pre-send checks failed, nothing sent: " + "; ".join(review.failures))
    issue_id = save_issue(store, prepared, target)
    counts = deliver_digest(config, store, issue_id, progress)
    log.info("deliver: %d sent, %d failed", counts.sent, counts.failed)
    files = syndicate_outputs(config, store)
    report.update(issue=prepared.number, subject=prepared.digest.subject,
                  stories=len(prepared.digest.stories), sent=report["sent"] + counts.sent,
                  failed=report["failed"] + counts.failed, published_files=files,
                  outbox=outbox_queue.counts(store, issue_id))
    _issue_artifact(prepared, report)
    if counts.failed and not counts.sent:
        errors = "; ".join(sorted(set(counts.errors))[:3])
        raise DeliveryError(name, f"issue {prepared.number}: no recipient reached: {errors}", transient=False)


def _issue_artifact(prepared: digest.Prepared, report: dict[str, Any]) -> None:
    outbox = report["outbox"]
    size = len(prepared.rendered.html.encode())
    lines = [f"# {prepared.digest.subject}", "",
             f"Issue {prepared.number} of **{prepared.digest.newsletter}** · {report['stories']} stories · "
             f"HTML {size / 1024:.1f} KB", "",
             "| recipients | queued | sent | failed | skipped |", "|---|---|---|---|---|",
             f"| {sum(outbox.values())} | {outbox['queued'] + outbox['sending']} | {outbox['sent']} | "
             f"{outbox['failed']} | {outbox['skipped']} |", "",
             f"Archive: [{prepared.digest.web_url}]({prepared.digest.web_url})", "", "## Stories"]
    lines += [f"- [{s.title}]({s.url}) ({s.source}, {len(s.also)} more)" for s in prepared.digest.stories]
    lines += ["", "## Pre-send checks", *(f"- {c}" for c in prepared.checks)] if prepared.checks else \
        ["", "## Pre-send checks", "- all passed (size under the clipping limit, links, unsubscribe)"]
    create_markdown_artifact("\n".join(lines), key=f"digest-{prepared.digest.newsletter}",
                             description="What this digest run sent")


def _skipped_artifact(target: Newsletter) -> None:
    create_markdown_artifact(f"# {target.title}: nothing sent\n\nFewer than {target.select.min_stories} "
                             "new stories since the last issue: no issue was made and no email went out.",
                             key=f"digest-{target.name}", description="This digest run sent nothing")
