"""The store's run locks: who holds them, waiting, giving up, taking over from the dead.

On SQLite and PostgreSQL (FEEDLETTER_TEST_DATABASE_URL, a fresh schema per test).
"""

from __future__ import annotations

import subprocess
import sys
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa
from fixtures_delivery import any_store, postgres_schema_url, store_url

from feedletter import locks
from feedletter.schema import runs
from feedletter.status import held_locks
from feedletter.store import Store, now

__all__ = ["any_store", "store_url"]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def _plant(store: Store, name: str, *, host: str, pid: int, lease: timedelta, run_id: int | None = None) -> None:
    """A lock row as another process would have left it."""
    me = locks.Owner.me()
    with store.begin() as conn:
        conn.execute(locks.locks.insert().values(
            name=name, owner="someone-else", host=host, boot=me.boot, pid=pid, pid_start="1",
            started=now() - timedelta(minutes=3), lease_until=now() + lease, run_id=run_id))


def test_a_second_holder_waits_says_for_whom_and_gives_up(any_store: Store) -> None:
    said: list[str] = []
    with locks.hold(any_store, "digest:weekly", wait=5, what="the digest run of weekly") as held:
        assert held.previous is None
        shown = held_locks(any_store)  # what `feedletter status` lists
        assert [(s["lock"], s["pid"], s["alive"]) for s in shown] == [("digest:weekly", held.owner.pid, "yes")]
        with pytest.raises(locks.LockBusy) as busy, \
                locks.hold(any_store, "digest:weekly", wait=0.6, what="the digest run of weekly", say=said.append):
            raise AssertionError("two holders at once")
        assert busy.value.exit_code == 75
    assert str(busy.value).startswith("lock: digest:weekly: the digest run of weekly is already running (pid ")
    assert said and said[0].startswith("waiting for the digest run of weekly (pid ")
    assert "giving up after 1 s" in said[0]
    # Released: the next one gets it at once, and other names were never in the way.
    with locks.hold(any_store, "digest:weekly", wait=0) as again, locks.hold(any_store, "gather", wait=0):
        assert again.previous is None and again.waited < 0.5


def test_a_waiting_run_gets_the_lock_when_the_holder_finishes(any_store: Store) -> None:
    release = threading.Event()
    holding = threading.Event()

    def first() -> None:
        with locks.hold(any_store, "gather", wait=5):
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=first)
    thread.start()
    holding.wait(10)
    threading.Timer(0.5, release.set).start()
    with locks.hold(any_store, "gather", wait=10) as held:
        assert held.waited >= 0.4 and held.previous is None
    thread.join()


def test_a_dead_owner_on_this_host_is_taken_over_at_once(any_store: Store) -> None:
    if any_store.dialect == "postgresql":
        pytest.skip("on PostgreSQL the advisory lock, not the row, says who is alive (next test)")
    with any_store.begin() as conn:
        run_id = int(conn.execute(runs.insert().values(flow="digest", target="weekly", started=now(),
                                                       status="running")).inserted_primary_key[0])  # type: ignore[index]
    dead = _dead_pid()
    _plant(any_store, "digest:weekly", host=locks.Owner.me().host, pid=dead, lease=timedelta(hours=1), run_id=run_id)
    with locks.hold(any_store, "digest:weekly", wait=0) as held:
        assert held.previous is not None and held.previous.pid == dead
    with any_store.begin() as conn:
        assert conn.execute(sa.select(runs.c.status).where(runs.c.id == run_id)).scalar_one() == "died"


def test_an_owner_on_another_host_is_trusted_until_its_lease_runs_out(any_store: Store) -> None:
    if any_store.dialect == "postgresql":
        pytest.skip("PostgreSQL's advisory lock is freed by the server when the owner's session ends")
    _plant(any_store, "gather", host="other-machine", pid=_dead_pid(), lease=timedelta(seconds=60))
    with pytest.raises(locks.LockBusy, match=r"on other-machine"), locks.hold(any_store, "gather", wait=0.3):
        pass
    with any_store.begin() as conn:
        conn.execute(locks.locks.update().values(lease_until=now() - timedelta(seconds=1)))
    with locks.hold(any_store, "gather", wait=0) as held:
        assert held.previous is not None and held.previous.host == "other-machine"


_HOLD_AND_HANG = """
import sys, time
from feedletter import locks
from feedletter.store import Store
store = Store.open(sys.argv[1])
with locks.hold(store, "gather", wait=5):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_killed_holder_frees_the_lock_for_the_next_run(any_store: Store, store_url: str) -> None:
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_AND_HANG, store_url], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(locks.LockBusy), locks.hold(any_store, "gather", wait=0.2):
            pass
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # PostgreSQL ends the session (and its advisory lock) when the client's socket closes; SQLite's
    # row names a pid that is gone. Either way: taken over within moments, not after a lease.
    with locks.hold(any_store, "gather", wait=10) as held:
        assert held.waited < 5
        assert held.previous is not None and held.previous.pid == holder.pid


def test_advisory_keys_are_stable_and_distinct() -> None:
    assert locks.advisory_key("gather") == locks.advisory_key("gather")
    assert locks.advisory_key("gather") != locks.advisory_key("digest:weekly")
    assert -(2 ** 63) <= locks.advisory_key("digest:weekly") < 2 ** 63
    assert locks.advisory_key("gather", "public") == locks.advisory_key("gather")
    assert locks.advisory_key("gather", "team_b") != locks.advisory_key("gather")


def test_stores_in_two_schemas_of_one_database_never_wait_for_each_other() -> None:
    # Advisory locks belong to the whole database; the lock of one store's gather must not be
    # another store's, kept in another schema of the same database.
    schemas = [postgres_schema_url(), postgres_schema_url()]
    urls = [next(schema) for schema in schemas]
    first, second, second_again = Store.open(urls[0]), Store.open(urls[1]), Store.open(urls[1])
    try:
        with locks.hold(first, "gather", wait=0), locks.hold(second, "gather", wait=0) as held:
            assert held.waited < 1
            with pytest.raises(locks.LockBusy), locks.hold(second_again, "gather", wait=0):
                pass  # within one schema the lock still excludes
    finally:
        for store in (first, second, second_again):
            store.close()
        for schema in schemas:
            next(schema, None)  # drops the schema
