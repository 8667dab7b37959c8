"""The gather and digest runs: the store lock, the run's record, and the order of the stages.

This is the one definition of what a run does. ``flows/`` runs it as a Prefect flow run (each stage
a task); a one-off command without a Prefect API runs it in this process (:class:`InProcess`).
Either way a run returns its report (:class:`GatherReport`, :class:`DigestReport`), is recorded
with it in the store's ``runs`` table, which ``feedletter status`` shows, and holds the store lock
(see ``locks``) that keeps two gathers, or two digests of one newsletter, from overlapping, and
lets a run take over at once from one that was killed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from feedletter import alerts, locks
from feedletter.config import Config, load_config
from feedletter.config_newsletters import Newsletter
from feedletter.errors import DeliveryError, DeliveryPaused, RenderError
from feedletter.ingest import gather, health
from feedletter.plugins import PROVIDERS
from feedletter.redact import mask
from feedletter.runner import Runner, Stage, io_stage
from feedletter.runreport import DigestReport, GatherReport, Paused
from feedletter.store import Store, now
from feedletter.stories.work import Drafting

if TYPE_CHECKING:
    from feedletter import publish
    from feedletter.deliver import DeliveryCounts
    from feedletter.issue import digest
    from feedletter.stories.summaries import Drafts
    from feedletter.stories.work import GroupCounts

Progress = Callable[[int], None] | None

# How long a run waits for another run holding its lock before giving up (seconds).
GATHER_WAIT = 3600.0
DIGEST_WAIT = 3600.0


def open_config(config_path: str) -> tuple[Config, Store]:
    """The config and its store; loading the config registers its secrets (``feedletter.redact``)."""
    config = load_config(config_path)
    return config, Store.open(config.store_url())


# -- the stages ------------------------------------------------------------------------------
# Each stage is named after the library function it calls. The digest's are called through the
# functions below, which import their modules when called: a gather (a cron job every few minutes,
# usually with nothing new) does not pay for loading rendering, delivery and publishing.

def prepare_digest(config: Config, store: Store, newsletter: Newsletter) -> digest.Prepared | None:
    """The next issue of ``newsletter``, rendered and checked; None when there is too little new."""
    from feedletter.issue import digest

    return digest.prepare_digest(config, store, newsletter)


def save_issue(store: Store, prepared: digest.Prepared, newsletter: Newsletter) -> int:
    """Store the issue and queue one message per active subscriber; the issue's id."""
    from feedletter.issue import digest

    issue_id = digest.save_issue(store, prepared)
    digest.queue_issue(store, issue_id, newsletter)
    return issue_id


def send_issue(config: Config, store: Store, issue_id: int, *, progress: Progress = None) -> DeliveryCounts:
    """Deliver a saved issue through its newsletter's provider: per-subscriber sends or one campaign."""
    from feedletter import deliver

    return deliver.send_issue(config, store, issue_id, progress=progress)


def publish_issue(config: Config, store: Store, issue_id: int) -> list[publish.Report]:
    """Publish a saved issue to every output in order: the site's feeds and archive, then the WebSub hub."""
    from feedletter import publish

    return publish.publish_issue(config, store, issue_id)


FETCH = io_stage("fetch_sources", gather.fetch_sources, timeout=900)
STORE = Stage("store_entries", gather.store_entries)
EXTRACT = io_stage("extract_articles", gather.extract_articles, timeout=900)


def group_articles(config: Config, store: Store, drafts: Drafts | None = None) -> GroupCounts:
    """Group the new articles into stories, with the config's window, thresholds and priorities;
    ``drafts``: the new articles' summaries, begun by the store stage (see :class:`Drafting`)."""
    from feedletter.stories.work import GroupCounts, has_ungrouped

    if not has_ungrouped(store):
        return GroupCounts()
    from feedletter.stories import stages  # numpy and the grouping code: loaded when there is work

    return stages.group(config, store, drafts)


def begin_drafts(config: Config) -> Drafts:
    """The new articles' summaries' drafts (see :class:`Drafting`); loads what grouping loads anyway."""
    from feedletter.stories import stages

    return stages.drafts_for(config)


def summarize_stories(config: Config, store: Store, drafts: Mapping[str, str] | None = None) -> tuple[int, int]:
    """Summarize the stories that are new or gained articles, with the config's summarizer; taking
    the group stage's ``drafts`` where they fit."""
    from feedletter.stories.work import has_unsummarized

    if not has_unsummarized(store):
        return 0, 0
    from feedletter.stories import stages

    return stages.summarize(config, store, drafts)


