"""The ``feedletter`` command: a thin layer over the library and the flows.

Expected failures print one line per problem to stderr and exit 1; there is no traceback unless
``FEEDLETTER_DEBUG`` is set. Commands that run a flow import Prefect lazily, so that ``validate``,
``parse`` and friends start in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from feedletter.config import Config, config_path, load_config, parse_config
from feedletter.errors import ConfigError, FeedletterError
from feedletter.store import Store

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Turn blog feeds into email newsletters and syndicated feeds.")
subscribers_app = typer.Typer(no_args_is_help=True, help="Manage a newsletter's subscribers.")
sources_app = typer.Typer(no_args_is_help=True, help="Sources: health, re-enabling.")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(sources_app, name="sources")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="sources.yaml to use "
                                                "[default: $FEEDLETTER_CONFIG or ./sources.yaml]")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    for line in message.splitlines():
        typer.echo(line, err=True)
    return typer.Exit(code)


def _config(path: Path | None) -> Config:
    return load_config(path)


@contextmanager
def _store(config: Config) -> Iterator[Store]:
    store = Store.open(config.store_url())
    try:
        yield store
    finally:
        store.close()


def _input(name: str) -> TextIO:
    return sys.stdin if name == "-" else open(name, encoding="utf-8")


def _prepare_prefect() -> None:
    # Measured here: the ephemeral server misses Prefect's 20 s default start limit on a busy machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@app.command()
def validate(
    file: Annotated[Path | None, typer.Argument(help="the config file [default: ./sources.yaml]")] = None,
    config: ConfigOpt = None,
) -> None:
    """Check a config file; print `file:line: field: problem` for each error."""
    path = file or config_path(config)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise _fail(f"{path}: cannot read: {exc.strerror}") from None
    parsed, problems = parse_config(text)
    if problems or parsed is None:
        raise _fail("\n".join(p.format(str(path)) for p in problems))
    object.__setattr__(parsed, "_source_path", str(path))
    from feedletter.render import missing_templates

    missing = missing_templates(parsed)
    if missing:
        raise _fail("\n".join(f"{path}: {problem}" for problem in missing))
    typer.echo(f"{path}: ok ({len(parsed.sources)} sources, {len(parsed.newsletters)} newsletters)")


@app.command()
def gather(
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="only this source (repeatable)")] = None,
    config: ConfigOpt = None,
) -> None:
    """Run the gather flow once: fetch, store, extract, group and summarize."""
    cfg = _config(config)
    _prepare_prefect()
    from flows.gather import gather_flow

    report = gather_flow(config_path=str(cfg.resolve(Path(cfg._path).name)), sources=source or None)
    typer.echo(json.dumps(report))


@app.command()
def digest(
    newsletter: Annotated[str, typer.Argument(help="the newsletter's name in sources.yaml")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="render only: write files, send nothing")] = False,
    out: Annotated[Path, typer.Option("--out", help="where --dry-run writes its files")] = Path("out"),
    config: ConfigOpt = None,
) -> None:
    """Run the digest flow once (or, with --dry-run, write what it would send)."""
    cfg = _config(config)
    target = cfg.newsletter(newsletter)
    if dry_run:
        from feedletter.digest import prepare_digest, write_preview

        with _store(cfg) as store:
            prepared = prepare_digest(cfg, store, target)
        if prepared is None:
            raise _fail(f"digest: {newsletter}: nothing to send (no new stories)")
        for path in write_preview(prepared, out):
            typer.echo(str(path))
        for problem in prepared.checks:
            typer.echo(f"warning: {problem}", err=True)
        return
    _prepare_prefect()
    from flows.digest import digest_flow

    report = digest_flow(newsletter=newsletter, config_path=str(cfg.resolve(Path(cfg._path).name)))
    typer.echo(json.dumps(report))


@app.command()
def syndicate(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="rewrite every file from the store")] = False,
    config: ConfigOpt = None,
) -> None:
    """Write RSS feeds and the web archive from the store."""
    from feedletter import syndicate as publish

    cfg = _config(config)
    del rebuild  # every run rebuilds from the store; unchanged files are left untouched
    with _store(cfg) as store:
        for path in publish.syndicate(cfg, store):
            typer.echo(str(path))


@app.command()
def parse(
    feed: Annotated[str, typer.Argument(help="a feed file, a URL, or - for standard input")],
    source: Annotated[str, typer.Option(help="source name to stamp on entries")] = "cli",
) -> None:
    """Parse a feed; print one JSON line per entry."""
    from feedletter.parse import entry_record, parse_feed

    if feed.startswith(("http://", "https://")):
        from feedletter.fetch import Fetcher

        with Fetcher() as fetcher:
            result = fetcher.get(feed)
        data, url, ctype = result.body or b"", result.url, result.content_type
    else:
        data = sys.stdin.buffer.read() if feed == "-" else Path(feed).read_bytes()
        url, ctype = (feed if feed != "-" else "stdin"), None
    parsed = parse_feed(data, url=url, source=source, content_type=ctype)
    for entry in parsed.entries:
        typer.echo(json.dumps(entry_record(entry), ensure_ascii=False))


@app.command()
def extract(
    html_file: Annotated[str, typer.Argument(help="an HTML file, or - for standard input")],
    url: Annotated[str | None, typer.Option(help="the page's URL, for relative links")] = None,
) -> None:
    """Extract an article page's text; print JSON with title, author, published, text."""
    from feedletter.boilerplate import strip_boilerplate
    from feedletter.extract import extract as run_extract

    data = sys.stdin.buffer.read() if html_file == "-" else Path(html_file).read_bytes()
    found = run_extract(data, url=url)
    typer.echo(json.dumps({"title": found.title, "author": found.author,
                           "published": found.published.isoformat() if found.published else None,
                           "text": strip_boilerplate(found.text)}, ensure_ascii=False))


