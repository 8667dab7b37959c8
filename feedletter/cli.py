"""The ``feedletter`` command: a thin layer over the library and the flows.

Expected failures print one line per problem to stderr and exit 1; there is no traceback unless
``FEEDLETTER_DEBUG`` is set. Commands that run a flow import Prefect lazily, so that ``validate``,
``parse`` and friends start in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

from feedletter.config import Config, config_path, load_config
from feedletter.errors import ConfigError, FeedletterError
from feedletter.store import Store

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Turn blog feeds into email newsletters and syndicated feeds.")
subscribers_app = typer.Typer(no_args_is_help=True, help="Manage a newsletter's subscribers.")
sources_app = typer.Typer(no_args_is_help=True, help="Sources: health, re-enabling, OPML import/export.")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(sources_app, name="sources")
articles_app = typer.Typer(no_args_is_help=True, help="Look at stored articles; remove one for good.")
app.add_typer(articles_app, name="articles")

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


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _emit(line: str) -> None:
    """Write one output line; a reader that stopped early (`| head -1`) ends the command quietly."""
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None


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
    from feedletter.validate import check_file  # renders templates: only this command needs it

    path = file or config_path(config)
    parsed, problems = check_file(path)
    if problems or parsed is None:
        raise _fail("\n".join(str(p) for p in problems))
    typer.echo(f"{path}: ok ({_count(len(parsed.sources), 'source')}, "
               f"{_count(len(parsed.newsletters), 'newsletter')})")


WaitOpt = Annotated[float, typer.Option("--wait", min=0, help="seconds to wait for a run already holding "
                                       "the lock before giving up with exit code 75")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the run's report as one JSON object")]
DEFAULT_WAIT = 600.0


def prefect_api_url() -> str | None:
    """The Prefect API a run would report to, found without importing Prefect (~2.5 s).

    The environment first, then Prefect's settings if this process already loaded them (a test
    harness, an embedding program), then the active profile of Prefect's profiles file.
    """
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    settings = sys.modules.get("prefect.settings")
    if settings is not None:
        value = settings.PREFECT_API_URL.value()
        return str(value) if value else None
    import tomllib

    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    value = profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(value) if value else None


IN_PROCESS_HINT = ("ran in-process (no Prefect API configured) and recorded in the store: see `feedletter "
                   "status`. For the Prefect UI: `prefect server start`, then export "
                   "PREFECT_API_URL=http://127.0.0.1:4200/api")


@contextmanager
def _in_process_logging() -> Iterator[None]:
    """Warnings of a run without Prefect go to stderr as they happen (waits, take-overs, failures)."""
    import logging

    logger = logging.getLogger("feedletter")
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.DEBUG if os.environ.get("FEEDLETTER_DEBUG") else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@contextmanager
def _grouped() -> Iterator[Any]:
    """Warnings that name a cause (a source or page that failed), kept for one line per cause after
    the run; the others (a wait for a lock, a take-over) were already shown as they happened."""
    from feedletter.runreport import WarningGroups

    groups = WarningGroups()
    groups.addFilter(lambda record: "cause" in record.__dict__)
    with groups.attached(quiet=True):
        yield groups


def _print_report(report: dict[str, Any], as_json: bool, line: str, warnings: list[str]) -> None:
    """The run's summary line (or, with --json, its report) on stdout; its warnings, grouped, on stderr."""
    typer.echo(json.dumps(report, default=str) if as_json else line)
    for warning in warnings:
        typer.echo(warning, err=True)


Report = dict[str, Any]
Advance = Callable[[int], None]


def _run_once(config_file: str, label: str, total: int, unit: str, *,
              load_flow: Callable[[], Callable[[Advance], Report]],
              in_process: Callable[[Config, Store, Advance], Report],
              line: Callable[[Report], str], as_json: bool) -> None:
    """Run a gather or digest once: as a Prefect flow run when a Prefect API is configured, else here.

    ``load_flow`` imports the flow (and so sets up Prefect's logging) before the progress bar
    starts, so that Prefect's log lines are printed above the bar; it returns the call to make.
    """
    from feedletter.progress import report_progress

    if prefect_api_url():
        _prepare_prefect()
        run_flow = load_flow()
        with report_progress(label, total, unit=unit) as advance, _grouped() as warnings:
            report = run_flow(advance)
        _print_report(report, as_json, line(report), warnings.lines())
        return
    from feedletter.runs import open_config

    run_cfg, store = open_config(config_file)
    try:
        with _in_process_logging(), report_progress(label, total, unit=unit) as advance, _grouped() as warnings:
            report = in_process(run_cfg, store, advance)
    finally:
        store.close()
    _print_report(report, as_json, line(report), warnings.lines())
    typer.echo(IN_PROCESS_HINT, err=True)