GROUP = Stage("group_articles", group_articles)
SUMMARIZE = Stage("summarize_stories", summarize_stories)
# No retries: a failed alert stays pending for the next run.
ALERT = Stage("send_alerts", alerts.send_alerts, timeout=120)
PREPARE = Stage("prepare_digest", prepare_digest)
SAVE = Stage("save_issue", save_issue)
SEND = io_stage("send_issue", send_issue, timeout=3600)
PUBLISH = Stage("publish_issue", publish_issue)

GATHER_STAGES = (FETCH, STORE, EXTRACT, GROUP, SUMMARIZE, ALERT)
DIGEST_STAGES = (PREPARE, SAVE, SEND, PUBLISH, ALERT)


# -- gather ----------------------------------------------------------------------------------

def gather_run(config: Config, store: Store, runner: Runner, *, sources: list[str] | None = None,
               progress: Progress = None, wait: float = GATHER_WAIT) -> GatherReport:
    """Gather new articles from every due source (or ``sources``) and group them into summarized stories."""
    started = time.monotonic()
    with locks.hold(store, "gather", wait=wait, what="the gather run", say=runner.log.warning) as held:
        if held.previous is not None:
            runner.log.warning("the previous gather run (%s) died; taking over: what it stored is kept, "
                               "the rest is fetched again", held.previous.describe())
        run_id = store.start_run("gather", ",".join(sources or []), mode=runner.mode)
        held.attach_run(store, run_id)
        report: GatherReport | None = None
        drafting = Drafting(lambda: begin_drafts(config))
        try:
            report = _gather(config, store, runner, sources, started, progress, drafting)
            return report
        finally:
            drafting.close()  # a run that failed before grouping leaves no drafting worker running
            store.finish_run(run_id, "failed" if report is None else "completed",
                             {} if report is None else report.to_json())


class _Timed:
    """The runner, with each stage's wall time noted for the run's report (``stage_seconds``)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner
        self.seconds: dict[str, float] = {}

    def stage(self, stage: Stage, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return self.runner.stage(stage, *args, **kwargs)
        finally:
            self.seconds[stage.name] = round(self.seconds.get(stage.name, 0.0) + time.monotonic() - started, 3)


def _gather(config: Config, store: Store, runner: Runner, sources: list[str] | None, started: float,
            progress: Progress, drafting: Drafting) -> GatherReport:
    timed = _Timed(runner)
    log = runner.log
    with gather.make_fetcher(config) as fetcher:
        results: list[gather.SourceResult] = timed.stage(FETCH, config, store, fetcher, only=list(sources or []),
                                                          progress=progress)
        log.info("fetch: %d sources, %d ok, %d not modified, %d errors, %d skipped", len(results),
                 *(sum(r.status == s for r in results) for s in ("ok", "not_modified", "error", "skipped")))
        for name in alerts.track_sources(store):
            log.error("%s: disabled after repeated failures", name)
        counts: gather.StoreCounts = timed.stage(STORE, config, store, results, told=drafting.told)
        # Only each source's status is needed from here on: the entries (every new article's HTML
        # and text, ~40 MB at 500 feeds) are stored, and need not stay in memory while grouping.
        statuses = {r.source: r.status for r in results}
        del results
        t = counts.total
        log.info("store: %d new; not stored: %d seen before, %d repeated within their feed, "
                 "%d carried (another feed's article), %d removed, %d filtered", len(counts.new_ids),
                 t.seen, t.repeated, t.carried, t.removed, t.filtered)
        extracted: gather.ExtractCounts = timed.stage(EXTRACT, config, store, fetcher)
    grouped: GroupCounts = timed.stage(GROUP, config, store, drafts=drafting.drafts)
    summarized, cached = timed.stage(SUMMARIZE, config, store, drafts=grouped.drafts)
    log.info("group: %d new stories, %d joined; summarize: %d (%d cached)", grouped.new_stories,
             grouped.joined, summarized, cached)
    if alerts.pending(store):
        timed.stage(ALERT, config, store)
    outcomes = list(statuses.values())
    report = GatherReport(
        sources=len(outcomes), fetched=outcomes.count("ok"), not_modified=outcomes.count("not_modified"),
        errors=outcomes.count("error"), skipped=outcomes.count("skipped"),
        new=len(counts.new_ids), seen=t.seen, repeated=t.repeated, carried=t.carried, removed=t.removed,
        filtered=t.filtered, near_duplicates=grouped.near_duplicates,
        extracted=extracted.extracted, extract_errors=extracted.failed,
        stories_new=grouped.new_stories, stories_joined=grouped.joined,
        summarized=summarized, summaries_cached=cached,
        seconds=round(time.monotonic() - started, 3), stage_seconds=timed.seconds)
    runner.table("feed-health", _health_rows(store, statuses), "Feed health after this gather run")
    return report


def _health_rows(store: Store, statuses: dict[str, str]) -> list[dict[str, Any]]:
    rows = []
    at = now()
    for state in health.all_states(store):
        # "state" is the source's, named as `sources status` and `status` name it; "this run" is what
        # this gather did with it (ok, not_modified, error, skipped; idle: not due).
        rows.append({"source": state.name, "state": health.state_name(state, enabled=True, at=at),
                     "this run": statuses.get(state.name, "idle"), "new": state.new_items,
                     "duplicates": state.duplicates, "seen": state.entries.seen,
                     "repeated": state.entries.repeated, "carried": state.entries.carried,
                     "removed": state.entries.removed, "filtered": state.entries.filtered,
                     "seconds": round(state.seconds or 0, 3),
                     "failures": state.failures, "last_error": state.last_error or ""})
    return rows


# -- digest ----------------------------------------------------------------------------------

def digest_run(config: Config, store: Store, runner: Runner, newsletter: str, *, progress: Progress = None,
               wait: float = DIGEST_WAIT) -> DigestReport:
    """Build and send the next issue of one newsletter, and publish it to its feeds and archive.

    First finishes any issue an earlier run left unsent (a crash, an outage): with the lock held,
    rows a dead run had claimed are queued again at once. When the provider is unreachable the run
    pauses the issue it is sending, makes no new one, and raises :class:`DeliveryPaused`.
    """
    target = config.newsletter(newsletter)
    with locks.hold(store, f"digest:{target.name}", wait=wait, what=f"the digest run of {target.name}",
                    say=runner.log.warning) as held:
        from feedletter.deliver import outbox as outbox_queue

        reclaimed = outbox_queue.reclaim(store, target.name)
        if held.previous is not None:
            sent, to_go = _progress_of(store, target.name)
            runner.log.warning("the previous digest run of %s (%s) died: %s sent, %s to go; taking over",
                               target.name, held.previous.describe(), f"{sent:,}", f"{to_go:,}")
        elif reclaimed:
            runner.log.warning("%d messages an earlier run had claimed but not sent are queued again", reclaimed)
        return _guarded_run(config, store, runner, target, held, progress)


def _progress_of(store: Store, newsletter: str) -> tuple[int, int]:
    from feedletter.deliver import outbox as outbox_queue
    from feedletter.issue import digest

    sent = to_go = 0
    for issue_id in digest.pending_issues(store, newsletter):
        counts = outbox_queue.counts(store, issue_id)
        sent += counts["sent"]
        to_go += counts["queued"] + counts["sending"]
    return sent, to_go


@dataclass
class _SoFar:
    """A digest run's report as far as the run got: recorded with the run when it fails part-way."""

    report: DigestReport


