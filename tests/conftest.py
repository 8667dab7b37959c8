"""Shared fixtures: the demo site on loopback, a real SMTP server, configs written per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedletter.config import Config, load_config
from feedletter.mailsink import MailSink
from feedletter.sitehost import SiteHost
from feedletter.store import Store

ROOT = Path(__file__).resolve().parents[1]
DEMO_SITE = ROOT / "demo" / "site"
SECRET = "test-secret-0123456789abcdef"


@pytest.fixture(autouse=True)
def _log_streams_left_open() -> Iterator[None]:
    """Typer's CliRunner gives a command a stderr that it closes afterwards; Prefect's logging, when
    first set up inside such a command, keeps writing to it. Point such handlers back at the real
    stderr after each test, so that later tests' log lines do not fail on a closed file."""
    yield
    import logging
    import sys

    loggers = [logging.getLogger()] + [lg for lg in logging.Logger.manager.loggerDict.values()
                                       if isinstance(lg, logging.Logger)]
    for logger in loggers:
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            if stream is not None and getattr(stream, "closed", False):
                handler.stream = sys.__stderr__  # type: ignore[attr-defined]
                console = getattr(handler, "console", None)
                if console is not None:
                    console.file = sys.__stderr__


@pytest.fixture(autouse=True)
def _secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEEDLETTER_SECRET", SECRET)


@pytest.fixture
def site() -> Iterator[SiteHost]:
    with SiteHost(DEMO_SITE) as host:
        yield host


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[MailSink]:
    with MailSink(save_dir=tmp_path / "mail") as server:
        yield server


DEMO_SOURCES = [
    ("riverside-clinic", "riverside-clinic/feed.xml", ["health"]),
    ("city-ledger", "city-ledger/atom.xml", ["city"]),
    ("morning-teaser", "morning-teaser/feed.xml", ["city", "health"]),
    ("health-roundup", "health-roundup/feed.xml", ["health"]),
    ("valley-post", "valley-post/feed.xml", ["city"]),
]


def write_config(tmp_path: Path, site: SiteHost, *, provider: str = "smtp", extra: str = "",
                 store: str | None = None) -> Path:
    """A sources.yaml for the demo site as served by ``site``, with its store in tmp_path."""
    lines = [f"store: {store or 'sqlite:///' + str(tmp_path / 'feedletter.db')}",
             "allow_private: true",
             f"site: {{base_url: 'https://news.example.com', archive_dir: '{tmp_path / 'public'}'}}",
             "sources:"]
    for name, path, tags in DEMO_SOURCES:
        lines.append(f"  - {{name: {name}, url: '{site.url(path)}', tags: [{', '.join(tags)}]}}")
    lines += [
        "newsletters:",
        "  - name: weekly",
        "    title: Riverside Weekly",
        "    schedule: {cron: '0 8 * * MON', timezone: Europe/Berlin}",
        "    select: {max_stories: 10, since: all}",
        "    from: 'Riverside Weekly <news@riverside.example>'",
        "    postal_address: '12 Mill Lane, Wrenford'",
        f"    provider: {provider}",
        "    feeds: [rss]",
        f"providers: {{file: {{dir: '{tmp_path / 'outbox'}'}}}}",
    ]
    path = tmp_path / "sources.yaml"
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


@pytest.fixture
def demo_config(tmp_path: Path, site: SiteHost) -> Config:
    return load_config(write_config(tmp_path, site))


@pytest.fixture
def store(demo_config: Config) -> Iterator[Store]:
    handle = Store.open(demo_config.store_url())
    yield handle
    handle.close()


def postgres_url() -> str | None:
    return os.environ.get("FEEDLETTER_TEST_DATABASE_URL") or None


def run_gather(config: Config, store: Store) -> dict[str, int]:
    """The gather flow's stages in order, without Prefect: what the flow's tasks call."""
    from feedletter.ingest import gather
    from feedletter.stories import stages as stories

    with gather.make_fetcher(config) as fetcher:
        results = gather.fetch_sources(config, store, fetcher)
        counts = gather.store_entries(config, store, results)
        extracted = gather.extract_articles(config, store, fetcher)
    grouped = stories.group(config, store)
    summarized, cached = stories.summarize(config, store)
    return {"ok": sum(r.status == "ok" for r in results),
            "not_modified": sum(r.status == "not_modified" for r in results),
            "errors": sum(r.status == "error" for r in results),
            "new": len(counts.new_ids), "duplicates": counts.duplicates,
            "near_duplicates": grouped.near_duplicates, "extracted": extracted.extracted,
            "stories": grouped.new_stories, "summarized": summarized, "cached": cached}


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Prefect's test harness, once per session (it costs 15–30 s to start here)."""
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "180")
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    from prefect.settings import PREFECT_FLOWS_HEARTBEAT_FREQUENCY, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180), \
            temporary_settings({PREFECT_FLOWS_HEARTBEAT_FREQUENCY: None}):
        yield


def gathered_newsletter(tmp_path: Path, site: SiteHost, store_url: str, people: int,
                        extra: str = "") -> tuple[Path, Store]:
    """The demo site gathered (in-process) into the store at ``store_url``, and ``people`` confirmed
    subscribers of `weekly`: a newsletter ready to send, for the crash and outage runs."""
    from feedletter.config import load_config
    from feedletter.runner import InProcess
    from feedletter.runs import gather_run
    from feedletter.schema import subscribers
    from feedletter.store import Store, now

    path = write_config(tmp_path, site, store=store_url, extra=extra)
    store = Store.open(load_config(path).store_url())
    gather_run(load_config(path), store, InProcess())
    stamp = now()
    with store.begin() as conn:
        conn.execute(subscribers.insert(), [
            {"newsletter": "weekly", "email": f"reader{i}@example.com", "name": f"Reader {i}", "status": "active",
             "created": stamp, "confirmed": stamp} for i in range(people)])
    return path, store

