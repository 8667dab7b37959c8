"""Sources and what they brought: ``sources status|enable|import|export``, ``articles list|remove``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from feedletter.cli.common import ConfigOpt, emit, fail, open_store, when
from feedletter.config import config_path, load_config
from feedletter.runreport import counted
from feedletter.text.controls import for_terminal

sources_app = typer.Typer(no_args_is_help=True, help="Sources: health, re-enabling, OPML import/export.")
articles_app = typer.Typer(no_args_is_help=True, help="Look at stored articles; remove one for good.")


@sources_app.command("status")
def sources_status(config: ConfigOpt = None) -> None:
    """Show every source's health: last success, last error, failures, back-off, and what became of the
    last fetch's entries (new, and why the others were not stored)."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from feedletter.status import sources_health

    cfg = load_config(config)
    with open_store(cfg) as store:
        found = sources_health(cfg, store)
    table = Table(title="Sources")
    for column in ("source", "status", "last success", "new", "not stored", "failures", "next fetch", "last error"):
        table.add_column(column, overflow="fold")
    for s in found:
        if not s.fetched:
            table.add_row(escape(s.name), s.state, "-", "-", "-", "-", "-", "")
            continue
        # The error quotes what a server said: shown, never acted on (a terminal escape, rich markup).
        table.add_row(escape(s.name), s.state, when(s.last_success), str(s.new), s.not_stored, str(s.failures),
                      when(s.waiting_until) if s.waiting_until else "due", escape(for_terminal(s.last_error or "")))
    Console(width=200 if not sys.stdout.isatty() else None).print(table)
    for s in found:
        if s.state == "disabled":
            name = for_terminal(s.name)
            emit(f"{name} is disabled: `feedletter sources enable {name}` fetches it again")


@sources_app.command("enable")
def sources_enable(name: str, config: ConfigOpt = None) -> None:
    """Re-enable a source that was disabled after repeated failures."""
    from feedletter.ingest.health import enable

    cfg = load_config(config)
    cfg.source(name)
    with open_store(cfg) as store:
        if not enable(store, name):
            raise fail(f"sources: {name}: never fetched, nothing to enable")
    typer.echo(f"{name}: enabled")


@sources_app.command("import")
def sources_import(opml: Annotated[Path, typer.Argument(help="an OPML file (a feed reader's export)")],
                   config: ConfigOpt = None) -> None:
    """Add the feeds of an OPML file to sources.yaml (folders and categories become tags)."""
    from feedletter.opml import import_opml

    path = config_path(config)
    result = import_opml(path, opml)
    for line in result.skipped:
        typer.echo(f"skipped {line}", err=True)
    for source in result.added:
        typer.echo(f"added {source.name}  {source.url}  tags: {', '.join(source.tags) or '-'}")
    typer.echo(f"{path}: {counted(len(result.added), 'source')} added, {len(result.skipped)} skipped")


@sources_app.command("export")
def sources_export(out: Annotated[Path | None, typer.Option("--out", "-o", help="write here, not stdout")] = None,
                   config: ConfigOpt = None) -> None:
    """Write the sources as OPML (tags as folders and categories)."""
    from feedletter.opml import write_opml

    text = write_opml(load_config(config))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(str(out))


@articles_app.command("list")
def articles_list(
    source: Annotated[str | None, typer.Option(help="only this source")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    config: ConfigOpt = None,
) -> None:
    """List the newest stored articles: id, source, published, title, URL."""
    from feedletter.removal import newest_articles

    cfg = load_config(config)
    with open_store(cfg) as store:
        found = newest_articles(store, source=source, limit=limit)
    for row in found:
        emit("\t".join((str(row.id), for_terminal(row.source), f"{row.published:%Y-%m-%d}",
                        for_terminal(row.title), for_terminal(row.url))))


@articles_app.command("remove")
def articles_remove(ref: Annotated[str, typer.Argument(help="the article's id (see `articles list`) or URL")],
                    config: ConfigOpt = None) -> None:
    """Remove an article for good: it leaves a tombstone and is never stored again."""
    from feedletter.removal import remove_article

    cfg = load_config(config)
    with open_store(cfg) as store:
        removed = remove_article(store, ref)
    typer.echo(f"removed article {removed.id}: {removed.title} <{removed.url}>")
