"""The store: SQLite by default, PostgreSQL by URL; opening it brings an older one up to date.

The tables are :mod:`feedletter.schema`'s. Here: connecting (pragmas, the migration that adds
columns), the :class:`Store` with its transactions and run records, and the bulk helpers every
stage uses (``insert_rows``, ``select_in``, ``rows_in_chunks``).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from feedletter.errors import StoreError

if TYPE_CHECKING:
    from sqlalchemy.dialects.postgresql import Insert as PostgresInsert
    from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from feedletter.schema import ledger, metadata, runs


def now() -> datetime:
    return datetime.now(UTC)


def utc(value: datetime | None) -> datetime | None:
    """SQLite hands datetimes back naive; everything stored is UTC, so say so."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite store URL names; None for any other store, or an in-memory one."""
    return Path(url[len("sqlite:///"):]) if url.startswith("sqlite:///") and url != "sqlite:///:memory:" else None


def connect(url: str, *, init: bool = False) -> Engine:
    """An engine for the store URL, with the schema created if missing.

    A SQLite file that exists but is empty is refused unless ``init``: SQLite would take it for a new
    store, and a store that lost its contents (a full disk, a bad copy or restore) would go on
    without its subscribers and its tombstones, the record of what was removed or sent.
    """
    path = sqlite_file(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not init and path.is_file() and path.stat().st_size == 0:
            raise StoreError(_redact(url), "the file is empty (0 bytes), not a store: restore it from a backup, "
                                           "or run `feedletter status --init` to start a new, empty store in it",
                             transient=False)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    try:
        engine = sa.create_engine(url, future=True, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            sa.event.listen(engine, "connect", _sqlite_pragmas)
        with engine.begin() as conn:
            metadata.create_all(conn)
            _add_missing_columns(conn)
            _move_campaigns(conn)
    except sa.exc.SQLAlchemyError as exc:
        if isinstance(exc, sa.exc.DatabaseError) and _damaged(exc):
            raise StoreError(_redact(url), f"the store is damaged: {exc.orig}: restore it from a backup "
                             "(see docs/troubleshooting.md)", transient=False) from None
        raise StoreError(_redact(url), f"cannot open store: {exc.__class__.__name__}: {exc.args[0]}") from None
    return engine


def _add_missing_columns(conn: Connection) -> None:
    """Bring a store made by an older feedletter up to date, keeping everything in it.

    Schema changes so far only add columns (nullable, or with a server default), so an
    ``ALTER TABLE … ADD COLUMN`` per missing column is the whole migration.
    """
    inspector = sa.inspect(conn)
    for table in metadata.sorted_tables:
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name in present:
                continue
            kind = column.type.compile(dialect=conn.dialect)
            default = ""
            if column.server_default is not None:
                arg = column.server_default.arg  # type: ignore[attr-defined]
                # A text default is a string literal in SQL; sa.false() and the like print as SQL.
                default = " DEFAULT " + ("'" + arg.replace("'", "''") + "'" if isinstance(arg, str) else str(arg))
            null = "" if column.nullable or default else " NOT NULL"
            conn.execute(sa.text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}{default}{null}'))


def _move_campaigns(conn: Connection) -> None:
    """Move a store's campaign records from their own table, as kept before the ledger, into the ledger.

    A campaign's entry is keyed as ``deliver.campaign`` keys it; one recorded as started is done.
    """
    if not sa.inspect(conn).has_table("campaigns"):
        return
    old = sa.Table("campaigns", sa.MetaData(), autoload_with=conn)
    rows = conn.execute(sa.select(old)).mappings().all()
    if rows:
        conn.execute(ledger.insert(), [
            {"kind": "campaign", "key": f"{r['issue_id']}/{r['provider']}", "state": r["state"],
             "ref": r["campaign_id"], "lease_owner": r["lease_owner"], "lease_until": r["lease_until"],
             "created": r["created"], "done": (r["started"] or r["created"]) if r["state"] == "started" else None,
             "error": r["error"]} for r in rows])
    old.drop(conn)


def _damaged(exc: sa.exc.DatabaseError) -> bool:
    """Whether SQLite says the file itself is broken ("database disk image is malformed", "file is
    not a database"): its plain DatabaseError, not a constraint (IntegrityError) or a lock
    (OperationalError), which are the caller's to handle."""
    return type(exc.orig) is sqlite3.DatabaseError


SQLITE_PAGE_SIZE = 8192


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # A new file's pages are 8 KB, not 4: an article's row (its HTML, text, features and signature,
    # 7 KB on the bench's feeds) then mostly fits in one page rather than spilling into a chain of
    # overflow pages, and storing and grouping 10k new articles took 0.2-0.3 s less CPU. A store
    # made with another page size keeps it (the setting only shapes a file not yet written).
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
    # WAL lets a reader run beside the writer; NORMAL sync keeps each outbox commit cheap.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _redact(url: str) -> str:
    return sa.engine.make_url(url).render_as_string(hide_password=True)


@dataclass
class Store:
    """A handle on the store: an engine and the operations the stages need."""

    engine: Engine

    @classmethod
    def open(cls, url: str, *, init: bool = False) -> Store:
        return cls(connect(url, init=init))

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except sa.exc.DatabaseError as exc:
            if _damaged(exc):
                raise StoreError(_redact(str(self.engine.url)), f"the store is damaged: {exc.orig}: restore it "
                                 "from a backup (see docs/troubleshooting.md)", transient=False) from None
            raise

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def check(self) -> None:
        """Raise StoreError when SQLite finds the file damaged anywhere (``PRAGMA quick_check``).

        Reads every page, so it is for ``feedletter status``, not for every run: a run finds the
        damage where its queries read, and says so in one line as well (see :meth:`begin`).
        """
        if self.dialect != "sqlite":
            return
        with self.begin() as conn:
            found = [" ".join(str(row[0]).split()) for row in conn.exec_driver_sql("PRAGMA quick_check(1)")]
        if found != ["ok"]:
            raise StoreError(_redact(str(self.engine.url)), f"the store is damaged: {'; '.join(found)}: restore "
                             "it from a backup (see docs/troubleshooting.md)", transient=False)

    def close(self) -> None:
        self.engine.dispose()

    # -- runs -------------------------------------------------------------------------------
    def start_run(self, flow: str, target: str = "", *, mode: str = "prefect") -> int:
        with self.begin() as conn:
            result = conn.execute(runs.insert().values(flow=flow, target=target, started=now(),
                                                       status="running", mode=mode,
                                                       host=socket.gethostname(), pid=os.getpid()))
            return int(result.inserted_primary_key[0])  # type: ignore[index]

    def finish_run(self, run_id: int, status: str, counts: dict[str, Any]) -> None:
        with self.begin() as conn:
            conn.execute(runs.update().where(runs.c.id == run_id).values(
                finished=now(), status=status, counts=json.dumps(counts, default=str)))

    def recent_runs(self, limit: int = 10) -> list[dict[str, Any]]:
        """The newest ``limit`` runs of any flow and target, newest first."""
        with self.begin() as conn:
            rows = conn.execute(runs.select().order_by(runs.c.id.desc()).limit(limit)).mappings()
            return [{**row, "started": utc(row["started"]), "finished": utc(row["finished"]),
                     "counts": json.loads(row["counts"])} for row in rows]


def insert_rows(conn: Connection, table: sa.Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows, all with the same keys, in one executemany straight to the driver.

    The statement is compiled once and each value goes through its column type's own bind
    processor (how SQLite stores a datetime, say), so the rows are stored exactly as
    ``conn.execute(table.insert(), rows)`` would store them; SQLAlchemy's generic per-row
    parameter handling, a third of the gather store step at 10k articles, is skipped.
    """
    if not rows:
        return
    dialect = conn.dialect
    keys = list(rows[0])
    # inline(): no implicit RETURNING of the new keys (PostgreSQL would send one per row).
    compiled = table.insert().inline().compile(dialect=dialect, column_keys=keys)
    names = list(compiled.positiontup or ()) if compiled.positional else keys
    columns: list[list[Any]] = []
    for name in names:  # column by column: one list, and one processor call per distinct value
        values = [row[name] for row in rows]
        process = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if process is not None:
            done: dict[Any, Any] = {None: None}  # a run's one timestamp is formatted once, not 10k times
            values = [done[v] if v in done else done.setdefault(v, process(v)) for v in values]
        columns.append(values)
    params: list[Any] = list(zip(*columns, strict=True))
    if not compiled.positional:
        params = [dict(zip(names, values, strict=True)) for values in params]
    conn.exec_driver_sql(str(compiled), params)


def insert_for(conn: Connection, table: sa.Table) -> SqliteInsert | PostgresInsert:
    """An INSERT with the store's ``ON CONFLICT`` clauses (``on_conflict_do_nothing``/``_do_update``):
    checking first and inserting after races with another writer, which then fails on a UNIQUE constraint."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects import postgresql  # each dialect when a store of its kind is open

        return postgresql.insert(table)
    from sqlalchemy.dialects import sqlite

    return sqlite.insert(table)


def select_in(conn: Connection, column: sa.Column[Any], values: Iterable[Any],
              *extra: sa.Column[Any]) -> Iterator[sa.Row[Any]]:
    """``(column, *extra)`` of the rows whose ``column`` is one of ``values``, straight from the driver.

    For plain text and integer columns (the values are neither processed on the way in nor out).
    A few statements of 500 values each, compiled by hand: through SQLAlchemy each IN list was
    expanded and compiled anew, which cost four times the query (10k keys looked up per gather).
    """
    quote = conn.dialect.identifier_preparer
    assert isinstance(column.table, sa.Table)
    names = ", ".join(quote.format_column(c) for c in (column, *extra))
    head = f"SELECT {names} FROM {quote.format_table(column.table)} WHERE {quote.format_column(column)} IN ("
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    for chunk in rows_in_chunks(sorted(values)):
        yield from conn.exec_driver_sql(head + ", ".join([mark] * len(chunk)) + ")", tuple(chunk))


def rows_in_chunks(values: Sequence[Any], size: int = 500) -> Iterable[Sequence[Any]]:
    """Keep IN (...) lists under SQLite's variable limit."""
    for start in range(0, len(values), size):
        yield values[start:start + size]
