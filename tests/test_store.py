"""The store's basic operations, on SQLite always and on PostgreSQL when FEEDLETTER_TEST_DATABASE_URL is set."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from fixtures_delivery import any_store, store_url

from feedletter import subscribers
from feedletter.errors import StoreError
from feedletter.schema import articles, issues, ledger, metadata
from feedletter.store import Store, insert_rows, now, rows_in_chunks, select_in, utc

__all__ = ["any_store", "store_url"]  # fixtures used below, imported for pytest to find


def test_opening_creates_every_table_and_is_repeatable(store_url: str) -> None:
    first = Store.open(store_url)
    first.close()
    again = Store.open(store_url)  # create_all on an existing schema changes nothing
    try:
        names = set(sa.inspect(again.engine).get_table_names())
        assert {t.name for t in metadata.sorted_tables} <= names
        assert again.dialect in ("sqlite", "postgresql")
    finally:
        again.close()


def test_runs_are_recorded_and_listed_newest_first(any_store: Store) -> None:
    first = any_store.start_run("gather")
    second = any_store.start_run("digest", "weekly")
    any_store.finish_run(first, "completed", {"new": 3, "at": now()})
    runs = any_store.recent_runs()
    assert [r["id"] for r in runs] == [second, first]
    assert runs[1]["status"] == "completed" and runs[1]["counts"]["new"] == 3
    assert runs[0]["finished"] is None and runs[0]["status"] == "running"
    assert runs[1]["started"].tzinfo is not None


def test_subscribers_round_trip_and_stay_unique(any_store: Store) -> None:
    a = subscribers.add(any_store, "weekly", "Ann@Example.com", "Ann")
    again = subscribers.add(any_store, "weekly", "ann@example.com", "Ann")
    assert again.id == a.id
    subscribers.add(any_store, "other", "ann@example.com")
    assert [s.email for s in subscribers.listing(any_store, "weekly")] == ["Ann@Example.com"]
    assert subscribers.remove(any_store, "weekly", "ANN@example.com")
    assert subscribers.listing(any_store, "weekly", status="unsubscribed")[0].id == a.id


def test_timestamps_come_back_in_utc(any_store: Store) -> None:
    stamp = datetime(2025, 3, 30, 1, 30, tzinfo=UTC) + timedelta(microseconds=5)
    with any_store.begin() as conn:
        conn.execute(issues.insert().values(newsletter="weekly", number=1, issued=stamp, subject="s", preheader="",
                                            html="", text="", mjml="", data="{}"))
        stored = conn.execute(sa.select(issues.c.issued)).scalar_one()
    assert utc(stored) == stamp


def test_bulk_insert_stores_what_sqlalchemy_would(any_store: Store) -> None:
    # insert_rows hands the driver the values itself: read back, the rows must equal those of a
    # plain conn.execute(insert, rows) — datetimes (with microseconds), booleans, bytes, NULLs, text.
    stamp = datetime(2025, 3, 30, 1, 30, tzinfo=UTC) + timedelta(microseconds=5)

    def rows(prefix: str) -> list[dict[str, object]]:
        return [{"key": f"{prefix}/{i}", "source": "s", "url": f"https://example.org/{prefix}/{i}",
                 "canonical": "", "title": "Tea & “quotes” ✓ 100%", "author": None if i % 2 else "Ann",
                 "published": stamp + timedelta(hours=i), "fetched": stamp, "html": "<p>x</p>", "text": "x",
                 "content_hash": "h", "needs_text": bool(i % 2), "signature": bytes([i, 0, 255]) if i else None}
                for i in range(3)]

    with any_store.begin() as conn:
        conn.execute(articles.insert(), rows("plain"))
        insert_rows(conn, articles, rows("bulk"))
        insert_rows(conn, articles, [])  # nothing to do
        stored = {r.key: r._asdict() for r in conn.execute(sa.select(articles))}
    assert len(stored) == 6
    for i in range(3):
        plain, bulk = stored[f"plain/{i}"], stored[f"bulk/{i}"]
        for name in ("id", "key", "url"):
            plain.pop(name), bulk.pop(name)
        assert bulk == plain
        assert utc(bulk["published"]) == stamp + timedelta(hours=i)


def test_select_in_finds_what_a_select_finds(any_store: Store) -> None:
    # More values than one statement takes, quotes in them, and columns named like SQL words.
    stamp = now()
    rows = [{"key": f"k'{i}\"", "source": "s", "url": f"https://example.org/{i}", "canonical": f"c{i % 7}",
             "title": "t", "published": stamp, "fetched": stamp, "text": f"body {i}"} for i in range(1200)]
    wanted = {f"k'{i}\"" for i in range(0, 1400, 3)}  # some of them were never stored
    with any_store.begin() as conn:
        insert_rows(conn, articles, rows)
        found = {tuple(r) for r in select_in(conn, articles.c.key, wanted, articles.c.text)}
        expected = {tuple(r) for r in conn.execute(
            sa.select(articles.c.key, articles.c.text).where(articles.c.key.in_(sorted(wanted))))}
        assert found == expected and len(found) == 400
        sevens = list(select_in(conn, articles.c.canonical, {"c3", "none"}))
        assert len(sevens) == len([i for i in range(1200) if i % 7 == 3])
        assert list(select_in(conn, articles.c.key, set())) == []


def test_a_failed_transaction_leaves_nothing_behind(any_store: Store) -> None:
    with pytest.raises(sa.exc.IntegrityError), any_store.begin() as conn:
        conn.execute(issues.insert().values(newsletter="weekly", number=1, issued=now(), subject="s", preheader="",
                                            html="", text="", mjml="", data="{}"))
        conn.execute(issues.insert().values(newsletter="weekly", number=1, issued=now(), subject="s", preheader="",
                                            html="", text="", mjml="", data="{}"))
    with any_store.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(issues)).scalar_one() == 0


def test_ledger_entry_is_unique_per_kind_and_key(any_store: Store) -> None:
    with any_store.begin() as conn:
        conn.execute(ledger.insert().values(kind="campaign", key="1/listmonk", state="creating", created=now()))
    with pytest.raises(sa.exc.IntegrityError), any_store.begin() as conn:
        conn.execute(ledger.insert().values(kind="campaign", key="1/listmonk", state="creating", created=now()))


def test_an_unreachable_store_is_one_clear_error_without_the_password() -> None:
    with pytest.raises(StoreError) as err:
        Store.open("postgresql+psycopg://feedletter:hunter2@127.0.0.1:1/nowhere?connect_timeout=2")
    assert "cannot open store" in str(err.value) and "hunter2" not in str(err.value)


def test_in_lists_are_chunked() -> None:
    assert [list(c) for c in rows_in_chunks(list(range(5)), 2)] == [[0, 1], [2, 3], [4]]


def test_a_store_from_an_older_version_gains_new_columns_and_keeps_its_rows(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from feedletter.store import Store

    url = f"sqlite:///{tmp_path / 'old.db'}"
    with sa.create_engine(url).begin() as conn:  # the articles table as the first release made it
        conn.execute(sa.text("CREATE TABLE articles (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, "
                             "source VARCHAR(64) NOT NULL, url TEXT NOT NULL, canonical TEXT NOT NULL, "
                             "title TEXT NOT NULL, author TEXT, published DATETIME NOT NULL, "
                             "fetched DATETIME NOT NULL, html TEXT NOT NULL DEFAULT '', "
                             "text TEXT NOT NULL DEFAULT '', content_hash VARCHAR(64) NOT NULL DEFAULT '', "
                             "needs_text BOOLEAN NOT NULL DEFAULT 0, clustered BOOLEAN NOT NULL DEFAULT 0, "
                             "duplicate_of INTEGER, story_id INTEGER)"))
        conn.execute(sa.text("INSERT INTO articles (key, source, url, canonical, title, published, fetched) "
                             "VALUES ('guid:1', 'blog', 'https://b.example/1', 'https://b.example/1', 'One', "
                             "'2026-11-20 08:00:00', '2026-11-20 09:00:00')"))
    store = Store.open(url)
    with store.begin() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("articles")}
        assert "signature" in columns
        assert conn.execute(sa.text("SELECT title FROM articles")).scalar_one() == "One"
    store.close()


def test_a_sources_table_from_before_the_reasons_gains_their_columns(store_url: str) -> None:
    from feedletter.ingest.health import EntryCounts, all_states, record_counts

    with sa.create_engine(store_url).begin() as conn:  # sources as it was with "duplicates" its only reason
        conn.execute(sa.text("CREATE TABLE sources (name VARCHAR(64) PRIMARY KEY, url TEXT NOT NULL, "
                             "configured_url TEXT NOT NULL, etag TEXT, last_modified TEXT, "
                             "last_fetch TIMESTAMP, last_success TIMESTAMP, last_status INTEGER, last_error TEXT, "
                             "failures INTEGER NOT NULL DEFAULT 0, next_fetch TIMESTAMP, "
                             "disabled BOOLEAN NOT NULL DEFAULT false, new_items INTEGER NOT NULL DEFAULT 0, "
                             "duplicates INTEGER NOT NULL DEFAULT 0, seconds FLOAT)"))
        conn.execute(sa.text("INSERT INTO sources (name, url, configured_url, new_items, duplicates) "
                             "VALUES ('blog', 'https://b.example/feed', 'https://b.example/feed', 3, 46)"))
    store = Store.open(store_url)
    try:
        (old,) = all_states(store)
        assert (old.new_items, old.duplicates, old.entries) == (3, 46, EntryCounts(new=3))
        with store.begin() as conn:
            record_counts(conn, {"blog": EntryCounts(new=1, seen=40, repeated=2, carried=1, removed=1, filtered=3)})
        (now_,) = all_states(store)
        assert now_.entries == EntryCounts(1, 40, 2, 1, 1, 3) and now_.duplicates == 43
    finally:
        store.close()


def test_campaign_records_from_before_the_ledger_move_into_it(store_url: str) -> None:
    from feedletter import ledger as entries

    Store.open(store_url).close()
    with sa.create_engine(store_url).begin() as conn:  # the campaigns table as it was before the ledger
        conn.execute(sa.text("CREATE TABLE campaigns (issue_id INTEGER NOT NULL, provider VARCHAR(16) NOT NULL, "
                             "campaign_id VARCHAR(64), state VARCHAR(16) NOT NULL, lease_owner VARCHAR(64), "
                             "lease_until TIMESTAMP, created TIMESTAMP NOT NULL, started TIMESTAMP, error TEXT, "
                             "PRIMARY KEY (issue_id, provider))"))
        conn.execute(sa.text("INSERT INTO campaigns (issue_id, provider, campaign_id, state, created, started) VALUES "
                             "(1, 'listmonk', '41', 'started', '2026-11-02 08:00:00', '2026-11-02 08:01:00'), "
                             "(2, 'listmonk', '42', 'starting', '2026-11-09 08:00:00', NULL)"))
    store = Store.open(store_url)
    try:
        assert not sa.inspect(store.engine).has_table("campaigns")
        moved = {e.key: (e.ref, e.state, e.done) for e in entries.entries(store, "campaign")}
        assert moved == {"1/listmonk": ("41", "started", datetime(2026, 11, 2, 8, 1, tzinfo=UTC)),
                         "2/listmonk": ("42", "starting", None)}
        assert entries.claim(store, "campaign", "1/listmonk") is None  # started: never again
        resumed = entries.claim(store, "campaign", "2/listmonk")
        assert resumed is not None and (resumed.state, resumed.ref) == ("starting", "42")
    finally:
        store.close()
    Store.open(store_url).close()  # and opening it again finds nothing left to move


def test_a_new_sqlite_store_has_large_pages_and_an_older_one_keeps_its_own(tmp_path: Path) -> None:
    from feedletter.store import SQLITE_PAGE_SIZE

    new = Store.open(f"sqlite:///{tmp_path / 'new.db'}")
    with new.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar_one() == SQLITE_PAGE_SIZE == 8192
    new.close()
    url = f"sqlite:///{tmp_path / 'old.db'}"
    with sa.create_engine(url).begin() as conn:  # a store made before: SQLite's default pages, WAL
        conn.exec_driver_sql("PRAGMA journal_mode=WAL")
        conn.execute(sa.text("CREATE TABLE keep (id INTEGER PRIMARY KEY, note TEXT)"))
        conn.execute(sa.text("INSERT INTO keep (note) VALUES ('kept')"))
    old = Store.open(url)
    with old.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA page_size").scalar_one() == 4096
        assert conn.execute(sa.text("SELECT note FROM keep")).scalar_one() == "kept"
        conn.execute(sa.insert(articles).values(key="k", source="s", url="u", canonical="c", title="t",
                                                published=now(), fetched=now(), text="x" * 20000))
    old.close()
