"""Runs killed with SIGKILL, rerun at once; two runs at once: the store's locks and the outbox.

Each test runs the real `feedletter` command in child processes, without a Prefect API (the
in-process path), against a real SMTP server on loopback, on SQLite and on PostgreSQL
(FEEDLETTER_TEST_DATABASE_URL, a fresh schema per test). Children are started in their own
session and stopped by PID; each test checks that nothing of theirs is left running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fixtures_delivery import each_once_but_the_one_on_the_wire, store_url

from feedletter.config import load_config
from feedletter.mailsink import MailSink, Received
from feedletter.schema import articles, locks, runs, sources
from feedletter.sitehost import SiteHost
from feedletter.store import Store
from tests.conftest import ROOT, gathered_newsletter, write_config

__all__ = ["store_url"]  # the sqlite/postgresql fixture, imported for pytest to find

PEOPLE = 2000
EXPECTED = json.loads((ROOT / "demo" / "expected.json").read_text())


def _env(tmp_path: Path, sink: MailSink | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(PYTHONPATH=str(ROOT), PREFECT_HOME=str(tmp_path / "prefect-home"))
    if sink is not None:
        env["FEEDLETTER_SMTP_URL"] = sink.url
    return env


class Command:
    """A `feedletter` child process in a session of its own, with its output in files."""

    def __init__(self, tmp_path: Path, name: str, args: list[str], env: dict[str, str],
                 prelude: str = "") -> None:
        self.out, self.err = tmp_path / f"{name}.out", tmp_path / f"{name}.err"
        code = f"{prelude}\nfrom feedletter.cli import main\nmain()"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.process = subprocess.Popen([sys.executable, "-c", code, *args], env=env, cwd=tmp_path,
                                            stdout=out, stderr=err, start_new_session=True)
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.process.pid

    def kill(self) -> None:
        os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def wait(self, timeout: float) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise

    @property
    def stderr(self) -> str:
        return self.err.read_text()

    @property
    def stdout(self) -> str:
        return self.out.read_text()


def _left_behind(session: int) -> list[int]:
    """Processes still in the session a killed command was started in (its children, orphaned)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == session and fields[0] not in ("Z", "X"):
            found.append(int(entry.name))
    return found


@pytest.fixture
def mail() -> Iterator[MailSink]:
    with MailSink() as sink:
        yield sink


def _newsletter(tmp_path: Path, site: SiteHost, url: str) -> tuple[Path, Store]:
    """The demo site gathered into the store at ``url``, and PEOPLE subscribers of `weekly`."""
    return gathered_newsletter(tmp_path, site, url, PEOPLE)


def _sending(tmp_path: Path, site: SiteHost, url: str, mail: MailSink,
             messages: int) -> tuple[Path, Store, dict[str, str], Command]:
    """A newsletter of PEOPLE, and a `feedletter digest` that has sent ``messages`` of them so far."""
    path, store = _newsletter(tmp_path, site, url)
    env = _env(tmp_path, mail)
    first = Command(tmp_path, "first", ["digest", "weekly", "--config", str(path)], env)
    _until(lambda: len(mail.received) >= messages, 120, f"{messages} messages")
    return path, store, env, first


