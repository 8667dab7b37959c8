"""Scale-out: Prefect server on PostgreSQL, a process work pool, two workers, the store on PostgreSQL.

Deployments come from sources.yaml through `feedletter deploy --pool`, as an operator would make them;
the workers find the project under FEEDLETTER_HOME at run time. One gather run and two digest runs
at once through the deployments; then: every feed fetched once, every subscriber mailed exactly once,
artifacts present. Every process started is stopped by PID.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feedletter import subscribers
from feedletter.config import load_config
from feedletter.mailsink import MailSink
from feedletter.sitehost import SiteHost
from feedletter.store import Store
from tests.conftest import DEMO_SOURCES, ROOT, SECRET, postgres_url, write_config

pytestmark = [pytest.mark.slow, pytest.mark.postgres,
              pytest.mark.skipif(postgres_url() is None,
                                 reason="needs PostgreSQL: set FEEDLETTER_TEST_DATABASE_URL")]
PREFECT_DB, STORE_DB = "feedletter_prefect_test", "feedletter_scaleout_test"
READERS = 5


def _fresh_database(name: str) -> str:
    """Drop and create database ``name`` beside the test database; return its SQLAlchemy URL (psycopg)."""
    import psycopg
    import sqlalchemy as sa

    base = sa.engine.make_url(postgres_url() or "")
    conninfo = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


def _stop(started: list[subprocess.Popen[bytes]]) -> None:
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for process in started:
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    _stop(started)  # a worker whose server is gone takes its whole 20 s to stop: the test stops them first


def _wait(client: Any, run_ids: list[Any], timeout: float = 240) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = [client.read_flow_run(i) for i in run_ids]
        if all(r.state is not None and r.state.is_final() for r in runs):
            return runs
        time.sleep(1)
    raise AssertionError(f"flow runs not finished: {[(r.name, r.state_name) for r in runs]}")


def test_two_workers_share_the_work_and_send_once(tmp_path: Path, site: SiteHost, sink: MailSink,
                                                  processes: list[subprocess.Popen[bytes]]) -> None:
    from prefect.client.orchestration import get_client
    from prefect.deployments import run_deployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from feedletter_flows.localserver import LocalPrefectServer, prefect_command

    started = time.monotonic()
    prefect_db = _fresh_database(PREFECT_DB).replace("postgresql+psycopg", "postgresql+asyncpg")
    store_url = _fresh_database(STORE_DB)
    path = write_config(tmp_path, site, store=store_url)
    path.write_text(path.read_text().replace("max_stories: 10", "max_stories: 50"))
    store = Store.open(load_config(path).store_url())
    for i in range(READERS):
        subscribers.add(store, "weekly", f"reader{i}@example.com")

    with LocalPrefectServer(tmp_path / "prefect", database_url=prefect_db) as server:
        env = {**server.env, "PYTHONPATH": str(ROOT), "FEEDLETTER_HOME": str(tmp_path),
               "FEEDLETTER_SMTP_URL": sink.url, "FEEDLETTER_SECRET": SECRET}
        subprocess.run([*prefect_command(), "work-pool", "create", "feedletter", "--type", "process"],
                       env=env, check=True, capture_output=True, timeout=120)
        deployed = subprocess.run([sys.executable, "-m", "feedletter.cli", "deploy", "--pool", "feedletter",
                                   "--config", str(path)], cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=180)
        assert deployed.returncode == 0, deployed.stdout[-2000:] + deployed.stderr[-2000:]
        for n in (1, 2):
            log = (tmp_path / f"worker{n}.log").open("wb")
            processes.append(subprocess.Popen(
                [*prefect_command(), "worker", "start", "--pool", "feedletter", "--type", "process",
                 "--name", f"worker-{n}"], env=env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))
        ready = time.monotonic()

        with temporary_settings({PREFECT_API_URL: server.api_url}), get_client(sync_client=True) as client:
            names = {d.name for d in client.read_deployments()}
            assert names == {"gather", "weekly"}
            gather = run_deployment("gather/gather", timeout=0)  # sources.yaml, found under FEEDLETTER_HOME
            [gathered] = _wait(client, [gather.id])
            assert gathered.state.is_completed(), gathered.state.message
            digests = [run_deployment("digest/weekly", timeout=0) for _ in range(2)]
            done = _wait(client, [d.id for d in digests])
            assert all(r.state.is_completed() for r in done), [r.state.message for r in done]
            keys = {a.key for a in client.read_artifacts()}
            finished = time.monotonic()
        _stop(processes)  # while their server still answers

    for _, feed_path, _ in DEMO_SOURCES:
        assert site.hits[f"/{feed_path}"] == 1, feed_path
    received = [m.recipients[0] for m in sink.received]
    assert sorted(received) == sorted(f"reader{i}@example.com" for i in range(READERS))
    assert {"feed-health", "digest-weekly"} <= keys
    runs = [r for r in store.recent_runs(10) if r["flow"] == "digest"]
    assert sorted(r["status"] for r in runs) == ["completed", "skipped"]
    a, b = sorted(runs, key=lambda r: r["started"])
    assert a["finished"] <= b["started"]  # the concurrency limit kept them apart
    store.close()
    print(f"\nscale-out: set-up {ready - started:.1f} s, runs {finished - ready:.1f} s, "
          f"total {time.monotonic() - started:.1f} s")
