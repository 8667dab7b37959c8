"""Which way a one-off command runs: a Prefect flow run when a Prefect API is configured, else in-process."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from feedletter.cli import app, runs
from feedletter.cli.runs import prefect_api_url
from feedletter.errors import DeliveryError, ParseError
from feedletter.runner import InProcess, Stage, io_stage
from feedletter.sitehost import SiteHost
from feedletter.store import Store
from tests.conftest import write_config

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def no_prefect(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("PREFECT_API_URL", "PREFECT_PROFILE", "PREFECT_PROFILES_PATH"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PREFECT_HOME", str(tmp_path / "prefect-home"))
    # Settings an earlier test loaded (its harness's server) are not this test's: read the profile.
    # Taking prefect.settings out of sys.modules instead made threads left by earlier tests import a
    # second, half-made copy, which this process then read (a CI failure).
    monkeypatch.setattr(runs, "_loaded_api_url_setting", lambda: None)
    return tmp_path / "prefect-home"


def test_the_api_comes_from_the_environment_or_the_active_profile(no_prefect: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    assert prefect_api_url() is None
    no_prefect.mkdir()
    (no_prefect / "profiles.toml").write_text(
        'active = "ops"\n[profiles.ops]\nPREFECT_API_URL = "http://prefect.internal:4200/api"\n'
        '[profiles.local]\n')
    assert prefect_api_url() == "http://prefect.internal:4200/api"
    monkeypatch.setenv("PREFECT_PROFILE", "local")
    assert prefect_api_url() is None
    monkeypatch.setenv("PREFECT_API_URL", "http://127.0.0.1:4200/api")
    assert prefect_api_url() == "http://127.0.0.1:4200/api"


def test_settings_another_thread_is_still_importing_count_as_not_loaded(tmp_path: Path) -> None:
    """A half-imported prefect.settings (no attributes yet) is passed over for the profile."""
    (tmp_path / "profiles.toml").write_text(
        'active = "ops"\n[profiles.ops]\nPREFECT_API_URL = "http://prefect.internal:4200/api"\n')
    probe = ("import sys, types\n"
             "sys.modules['prefect.settings'] = types.ModuleType('prefect.settings')\n"
             "from feedletter.cli.runs import prefect_api_url\n"
             "print(prefect_api_url())\n")
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                          env={**env, "PREFECT_HOME": str(tmp_path), "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "http://prefect.internal:4200/api"


def test_without_an_api_gather_runs_in_process_and_is_recorded(no_prefect: Path, tmp_path: Path,
                                                               site: SiteHost) -> None:
    del no_prefect
    path = write_config(tmp_path, site)
    result = CliRunner().invoke(app, ["gather", "--json", "--config", str(path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["fetched"] == 5
    assert "ran in-process (no Prefect API configured)" in result.stderr
    assert "prefect server start" in result.stderr
    store = Store.open(f"sqlite:///{tmp_path / 'feedletter.db'}")
    run = store.recent_runs(1)[0]
    store.close()
    assert (run["flow"], run["status"], run["mode"]) == ("gather", "completed", "in-process")
    status = CliRunner().invoke(app, ["status", "--config", str(path)])
    assert "completed" in status.stdout and "in-process" in status.stdout


def test_in_process_stages_retry_transient_errors_only() -> None:
    slept: list[float] = []
    runner = InProcess(logging.getLogger("test"), sleep=slept.append)
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise DeliveryError("a@example.com", "MAIL FROM refused: 421", transient=True)
        return "sent"

    assert runner.stage(io_stage("deliver", flaky, timeout=60)) == "sent"
    assert len(calls) == 3 and slept == [5.0, 30.0]

    def broken() -> None:
        calls.append(1)
        raise ParseError("feed", "not a feed")

    calls.clear()
    with pytest.raises(ParseError):
        runner.stage(io_stage("fetch", broken, timeout=60))
    assert len(calls) == 1
    calls.clear()
    with pytest.raises(DeliveryError):
        runner.stage(Stage("store", flaky))  # a store stage is not retried: a rerun is its retry
    assert len(calls) == 1


_HEAVY = ("numpy", "feedletter.ingest.entries", "feedletter.stories.stages", "feedparser", "lxml.etree")


def test_a_gather_with_nothing_new_loads_no_parsing_or_grouping_code(no_prefect: Path, tmp_path: Path,
                                                                     site: SiteHost) -> None:
    """Every feed answers 304: the parsers, numpy and the story stages (a third of a second) stay unloaded."""
    del no_prefect
    path = write_config(tmp_path, site)
    assert CliRunner().invoke(app, ["gather", "--json", "--config", str(path)]).exit_code == 0
    probe = ("import json, runpy, sys\n"
             f"sys.argv = ['feedletter', 'gather', '--json', '--config', {str(path)!r}]\n"
             "try:\n    runpy.run_module('feedletter.cli', run_name='__main__')\n"
             "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
             f"print(json.dumps(sorted(m for m in {_HEAVY!r} if m in sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert json.loads(lines[-2])["not_modified"] == 5  # the run's report, then the probe's line
    assert json.loads(lines[-1]) == []