def _guarded_run(config: Config, store: Store, runner: Runner, target: Newsletter, held: locks.Held,
                 progress: Progress) -> DigestReport:
    """Run one digest, record it, and tell operators when it failed or paused (once per incident,
    until its cause is gone: see ``_close_resolved``); pending alerts go out with every run."""
    log = runner.log
    run_id = store.start_run("digest", target.name, mode=runner.mode)
    held.attach_run(store, run_id)
    so_far = _SoFar(DigestReport(target.name))
    status = "failed"
    try:
        _run_digest(config, store, runner, target, so_far, progress)
        status = "completed" if so_far.report.skipped is None else "skipped"
        _close_resolved(store, target.name, so_far.report)
        _send_alerts(config, store, runner)
        return so_far.report
    except DeliveryPaused as exc:
        status = "paused"
        paused = so_far.report.paused
        what = exc.line if paused is None else \
            f"issue {paused.issue} paused: {paused.reason}; {paused.sent:,}/{paused.recipients:,} sent"
        if alerts.delivery_paused(store, target.name, what):
            log.error("%s: alerting operators", exc)
        _send_alerts(config, store, runner)
        raise
    except Exception as exc:
        error = mask(str(exc))
        so_far.report = replace(so_far.report, error=error)
        if alerts.digest_failed(store, target.name, error):
            log.error("%s: alerting operators", error)
        _send_alerts(config, store, runner)
        raise
    finally:
        store.finish_run(run_id, status, so_far.report.to_json())


