"""Deployments from sources.yaml: one gather deployment, one digest deployment per newsletter.

sources.yaml is the one source of their schedules, whichever way they run:

- ``feedletter serve`` registers them and runs their flow runs in its own process (``prefect.serve``);
- ``feedletter deploy --pool NAME`` registers them with a work pool, whose workers run them.

Either way the schedules are read from the config when the command runs: after editing sources.yaml,
restart serve or deploy again, and the deployments follow (a newsletter removed from the file has its
deployment deleted). A deployment carries its owner as a tag (``feedletter-serve`` or
``feedletter-pool:NAME``), and neither command replaces a deployment another one owns: it refuses and
names the owner. A work pool's runs find sources.yaml at run time, under ``$FEEDLETTER_HOME`` on the
worker (else the worker's working directory), not at the path it had where ``deploy`` ran.

Schedules only fire on a real Prefect API (``prefect server start`` or Prefect Cloud): with the
ephemeral in-process server nothing runs them, so both refuse to start without PREFECT_API_URL.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from feedletter.config import Config
from feedletter.errors import ConfigError

if TYPE_CHECKING:
    from prefect.deployments.runner import RunnerDeployment

SERVE_TAG = "feedletter-serve"
POOL_TAG = "feedletter-pool:"  # + the pool's name
GATHER_DEPLOYMENT = "gather"


def gather_schedule(config: Config) -> tuple[timedelta | None, str | None, str]:
    """(interval, cron, timezone) of the gather deployment: a cron if set, else the interval."""
    g = config.gather
    if g.schedule is not None:
        return None, g.schedule.cron, g.schedule.timezone
    return timedelta(minutes=g.interval_minutes), None, "UTC"


def build_deployments(config: Config, config_path: str, owner: str = SERVE_TAG) -> list[RunnerDeployment]:
    """The deployments ``serve`` (or ``deploy``, with its pool's ``owner`` tag) registers: schedules,
    parameters and tags, nothing started."""
    return [_sync(d) for d in _deployments(config, config_path, owner)]


def _sync(value: object) -> RunnerDeployment:
    # to_deployment answers with a coroutine only inside an event loop; serve and tests call it outside.
    from prefect.deployments.runner import RunnerDeployment

    assert isinstance(value, RunnerDeployment)
    return value


def _deployments(config: Config, config_path: str, owner: str) -> list[object]:
    from prefect.schedules import Cron, Interval
    from prefect.types.entrypoint import EntrypointType

    from feedletter_flows.digest import digest_flow
    from feedletter_flows.gather import gather_flow

    interval, cron, timezone = gather_schedule(config)
    gather_schedule_obj = Cron(cron, timezone=timezone) if cron else Interval(interval or timedelta(hours=1))
    deployments: list[object] = [gather_flow.to_deployment(
        GATHER_DEPLOYMENT, schedules=[gather_schedule_obj], parameters={"config_path": config_path},
        tags=["feedletter", owner, "gather"], description="Fetch every due source and group new stories.",
        entrypoint_type=EntrypointType.MODULE_PATH)]
    for newsletter in config.newsletters:
        tags = ["feedletter", owner, f"newsletter:{newsletter.name}"]
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


def _owner(tags: list[str]) -> str | None:
    return next((tag for tag in tags if tag == SERVE_TAG or tag.startswith(POOL_TAG)), None)


def _described(owner: str) -> str:
    return "`feedletter serve`" if owner == SERVE_TAG else f"work pool {owner[len(POOL_TAG):]!r} (`feedletter deploy`)"


def claim_deployments(config: Config, owner: str) -> list[str]:
    """Check that no other owner holds the deployments ``owner`` is about to register, and delete the
    digest deployments ``owner`` made for newsletters no longer in sources.yaml (their names).

    Raises ConfigError naming the other owner: two ways of running one deployment would fight over
    its schedule, the last to register winning it.
    """
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    wanted = {("gather", GATHER_DEPLOYMENT), *(("digest", n.name) for n in config.newsletters)}
    removed = []
    with get_client(sync_client=True) as client:
        flows = {f.id: f.name for f in client.read_flows(flow_filter=FlowFilter(
            name=FlowFilterName(any_=["gather", "digest"])))}
        found = client.read_deployments(flow_filter=FlowFilter(name=FlowFilterName(any_=["gather", "digest"])))
        for deployment in found:
            key = (flows.get(deployment.flow_id, ""), deployment.name)
            held_by = _owner(list(deployment.tags or []))
            if key in wanted and held_by is not None and held_by != owner:
                raise ConfigError(
                    f"deploy: {key[0]}/{key[1]} belongs to {_described(held_by)}; stop that and delete the "
                    f"deployment (`prefect deployment delete {key[0]}/{key[1]}`) before {_described(owner)} "
                    "takes it over")
        for deployment in found:
            key = (flows.get(deployment.flow_id, ""), deployment.name)
            if key[0] == "digest" and key not in wanted and _owner(list(deployment.tags or [])) == owner:
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
    claim_deployments(config, SERVE_TAG)
    prefect_serve(*build_deployments(config, config_path), limit=limit)


def deploy(config: Config, pool: str) -> list[RunnerDeployment]:
    """Register the deployments with work pool ``pool``; the deployments registered.

    Their ``config_path`` is the config's file name, which the flow looks up under
    ``$FEEDLETTER_HOME`` on the worker at run time (see :func:`feedletter_flows.common.open_project`).
    """
    from prefect.deployments.runner import deploy as prefect_deploy

    check_api()
    owner = POOL_TAG + pool
    claim_deployments(config, owner)
    deployments = build_deployments(config, Path(config._path).name, owner)
    try:
        prefect_deploy(*deployments, work_pool_name=pool, build=False, push=False, print_next_steps_message=False)
    except ValueError as exc:  # the pool does not exist, most often
        raise ConfigError(f"deploy: {exc}") from None
    return deployments
