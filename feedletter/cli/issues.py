"""The next issue and what is published: ``send-test``, ``preview`` and ``syndicate``."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from feedletter.cli.common import ConfigOpt, open_store
from feedletter.config import load_config
from feedletter.runreport import counted

NewsletterArg = Annotated[str, typer.Argument(help="the newsletter's name in sources.yaml")]


def syndicate(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="rewrite every file and remove files the store "
                                          "no longer produces")] = False,
    config: ConfigOpt = None,
) -> None:
    """Write RSS/Atom/JSON Feed and the web archive from the store; print the files that changed."""
    from feedletter.publish.site import publish

    cfg = load_config(config)
    with open_store(cfg) as store:
        result = publish(cfg, store, rebuild=rebuild)
    for path in result.changed:
        typer.echo(str(path))
    for problem in result.hub_problems:
        typer.echo(f"warning: {problem}", err=True)
    typer.echo(f"syndicate: {counted(len(result.files), 'file')} in {result.root} ({len(result.changed)} changed"
               f"{f', {len(result.removed)} removed' if result.removed else ''})", err=True)


def send_test(
    newsletter: NewsletterArg,
    to: Annotated[str, typer.Option("--to", help="the one address to send to")],
    config: ConfigOpt = None,
) -> None:
    """Send the next issue to one address, subject marked [TEST]; nothing is recorded as sent.

    With nothing new to send, it sends the last issue again, made with the templates of now.

    Its "view in browser" link leads to a copy of the issue written under the archive for it (serve
    it with `feedletter web`); its unsubscribe link to a page saying it was a test.
    """
    from feedletter.issue.preview import send_test as send

    cfg = load_config(config)
    with open_store(cfg) as store:
        sent = send(cfg, store, cfg.newsletter(newsletter), to)
    typer.echo(f"sent to {to}: {sent.message['Subject']}")
    typer.echo(f"view in browser: {sent.web_url} (written to {sent.page})")
    if sent.note:
        typer.echo(f"note: {sent.note}", err=True)


def preview(
    newsletter: NewsletterArg,
    port: Annotated[int, typer.Option(help="local port (0: any free one)")] = 0,
    browser: Annotated[bool, typer.Option("--browser/--no-browser", help="open it in a web browser")] = True,
    config: ConfigOpt = None,
) -> None:
    """Show the next issue at desktop and mobile widths on a local web page (Ctrl-C stops it).

    With nothing new to send, it shows the last issue again, made from its stories with the
    templates and settings of now (and says so).
    """
    import webbrowser

    from feedletter.issue.preview import PreviewServer, again_note, next_issue, preview_routes

    cfg = load_config(config)
    target = cfg.newsletter(newsletter)
    with open_store(cfg) as store:
        prepared = next_issue(cfg, store, target, again=True)
    with PreviewServer(preview_routes(cfg, prepared, target), port=port) as server:
        typer.echo(f"preview of {newsletter} issue {prepared.number}: {server.url}  (Ctrl-C to stop)")
        note = again_note(prepared)
        if note:
            typer.echo(f"note: {note}", err=True)
        for problem in prepared.checks:
            typer.echo(f"warning: {problem}", err=True)
        if browser:
            webbrowser.open(server.url)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
