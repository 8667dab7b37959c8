"""Feed health: errors, back-off, disabling, re-enabling and the status table, over loopback."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from feedletter.cli import app
from feedletter.config import Config, load_config
from feedletter.ingest.gather import fetch_sources, make_fetcher, store_entries
from feedletter.ingest.health import BACKOFF_BASE, BACKOFF_MAX, backoff
from feedletter.schema import sources
from feedletter.store import Store, now, utc
from tests.fixtures_ingest import RSS, RudeServer, rude, send

__all__ = ["rude"]


def _config(tmp_path: Path, feeds: dict[str, str], extra: str = "", top: str = "allow_private: true") -> Path:
    lines = [f"store: sqlite:///{tmp_path / 'health.db'}", top, "gather: {max_failures: 3}", "sources:"]
    lines += [f"  - {{name: {name}, url: '{url}'{extra}}}" for name, url in feeds.items()]
    path = tmp_path / "sources.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _row(store: Store, name: str) -> sa.RowMapping:
    with store.begin() as conn:
        return conn.execute(sa.select(sources).where(sources.c.name == name)).mappings().one()


def _fetch(config: Config, store: Store, force: bool = False) -> list[str]:
    """Fetch and store, as a gather does (a 200's validators are stored with its entries)."""
    with make_fetcher(config) as fetcher:
        results = fetch_sources(config, store, fetcher, force=force)
    store_entries(config, store, results)
    return [r.status for r in results]


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(n) for n in (1, 2, 3, 4)] == [BACKOFF_BASE * k for k in (1, 2, 4, 8)]
    assert backoff(40) == BACKOFF_MAX
    assert backoff(1, retry_after=3600) == timedelta(hours=1)  # the server's wish, when longer
    assert backoff(1, retry_after=10) == BACKOFF_BASE


def test_failures_count_back_off_and_disable(tmp_path: Path, rude: RudeServer) -> None:
    url = rude.route("/feed", lambda r: send(r, 500))
    config = load_config(_config(tmp_path, {"broken": url}))
    store = Store.open(config.store_url())
    assert _fetch(config, store) == ["error"]
    row = _row(store, "broken")
    assert row["failures"] == 1 and not row["disabled"]
    assert row["last_error"] == f"fetch: {url}: HTTP 500 Internal Server Error"
    assert abs(utc(row["next_fetch"]) - (now() + BACKOFF_BASE)) < timedelta(seconds=30)  # type: ignore[operator]

    # Within the back-off the source is not even asked.
    assert _fetch(config, store) == ["skipped"] and rude.hits["/feed"] == 1
    assert _fetch(config, store, force=True) == ["error"]
    row = _row(store, "broken")
    assert row["failures"] == 2
    assert utc(row["next_fetch"]) - now() > BACKOFF_BASE * 2 - timedelta(seconds=30)  # type: ignore[operator]
    assert _fetch(config, store, force=True) == ["error"]
    assert _row(store, "broken")["disabled"]  # gather.max_failures: 3

    # Re-enabled by command: counters reset, fetched on the next run, success recorded.
    rude.route("/feed", lambda r: send(r, 200, RSS))
    result = CliRunner().invoke(app, ["sources", "enable", "broken", "--config", str(tmp_path / "sources.yaml")])
    assert result.exit_code == 0 and "broken: enabled" in result.output
    row = _row(store, "broken")
    assert row["failures"] == 0 and not row["disabled"] and row["next_fetch"] is None
    assert _fetch(config, store) == ["ok"]
    row = _row(store, "broken")
    assert row["last_error"] is None and row["last_success"] is not None and row["last_status"] == 200
    store.close()


def test_parse_errors_are_recorded_with_their_stage(tmp_path: Path, rude: RudeServer) -> None:
    url = rude.route("/feed", lambda r: send(r, 200, b"<html><body>not a feed</body></html>",
                                             {"Content-Type": "text/html"}))
    good = rude.route("/good", lambda r: send(r, 200, RSS))
    config = load_config(_config(tmp_path, {"page": url, "good": good}))
    store = Store.open(config.store_url())
    assert sorted(_fetch(config, store)) == ["error", "ok"]
    error = _row(store, "page")["last_error"]
    assert error.startswith("parse: ") and _row(store, "page")["failures"] == 1
    assert _row(store, "good")["failures"] == 0
    store.close()


def test_retry_after_sets_the_next_fetch(tmp_path: Path, rude: RudeServer) -> None:
    url = rude.route("/feed", lambda r: send(r, 429, headers={"Retry-After": "7200"}))
    config = load_config(_config(tmp_path, {"busy": url}))
    store = Store.open(config.store_url())
    assert _fetch(config, store) == ["error"]
    row = _row(store, "busy")
    assert "HTTP 429" in row["last_error"] and "retry after 7200s" in row["last_error"]
    wait = utc(row["next_fetch"]) - now()  # type: ignore[operator]
    assert timedelta(hours=2) - timedelta(seconds=30) < wait <= timedelta(hours=2)
    store.close()


