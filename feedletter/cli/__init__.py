"""The ``feedletter`` command: a thin layer that calls the library (and the flows) and prints what
they return.

Expected failures print one line per problem to stderr and exit 1; there is no traceback unless
``FEEDLETTER_DEBUG`` is set. One module per group of commands: ``project`` (validate, init,
status), ``runs`` (gather, digest, serve), ``stages`` (parse, extract, cluster, summarize),
``issues`` (syndicate, send-test, preview), ``subscribers`` (subscribers, web), ``sources``
(sources, articles) and ``outbox`` (outbox, outbox retry).
"""

from __future__ import annotations

import gc
import os
import sys

import typer

from feedletter.cli import issues, outbox, project, runs, sources, stages, subscribers
from feedletter.errors import ConfigError, FeedletterError
from feedletter.redact import guard_logging, guard_streams

__all__ = ["app", "main"]

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="Turn blog feeds into email newsletters and syndicated feeds.")

# In the order `feedletter --help` lists them.
for command in (project.validate, runs.gather, runs.digest, issues.syndicate, stages.parse, stages.extract,
                stages.cluster, stages.summarize, subscribers.web, issues.send_test, issues.preview, project.init,
                project.status, runs.serve, runs.deploy):
    app.command()(command)
app.add_typer(subscribers.subscribers_app, name="subscribers")
app.add_typer(sources.sources_app, name="sources")
app.add_typer(sources.articles_app, name="articles")
app.add_typer(outbox.outbox_app, name="outbox")


def main() -> None:
    # What the imports made lives to the end of the command and holds no garbage: frozen, the
    # cyclic collector's full passes no longer walk it. (A first gather of 500 feeds made five full
    # passes, 190 ms of its CPU; with this and the collector paused in grouping and summarizing,
    # two, 30 ms.)
    gc.freeze()
    # Whatever the command prints (a provider's error, a traceback, Prefect's log lines) is masked
    # of the secrets the config and the environment hold (feedletter.redact).
    guard_streams()
    guard_logging()
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
            if ":" in problem.split(" ")[0]:  # file:line: field: problem, as validate prints it
                typer.echo(problem, err=True)
            else:  # "config: sources.yaml: cannot read: …": the stage and the thing, then the problem
                typer.echo(f"config: {exc.thing + ': ' if exc.thing else ''}{problem}", err=True)
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