@app.command()
def gather(
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="only this source (repeatable)")] = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = DEFAULT_WAIT,
    config: ConfigOpt = None,
) -> None:
    """Run the gather flow once: fetch, store, extract, group and summarize.

    With a Prefect API configured it runs as a Prefect flow run; without one, in this process.
    """
    from feedletter.runner import InProcess
    from feedletter.runreport import gather_line
    from feedletter.runs import gather_run

    cfg = _config(config)
    total = sum(s.enabled and (not source or s.name in source) for s in cfg.sources)
    config_file = str(cfg.resolve(Path(cfg._path).name))

    def load_flow() -> Callable[[Advance], Report]:
        from flows.common import one_shot_flow
        from flows.gather import gather_flow

        def run(advance: Advance) -> Report:
            with one_shot_flow():
                return gather_flow(config_path=config_file, sources=source or None, progress=advance)

        return run

    _run_once(config_file, "gather", total, "sources", load_flow=load_flow, line=gather_line, as_json=as_json,
              in_process=lambda run_cfg, store, advance: gather_run(
                  run_cfg, store, InProcess(), sources=source or None, progress=advance, wait=wait))


@app.command()
def digest(
    newsletter: Annotated[str, typer.Argument(help="the newsletter's name in sources.yaml")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="render only: write files, send nothing")] = False,
    out: Annotated[Path, typer.Option("--out", help="where --dry-run writes its files")] = Path("out"),
    as_json: JsonOpt = False,
    wait: WaitOpt = DEFAULT_WAIT,
    config: ConfigOpt = None,
) -> None:
    """Run the digest flow once (or, with --dry-run, write what it would send).

    With a Prefect API configured it runs as a Prefect flow run; without one, in this process.
    """
    cfg = _config(config)
    target = cfg.newsletter(newsletter)
    if dry_run:
        from feedletter.issue.digest import write_preview
        from feedletter.issue.preview import issue_message, next_issue

        with _store(cfg) as store:
            prepared = next_issue(cfg, store, target)
        for path in write_preview(prepared, out, issue_message(cfg, prepared, target)):
            typer.echo(str(path))
        for problem in prepared.checks:
            typer.echo(f"warning: {problem}", err=True)
        return
    from feedletter.runner import InProcess
    from feedletter.runreport import digest_line
    from feedletter.runs import digest_run
    from feedletter.subscribers import listing

    with _store(cfg) as store:
        readers = sum(person.status == "active" for person in listing(store, newsletter))
    config_file = str(cfg.resolve(Path(cfg._path).name))

    def load_flow() -> Callable[[Advance], Report]:
        from flows.digest import digest_flow

        return lambda advance: digest_flow(newsletter=newsletter, config_path=config_file, progress=advance)

    _run_once(config_file, f"digest {newsletter}", readers, "messages", load_flow=load_flow, line=digest_line,
              as_json=as_json, in_process=lambda run_cfg, store, advance: digest_run(
                  run_cfg, store, InProcess(), newsletter, progress=advance, wait=wait))


@app.command()
def syndicate(
    rebuild: Annotated[bool, typer.Option("--rebuild", help="rewrite every file and remove files the store "
                                          "no longer produces")] = False,
    config: ConfigOpt = None,
) -> None:
    """Write RSS/Atom/JSON Feed and the web archive from the store; print the files that changed."""
    from feedletter.publish.outputs import publish

    cfg = _config(config)
    with _store(cfg) as store:
        result = publish(cfg, store, rebuild=rebuild)
    for path in result.changed:
        typer.echo(str(path))
    for problem in result.hub_problems:
        typer.echo(f"warning: {problem}", err=True)
    typer.echo(f"syndicate: {len(result.files)} files in {result.root} ({len(result.changed)} changed"
               f"{f', {len(result.removed)} removed' if result.removed else ''})", err=True)


