"""The delivery outbox: where each issue's messages stand (``outbox``), and ``outbox retry`` to send
again what an outage paused or what failed for a cause the operator has since fixed."""

from __future__ import annotations

import json
from typing import Annotated

import sqlalchemy as sa
import typer

from feedletter.cli.common import ConfigOpt, emit, fail, open_store
from feedletter.config import load_config
from feedletter.runreport import counted
from feedletter.store import Store

outbox_app = typer.Typer(no_args_is_help=False, help="Where each issue's messages stand; send again what "
                         "an outage paused or what failed.")

RECENT = 10  # issues `feedletter outbox` lists besides every one not delivered yet


@outbox_app.callback(invoke_without_command=True)
def show(
    ctx: typer.Context,
    every: Annotated[bool, typer.Option("--all", help="every issue, not only the latest and the undelivered")]
    = False,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per issue")] = False,
    config: ConfigOpt = None,
) -> None:
    """Each issue's messages by state: the latest issues and every one not delivered yet."""
    if ctx.invoked_subcommand is not None:
        return
    from feedletter.deliver.outbox import STATES, deliveries

    cfg = load_config(config)
    with open_store(cfg) as store:
        found = deliveries(store, recent=None if every else RECENT)
    if as_json:
        for d in found:
            emit(json.dumps({"issue": d.name, "state": d.state, "paused": d.paused, "outbox": d.counts}))
        return
    if not found:
        emit("no issues yet")
        return
    width = max(len("issue"), *(len(d.name) for d in found))
    emit(f"{'issue':<{width}}  {'state':<9}  " + "  ".join(f"{s:>7}" for s in STATES))
    for d in found:
        line = f"{d.name:<{width}}  {d.state:<9}  " + "  ".join(f"{d.counts[s]:>7}" for s in STATES)
        emit(line + (f"  {d.paused}" if d.state == "paused" else ""))


def _issue_id(store: Store, name: str) -> int:
    """The issue ``NEWSLETTER/NUMBER``, or ``NUMBER`` when only one newsletter has an issue of that number."""
    from feedletter.schema import issues

    newsletter, _, number = name.rpartition("/")
    if not number.isdigit():
        raise fail(f"outbox: {name}: name an issue as NEWSLETTER/NUMBER (weekly/3), or by its number")
    query = sa.select(issues.c.id, issues.c.newsletter).where(issues.c.number == int(number))
    if newsletter:
        query = query.where(issues.c.newsletter == newsletter)
    with store.begin() as conn:
        found = conn.execute(query.order_by(issues.c.newsletter)).all()
    if not found:
        raise fail(f"outbox: {name}: no such issue (see `feedletter outbox --all`)")
    if len(found) > 1:
        raise fail(f"outbox: {name}: more than one newsletter has an issue {number}: "
                   + ", ".join(f"{r.newsletter}/{number}" for r in found))
    return int(found[0].id)


@outbox_app.command()
def retry(
    issue: Annotated[str, typer.Argument(help="the issue: NEWSLETTER/NUMBER (weekly/3), or its number")],
    failed: Annotated[bool, typer.Option("--failed", help="also queue again the messages that failed for good "
                                         "(after fixing their cause); their bounces are taken back")] = False,
    config: ConfigOpt = None,
) -> None:
    """Make an issue's queued messages due now and lift its pause; with --failed, its failed ones too.

    Nothing is sent here: the next `feedletter digest NEWSLETTER` sends them first, before any new issue.
    """
    from feedletter.deliver import RetryPolicy
    from feedletter.deliver.outbox import deliveries, requeue

    cfg = load_config(config)
    with open_store(cfg) as store:
        issue_id = _issue_id(store, issue)
        done = requeue(store, issue_id, failed=failed, bounce_limit=RetryPolicy.from_config(cfg).bounce_limit)
        [now] = deliveries(store, issue_ids=[issue_id])
    parts = []
    if done.waiting:
        parts.append(f"{counted(done.waiting, 'queued message')} due now")
    if done.failed:
        parts.append(f"{counted(done.failed, 'failed message')} queued again")
    if not parts:
        parts.append("nothing to send again")
    if done.failed_left:
        parts.append(f"{done.failed_left} failed for good (add --failed once their cause is fixed)")
    emit(f"{now.name}: " + "; ".join(parts))
    if now.to_go:
        emit(f"next: feedletter digest {now.newsletter} (sends them before any new issue)")
