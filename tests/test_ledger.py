"""The ledger of side effects done once, on SQLite always and on PostgreSQL when FEEDLETTER_TEST_DATABASE_URL is set."""

from __future__ import annotations

import threading
from datetime import timedelta

from fixtures_delivery import any_store, store_url

from feedletter import ledger
from feedletter.schema import ledger as table
from feedletter.store import Store, now

__all__ = ["any_store", "store_url"]  # fixtures used below, imported for pytest to find


def _lapse(store: Store, kind: str, key: str) -> None:
    """What the passing of time does to a dead run's lease."""
    with store.begin() as conn:
        conn.execute(table.update().where(table.c.kind == kind, table.c.key == key)
                     .values(lease_until=now() - timedelta(seconds=1)))


def test_of_two_claims_one_wins_until_the_winner_lets_go(any_store: Store) -> None:
    first = ledger.claim(any_store, "post", "issue-1")
    assert first is not None and (first.state, first.ref) == ("claimed", None)
    assert ledger.claim(any_store, "post", "issue-1") is None  # held
    assert ledger.claim(any_store, "post", "issue-2") is not None  # another key is another entry
    ledger.record(any_store, first, "posted", ref="https://social.example/@news/1", done=True)
    assert ledger.claim(any_store, "post", "issue-1") is None  # done: never again
    (found,) = ledger.entries(any_store, "post", "issue-1")
    assert (found.state, found.ref, found.lease_until, found.error) == ("posted", "https://social.example/@news/1",
                                                                        None, None)
    assert found.done is not None and found.done.tzinfo is not None


def test_claims_at_once_from_many_threads_have_one_winner(any_store: Store) -> None:
    won: list[ledger.Claim] = []
    start = threading.Barrier(8)

    def race() -> None:
        start.wait()
        held = ledger.claim(any_store, "ping", "7/https://hub.example/")
        if held is not None:
            won.append(held)

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    assert len(ledger.entries(any_store, "ping")) == 1


def test_a_crash_between_claim_and_record_is_visible_and_resumed_once_the_lease_ends(any_store: Store) -> None:
    dead = ledger.claim(any_store, "campaign", "3/listmonk", state="creating")
    assert dead is not None
    ledger.record(any_store, dead, "created", ref="42")
    # The run dies here. Its entry says how far it got, and is held until its lease runs out.
    left = ledger.entry(any_store, "campaign", "3/listmonk")
    assert left is not None and (left.state, left.ref, left.done) == ("created", "42", None)
    assert left.lease_until is not None
    assert ledger.claim(any_store, "campaign", "3/listmonk") is None
    _lapse(any_store, "campaign", "3/listmonk")
    rerun = ledger.claim(any_store, "campaign", "3/listmonk", state="creating")
    assert rerun is not None and (rerun.state, rerun.ref) == ("created", "42")  # resumes, not from scratch
    ledger.record(any_store, dead, "started", done=True)  # the dead run's lease is gone: no effect
    assert ledger.claim(any_store, "campaign", "3/listmonk") is None  # the rerun's lease holds
    ledger.record(any_store, rerun, "started", done=True)
    done = ledger.entry(any_store, "campaign", "3/listmonk")
    assert done is not None and done.state == "started" and done.done is not None


def test_a_failure_lets_go_at_once_and_keeps_the_error_until_done(any_store: Store) -> None:
    held = ledger.claim(any_store, "ping", "1/hub")
    assert held is not None
    ledger.fail(any_store, held, "hub: HTTP 503 " + "x" * 600)
    failed = ledger.entry(any_store, "ping", "1/hub")
    assert failed is not None and failed.lease_until is None and failed.done is None
    assert failed.error is not None and failed.error.startswith("hub: HTTP 503") and len(failed.error) == 500
    again = ledger.claim(any_store, "ping", "1/hub", lease=timedelta(minutes=1))
    assert again is not None and again.state == "claimed"
    ledger.record(any_store, again, "pinged", done=True)
    assert (found := ledger.entry(any_store, "ping", "1/hub")) is not None and found.error is None


def test_keys_are_matched_whole_or_by_literal_prefix(any_store: Store) -> None:
    for key in ("1/a", "1/b", "10/a", "1_/x"):
        assert ledger.claim(any_store, "k", key) is not None
    assert [e.key for e in ledger.entries(any_store, "k", "1/")] == ["1/a", "1/b"]
    assert [e.key for e in ledger.entries(any_store, "k", "1_")] == ["1_/x"]  # no LIKE wildcards
    assert ledger.entry(any_store, "k", "1") is None
    assert ledger.entries(any_store, "other") == []