@app.command()
def parse(
    feed: Annotated[str, typer.Argument(help="a feed file, a URL, or - for standard input")],
    source: Annotated[str, typer.Option(help="source name to stamp on entries")] = "cli",
) -> None:
    """Parse a feed; print one JSON line per entry."""
    from feedletter.ingest.parse.feeds import entry_record, parse_feed

    if feed.startswith(("http://", "https://")):
        from feedletter.ingest.fetch import Fetcher

        with Fetcher() as fetcher:
            result = fetcher.get(feed)
        data, url, ctype = result.body or b"", result.url, result.content_type
    else:
        data = sys.stdin.buffer.read() if feed == "-" else Path(feed).read_bytes()
        url, ctype = (feed if feed != "-" else "stdin"), None
    parsed = parse_feed(data, url=url, source=source, content_type=ctype)
    for entry in parsed.entries:
        _emit(json.dumps(entry_record(entry), ensure_ascii=False))


@app.command()
def extract(
    html_file: Annotated[str, typer.Argument(help="an HTML file, or - for standard input")],
    url: Annotated[str | None, typer.Option(help="the page's URL, for relative links")] = None,
) -> None:
    """Extract an article page's text; print JSON with title, author, published, text."""
    from feedletter.ingest.extract import extract as run_extract
    from feedletter.text.boilerplate import strip_boilerplate

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
    """Group documents into stories and subjects; print {id, cluster, subject, duplicate_of} per line."""
    from feedletter.ingest.parse.feeds import parse_date
    from feedletter.models import Document
    from feedletter.stories.cluster import cluster_documents

    rows = _read_jsonl(jsonl, ("id", "title", "text"))
    docs = [Document(id=str(r["id"]), title=r["title"], text=r["text"], url=r.get("url"),
                     source=r.get("source"), published=parse_date(r.get("published"))) for r in rows]
    for a in cluster_documents(docs):
        _emit(json.dumps({"id": a.id, "cluster": a.cluster, "subject": a.subject, "duplicate_of": a.duplicate_of}))


@app.command()
def summarize(
    jsonl: Annotated[str, typer.Argument(help="lines of {id, title, text}, or -")],
    sentences: Annotated[int, typer.Option(min=1, max=10)] = 3,
) -> None:
    """Summarize documents; print {id, summary} per line."""
    from feedletter.stories.summarize import summarize as run_summarize

    for row in _read_jsonl(jsonl, ("id", "title", "text")):
        _emit(json.dumps({"id": row["id"], "summary": run_summarize(row["title"], [row["text"]],
                                                                          sentences=sentences)},
                              ensure_ascii=False))


@sources_app.command("status")
def sources_status(config: ConfigOpt = None) -> None:
    """Show every source's health: last success, last error, failures, back-off, and what became of the
    last fetch's entries (new, and why the others were not stored)."""
    from rich.console import Console
    from rich.table import Table

    from feedletter.ingest.health import EntryCounts, all_states
    from feedletter.store import now

    cfg = _config(config)
    with _store(cfg) as store:
        states = {s.name: s for s in all_states(store)}
    table = Table(title="Sources")
    for column in ("source", "status", "last success", "new", "not stored", "failures", "next fetch", "last error"):
        table.add_column(column, overflow="fold")
    current = now()

    def when(moment: datetime | None) -> str:
        return moment.isoformat(timespec="seconds") if moment else "-"

    def not_stored(c: EntryCounts) -> str:
        # Each reason by name: a count of "duplicates" alone once hid entries lost to a key collision.
        reasons = [(c.seen, "seen before"), (c.repeated, "same GUID/link in feed"),
                   (c.carried, "carried (other feed)"), (c.removed, "removed"), (c.filtered, "filtered")]
        return ", ".join(f"{n} {why}" for n, why in reasons if n) or "0"

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
        table.add_row(source.name, state, when(s.last_success), str(s.new_items), not_stored(s.entries),
                      str(s.failures), when(s.next_fetch) if waiting else "due", s.last_error or "")
    Console(width=200 if not sys.stdout.isatty() else None).print(table)


