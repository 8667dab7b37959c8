"""Subscribers: ``subscribers add|import|list|remove``, and ``web``, the endpoints they use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from feedletter.cli.common import ConfigOpt, fail, open_store
from feedletter.config import load_config
from feedletter.runreport import counted

subscribers_app = typer.Typer(no_args_is_help=True, help="Manage a newsletter's subscribers.")
NewsletterOpt = Annotated[str, typer.Option("--newsletter", "-n")]


@subscribers_app.command("add")
def subscribers_add(email: str, newsletter: NewsletterOpt,
                    name: str = "",
                    confirm: Annotated[bool, typer.Option("--confirm", help="double opt-in: add as pending "
                                                          "and email a confirmation link")] = False,
                    config: ConfigOpt = None) -> None:
    """Add one subscriber: already confirmed, or with --confirm pending until they click the link."""
    from feedletter import subscribers
    from feedletter.web import optin

    cfg = load_config(config)
    cfg.newsletter(newsletter)
    with open_store(cfg) as store:
        if confirm:
            person = optin.subscribe(cfg, store, newsletter, email, name)
            note = " (confirmation email sent)" if person.status == "pending" else ""
            typer.echo(f"{person.email}: {person.status}{note}")
            return
        person = subscribers.add(store, newsletter, email, name)
    note = " (left unsubscribed; use --confirm to let them opt in again)" \
        if person.status in ("unsubscribed", "bounced") else ""
    typer.echo(f"{person.email}: {person.status}{note}")


@subscribers_app.command("import")
def subscribers_import(csv_file: Path, newsletter: NewsletterOpt, config: ConfigOpt = None) -> None:
    """Add subscribers from a CSV file with a header row (email, optional name)."""
    from feedletter import subscribers

    cfg = load_config(config)
    cfg.newsletter(newsletter)
    with open_store(cfg) as store:
        result = subscribers.import_csv(store, newsletter, csv_file.read_text(encoding="utf-8"),
                                        filename=str(csv_file))
    if result.problems:
        raise fail("\n".join(result.problems) + f"\n{csv_file}: nothing imported; fix the lines above")
    typer.echo(f"{counted(result.added, 'subscriber')} imported into {newsletter}"
               + (f", {result.existing} already there" if result.existing else "")
               + (f", {result.kept_unsubscribed} left unsubscribed" if result.kept_unsubscribed else ""))


@subscribers_app.command("list")
def subscribers_list(newsletter: NewsletterOpt, config: ConfigOpt = None) -> None:
    """List a newsletter's subscribers."""
    from feedletter import subscribers

    cfg = load_config(config)
    with open_store(cfg) as store:
        people = subscribers.listing(store, newsletter)
    if not people:
        cfg.newsletter(newsletter)  # a misspelt name is an error, not an empty list
        typer.echo(f"{newsletter}: no subscribers yet (add them with `feedletter subscribers add` or `import`)",
                   err=True)
    for person in people:
        typer.echo(f"{person.email}\t{person.name}\t{person.status}")


@subscribers_app.command("remove")
def subscribers_remove(email: str, newsletter: NewsletterOpt, config: ConfigOpt = None) -> None:
    """Unsubscribe an address (it stays on record so it is never re-added by mistake)."""
    from feedletter import subscribers

    cfg = load_config(config)
    with open_store(cfg) as store:
        if not subscribers.remove(store, newsletter, email):
            cfg.newsletter(newsletter)  # a misspelt name says so (one no longer configured still works above)
            raise fail(f"subscribers: {email}: not subscribed to {newsletter}")
    typer.echo(f"{email}: unsubscribed")


@subscribers_app.command("send-confirmations")
def subscribers_send_confirmations(config: ConfigOpt = None) -> None:
    """Mail the confirm links the web form queued (feedletter web does it itself, within seconds)."""
    from feedletter.web import optin

    cfg = load_config(config)
    with open_store(cfg) as store:
        sent = optin.send_confirmations(cfg, store)
    typer.echo(f"{sent} confirmation emails sent")


def web(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    config: ConfigOpt = None,
) -> None:
    """Serve the archive and the subscribe, confirm and one-click unsubscribe endpoints."""
    import uvicorn

    from feedletter.subscribers import secret
    from feedletter.web.app import create_app

    cfg = load_config(config)
    secret()  # refuse to start without $FEEDLETTER_SECRET rather than fail on the first link
    with open_store(cfg) as store:
        typer.echo(f"serving {cfg.resolve(cfg.site.archive_dir)} and the subscriber endpoints on "
                   f"http://{host}:{port} (links in emails point to {cfg.site.base_url})", err=True)
        uvicorn.run(create_app(cfg, store), host=host, port=port, log_level="warning",
                    proxy_headers=True, server_header=False)
