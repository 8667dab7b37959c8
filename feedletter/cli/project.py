"""The project as a whole: ``validate`` its config, ``init`` a new one, and its ``status``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from feedletter.cli.common import ConfigOpt, count, fail, open_store, when
from feedletter.config import config_path, load_config

# The counts of a run that `status` shows in its table; --json has them all.
STATUS_COUNTS = ("sources", "fetched", "errors", "new", "stories_new", "issue", "sent", "failed", "skipped", "error",
                 "paused")


def validate(
    file: Annotated[Path | None, typer.Argument(help="the config file [default: ./sources.yaml]")] = None,
    config: ConfigOpt = None,
) -> None:
    """Check a config file; print `file:line: field: problem` for each error."""
    path = file or config_path(config)
    from feedletter.validate import check_file  # renders templates: only this command needs it

    parsed, problems = check_file(path)
    if problems or parsed is None:
        raise fail("\n".join(str(p) for p in problems))
    typer.echo(f"{path}: ok ({count(len(parsed.sources), 'source')}, "
               f"{count(len(parsed.newsletters), 'newsletter')})")


def init(
    directory: Annotated[Path, typer.Argument(help="the new project's folder (created if missing)")],
    feed: Annotated[list[str] | None, typer.Option("--feed", help="a feed URL to start with (repeatable)")] = None,
    title: Annotated[str, typer.Option(help="the first newsletter's title")] = "Weekly News",
    force: Annotated[bool, typer.Option("--force", help="overwrite files that exist")] = False,
) -> None:
    """Start a new project: sources.yaml, templates/, flows/ and a README."""
    from feedletter.scaffold import init_project

    for path in init_project(directory, feed or [], title=title, force=force):
        typer.echo(str(path))
    typer.echo(f"next: cd {directory} && feedletter validate")


def status(
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")] = False,
    init: Annotated[bool, typer.Option("--init", help="start a new, empty store even in an empty (0-byte) file")]
    = False,
    config: ConfigOpt = None,
) -> None:
    """Show the last run of each flow and newsletter, source health, the outbox, issues not yet
    delivered (paused or still sending), open incidents and alerts not yet sent."""
    from feedletter.alerts import open_incidents, pending
    from feedletter.deliver.outbox import deliveries
    from feedletter.status import held_locks, last_run_per_target, store_counts

    cfg = load_config(config)
    with open_store(cfg, init=init) as store:
        store.check()
        runs, counts, incidents = last_run_per_target(store), store_counts(store), open_incidents(store)
        running = held_locks(store)
        undelivered = deliveries(store, recent=0)
        unsent = [i for i in pending(store) if i.closed is not None]  # resolved, alert still owed
    if as_json:
        typer.echo(json.dumps({"runs": runs, "running": running, "counts": counts, "undelivered": [
            {"issue": d.name, "state": d.state, "paused": d.paused, "outbox": d.counts} for d in undelivered],
            "incidents": [{"kind": i.kind, "target": i.target, "opened": i.opened, "closed": i.closed,
                           "alerted": i.alerted, "alert_error": i.alert_error} for i in incidents + unsent]},
            default=str))
        return
    typer.echo("Last runs")
    if not runs:
        typer.echo("  none yet: run `feedletter gather`")
    for run in runs:
        shown = {k: v for k, v in run["counts"].items() if k in STATUS_COUNTS}
        typer.echo(f"  {run['flow']:<7} {run['target'] or '(all)':<20} {run['status']:<10} "
                   f"{when(run['finished'] or run['started'])}  {run['mode']:<10} {json.dumps(shown, default=str)}")
    if running:
        typer.echo("Locks held")
    for lock in running:
        typer.echo(f"  {lock['lock']:<28} pid {lock['pid']} on {lock['host']} since {when(lock['started'])}"
                   f"  alive: {lock['alive']}")
    sources = counts["sources"]
    typer.echo(f"Sources   {sum(sources.values())} known: {sources.get('ok', 0)} ok, "
               f"{sources.get('failing', 0)} failing, {sources.get('disabled', 0)} disabled")
    typer.echo(f"Content   {counts['articles']} articles, {counts['stories']} stories, {counts['issues']} issues")
    typer.echo("Subscribers " + (", ".join(f"{n} {k}" for k, n in sorted(counts["subscribers"].items())) or "none"))
    typer.echo("Outbox    " + (", ".join(f"{n} {k}" for k, n in sorted(counts["outbox"].items())) or "empty"))
    for issue in undelivered:
        why = f": {issue.paused}" if issue.state == "paused" else ""
        typer.echo(f"  issue {issue.name} {issue.state}{why}: {issue.counts['sent']} sent, {issue.to_go} queued"
                   + (" (the next digest run resumes it)" if issue.state == "paused" else ""))
    typer.echo(f"Incidents {len(incidents)} open")
    for incident in incidents + unsent:
        state = f"closed {when(incident.closed)}, " if incident.closed else ""
        alert = "alerted" if incident.alerted else "alert pending" + (
            f", last try: {incident.alert_error}" if incident.alert_error else "")
        typer.echo(f"  {incident.kind} {incident.target} since {when(incident.opened)} ({state}{alert})")
