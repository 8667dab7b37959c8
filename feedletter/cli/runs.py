"""Running the flows: ``gather`` and ``digest`` once; ``serve`` or ``deploy --pool`` on their schedules.

A one-off run is a Prefect flow run when a Prefect API is configured, and runs in this process
(recorded in the store) when none is. Prefect is imported only then: ``validate``, ``parse`` and
friends start in a fraction of a second.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from feedletter.cli.common import ConfigOpt, config_file, open_store
from feedletter.config import Config, load_config
from feedletter.runreport import counted
from feedletter.store import Store

if TYPE_CHECKING:
    from feedletter.issue.digest import Finding
    from feedletter.runreport import DigestReport, GatherReport, WarningGroups

WaitOpt = Annotated[float, typer.Option("--wait", min=0, help="seconds to wait for a run already holding "
                                       "the lock before giving up with exit code 75")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the run's report as one JSON object")]
DEFAULT_WAIT = 600.0

IN_PROCESS_HINT = ("ran in-process (no Prefect API configured) and recorded in the store: see `feedletter "
                   "status`. For the Prefect UI: `prefect server start`, then export "
                   "PREFECT_API_URL=http://127.0.0.1:4200/api")

Advance = Callable[[int], None]
Report = TypeVar("Report", "GatherReport", "DigestReport")


def prefect_api_url() -> str | None:
    """The Prefect API a run would report to, found without importing Prefect (~2.5 s).

    The environment first, then Prefect's settings if this process already loaded them (a test
    harness, an embedding program), then the active profile of Prefect's profiles file.
    """
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    setting = _loaded_api_url_setting()
    if setting is not None:
        value = setting.value()
        return str(value) if value else None
    import tomllib

    home = Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser()
    path = Path(os.environ.get("PREFECT_PROFILES_PATH", home / "profiles.toml")).expanduser()
    try:
        profiles = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or profiles.get("active", "ephemeral")
    value = profiles.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(value) if value else None


def _loaded_api_url_setting() -> Any:
    """Prefect's API URL setting if this process has Prefect's settings loaded, fully; else None.

    A module another thread is still importing is in ``sys.modules`` without its attributes yet:
    that counts as not loaded, and the profile is read instead.
    """
    return getattr(sys.modules.get("prefect.settings"), "PREFECT_API_URL", None)


def prepare_prefect() -> None:
    # Measured here: the ephemeral server misses Prefect's 20 s default start limit on a busy machine.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


@contextmanager
def _in_process_logging() -> Iterator[None]:
    """Warnings of a run without Prefect go to stderr as they happen (waits, take-overs, failures)."""
    logger = logging.getLogger("feedletter")
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(logging.DEBUG if os.environ.get("FEEDLETTER_DEBUG") else logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


@contextmanager
def _grouped() -> Iterator[WarningGroups]:
    """Warnings that name a cause (a source or page that failed), kept for one line per cause after
    the run; the others (a wait for a lock, a take-over) were already shown as they happened."""
    from feedletter.runreport import WarningGroups

    groups = WarningGroups()
    groups.addFilter(lambda record: "cause" in record.__dict__)
    with groups.attached(quiet=True):
        yield groups


def _print_report(report: GatherReport | DigestReport, as_json: bool, warnings: list[str]) -> None:
    """The run's summary line (or, with --json, its report) on stdout; its warnings, grouped, on stderr."""
    typer.echo(json.dumps(report.to_json(), default=str) if as_json else report.line())
    for warning in warnings:
        typer.echo(warning, err=True)


def _run_once(config_path: str, label: str, total: int, unit: str, *,
              load_flow: Callable[[], Callable[[Advance], Report]],
              in_process: Callable[[Config, Store, Advance], Report], as_json: bool) -> None:
    """Run a gather or digest once: as a Prefect flow run when a Prefect API is configured, else here.

    ``load_flow`` imports the flow (and so sets up Prefect's logging) before the progress bar
    starts, so that Prefect's log lines are printed above the bar; it returns the call to make.
    """
    from feedletter.progress import report_progress

    if prefect_api_url():
        prepare_prefect()
        run_flow = load_flow()
        with report_progress(label, total, unit=unit) as advance, _grouped() as warnings:
            report = run_flow(advance)
        _print_report(report, as_json, warnings.lines())
        return
    from feedletter.runs import open_config

    run_cfg, store = open_config(config_path)
    try:
        with _in_process_logging(), report_progress(label, total, unit=unit) as advance, _grouped() as warnings:
            report = in_process(run_cfg, store, advance)
    finally:
        store.close()
    _print_report(report, as_json, warnings.lines())
    typer.echo(IN_PROCESS_HINT, err=True)


