"""`feedletter gather` as a whole process against a running `prefect server start`, beside rss2email.

Starts a Prefect server (its own PREFECT_HOME, SQLite) and the feed farm (../shared/bench), writes a
sources.yaml listing every farm feed, then times the command an operator's cron would run, twice:
first run (everything new) and second run (every feed answers 304). The wall time of each process
is broken into interpreter start, imports (feedletter + Prefect), flow overhead (API round trips,
task runs, artifact) and work (the gather stages, as the flow reports them). rss2email runs on the
same farm in the same bench run when its venv is available (bench_gather.py creates it).

    python bench/bench_process.py                 # 500 feeds x 20 items, the issue's target
    python bench/bench_process.py --feeds 100 --no-peer
Target: first run >= 3x faster than rss2email's first run; second run no slower than its second.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "bench"
PEER_VENV = ROOT / "build" / ".peer"
sys.path.insert(0, str(ROOT))

from bench_gather import Farm  # noqa: E402  (the same warmed feed farm as the in-process bench)

from flows.localserver import LocalPrefectServer  # noqa: E402


def _seconds(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    started = time.perf_counter()
    out = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=1800)
    elapsed = time.perf_counter() - started
    if out.returncode != 0:
        raise SystemExit(f"bench_process: {' '.join(args[-4:])} failed:\n{out.stderr[-3000:]}")
    return elapsed, out.stdout


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--no-peer", action="store_true")
    opts = parser.parse_args()
    if not (SHARED / "feedfarm.py").exists():
        print(f"bench_process: skipped: {SHARED} is absent")
        return 0
    results: dict[str, Any] = {"feeds": opts.feeds, "items": opts.items}
    with tempfile.TemporaryDirectory(prefix="bench-process-") as tmp_name:
        tmp = Path(tmp_name)
        with LocalPrefectServer(tmp / "prefect") as server, Farm(opts.feeds, opts.items) as farm:
            lines = [f"store: sqlite:///{tmp / 'bench.db'}", "allow_private: true", "sources:"]
            lines += [f"  - {{name: feed-{i}, url: '{u}'}}" for i, u in enumerate(farm.urls)]
            (tmp / "sources.yaml").write_text("\n".join(lines) + "\n")
            env = {**server.env, "PYTHONPATH": str(ROOT), "FEEDLETTER_SECRET": "bench-only-secret-0123456789"}
            python = sys.executable
            results["python_start"], _ = _seconds([python, "-c", "pass"], env, tmp)
            results["import"], _ = _seconds([python, "-c", "import feedletter.cli, flows.gather"], env, tmp)
            results["import"] -= results["python_start"]
            for run in ("first", "second"):
                total, out = _seconds([python, "-m", "feedletter.cli", "gather", "--config", "sources.yaml"], env,
                                      tmp)
                report = json.loads(out.strip().splitlines()[-1])
                work = float(report["seconds"])
                results[run] = {"total": round(total, 2), "work": round(work, 2),
                                "flow_overhead": round(total - work - results["import"] - results["python_start"],
                                                       2),
                                "fetched": report["fetched"], "not_modified": report["not_modified"],
                                "new": report["new"]}
                print(f"feedletter gather ({run} run): {results[run]}", flush=True)
    peer = _peer(opts.feeds, opts.items, not opts.no_peer)
    results["rss2email"] = peer
    if peer:
        results["speedup_first"] = round(peer["first"] / results["first"]["total"], 2)
        results["ratio_second"] = round(results["second"]["total"] / peer["second"], 2)
        results["target_met"] = results["speedup_first"] >= 3 and results["ratio_second"] <= 1
    results["python_start"] = round(results["python_start"], 2)
    results["import"] = round(results["import"], 2)
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
