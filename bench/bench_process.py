"""`feedletter gather` as a whole process, the way an operator's cron runs it, beside rss2email.

Starts the feed farm (../shared/bench), writes a sources.yaml listing every farm feed, and times
the command twice per mode: first run (everything new: fetch, store, group, summarize) and second run
(every feed answers 304). Two modes, each on a fresh store:

- ``in-process``: no Prefect API configured (the default for a one-off command): no server at all;
- ``prefect``: a running `prefect server start` (its own PREFECT_HOME, SQLite) and PREFECT_API_URL.

Each run's wall time is broken into interpreter start, imports and work (the run's own ``seconds``),
and its peak memory is the largest sum of PSS (proportional set size: shared pages split between
the processes sharing them) over the command's whole process tree, sampled every 100 ms, worker
processes included; the RSS sum, which counts shared pages once per process, is printed beside it.
rss2email runs on the same farm in the same bench run when its
venv is available (bench_gather.py creates it).

    python bench/bench_process.py                 # 500 feeds x 20 items, the issue's target
    python bench/bench_process.py --feeds 100 --no-peer --modes in-process
Targets (issue 16): in-process first run >= 1.5x faster than rss2email's first run; second run no
slower than its second; peak memory under 400 MB.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "bench"
PEER_VENV = ROOT / "build" / ".peer"
sys.path.insert(0, str(ROOT))

from bench_gather import Farm  # noqa: E402  (the same warmed feed farm as the in-process bench)

from feedletter_flows.localserver import LocalPrefectServer  # noqa: E402


def _tree_memory(session: int) -> tuple[int, int]:
    """Bytes of (RSS, PSS) summed over every process in ``session`` (the command and its workers).

    RSS counts a page shared by the fork server's workers once in each of them; PSS splits it
    between them, so the PSS sum is the memory the tree really holds.
    """
    rss = pss = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[3]) != session:
                continue
            rss += int(fields[21]) * PAGE
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            continue
    return rss, pss


PAGE = os.sysconf("SC_PAGE_SIZE")


def _seconds(args: list[str], env: dict[str, str], cwd: Path, *,
             sample: bool = False) -> tuple[float, str, tuple[int, int]]:
    """Wall time, stdout and, when ``sample``, peak (RSS, PSS) in bytes of the whole process tree of
    one command."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=err, start_new_session=True)
        peak_rss = peak_pss = 0
        if not sample:
            process.wait()
        while process.poll() is None:
            rss, pss = _tree_memory(process.pid)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.1)
        elapsed = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if process.returncode != 0:
        raise SystemExit(f"bench_process: {' '.join(args[-4:])} failed:\n{stderr[-3000:]}")
    return elapsed, stdout, (peak_rss, peak_pss)


def _peer(feeds: int, items: int, use: bool) -> dict[str, float] | None:
    if not use:
        return None
    if not (PEER_VENV / "bin" / "r2e").exists():
        try:  # bench_gather.py knows how to build the rss2email venv
            sys.path.insert(0, str(ROOT / "bench"))
            from bench_gather import ensure_peer  # type: ignore[import-not-found]

            ensure_peer()
        except ImportError:
            pass
    if not (PEER_VENV / "bin" / "r2e").exists():
        print(f"bench_process: rss2email skipped (no venv at {PEER_VENV})")
        return None
    out = subprocess.run(["bash", str(SHARED / "peer_rss2email.sh"), str(PEER_VENV), str(feeds), str(items)],
                         capture_output=True, text=True, timeout=3600)
    match = re.search(r"first_run_s=([\d.]+) second_run_s=([\d.]+)", out.stdout)
    if not match:
        print(f"bench_process: rss2email gave no timing: {out.stdout.strip()[-300:]} {out.stderr.strip()[-300:]}")
        return None
    return {"first": float(match.group(1)), "second": float(match.group(2))}


