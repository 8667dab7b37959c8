"""`feedletter serve`: the deployments it builds from sources.yaml, and what a real server keeps of them."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from feedletter.config import load_config
from feedletter.sitehost import SiteHost
from tests.conftest import ROOT, write_config

NEWSLETTERS = """\
  - name: daily
    title: Daily
    schedule: {cron: '30 6 * * *', timezone: America/New_York}
    from: 'Daily <daily@example.com>'
    provider: file
  - name: adhoc
    title: Ad hoc
    from: 'Ad hoc <adhoc@example.com>'
    provider: file
"""


def _config_text(path: Path, *, gather: str = "", newsletters: str = NEWSLETTERS) -> Path:
    text = path.read_text()
    text = text.replace("newsletters:\n", "newsletters:\n" + newsletters, 1)
    path.write_text(text + gather)
    return path


def test_deployments_carry_schedules_parameters_and_tags(tmp_path: Path, site: SiteHost) -> None:
    from feedletter_flows.serve import build_deployments

    path = _config_text(write_config(tmp_path, site), gather="gather: {interval_minutes: 20}\n")
    config = load_config(path)
    built = {d.name: d for d in build_deployments(config, str(path))}
    assert set(built) == {"gather", "weekly", "daily", "adhoc"}

    gather = built["gather"]
    assert gather.flow_name == "gather" and gather.parameters == {"config_path": str(path)}
    assert gather.schedules[0].schedule.interval == timedelta(minutes=20)
    assert gather.entrypoint == "feedletter_flows.gather.gather_flow"

    weekly = built["weekly"]
    assert weekly.flow_name == "digest"
    assert weekly.parameters == {"newsletter": "weekly", "config_path": str(path)}
    assert weekly.schedules[0].schedule.cron == "0 8 * * MON"
    assert weekly.schedules[0].schedule.timezone == "Europe/Berlin"
    assert "newsletter:weekly" in weekly.tags and "newsletter:daily" in built["daily"].tags
    assert built["daily"].schedules[0].schedule.timezone == "America/New_York"
    assert built["adhoc"].schedules == []  # no schedule: runs only when asked
    # Parameters are paths and names only: nothing secret reaches Prefect.
    for deployment in built.values():
        assert set(deployment.parameters) <= {"config_path", "newsletter"}


def test_gather_cron_replaces_the_interval(tmp_path: Path, site: SiteHost) -> None:
    from feedletter_flows.serve import build_deployments

    path = write_config(tmp_path, site, extra="gather: {schedule: {cron: '*/15 * * * *', timezone: Europe/Paris}}\n")
    gather = build_deployments(load_config(path), str(path))[0]
    assert gather.schedules[0].schedule.cron == "*/15 * * * *"
    assert gather.schedules[0].schedule.timezone == "Europe/Paris"


def test_serve_refuses_the_ephemeral_server(tmp_path: Path, site: SiteHost) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
    env.update(PYTHONPATH=str(ROOT), PREFECT_HOME=str(tmp_path / "home"))
    path = write_config(tmp_path, site)
    done = subprocess.run([sys.executable, "-m", "feedletter.cli", "serve", "--config", str(path)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "prefect server start" in done.stderr and "Traceback" not in done.stderr


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    from feedletter_flows.localserver import LocalPrefectServer

    with LocalPrefectServer(tmp_path_factory.mktemp("prefect-server")) as server:
        yield server


def _served(api_url: str) -> dict[str, object]:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: api_url}), get_client(sync_client=True) as client:
        return {d.name: d for d in client.read_deployments()}


@pytest.mark.slow
def test_real_serve_registers_and_restart_applies_edits(prefect_server: object, tmp_path: Path,
                                                         site: SiteHost) -> None:
    """Start `feedletter serve` against `prefect server start`, edit sources.yaml, restart: it follows."""
    from feedletter_flows.localserver import LocalPrefectServer

    assert isinstance(prefect_server, LocalPrefectServer)
    path = _config_text(write_config(tmp_path, site))
    env = {**prefect_server.env, "PYTHONPATH": str(ROOT)}

    def daily_schedule(found: dict[str, object]) -> list[tuple[str, str]]:
        return [(s.schedule.cron, s.schedule.timezone) for s in found["daily"].schedules]  # type: ignore[attr-defined]

    def serve_until(expected: set[str], schedule: tuple[str, str]) -> dict[str, object]:
        process = subprocess.Popen([sys.executable, "-m", "feedletter.cli", "serve", "--config", str(path)],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                found = _served(prefect_server.api_url)
                if set(found) == expected and daily_schedule(found) == [schedule]:
                    return found
                assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
                time.sleep(1)
            raise AssertionError(f"served {sorted(found)} {daily_schedule(found)}, wanted {sorted(expected)}")
        finally:
            process.terminate()
            process.wait(timeout=30)

    first = serve_until({"gather", "weekly", "daily", "adhoc"}, ("30 6 * * *", "America/New_York"))
    daily = first["daily"]
    assert daily.parameters == {"newsletter": "daily", "config_path": str(path)}  # type: ignore[attr-defined]

    # The operator moves the daily issue to 07:00 Berlin time and drops the ad-hoc newsletter.
    text = path.read_text().replace("'30 6 * * *', timezone: America/New_York", "'0 7 * * *', timezone: Europe/Berlin")
    path.write_text(text.replace("  - name: adhoc\n    title: Ad hoc\n    from: 'Ad hoc <adhoc@example.com>'\n"
                                 "    provider: file\n", ""))
    second = serve_until({"gather", "weekly", "daily"}, ("0 7 * * *", "Europe/Berlin"))
    assert "newsletter:daily" in second["daily"].tags  # type: ignore[attr-defined]