def _read_jsonl(name: str, required: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = []
    with _input(name) as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FeedletterError(f"{name}:{number}", f"not JSON: {exc.msg}") from None
            missing = [k for k in required if k not in row]
            if missing:
                raise FeedletterError(f"{name}:{number}", f"missing field(s): {', '.join(missing)}")
            rows.append(row)
    return rows


@app.command()
def cluster(jsonl: Annotated[str, typer.Argument(help="lines of {id, title, text[, url]}, or -")]) -> None:
    """Group documents into stories; print {id, cluster, duplicate_of} per line."""
    from feedletter.cluster import cluster_documents
    from feedletter.models import Document
    from feedletter.parse import parse_date

    rows = _read_jsonl(jsonl, ("id", "title", "text"))
    docs = [Document(id=str(r["id"]), title=r["title"], text=r["text"], url=r.get("url"),
                     source=r.get("source"), published=parse_date(r.get("published"))) for r in rows]
    for a in cluster_documents(docs):
        typer.echo(json.dumps({"id": a.id, "cluster": a.cluster, "duplicate_of": a.duplicate_of}))


@app.command()
def summarize(
    jsonl: Annotated[str, typer.Argument(help="lines of {id, title, text}, or -")],
    sentences: Annotated[int, typer.Option(min=1, max=10)] = 3,
) -> None:
    """Summarize documents; print {id, summary} per line."""
    from feedletter.summarize import summarize as run_summarize

    for row in _read_jsonl(jsonl, ("id", "title", "text")):
        typer.echo(json.dumps({"id": row["id"], "summary": run_summarize(row["title"], [row["text"]],
                                                                          sentences=sentences)},
                              ensure_ascii=False))


@app.command()
def status(config: ConfigOpt = None) -> None:
    """Show the last runs of each flow from the store."""
    cfg = _config(config)
    with _store(cfg) as store:
        for run in store.last_runs(20):
            finished = run["finished"].isoformat(timespec="seconds") if run["finished"] else "-"
            typer.echo(f"{run['flow']:<8} {run['target']:<16} {run['status']:<10} {finished}  "
                       f"{json.dumps(run['counts'])}")


@sources_app.command("status")
def sources_status(config: ConfigOpt = None) -> None:
    """Show every source's health: last success, last error, failures, back-off."""
    from rich.console import Console
    from rich.table import Table

    from feedletter.health import all_states
    from feedletter.store import now

    cfg = _config(config)
    with _store(cfg) as store:
        states = {s.name: s for s in all_states(store)}
    table = Table(title="Sources")
    for column in ("source", "status", "last success", "new", "dup", "failures", "next fetch", "last error"):
        table.add_column(column, overflow="fold")
    current = now()

    def when(moment: datetime | None) -> str:
        return moment.isoformat(timespec="seconds") if moment else "-"

    for source in cfg.sources:
        s = states.get(source.name)
        if s is None:
            table.add_row(source.name, "off in config" if not source.enabled else "never fetched",
                          "-", "-", "-", "-", "-", "")
            continue
        waiting = s.next_fetch is not None and s.next_fetch > current
        if s.disabled:
            state = f"disabled (run: feedletter sources enable {source.name})"
        elif not source.enabled:
            state = "off in config"
        elif s.failures:
            state = "backing off" if waiting else "failing"
        else:
            state = "ok"
        table.add_row(source.name, state, when(s.last_success), str(s.new_items), str(s.duplicates),
                      str(s.failures), when(s.next_fetch) if waiting else "due", s.last_error or "")
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


@sources_app.command("enable")
def sources_enable(name: str, config: ConfigOpt = None) -> None:
    """Re-enable a source that was disabled after repeated failures."""
    from feedletter.health import enable

    cfg = _config(config)
    cfg.source(name)
    with _store(cfg) as store:
        if not enable(store, name):
            raise _fail(f"sources: {name}: never fetched, nothing to enable")
    typer.echo(f"{name}: enabled")


@subscribers_app.command("add")
def subscribers_add(email: str, newsletter: Annotated[str, typer.Option("--newsletter", "-n")],
                    name: str = "", config: ConfigOpt = None) -> None:
    """Add one subscriber (already confirmed)."""
    from feedletter import subscribers

    cfg = _config(config)
    cfg.newsletter(newsletter)
    with _store(cfg) as store:
        person = subscribers.add(store, newsletter, email, name)
    typer.echo(f"{person.email}: {person.status}")


@subscribers_app.command("import")
def subscribers_import(csv_file: Path, newsletter: Annotated[str, typer.Option("--newsletter", "-n")],
                       config: ConfigOpt = None) -> None:
    """Add subscribers from a CSV file with a header row (email, optional name)."""
    from feedletter import subscribers

    cfg = _config(config)
    cfg.newsletter(newsletter)
    with _store(cfg) as store:
        result = subscribers.import_csv(store, newsletter, csv_file.read_text(encoding="utf-8"),
                                        filename=str(csv_file))
    if result.problems:
        raise _fail("\n".join(result.problems) + f"\n{csv_file}: nothing imported; fix the lines above")
    typer.echo(f"{result.added} subscribers imported into {newsletter}")


@subscribers_app.command("list")
def subscribers_list(newsletter: Annotated[str, typer.Option("--newsletter", "-n")],
                     config: ConfigOpt = None) -> None:
    """List a newsletter's subscribers."""
    from feedletter import subscribers

    cfg = _config(config)
    with _store(cfg) as store:
        for person in subscribers.listing(store, newsletter):
            typer.echo(f"{person.email}\t{person.name}\t{person.status}")


@subscribers_app.command("remove")
def subscribers_remove(email: str, newsletter: Annotated[str, typer.Option("--newsletter", "-n")],
                       config: ConfigOpt = None) -> None:
    """Unsubscribe an address (it stays on record so it is never re-added by mistake)."""
    from feedletter import subscribers

    cfg = _config(config)
    with _store(cfg) as store:
        if not subscribers.remove(store, newsletter, email):
            raise _fail(f"subscribers: {email}: not subscribed to {newsletter}")
    typer.echo(f"{email}: unsubscribed")


def main() -> None:
    try:
        app()
    except ConfigError as exc:
        if os.environ.get("FEEDLETTER_DEBUG"):
            raise
        for problem in exc.problems:
            typer.echo(problem if ":" in problem.split(" ")[0] else f"config: {problem}", err=True)
        sys.exit(1)
    except FeedletterError as exc:
        if os.environ.get("FEEDLETTER_DEBUG"):
            raise
        typer.echo(str(exc), err=True)
        sys.exit(1)
    except OSError as exc:
        if os.environ.get("FEEDLETTER_DEBUG"):
            raise
        typer.echo(f"feedletter: {exc.filename or ''}: {exc.strerror or exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