@sources_app.command("enable")
def sources_enable(name: str, config: ConfigOpt = None) -> None:
    """Re-enable a source that was disabled after repeated failures."""
    from feedletter.ingest.health import enable

    cfg = _config(config)
    cfg.source(name)
    with _store(cfg) as store:
        if not enable(store, name):
            raise _fail(f"sources: {name}: never fetched, nothing to enable")
    typer.echo(f"{name}: enabled")


@subscribers_app.command("add")
def subscribers_add(email: str, newsletter: Annotated[str, typer.Option("--newsletter", "-n")],
                    name: str = "",
                    confirm: Annotated[bool, typer.Option("--confirm", help="double opt-in: add as pending "
                                                          "and email a confirmation link")] = False,
                    config: ConfigOpt = None) -> None:
    """Add one subscriber: already confirmed, or with --confirm pending until they click the link."""
    from feedletter import subscribers
    from feedletter.web import optin

    cfg = _config(config)
    cfg.newsletter(newsletter)
    with _store(cfg) as store:
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
    typer.echo(f"{result.added} subscribers imported into {newsletter}"
               + (f", {result.existing} already there" if result.existing else "")
               + (f", {result.kept_unsubscribed} left unsubscribed" if result.kept_unsubscribed else ""))


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


# --- email ---
@app.command()
def web(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8080,
    config: ConfigOpt = None,
) -> None:
    """Serve the archive and the subscribe, confirm and one-click unsubscribe endpoints."""
    import uvicorn

    from feedletter.subscribers import secret
    from feedletter.web.app import create_app

    cfg = _config(config)
    secret()  # refuse to start without $FEEDLETTER_SECRET rather than fail on the first link
    with _store(cfg) as store:
        typer.echo(f"serving {cfg.resolve(cfg.site.archive_dir)} and the subscriber endpoints on "
                   f"http://{host}:{port} (links in emails point to {cfg.site.base_url})", err=True)
        uvicorn.run(create_app(cfg, store), host=host, port=port, log_level="warning",
                    proxy_headers=True, server_header=False)

# --- staff ---


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
    typer.echo(f"{path}: {len(result.added)} sources added, {len(result.skipped)} skipped")


@sources_app.command("export")
def sources_export(out: Annotated[Path | None, typer.Option("--out", "-o", help="write here, not stdout")] = None,
                   config: ConfigOpt = None) -> None:
    """Write the sources as OPML (tags as folders and categories)."""
    from feedletter.opml import write_opml

    text = write_opml(_config(config))
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(str(out))


@app.command("send-test")
def send_test(
    newsletter: Annotated[str, typer.Argument(help="the newsletter's name in sources.yaml")],
    to: Annotated[str, typer.Option("--to", help="the one address to send to")],
    config: ConfigOpt = None,
) -> None:
    """Send the next issue to one address, subject marked [TEST]; nothing is recorded as sent."""
    from feedletter.issue.preview import send_test as send

    cfg = _config(config)
    with _store(cfg) as store:
        msg = send(cfg, store, cfg.newsletter(newsletter), to)
    typer.echo(f"sent to {to}: {msg['Subject']}")


@app.command()
def preview(
    newsletter: Annotated[str, typer.Argument(help="the newsletter's name in sources.yaml")],
    port: Annotated[int, typer.Option(help="local port (0: any free one)")] = 0,
    browser: Annotated[bool, typer.Option("--browser/--no-browser", help="open it in a web browser")] = True,
    config: ConfigOpt = None,
) -> None:
    """Show the next issue at desktop and mobile widths on a local web page (Ctrl-C stops it)."""
    import time
    import webbrowser

    from feedletter.issue.preview import PreviewServer, next_issue, preview_routes

    cfg = _config(config)
    target = cfg.newsletter(newsletter)
    with _store(cfg) as store:
        prepared = next_issue(cfg, store, target)
    with PreviewServer(preview_routes(cfg, prepared, target), port=port) as server:
        typer.echo(f"preview of {newsletter} issue {prepared.number}: {server.url}  (Ctrl-C to stop)")
        for problem in prepared.checks:
            typer.echo(f"warning: {problem}", err=True)
        if browser:
            webbrowser.open(server.url)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


@app.command()
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

# --- operations ---
def _when(value: Any) -> str:
    return value.isoformat(timespec="seconds") if value else "-"


