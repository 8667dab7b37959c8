"""The worker-process pool the gather stage parses in."""

from __future__ import annotations

import os
import time

import pytest

from feedletter.spare import SPARE_NICENESS, SparePool, stopping
from feedletter.workers import CpuPool, default_processes, processes_for


def _pid(_: int) -> int:
    return os.getpid()


def _die_unless(parent: int) -> int:
    if os.getpid() != parent:
        os._exit(3)  # a worker killed mid-task, as the OOM killer would
    return parent


def test_calls_run_inline_until_enough_come_and_a_worker_is_ready() -> None:
    with CpuPool(2, after=3) as pool:
        pids = [pool.run(_pid, i) for i in range(4)]
        assert pool.started
        assert pids == [os.getpid()] * 4  # the fourth started the pool, and ran here while it started
        assert pool.wait_ready(60)
        later = [pool.run(_pid, i) for i in range(4)]
    assert os.getpid() not in later


def test_one_process_or_none_never_starts_a_pool() -> None:
    for processes in (0, 1):
        with CpuPool(processes, after=0) as pool:
            assert pool.run(_pid, 0) == os.getpid()
            assert not pool.started


def test_a_broken_pool_falls_back_to_running_inline(caplog: pytest.LogCaptureFixture) -> None:
    with CpuPool(2, after=0) as pool:
        pool.run(_pid, 0)
        assert pool.wait_ready(60)
        assert pool.run(_die_unless, os.getpid()) == os.getpid()
        assert pool.run(_die_unless, os.getpid()) == os.getpid()
    assert [r.message for r in caplog.records if "worker processes stopped" in r.message][:1]
    assert len([r for r in caplog.records if "worker processes stopped" in r.message]) == 1


def test_default_is_one_worker_per_cpu_or_none() -> None:
    assert default_processes() == 0 or default_processes() >= 2


def test_closing_while_the_pool_starts_leaves_no_workers() -> None:
    pool = CpuPool(2, after=0)
    assert pool.run(_pid, 0) == os.getpid()
    pool.close()
    assert not pool.wait_ready(0) and pool.run(_pid, 0) == os.getpid()


def test_an_unset_setting_means_the_default_and_a_set_one_is_kept() -> None:
    assert processes_for(None) == default_processes()
    assert processes_for(0) == 0 and processes_for(3) == 3


def _square_or_fail(i: int) -> int:
    if i % 10 == 7:
        raise ValueError(f"no {i}")
    return i * i


def test_submitted_calls_go_in_batches_and_each_gets_its_own_answer() -> None:
    with CpuPool(2, after=0, batch=3, max_waiting=4) as pool:
        pool.run(_pid, 0)
        assert pool.wait_ready(60)
        done: list[int] = []
        jobs = [pool.submit(_square_or_fail, i) for i in range(60)]
        for job in jobs:
            job.add_done_callback(lambda j: done.append(1))
        for i, job in enumerate(jobs):
            if i % 10 == 7:
                with pytest.raises(ValueError, match=f"no {i}"):
                    job.result()
            else:
                assert job.result() == i * i
        assert len(done) == 60  # once each, whichever thread finished the job
        assert os.getpid() not in {pool.run(_pid, i) for i in range(4)}


def test_calls_still_waiting_when_the_pool_closes_run_here() -> None:
    pool = CpuPool(2, after=0, batch=1, max_waiting=100)
    pool.run(_pid, 0)
    assert pool.wait_ready(60)
    jobs = [pool.submit(_pid, i) for i in range(40)]
    pool.close()
    assert all(job.result() > 0 for job in jobs)  # answered by a worker, or here after the close


def test_giving_memory_back_is_harmless() -> None:
    from feedletter.workers import give_back_memory

    held = [bytes(1000) for _ in range(10_000)]
    del held
    give_back_memory()
    give_back_memory()


def _nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpriority(os.PRIO_PROCESS, 0)


def _fail() -> None:
    raise ValueError("this call fails")


def test_spare_workers_run_at_low_priority_and_a_failed_call_gives_nothing() -> None:
    with SparePool(1) as pool:
        low = pool.submit(_nap, 0.0)
        failed = pool.submit(_fail)
        assert pool.wait(60)
    done = pool.done()
    assert done[low] == min(os.getpriority(os.PRIO_PROCESS, 0) + SPARE_NICENESS, 19)
    assert failed not in done


def test_stopping_spare_workers_drops_what_has_not_begun() -> None:
    pool = SparePool(1)
    first = pool.submit(_nap, 0.0)
    assert pool.wait(60)  # the worker is up before the rest are handed over
    calls = [pool.submit(_nap, 0.3) for _ in range(40)]  # 12 s, were they all run
    started = time.monotonic()
    pool.stop()
    assert time.monotonic() - started < 5  # only the one or two calls already running are waited for
    done = pool.done()
    assert first in done and len([c for c in calls if c in done]) <= 3
    assert pool.submit(_nap, 0.0) not in pool.done()  # after stop, a call is dropped, not run here


def _naps_until_stopped(count: int) -> list[int]:
    made = []
    for k in range(count):
        if stopping():
            break
        time.sleep(0.01)
        made.append(k)
    return made


def test_a_long_spare_call_stops_between_its_steps_and_keeps_what_it_made() -> None:
    pool = SparePool(1)
    assert not stopping()  # outside a spare worker: never
    long = pool.submit(_naps_until_stopped, 3000)  # 30 s, were it run to its end
    time.sleep(0.5)  # begun, and some steps made
    started = time.monotonic()
    pool.stop()
    assert time.monotonic() - started < 5
    made = pool.done()[long]
    assert 0 < len(made) < 3000 and made == list(range(len(made)))  # the first steps, in order


def test_spare_workers_that_cannot_start_drop_the_calls_and_stop_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_process(*args: object, **kwargs: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    pool = SparePool(1)
    monkeypatch.setattr(pool._pool, "submit", no_process)
    calls = [pool.submit(_nap, 0.0) for _ in range(3)]
    assert calls == [0, 1, 2] and pool.wait(1)
    pool.stop()
    assert pool.done() == {}


def test_a_pool_started_ahead_takes_calls_once_ready_whatever_after_says() -> None:
    with CpuPool(2, after=100) as pool:
        assert pool.run(_pid, 0) == os.getpid() and not pool.started  # one call of 100: inline
        pool.start()
        assert pool.started and pool.wait_ready(60)
        assert pool.run(_pid, 1) != os.getpid()
    for processes in (0, 1):  # no workers to start
        with CpuPool(processes, after=100) as pool:
            pool.start()
            assert not pool.started and pool.run(_pid, 0) == os.getpid()


def test_a_worker_freezes_what_it_was_forked_with() -> None:
    """The fork server's imports stay out of the collector's full passes (and their pages shared)."""
    import gc

    with CpuPool(2, after=0) as pool:
        pool.start()
        assert pool.wait_ready(60)
        assert pool.run(gc.get_freeze_count) > 1000