def _mode(mode: str, farm: Farm, tmp: Path, env: dict[str, str], rounds: int = 1,
          peer: Callable[[], dict[str, float] | None] | None = None) -> dict[str, Any]:
    """The first and second run's times, from passes of their own; their peak memory from another.

    Reading every process's smaps_rollup ten times a second costs CPU that the command, on two
    cores, would miss (0.4-0.6 s of a first run here), and rss2email's runs are timed without
    it: so the timed runs are not sampled, and a last pass on a fresh store samples them. With
    ``rounds`` > 1, each round times both runs on a fresh store and then, with ``peer``, rss2email's,
    so that the two programs meet the same spells of a busy machine; the median round is reported.
    """
    python = sys.executable
    result: dict[str, Any] = {}
    start, _, _ = _seconds([python, "-c", "pass"], env, tmp)
    imports, _, _ = _seconds([python, "-c", "import feedletter.cli, feedletter.runs"], env, tmp)
    result["python_start"], result["import"] = round(start, 2), round(imports - start, 2)
    command = [python, "-m", "feedletter.cli", "gather", "--json", "--config", "sources.yaml"]
    result["rounds"] = []
    for r in range(rounds):
        timed: dict[str, Any] = {}
        home = _home(tmp / f"{mode}-{r}", farm)
        for run in ("first", "second"):
            total, out, _ = _seconds(command, env, home)
            report = json.loads(out.strip().splitlines()[-1])
            work = float(report["seconds"])
            timed[run] = {"total": round(total, 2), "work": round(work, 2),
                          "overhead": round(total - work - imports, 2),
                          "fetched": report["fetched"], "not_modified": report["not_modified"],
                          "new": report["new"], "stories": report["stories_new"],
                          "stages": report.get("stage_seconds", {})}
        timed["rss2email"] = peer() if peer is not None else None
        if timed["rss2email"]:
            timed["speedup_first"] = round(timed["rss2email"]["first"] / timed["first"]["total"], 2)
            timed["ratio_second"] = round(timed["second"]["total"] / timed["rss2email"]["second"], 2)
        print(f"feedletter gather, {mode}, round {r + 1} of {rounds}: first {timed['first']['total']} s, "
              f"second {timed['second']['total']} s; rss2email: {timed['rss2email']}", flush=True)
        result["rounds"].append(timed)
    ranked = sorted(result["rounds"], key=lambda t: t.get("speedup_first", -t["first"]["total"]))
    median = ranked[(rounds - 1) // 2]  # the lower middle: of two rounds, the worse
    result.update(first=dict(median["first"]), second=dict(median["second"]), rss2email=median["rss2email"])
    sampled = _home(tmp / f"{mode}-memory", farm)
    for run in ("first", "second"):
        _, _, peak = _seconds(command, env, sampled, sample=True)
        result[run].update(peak_mb=round(peak[1] / 2**20), peak_rss_sum_mb=round(peak[0] / 2**20))
        print(f"feedletter gather, {mode} ({run} run, the median round): {result[run]}", flush=True)
    return result


def _home(home: Path, farm: Farm) -> Path:
    """A directory with a sources.yaml listing every farm feed and a store of its own."""
    home.mkdir()
    lines = [f"store: sqlite:///{home / 'bench.db'}", "allow_private: true", "sources:"]
    lines += [f"  - {{name: feed-{i}, url: '{u}'}}" for i, u in enumerate(farm.urls)]
    (home / "sources.yaml").write_text("\n".join(lines) + "\n")
    return home


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="in-process rounds, each beside a rss2email one")
    parser.add_argument("--no-peer", action="store_true")
    parser.add_argument("--modes", nargs="+", default=["in-process", "prefect"], choices=["in-process", "prefect"])
    opts = parser.parse_args()
    if not (SHARED / "feedfarm.py").exists():
        print(f"bench_process: skipped: {SHARED} is absent")
        return 0
    results: dict[str, Any] = {"feeds": opts.feeds, "items": opts.items}
    # Both programs run as installed: pip compiles a package's bytecode when it installs it (the peer's
    # venv has it), while this source tree has none where PYTHONDONTWRITEBYTECODE is set (as on the
    # machines these figures come from), and every command would compile its ~110 modules again
    # (0.13 s of each start here).
    for package in ("feedletter", "flows"):
        compileall.compile_dir(ROOT / package, quiet=1)
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    base.update(PYTHONPATH=str(ROOT), FEEDLETTER_SECRET="bench-only-secret-0123456789")

    def peer() -> dict[str, float] | None:
        return _peer(opts.feeds, opts.items, not opts.no_peer)

    with tempfile.TemporaryDirectory(prefix="bench-process-") as tmp_name:
        tmp = Path(tmp_name)
        with Farm(opts.feeds, opts.items) as farm:
            if "in-process" in opts.modes:
                # A PREFECT_HOME of its own: no profile, so no Prefect API, as on a fresh machine.
                env = {**base, "PREFECT_HOME": str(tmp / "no-prefect")}
                results["in-process"] = _mode("in-process", farm, tmp, env, max(opts.rounds, 1), peer)
            if "prefect" in opts.modes:
                with LocalPrefectServer(tmp / "prefect-home") as server:
                    env = {**base, **{k: v for k, v in server.env.items() if k.startswith("PREFECT_")}}
                    results["prefect"] = _mode("prefect", farm, tmp, env)
    # The Prefect mode is reported beside the in-process mode's median rss2email round.
    ours = results.get("in-process", {})
    results["rss2email"] = ours.get("rss2email") if ours else peer()
    peer_times = results["rss2email"]
    for mode in opts.modes:
        ours = results[mode]
        if peer_times:
            ours["speedup_first"] = round(peer_times["first"] / ours["first"]["total"], 2)
            ours["ratio_second"] = round(ours["second"]["total"] / peer_times["second"], 2)
        ours["peak_mb"] = max(ours["first"]["peak_mb"], ours["second"]["peak_mb"])
    if peer_times and "in-process" in opts.modes:
        ours = results["in-process"]
        results["target_met"] = ours["speedup_first"] >= 1.5 and ours["ratio_second"] <= 1 and ours["peak_mb"] < 400
        rounds = ours["rounds"]
        print("\n| round | rss2email first / second s | feedletter first / second s | first run | second run |")
        print("|---|---|---|---|---|")
        for r, t in enumerate(rounds, 1):
            if t["rss2email"]:
                print(f"| {r} | {t['rss2email']['first']:.2f} / {t['rss2email']['second']:.2f} | "
                      f"{t['first']['total']:.2f} / {t['second']['total']:.2f} | {t['speedup_first']}x faster | "
                      f"{t['ratio_second']}x |")
    print("\n| mode | first run s | second run s | peak MB (PSS) | first vs rss2email | second vs rss2email |")
    print("|---|---|---|---|---|---|")
    if peer_times:
        print(f"| rss2email 3.14 | {peer_times['first']:.2f} | {peer_times['second']:.2f} | | 1.00 | 1.00 |")
    for mode in opts.modes:
        ours = results[mode]
        print(f"| feedletter {mode} | {ours['first']['total']:.2f} | {ours['second']['total']:.2f} | "
              f"{ours['peak_mb']} | {ours.get('speedup_first', '-')}x faster | {ours.get('ratio_second', '-')}x |")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