def gather(
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="only this source (repeatable)")] = None,
    as_json: JsonOpt = False,
    wait: WaitOpt = DEFAULT_WAIT,
    config: ConfigOpt = None,
) -> None:
    """Run the gather flow once: fetch, store, extract, group and summarize.

    With a Prefect API configured it runs as a Prefect flow run; without one, in this process.
    """
    from feedletter.ingest.gather import start_parsing_early, wanted_sources
    from feedletter.runner import InProcess
    from feedletter.runs import gather_run

    cfg = load_config(config)
    start_parsing_early(cfg, source or ())
    total = len(wanted_sources(cfg, source or ()))
    flow_config = config_file(cfg)

    def load_flow() -> Callable[[Advance], GatherReport]:
        from feedletter_flows.common import one_shot_flow
        from feedletter_flows.gather import gather_flow

        def run(advance: Advance) -> GatherReport:
            with one_shot_flow():
                report: GatherReport = gather_flow(config_path=flow_config, sources=source or None, progress=advance)
            return report

        return run

    _run_once(flow_config, "gather", total, "sources", load_flow=load_flow, as_json=as_json,
              in_process=lambda run_cfg, store, advance: gather_run(
                  run_cfg, store, InProcess(), sources=source or None, progress=advance, wait=wait))


def digest(
    newsletter: Annotated[str, typer.Argument(help="the newsletter's name in sources.yaml")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="render only: write files, send nothing")] = False,
    out: Annotated[Path, typer.Option("--out", help="where --dry-run writes its files")] = Path("out"),
    as_json: JsonOpt = False,
    wait: WaitOpt = DEFAULT_WAIT,
    config: ConfigOpt = None,
) -> None:
    """Run the digest flow once (or, with --dry-run, write what it would send).

    With a Prefect API configured it runs as a Prefect flow run; without one, in this process.
    """
    cfg = load_config(config)
    target = cfg.newsletter(newsletter)
    if dry_run:
        from feedletter.issue.digest import findings, write_preview
        from feedletter.issue.preview import issue_message, next_issue

        with open_store(cfg) as store:
            prepared = next_issue(cfg, store, target)
        for path in write_preview(prepared, out, issue_message(cfg, prepared, target)):
            typer.echo(str(path))
        _print_findings(findings(prepared, target))
        return
    from feedletter.deliver.outbox import deliveries
    from feedletter.runner import InProcess
    from feedletter.runs import digest_run
    from feedletter.subscribers import listing

    with open_store(cfg) as store:
        # Recipients, not attempts: the messages an earlier issue still owes (sent first), and the new issue's.
        messages = sum(person.status == "active" for person in listing(store, newsletter))
        messages += sum(d.to_go for d in deliveries(store, newsletter=target.name, recent=0))
    flow_config = config_file(cfg)

    def load_flow() -> Callable[[Advance], DigestReport]:
        from feedletter_flows.digest import digest_flow

        def run(advance: Advance) -> DigestReport:
            report: DigestReport = digest_flow(newsletter=newsletter, config_path=flow_config, progress=advance)
            return report

        return run

    _run_once(flow_config, f"digest {newsletter}", messages, "messages", load_flow=load_flow, as_json=as_json,
              in_process=lambda run_cfg, store, advance: digest_run(
                  run_cfg, store, InProcess(), newsletter, progress=advance, wait=wait))


def _print_findings(found: list[Finding]) -> None:
    """``pre-send checks: 5 passed, 1 warning``, then a line per check; said also when all pass."""
    counts = Counter(f.outcome for f in found)
    parts = [f"{counts['pass']} passed"] + [counted(counts[o], noun) for o, noun in
                                             (("warn", "warning"), ("fail", "failure"), ("off", "check off"))
                                             if counts[o]]
    verdict = " (a real send would stop here)" if counts["fail"] else ""
    typer.echo(f"pre-send checks: {', '.join(parts)}{verdict}")
    width = max(len(f.check) for f in found)
    for f in found:
        typer.echo(f"  {f.outcome:<4}  {f.check:<{width}}  {f.detail}")


def serve(
    limit: Annotated[int | None, typer.Option(help="most flow runs at once in this process")] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the gather deployment and each newsletter's digest deployment on their schedules."""
    cfg = load_config(config)
    prepare_prefect()
    from feedletter_flows.serve import serve as serve_deployments

    serve_deployments(cfg, config_file(cfg), limit=limit)


def deploy(
    pool: Annotated[str, typer.Option("--pool", help="the Prefect work pool whose workers run the flows")],
    config: ConfigOpt = None,
) -> None:
    """Create or update the work pool's deployments from sources.yaml: gather and one digest per newsletter."""
    cfg = load_config(config)
    prepare_prefect()
    from feedletter_flows.serve import deploy as deploy_to_pool

    for deployment in deploy_to_pool(cfg, pool):
        flow = "gather" if deployment.name == "gather" and "gather" in deployment.tags else "digest"
        when = ", ".join(_schedule_text(s.schedule) for s in deployment.schedules) or "no schedule (run by hand)"
        typer.echo(f"{flow}/{deployment.name}: {when}")
    typer.echo(f"next: on each machine, FEEDLETTER_HOME=<the folder with {Path(cfg._path).name}> "
               f"prefect worker start --pool {pool}")


def _schedule_text(schedule: object) -> str:
    cron = getattr(schedule, "cron", None)
    if cron:
        return f"cron {cron} ({getattr(schedule, 'timezone', None) or 'UTC'})"
    interval = getattr(schedule, "interval", None)
    return f"every {interval}" if interval is not None else str(schedule)

