"""`feedletter deploy --pool`: work-pool deployments from sources.yaml, the one source of their schedules."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from feedletter.cli import app
from feedletter.config import load_config
from feedletter.errors import ConfigError

CONFIG = """store: sqlite:///{store}
sources:
  - {{name: town, url: 'https://town.example/feed.xml'}}
gather: {{schedule: {{cron: '*/30 * * * *', timezone: UTC}}}}
newsletters:
  - name: weekly
    title: Weekly
    schedule: {{cron: '{cron}', timezone: Europe/Berlin}}
  - name: daily
    title: Daily
    schedule: {{cron: '0 7 * * *', timezone: Europe/Berlin}}
"""


def _schedules(client: object, name: str) -> list[tuple[str, str]]:
    deployment = client.read_deployment_by_name(name)  # type: ignore[attr-defined]
    return [(s.schedule.cron, s.schedule.timezone) for s in deployment.schedules]


def test_deploy_to_a_work_pool_follows_sources_yaml(prefect_harness: None, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from feedletter_flows.serve import SERVE_TAG, build_deployments, claim_deployments

    path = tmp_path / "sources.yaml"
    path.write_text(CONFIG.format(store=tmp_path / "f.db", cron="0 8 * * MON"))
    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="mail", type="process"))
        run = CliRunner().invoke(app, ["deploy", "--pool", "mail", "--config", str(path)])
        assert run.exit_code == 0, run.output
        assert "digest/weekly: cron 0 8 * * MON (Europe/Berlin)" in run.output
        assert _schedules(client, "digest/weekly") == [("0 8 * * MON", "Europe/Berlin")]
        assert _schedules(client, "gather/gather") == [("*/30 * * * *", "UTC")]
        weekly = client.read_deployment_by_name("digest/weekly")
        assert weekly.work_pool_name == "mail" and weekly.parameters["config_path"] == "sources.yaml"

        # An edited cron reaches the pool by deploying again; a newsletter taken out loses its deployment.
        text = CONFIG.format(store=tmp_path / "f.db", cron="30 9 * * FRI")
        path.write_text(text[:text.index("  - name: daily")])
        run = CliRunner().invoke(app, ["deploy", "--pool", "mail", "--config", str(path)])
        assert run.exit_code == 0, run.output
        assert _schedules(client, "digest/weekly") == [("30 9 * * FRI", "Europe/Berlin")]
        assert {d.name for d in client.read_deployments()} == {"gather", "weekly"}

        # serve cannot take the pool's deployments over, nor the other way round: each names the owner.
        config = load_config(path)
        with pytest.raises(ConfigError, match=r"/(gather|weekly) belongs to work pool 'mail'"):
            claim_deployments(config, SERVE_TAG)
        run = CliRunner().invoke(app, ["deploy", "--pool", "other", "--config", str(path)])
        assert run.exit_code != 0 and "belongs to work pool 'mail'" in str(run.exception)
        for deployment in client.read_deployments():
            client.delete_deployment(deployment.id)
        for deployment in build_deployments(config, str(path)):
            deployment.apply()  # what serve registers
        run = CliRunner().invoke(app, ["deploy", "--pool", "mail", "--config", str(path)])
        assert run.exit_code != 0 and "belongs to `feedletter serve`" in str(run.exception)
        for deployment in client.read_deployments():
            client.delete_deployment(deployment.id)


def test_a_worker_finds_the_project_under_feedletter_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from feedletter_flows.common import open_project

    (tmp_path / "sources.yaml").write_text(CONFIG.format(store=tmp_path / "f.db", cron="0 8 * * MON"))
    monkeypatch.chdir(Path("/"))
    monkeypatch.setenv("FEEDLETTER_HOME", str(tmp_path))
    config, store = open_project("sources.yaml")
    store.close()
    assert [n.name for n in config.newsletters] == ["weekly", "daily"]
