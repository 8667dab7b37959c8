"""Run locks kept in the store: one gather at a time, one digest per newsletter at a time.

Correctness rests here, where the data is, not on Prefect's concurrency limits:

- PostgreSQL: a session advisory lock per lock name and schema. The server lets go of it when the
  holder's session ends, so a killed run frees it at once, on any machine. Advisory locks belong
  to the whole database, so the key names the schema the store's tables are in: two stores kept
  in two schemas of one database never wait for each other.
- SQLite: a row in ``locks`` naming its owner (host, boot, pid and the process's start time) with
  a lease the owner renews. An owner on this host whose process is gone is taken over at once;
  an owner on another host is trusted until its lease runs out.

Either way the ``locks`` row says who holds the lock, so a run that waits can say for whom, and a
run that takes over can say which run died (and its ``runs`` row is marked ``died``).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from feedletter.errors import FeedletterError
from feedletter.schema import locks, runs
from feedletter.store import Store, now, utc

log = logging.getLogger(__name__)

LEASE = timedelta(seconds=90)  # an SQLite owner on another host is trusted this long after its last renewal
RENEW_EVERY = 20.0  # seconds between lease renewals
SAY_EVERY = 30.0  # seconds between "still waiting" lines
EXIT_BUSY = 75  # EX_TEMPFAIL: another run holds the lock; try again later


class LockBusy(FeedletterError):
    """Another live run held the lock for longer than this run was willing to wait."""

    stage = "lock"
    exit_code = EXIT_BUSY


@dataclass(frozen=True)
class Owner:
    """A process, as another process on the same host can check it is still the same one."""

    host: str
    boot: str
    pid: int
    pid_start: str
    token: str = field(default_factory=lambda: uuid.uuid4().hex)

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(socket.gethostname(), _boot_id(), pid, _start_time(pid) or "")

    def same_host(self, other_host: str) -> bool:
        return other_host == self.host

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


@dataclass(frozen=True)
class Holder:
    """What the ``locks`` row says about a (maybe former) owner."""

    owner: str
    host: str
    boot: str
    pid: int
    pid_start: str
    started: datetime
    lease_until: datetime
    run_id: int | None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, started {self.started:%Y-%m-%d %H:%M:%S} UTC"


@dataclass
class Held:
    """A lock this process holds; ``previous`` is the dead owner it took over from, if any."""

    name: str
    owner: Owner
    previous: Holder | None = None
    waited: float = 0.0
    lost: bool = False  # an SQLite lease ran out (the renewals failed) and someone else took over

    def attach_run(self, store: Store, run_id: int) -> None:
        with store.begin() as conn:
            conn.execute(locks.update().where(locks.c.name == self.name, locks.c.owner == self.owner.token)
                         .values(run_id=run_id))


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), "" where /proc is missing,
    None when there is no such process (or only its zombie is left)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None if Path("/proc/self/stat").exists() else _kill_check(pid)
    except OSError:
        return ""
    # The command name (field 2) may hold spaces and parentheses: fields are counted after its ")".
    fields = raw[raw.rindex(")") + 2:].split()
    if fields[0] in ("Z", "X"):  # killed and not yet reaped by its parent: gone all the same
        return None
    return fields[19]


def _kill_check(pid: int) -> str | None:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return ""
    return ""


def holder_alive(holder: Holder, me: Owner) -> bool | None:
    """True or False for an owner on this host; None for one on another host (only its lease tells)."""
    if not me.same_host(holder.host):
        return None
    if holder.boot and me.boot and holder.boot != me.boot:
        return False  # the machine restarted since
    started = _start_time(holder.pid)
    if started is None:
        return False
    # A reused pid is another process: the start time tells them apart where /proc has it.
    return not (started and holder.pid_start and started != holder.pid_start)


@lru_cache(maxsize=64)
def advisory_key(name: str, schema: str = "public") -> int:
    """A stable signed 64-bit key for ``pg_advisory_lock`` of lock ``name`` in a store whose tables
    are in ``schema`` (Python's hash() changes per process)."""
    scoped = name if schema == "public" else f"{schema}/{name}"  # "public" keeps the keys of before
    return int.from_bytes(hashlib.blake2b(f"feedletter:{scoped}".encode(), digest_size=8).digest(), "big",
                          signed=True)


def read_holder(store: Store, name: str) -> Holder | None:
    with store.begin() as conn:
        row = conn.execute(sa.select(locks).where(locks.c.name == name)).mappings().first()
    return None if row is None else _holder(row)


def holders(store: Store) -> dict[str, Holder]:
    """Every lock held now (or left by a run that died and was not taken over yet), by name."""
    with store.begin() as conn:
        rows = conn.execute(sa.select(locks).order_by(locks.c.name)).mappings().all()
    return {row["name"]: _holder(row) for row in rows}


def _holder(row: Any) -> Holder:
    return Holder(row["owner"], row["host"], row["boot"] or "", int(row["pid"]), row["pid_start"] or "",
                  utc(row["started"]) or now(), utc(row["lease_until"]) or now(), row["run_id"])


def _row(name: str, me: Owner) -> dict[str, Any]:
    stamp = now()
    return {"name": name, "owner": me.token, "host": me.host, "boot": me.boot, "pid": me.pid,
            "pid_start": me.pid_start, "started": stamp, "lease_until": stamp + LEASE, "run_id": None}


def _take_row(store: Store, name: str, me: Owner, *, unless_alive: bool) -> tuple[bool, Holder | None]:
    """Write our row; with ``unless_alive`` only where no row is, or its owner is gone or expired.

    A compare-and-swap on the previous owner's token: of two runs taking over the same dead owner
    at once, one wins. Returns (taken, the previous holder).
    """
    with store.begin() as conn:
        row = conn.execute(sa.select(locks).where(locks.c.name == name)).mappings().first()
        if row is None:
            try:
                with conn.begin_nested():
                    conn.execute(locks.insert().values(_row(name, me)))
            except sa.exc.IntegrityError:
                return False, None  # another run inserted it first
            return True, None
        holder = _holder(row)
        if holder.owner == me.token:
            return True, None
        if unless_alive:
            alive = holder_alive(holder, me)
            if alive or (alive is None and holder.lease_until > now()):
                return False, holder
        taken = conn.execute(locks.update().where(locks.c.name == name, locks.c.owner == holder.owner)
                             .values(_row(name, me))).rowcount == 1
        if taken and holder.run_id is not None:
            conn.execute(runs.update().where(runs.c.id == holder.run_id, runs.c.status == "running")
                         .values(status="died", finished=now()))
        return taken, holder if taken else None


class _Renewer(threading.Thread):
    """Renews an SQLite lock's lease until stopped; notes when the row is no longer ours."""

    def __init__(self, store: Store, held: Held) -> None:
        super().__init__(name=f"lock-{held.name}", daemon=True)
        self.store, self.held = store, held
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(RENEW_EVERY):
            try:
                with self.store.begin() as conn:
                    mine = conn.execute(locks.update().where(locks.c.name == self.held.name,
                                                             locks.c.owner == self.held.owner.token)
                                        .values(lease_until=now() + LEASE)).rowcount == 1
            except sa.exc.SQLAlchemyError as exc:  # a busy store: the next renewal tries again
                log.warning("lock %s: lease not renewed: %s", self.held.name, exc)
                continue
            if not mine:
                self.held.lost = True
                log.error("lock %s: another run took the lock over (our lease ran out)", self.held.name)
                return


@contextmanager
def hold(store: Store, name: str, *, wait: float, what: str = "",
         say: Callable[[str], None] | None = None, poll: float = 0.5) -> Iterator[Held]:
    """Hold lock ``name`` for the block, waiting up to ``wait`` seconds for a live holder.

    ``say`` gets the waiting lines ("waiting for …") every ``SAY_EVERY`` seconds; ``what`` names
    the run in them ("the digest run of weekly"). Raises :class:`LockBusy` after ``wait``.
    """
    me = Owner.me()
    say = say or log.info
    label = what or name
    started = time.monotonic()
    said = -SAY_EVERY
    pg = store.dialect == "postgresql"
    session = store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") if pg else None
    try:
        key = 0 if session is None else advisory_key(name, str(session.execute(
            sa.text("SELECT current_schema()")).scalar() or "public"))
        while True:
            if session is not None:
                # The advisory lock is the truth; the row only tells others who holds it.
                got = bool(session.execute(sa.text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
                taken, previous, holder = False, None, None
                while got and not taken:  # only a row insert racing ours can fail, and it cannot win twice
                    taken, previous = _take_row(store, name, me, unless_alive=False)
                if not got:
                    holder = read_holder(store, name)
            else:
                taken, holder = _take_row(store, name, me, unless_alive=True)
                previous = holder if taken else None
            if taken:
                break
            waited = time.monotonic() - started
            if waited >= wait:
                who = f" ({holder.describe()})" if holder else ""
                raise LockBusy(name, f"{label} is already running{who}; gave up after {waited:.0f} s "
                               "(try again later, or see `feedletter status`)")
            if waited - said >= SAY_EVERY:
                who = f" ({holder.describe()})" if holder else ""
                say(f"waiting for {label}{who} to finish: {waited:.0f} s so far, giving up after {wait:.0f} s")
                said = waited
            time.sleep(min(poll, wait - waited))
        held = Held(name, me, previous, waited=time.monotonic() - started)
        renewer = None if pg else _Renewer(store, held)
        if renewer is not None:
            renewer.start()
        try:
            yield held
        finally:
            if renewer is not None:
                renewer.stop.set()
                renewer.join(timeout=5)
            with store.begin() as conn:
                conn.execute(locks.delete().where(locks.c.name == name, locks.c.owner == me.token))
            if session is not None:
                session.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    finally:
        if session is not None:
            session.close()


__all__ = ["EXIT_BUSY", "Held", "Holder", "LockBusy", "Owner", "advisory_key", "hold", "holder_alive",
           "holders", "read_holder"]
