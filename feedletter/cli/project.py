"""The project as a whole: ``validate`` its config, ``init`` a new one, and its ``status``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from feedletter.cli.common import ConfigOpt, fail, open_store, when
from feedletter.config import config_path, load_config
from feedletter.ingest.health import STATES
from feedletter.runreport import counted
from feedletter.text.controls import for_terminal


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
    typer.echo(f"{path}: ok ({counted(len(parsed.sources), 'source')}, "
               f"{counted(len(parsed.newsletters), 'newsletter')})")


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
    from feedletter.status import held_locks, last_run_per_target, run_line, store_counts

    cfg = load_config(config)
    with open_store(cfg, init=init) as store:
        store.check()
        runs, counts, incidents = last_run_per_target(store), store_counts(store, cfg), open_incidents(store)
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
    def say(line: str) -> None:  # names and errors from the store: shown, never acted on by the terminal
        typer.echo(for_terminal(line))

    say("Last runs")
    if not runs:
        say("  none yet: run `feedletter gather`")
    for run in runs:
        say(f"  {run['flow']:<7} {run['target'] or '(all)':<20} {run['status']:<10} "
            f"{when(run['finished'] or run['started'])}  {run['mode']:<10} {run_line(run)}".rstrip())
    if running:
        say("Locks held")
    for lock in running:
        say(f"  {lock['lock']:<28} pid {lock['pid']} on {lock['host']} since {when(lock['started'])}"
            f"  alive: {lock['alive']}")
    sources = counts["sources"]
    by_state = ", ".join(f"{sources[state]} {state}" for state in STATES if sources.get(state))
    say(f"Sources   {sum(sources.values())} known: {by_state}" if sources else "Sources   none configured")
    say(f"Content   {counted(counts['articles'], 'article')}, {counted(counts['stories'], 'story', 'stories')}, "
        f"{counted(counts['issues'], 'issue')}")
    say("Subscribers " + (", ".join(f"{n} {k}" for k, n in sorted(counts["subscribers"].items())) or "none"))
    say("Outbox    " + (", ".join(f"{n} {k}" for k, n in sorted(counts["outbox"].items())) or "empty"))
    for issue in undelivered:
        why = f": {issue.paused}" if issue.state == "paused" else ""
        say(f"  issue {issue.name} {issue.state}{why}: {issue.counts['sent']} sent, {issue.to_go} queued"
            + (" (the next digest run resumes it)" if issue.state == "paused" else ""))
    say(f"Incidents {len(incidents)} open")
    for incident in incidents + unsent:
        state = f"closed {when(incident.closed)}, " if incident.closed else ""
        alert = "alerted" if incident.alerted else "alert pending" + (
            f", last try: {incident.alert_error}" if incident.alert_error else "")
        say(f"  {incident.kind} {incident.target} since {when(incident.opened)} ({state}{alert})")