@app.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object instead of tables")] = False,
    config: ConfigOpt = None,
) -> None:
    """Show the last run of each flow and newsletter, source health, the outbox and open incidents."""
    from feedletter.alerts import open_incidents
    from feedletter.status import held_locks, last_runs, store_counts

    cfg = _config(config)
    with _store(cfg) as store:
        runs, counts, incidents = last_runs(store), store_counts(store), open_incidents(store)
        running = held_locks(store)
    if as_json:
        typer.echo(json.dumps({"runs": runs, "running": running, "counts": counts, "incidents": [
            {"kind": i.kind, "target": i.target, "opened": i.opened, "alerted": i.alerted} for i in incidents]},
            default=str))
        return
    typer.echo("Last runs")
    if not runs:
        typer.echo("  none yet: run `feedletter gather`")
    for run in runs:
        shown = {k: v for k, v in run["counts"].items() if k in (
            "sources", "fetched", "errors", "new", "stories_new", "issue", "sent", "failed", "skipped", "error")}
        typer.echo(f"  {run['flow']:<7} {run['target'] or '(all)':<20} {run['status']:<10} "
                   f"{_when(run['finished'] or run['started'])}  {run['mode']:<10} {json.dumps(shown, default=str)}")
    if running:
        typer.echo("Locks held")
    for lock in running:
        typer.echo(f"  {lock['lock']:<28} pid {lock['pid']} on {lock['host']} since {_when(lock['started'])}"
                   f"  alive: {lock['alive']}")
    sources = counts["sources"]
    typer.echo(f"Sources   {sum(sources.values())} known: {sources.get('ok', 0)} ok, "
               f"{sources.get('failing', 0)} failing, {sources.get('disabled', 0)} disabled")
    typer.echo(f"Content   {counts['articles']} articles, {counts['stories']} stories, {counts['issues']} issues")
    typer.echo("Subscribers " + (", ".join(f"{n} {k}" for k, n in sorted(counts["subscribers"].items())) or "none"))
    typer.echo("Outbox    " + (", ".join(f"{n} {k}" for k, n in sorted(counts["outbox"].items())) or "empty"))
    typer.echo(f"Incidents {len(incidents)} open")
    for incident in incidents:
        typer.echo(f"  {incident.kind} {incident.target} since {_when(incident.opened)}"
                   f" ({'alerted' if incident.alerted else 'alert pending'})")


@app.command()
def serve(
    limit: Annotated[int | None, typer.Option(help="most flow runs at once in this process")] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the gather deployment and each newsletter's digest deployment on their schedules."""
    cfg = _config(config)
    _prepare_prefect()
    from flows.serve import serve as serve_deployments

    serve_deployments(cfg, str(cfg.resolve(Path(cfg._path).name)), limit=limit)


# --- perf ---
# --- articles ---
@articles_app.command("list")
def articles_list(
    source: Annotated[str | None, typer.Option(help="only this source")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
    config: ConfigOpt = None,
) -> None:
    """List the newest stored articles: id, source, published, title, URL."""
    from feedletter.removal import newest_articles

    cfg = _config(config)
    with _store(cfg) as store:
        found = newest_articles(store, source=source, limit=limit)
    for row in found:
        _emit(f"{row.id}\t{row.source}\t{row.published:%Y-%m-%d}\t{row.title}\t{row.url}")


@articles_app.command("remove")
def articles_remove(ref: Annotated[str, typer.Argument(help="the article's id (see `articles list`) or URL")],
                    config: ConfigOpt = None) -> None:
    """Remove an article for good: it leaves a tombstone and is never stored again."""
    from feedletter.removal import remove_article

    cfg = _config(config)
    with _store(cfg) as store:
        removed = remove_article(store, ref)
    typer.echo(f"removed article {removed.id}: {removed.title} <{removed.url}>")


def main() -> None:
    try:
        app()
    except BrokenPipeError:
        # `feedletter parse feed.xml | head -1`: the reader has all it wanted.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(0)
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
        sys.exit(getattr(exc, "exit_code", 1))
    except OSError as exc:
        if os.environ.get("FEEDLETTER_DEBUG"):
            raise
        typer.echo(f"feedletter: {exc.filename or ''}: {exc.strerror or exc}", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