def _until(check: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


def _each_once(sink: MailSink, *, killed: bool = False) -> dict[int, Counter[str]]:
    """Messages per issue and recipient: every subscriber got every issue once (after a kill, the
    message on the wire at that moment may come twice, see ``each_once_but_the_one_on_the_wire``).

    (A run finishes the issue a dead run left unsent, then makes the next issue if there are new
    stories: the demo site has more than one issue's worth.)
    """
    per_issue: dict[int, list[Received]] = {}
    for received in sink.received:
        per_issue.setdefault(int(received.message()["Message-ID"].split(".")[1]), []).append(received)
    counts = {issue: each_once_but_the_one_on_the_wire(got) for issue, got in per_issue.items()}
    for got in counts.values():
        assert len(got) == PEOPLE, len(got)
        assert killed or max(got.values()) == 1, [k for k, v in got.items() if v > 1][:5]
    assert sum(v - 1 for got in counts.values() for v in got.values()) <= 1
    return counts


@pytest.mark.slow
def test_digest_killed_mid_send_is_finished_at_once_by_the_next_run(
        tmp_path: Path, site: SiteHost, mail: MailSink, store_url: str) -> None:
    path, store, env, first = _sending(tmp_path, site, store_url, mail, 500)
    sending_500 = time.monotonic() - first.started
    first.kill()
    assert not _left_behind(first.pid)
    cut = len(mail.received)
    assert cut < PEOPLE

    again = Command(tmp_path, "again", ["digest", "weekly", "--json", "--config", str(path)], env)
    code = again.wait(timeout=60 + 3 * sending_500 + 60)
    took = time.monotonic() - again.started
    assert code == 0, again.stderr
    # At once: no waiting for the dead run's lock or leases, only the sending itself.
    assert took < 60 + (PEOPLE - cut) / 500 * sending_500, took
    print(f"\n{store_url.split(':')[0]}: killed after {cut} messages ({sending_500:.1f} s); the rerun took "
          f"{took:.1f} s for the remaining {PEOPLE - cut:,} and the next issue")
    assert "waiting for" not in again.stderr
    assert f"the previous digest run of weekly (pid {first.pid} on " in again.stderr
    sent_before = int(again.stderr.split(" died: ")[1].split(" sent")[0].replace(",", ""))
    assert abs(sent_before - cut) <= 1  # the dead run's last message may be on the wire at the kill
    assert f"{PEOPLE - sent_before:,} to go" in again.stderr
    issues = _each_once(mail, killed=True)
    report = json.loads(again.stdout.strip().splitlines()[-1])
    assert report["sent"] == PEOPLE - sent_before + PEOPLE * (len(issues) - 1)
    with store.begin() as conn:
        statuses = [r.status for r in conn.execute(sa.select(runs.c.status).where(runs.c.flow == "digest")
                                                   .order_by(runs.c.id))]
        assert statuses == ["died", "completed"]
        assert conn.execute(sa.select(sa.func.count()).select_from(locks)).scalar_one() == 0
        modes = set(conn.execute(sa.select(runs.c.mode)).scalars())
    assert modes == {"in-process"}
    assert not _left_behind(again.pid)
    store.close()


# Stops the store step inside its transaction, after the articles are written: the test kills it there.
_HOLD_IN_STORE = """
import os, time, feedletter.ingest.storing as g
_record = g.record_counts
def _held(conn, per_source):
    _record(conn, per_source)
    open(os.environ["HELD_MARKER"], "w").close()
    time.sleep(600)
g.record_counts = _held
"""


@pytest.mark.slow
def test_gather_killed_mid_store_leaves_nothing_partial_and_nothing_waiting(
        tmp_path: Path, site: SiteHost, store_url: str) -> None:
    path = write_config(tmp_path, site, store=store_url, extra="gather: {processes: 2}\n")
    store = Store.open(load_config(path).store_url())
    env = {**_env(tmp_path), "HELD_MARKER": str(tmp_path / "held")}
    first = Command(tmp_path, "first", ["gather", "--config", str(path)], env, prelude=_HOLD_IN_STORE)
    _until((tmp_path / "held").exists, 120, "the store step")
    first.kill()
    assert not _left_behind(first.pid)
    with store.begin() as conn:
        # Nothing partial: the articles went with the transaction, and so did the feeds' validators,
        # so the next run's conditional GETs fetch every feed in full again.
        assert conn.execute(sa.select(sa.func.count()).select_from(articles)).scalar_one() == 0
        assert not any(conn.execute(sa.select(sources.c.etag)).scalars())
        holder = conn.execute(sa.select(locks.c.pid)).scalar_one()
    assert holder == first.pid

    env.pop("HELD_MARKER")
    again = Command(tmp_path, "again", ["gather", "--json", "--config", str(path)], env)
    assert again.wait(timeout=120) == 0, again.stderr
    took = time.monotonic() - again.started
    assert took < 60
    print(f"\n{store_url.split(':')[0]}: gather killed mid-store; the rerun took {took:.1f} s")
    assert "waiting for" not in again.stderr
    assert f"the previous gather run (pid {first.pid} on " in again.stderr
    report = json.loads(again.stdout.strip().splitlines()[-1])
    assert report["new"] == sum(EXPECTED["entries"].values()) - report["repeated"] - report["carried"]
    assert report["fetched"] == len(EXPECTED["feeds"]) and report["not_modified"] == 0
    with store.begin() as conn:
        statuses = [r.status for r in conn.execute(sa.select(runs.c.status).order_by(runs.c.id))]
        stored = conn.execute(sa.select(sa.func.count()).select_from(articles)).scalar_one()
    assert statuses == ["died", "completed"] and stored == report["new"]
    assert not _left_behind(again.pid)
    store.close()


@pytest.mark.slow
def test_two_digests_of_one_newsletter_at_once_never_send_twice(
        tmp_path: Path, site: SiteHost, mail: MailSink, store_url: str) -> None:
    path, store, env, first = _sending(tmp_path, site, store_url, mail, 50)
    # One that will not wait exits at once, saying who holds the newsletter and with exit code 75.
    impatient = Command(tmp_path, "impatient", ["digest", "weekly", "--wait", "0", "--config", str(path)], env)
    assert impatient.wait(timeout=60) == 75
    assert f"the digest run of weekly is already running (pid {first.pid} on " in impatient.stderr
    # One that waits says for whom and for how long, and gives up with the same exit code.
    patient = Command(tmp_path, "patient", ["digest", "weekly", "--wait", "2", "--config", str(path)], env)
    assert patient.wait(timeout=60) == 75
    assert f"waiting for the digest run of weekly (pid {first.pid} on " in patient.stderr
    assert "giving up after 2 s" in patient.stderr and "gave up after 2 s" in patient.stderr
    assert first.wait(timeout=300) == 0, first.stderr
    assert list(_each_once(mail)) == [1]
    store.close()


_POOL_AT_WORK = """
import sys, time
from feedletter.workers import CpuPool
with CpuPool(2, after=0) as cpu:
    cpu.run(sum, [1, 2])
    while cpu._pool is None:
        time.sleep(0.05)
    jobs = [cpu.submit(time.sleep, 0.5) for _ in range(8)]
    print("working", flush=True)
    time.sleep(600)
"""


def test_worker_processes_do_not_outlive_a_killed_run(tmp_path: Path) -> None:
    run = subprocess.Popen([sys.executable, "-c", _POOL_AT_WORK], env=_env(tmp_path), cwd=tmp_path,
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    try:
        assert run.stdout is not None and run.stdout.readline().strip() == "working"
        assert len(_left_behind(run.pid)) >= 4  # the run, the fork server, its workers, the resource tracker
    finally:
        os.kill(run.pid, signal.SIGKILL)
        run.wait(timeout=30)
    try:
        _until(lambda: not _left_behind(run.pid), 10, "the workers to end")
    finally:
        for pid in _left_behind(run.pid):
            os.kill(pid, signal.SIGKILL)
