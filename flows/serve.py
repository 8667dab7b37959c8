"""Deployments from sources.yaml: one gather deployment, one digest deployment per newsletter.

``feedletter serve`` builds them and serves them from this process (``prefect.serve``); the same
flows can instead be deployed to a work pool with ``prefect deploy`` and the top-level prefect.yaml.
Schedules are read from the config at start: after editing sources.yaml, restart serve and the
deployments are updated (a newsletter removed from the file has its served deployment deleted).

Schedules only fire on a real Prefect API (``prefect server start`` or Prefect Cloud): with the
ephemeral in-process server nothing runs them, so serve refuses to start without PREFECT_API_URL.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from feedletter.config import Config
from feedletter.errors import ConfigError

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

SERVE_TAG = "feedletter-serve"
GATHER_DEPLOYMENT = "gather"


def gather_schedule(config: Config) -> tuple[timedelta | None, str | None, str]:
    """(interval, cron, timezone) of the gather deployment: a cron if set, else the interval."""
    g = config.gather
    if g.schedule is not None:
        return None, g.schedule.cron, g.schedule.timezone
    return timedelta(minutes=g.interval_minutes), None, "UTC"


def build_deployments(config: Config, config_path: str) -> list[RunnerDeployment]:
    """The deployments ``serve`` registers: schedules, parameters and tags, nothing started."""
    return [_sync(d) for d in _deployments(config, config_path)]


def _sync(value: object) -> RunnerDeployment:
    # to_deployment answers with a coroutine only inside an event loop; serve and tests call it outside.
    from prefect.deployments.runner import RunnerDeployment

    assert isinstance(value, RunnerDeployment)
    return value


def _deployments(config: Config, config_path: str) -> list[object]:
    from prefect.schedules import Cron, Interval
    from prefect.types.entrypoint import EntrypointType

    from feedletter_flows.digest import digest_flow
    from feedletter_flows.gather import gather_flow

    interval, cron, timezone = gather_schedule(config)
    gather_schedule_obj = Cron(cron, timezone=timezone) if cron else Interval(interval or timedelta(hours=1))
    deployments: list[object] = [gather_flow.to_deployment(
        GATHER_DEPLOYMENT, schedules=[gather_schedule_obj], parameters={"config_path": config_path},
        tags=["feedletter", SERVE_TAG, "gather"], description="Fetch every due source and group new stories.",
        entrypoint_type=EntrypointType.MODULE_PATH)]
    for newsletter in config.newsletters:
        tags = ["feedletter", SERVE_TAG, f"newsletter:{newsletter.name}"]
        if newsletter.schedule is None:
            # No schedule: still deployed, so that operators can run it from the UI or by API.
            schedules = []
        else:
            schedules = [Cron(newsletter.schedule.cron, timezone=newsletter.schedule.timezone)]
        deployments.append(digest_flow.to_deployment(
            newsletter.name, schedules=schedules, tags=tags,
            parameters={"newsletter": newsletter.name, "config_path": config_path},
            description=f"Send the next issue of {newsletter.title}.",
            entrypoint_type=EntrypointType.MODULE_PATH))
    return deployments


def remove_stale(config: Config) -> list[str]:
    """Delete served digest deployments whose newsletter left sources.yaml; return their names."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags, FlowFilter, FlowFilterName

    wanted = {n.name for n in config.newsletters}
    removed = []
    with get_client(sync_client=True) as client:
        found = client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=["digest"])),
                                        deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(
                                            all_=[SERVE_TAG])))
        for deployment in found:
            if deployment.name not in wanted:
                client.delete_deployment(deployment.id)
                removed.append(deployment.name)
    return removed


def check_api() -> str:
    """The API URL serve will register with; ConfigError when only the ephemeral server is there."""
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    if not url:
        raise ConfigError("serve: schedules need a Prefect server: run `prefect server start` and set "
                          "PREFECT_API_URL=http://127.0.0.1:4200/api (or use Prefect Cloud)")
    return str(url)


def serve(config: Config, config_path: str, *, limit: int | None = None) -> None:
    """Register the deployments and run their scheduled flow runs until interrupted."""
    from prefect import serve as prefect_serve

    check_api()
    remove_stale(config)
    prefect_serve(*build_deployments(config, config_path), limit=limit)
