"""What every command shares: the ``--config`` option, the store it opens, and how it prints."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, TextIO

import typer

from feedletter.config import Config, config_path, load_config
from feedletter.store import Store

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="sources.yaml to use "
                                                "[default: $FEEDLETTER_CONFIG or ./sources.yaml]")]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``message`` to stderr, a line per problem; raise what this returns to exit with ``code``."""
    for line in message.splitlines():
        typer.echo(line, err=True)
    return typer.Exit(code)


def config_or_defaults(path: Path | None) -> Config:
    """The config for a command that also works without one (``parse``, ``cluster``, ``summarize``):
    the file named or $FEEDLETTER_CONFIG, else ./sources.yaml if there is one, else the defaults."""
    if path is None and not os.environ.get("FEEDLETTER_CONFIG") and not config_path(None).is_file():
        return Config()
    return load_config(path)


@contextmanager
def open_store(config: Config, *, init: bool = False) -> Iterator[Store]:
    store = Store.open(config.store_url(), init=init)
    try:
        yield store
    finally:
        store.close()


def config_file(config: Config) -> str:
    """The path of the loaded config, as the flows are given it."""
    return str(config.resolve(Path(config._path).name))


def when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


def emit(line: str) -> None:
    """Write one output line; a reader that stopped early (`| head -1`) ends the command quietly."""
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise typer.Exit(0) from None


def open_input(name: str) -> TextIO:
    """The file ``name``, or standard input for ``-``."""
    return sys.stdin if name == "-" else open(name, encoding="utf-8")