def _close_resolved(store: Store, newsletter: str, report: DigestReport) -> None:
    """After a run that succeeded: close the newsletter's incidents whose cause is gone.

    Nothing is resolved while an issue still has messages to send. A paused delivery is resolved
    once none is left; a failed digest once a run also made an issue or delivered messages: a run
    that found nothing new to send says nothing about what failed before.
    """
    from feedletter.issue import digest

    if digest.pending_issues(store, newsletter):
        return
    alerts.close_incident(store, alerts.DELIVERY_PAUSED, newsletter)
    if report.issue is not None or report.sent:
        alerts.close_incident(store, alerts.DIGEST_FAILED, newsletter)


def _send_alerts(config: Config, store: Store, runner: Runner) -> None:
    """Send the pending alerts; one that fails stays pending for the next run, and fails no run."""
    if not alerts.pending(store):
        return
    try:
        runner.stage(ALERT, config, store)
    except Exception as exc:  # the run's own outcome is the one to report
        runner.log.warning("alerts: %s", exc)


def _run_digest(config: Config, store: Store, runner: Runner, target: Newsletter, so_far: _SoFar,
                progress: Progress) -> None:
    from feedletter.deliver import outbox as outbox_queue
    from feedletter.issue import digest

    log = runner.log
    name = target.name
    for pending in digest.pending_issues(store, name):
        log.info("finishing issue %s left unsent by an earlier run", pending)
        done: DeliveryCounts = runner.stage(SEND, config, store, pending, progress=progress)
        so_far.report = replace(so_far.report, sent=so_far.report.sent + done.sent,
                                failed=so_far.report.failed + done.failed)
        if done.paused:
            # Still unreachable: no new issue either, it would only pile up behind this one.
            raise _paused(store, so_far, pending, done.paused)
    prepared: digest.Prepared | None = runner.stage(PREPARE, config, store, target)
    if prepared is None:
        log.info("%s: nothing new to send (fewer than %s new stories): no issue, no email", name,
                 target.select.min_stories)
        so_far.report = replace(so_far.report, skipped="no new stories")
        runner.markdown(f"digest-{name}", f"# {target.title}: nothing sent\n\nFewer than "
                        f"{target.select.min_stories} new stories since the last issue: no issue was made and "
                        "no email went out.", "This digest run sent nothing")
        return
    log.info("render: issue %s, %d stories, %d KB", prepared.number, len(prepared.digest.stories),
             len(prepared.rendered.html.encode()) // 1024)
    review = prepared.review
    for problem in review.warnings:
        log.warning("pre-send check: %s", problem)
    if review.failures:
        raise RenderError(name, "pre-send checks failed, nothing sent: " + "; ".join(review.failures))
    issue_id: int = runner.stage(SAVE, store, prepared, target)
    counts: DeliveryCounts = runner.stage(SEND, config, store, issue_id, progress=progress)
    log.info("deliver: %d sent, %d failed", counts.sent, counts.failed)
    published: list[publish.Report] = runner.stage(PUBLISH, config, store, issue_id)
    files = sum(r.count for r in published if r.unit == "files")
    so_far.report = replace(so_far.report, issue=prepared.number, subject=prepared.digest.subject,
                            stories=len(prepared.digest.stories), sent=so_far.report.sent + counts.sent,
                            failed=so_far.report.failed + counts.failed, published_files=files,
                            outbox=outbox_queue.counts(store, issue_id))
    # A campaign provider (Listmonk, Mailchimp) keeps its own list: only one mailing each subscriber can tell.
    if not sum((so_far.report.outbox or {}).values()) and PROVIDERS.get(target.provider).kind == "per-subscriber":
        log.warning("%s: no active subscribers: issue %s went to no inbox (it is on the site and in the feeds); "
                    "add them with `feedletter subscribers add` or `import`", name, prepared.number)
    paused = _paused(store, so_far, issue_id, counts.paused) if counts.paused else None
    runner.markdown(f"digest-{name}", digest.run_markdown(prepared, so_far.report), "What this digest run sent")
    if paused is not None:
        raise paused
    if counts.failed and not counts.sent:
        errors = "; ".join(sorted(set(counts.errors))[:3])
        raise DeliveryError(name, f"issue {prepared.number}: no recipient reached: {errors}", transient=False)


def _paused(store: Store, so_far: _SoFar, issue_id: int, reason: str) -> DeliveryPaused:
    """Note in the run's report that the issue is paused, and the error the run ends with."""
    from feedletter.deliver import outbox as outbox_queue

    [issue] = outbox_queue.deliveries(store, issue_ids=[issue_id])
    so_far.report = replace(so_far.report, paused=Paused(issue.number, reason, issue.counts["sent"],
                                                         issue.recipients))
    return DeliveryPaused(so_far.report.newsletter, so_far.report.line())


__all__ = ["DIGEST_STAGES", "GATHER_STAGES", "DigestReport", "GatherReport", "digest_run", "gather_run", "open_config"]