@pytest.mark.parametrize("status", [301, 308])
def test_permanent_redirect_updates_the_stored_url(tmp_path: Path, rude: RudeServer, status: int) -> None:
    old = rude.route("/old", lambda r: send(r, status, headers={"Location": "/new"}))
    new = rude.route("/new", lambda r: send(r, 200, RSS, {"ETag": '"e1"'}))
    config = load_config(_config(tmp_path, {"moved": old}))
    store = Store.open(config.store_url())
    assert _fetch(config, store) == ["ok"]
    row = _row(store, "moved")
    assert row["url"] == new and row["configured_url"] == old and row["etag"] == '"e1"'
    _fetch(config, store)
    assert rude.hits["/old"] == 1 and rude.hits["/new"] == 2  # the next run goes straight there
    store.close()


def test_allow_private_per_source_and_top_level(tmp_path: Path, rude: RudeServer) -> None:
    url = rude.route("/feed", lambda r: send(r, 200, RSS))
    cases = [("allow_private: false", "", "error"), ("allow_private: false", ", allow_private: true", "ok"),
             ("allow_private: true", "", "ok"), ("allow_private: true", ", allow_private: false", "error")]
    for number, (top, extra, expected) in enumerate(cases):
        folder = tmp_path / str(number)
        folder.mkdir()
        config = load_config(_config(folder, {"local": url}, extra=extra, top=top))
        store = Store.open(config.store_url())
        assert _fetch(config, store) == [expected], (top, extra)
        if expected == "error":
            assert "non-public address 127.0.0.1" in _row(store, "local")["last_error"]
        store.close()


def test_sources_status_table(tmp_path: Path, rude: RudeServer) -> None:
    good = rude.route("/good", lambda r: send(r, 200, RSS))
    bad = rude.route("/bad", lambda r: send(r, 404))
    path = _config(tmp_path, {"good": good, "bad": bad, "later": good})
    config = load_config(path)
    store = Store.open(config.store_url())
    with make_fetcher(config) as fetcher:
        results = fetch_sources(config, store, fetcher, only=["good", "bad"])
    store_entries(config, store, results)
    with store.begin() as conn:
        conn.execute(sources.update().where(sources.c.name == "bad").values(disabled=True))
    store.close()
    result = CliRunner().invoke(app, ["sources", "status", "--config", str(path)])
    assert result.exit_code == 0, result.output
    lines = {line.split("│")[1].strip(): line for line in result.output.splitlines()
             if line.count("│") > 3 and line.split("│")[1].strip() in {"good", "bad", "later"}}
    assert set(lines) == {"good", "bad", "later"}
    good_cells = [c.strip() for c in lines["good"].split("│")]
    assert good_cells[2] == "ok" and good_cells[4] == "1" and good_cells[6] == "0" and good_cells[7] == "due"
    assert good_cells[5] == "0"  # nothing left out
    assert "disabled" in lines["bad"] and "HTTP 404" in result.output
    assert "never fetched" in lines["later"]


def test_sources_status_says_why_entries_were_not_stored(tmp_path: Path, rude: RudeServer) -> None:
    twice = RSS.replace(b"</channel>", RSS[RSS.index(b"<item>"):RSS.index(b"</channel>")] + b"</channel>")
    good = rude.route("/good", lambda r: send(r, 200, twice))  # the feed repeats its one entry
    path = _config(tmp_path, {"good": good, "copy": good})

    def gather_and_show() -> dict[str, list[str]]:
        config = load_config(path)
        store = Store.open(config.store_url())
        with make_fetcher(config) as fetcher:
            store_entries(config, store, fetch_sources(config, store, fetcher, force=True))
        store.close()
        result = CliRunner().invoke(app, ["sources", "status", "--config", str(path)])
        assert result.exit_code == 0, result.output
        return {line.split("│")[1].strip(): [c.strip() for c in line.split("│")][4:6]
                for line in result.output.splitlines()
                if line.count("│") > 3 and line.split("│")[1].strip() in {"good", "copy"}}

    assert gather_and_show() == {"good": ["1", "1 same GUID/link in feed"], "copy": ["0", "2 carried (other feed)"]}
    assert gather_and_show() == {"good": ["0", "2 seen before"], "copy": ["0", "2 seen before"]}


def test_enable_refuses_unknown_and_unfetched_sources(tmp_path: Path, rude: RudeServer) -> None:
    path = _config(tmp_path, {"fresh": rude.url("/feed")})
    runner = CliRunner()
    unknown = runner.invoke(app, ["sources", "enable", "nosuch", "--config", str(path)])
    assert unknown.exit_code != 0
    fresh = runner.invoke(app, ["sources", "enable", "fresh", "--config", str(path)])
    assert fresh.exit_code == 1 and "never fetched" in fresh.output
