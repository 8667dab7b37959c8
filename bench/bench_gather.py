"""Gather speed against rss2email 3.14 on the loopback feed farm (../shared/bench).

Starts ../shared/bench/feedfarm.py, warms it (the farm builds each feed on its first request),
then times feedletter's gather work in-process — the library code the gather flow's tasks run:
fetch + parse + dedupe + store (``gather.fetch_sources``, which also computes each article's
near-duplicate signature, and ``gather.store_entries``): the issue's measure, and the ratio's. The
same-story grouping after it (``stories.group``) is printed beside it, with a second ratio that
counts it too, and summarizing, the flow's next stage, apart — on a first run (everything new)
and a second run (every feed answers 304). rss2email runs on the same farm program with the same
parameters through ../shared/bench/peer_rss2email.sh, in the same bench run, so the ratios compare
like with like. Last, feedletter's time on the ``--teaser`` farm, with full-text extraction.

Each feedletter measurement runs in a child process so that its peak memory (ru_maxrss) is its own.

    python bench/bench_gather.py                 # 500 feeds x 20 items, the issue's target
    python bench/bench_gather.py --feeds 50      # quick mode
    python bench/bench_gather.py --no-peer --no-teaser
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "bench"
PEER_VENV = ROOT / "build" / ".peer"
TARGET = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Farm:
    """feedfarm.py in a child process, warmed before anything is timed."""

    def __init__(self, feeds: int, items: int, *, teaser: bool = False) -> None:
        self.port = free_port()
        self.feeds, self.items = feeds, items
        args = [sys.executable, str(SHARED / "feedfarm.py"), "--feeds", str(feeds), "--items", str(items),
                "--port", str(self.port)] + (["--teaser"] if teaser else [])
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Farm:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(self.base + "/feeds.txt", timeout=5) as response:
                    self.urls = response.read().decode().split()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.close()
                    raise SystemExit("bench_gather: the feed farm did not start") from None
                time.sleep(0.2)
        with ThreadPoolExecutor(4) as pool:  # warm: not timed, as peer_rss2email.sh does
            list(pool.map(lambda u: urllib.request.urlopen(u, timeout=60).read(), self.urls))
        return self

    def hits(self) -> str:
        with urllib.request.urlopen(self.base + "/hits", timeout=5) as response:
            return str(response.read().decode())

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(10)

    def __exit__(self, *exc: object) -> None:
        self.close()


def ensure_peer() -> Path | None:
    """The rss2email venv under build/, created when missing; None (with a message) if it cannot be."""
    if (PEER_VENV / "bin" / "r2e").exists():
        return PEER_VENV
    print(f"bench_gather: creating the rss2email venv in {PEER_VENV} ...", flush=True)
    try:
        subprocess.run(["python3", "-m", "venv", str(PEER_VENV)], check=True, capture_output=True)
        subprocess.run([str(PEER_VENV / "bin" / "pip"), "install", "-q", "rss2email==3.14", "aiosmtpd"],
                       check=True, capture_output=True, timeout=600)
    except (OSError, subprocess.SubprocessError) as exc:
        print(f"bench_gather: skipping rss2email: cannot create its venv ({exc.__class__.__name__})")
        return None
    return PEER_VENV


def run_peer(feeds: int, items: int) -> dict[str, float] | None:
    venv = ensure_peer()
    if venv is None:
        return None
    script = SHARED / "peer_rss2email.sh"
    out = subprocess.run(["bash", str(script), str(venv), str(feeds), str(items)], capture_output=True,
                         text=True, timeout=3600)
    match = re.search(r"first_run_s=([\d.]+) second_run_s=([\d.]+)", out.stdout)
    if not match:
        print(f"bench_gather: rss2email run gave no timing: {out.stdout.strip()} {out.stderr.strip()[-300:]}")
        return None
    print("   ", out.stdout.strip())
    return {"first": float(match.group(1)), "second": float(match.group(2))}


def run_child(urls: list[str], *, full_text: bool, runs: int, concurrency: int | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-gather-") as tmp:
        listing = Path(tmp) / "feeds.txt"
        listing.write_text("\n".join(urls))
        args = [sys.executable, __file__, "--child", str(listing), "--runs", str(runs)]
        if full_text:
            args.append("--full-text")
        if concurrency is not None:
            args += ["--concurrency", str(concurrency)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        out = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"bench_gather: feedletter run failed:\n{out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def child(listing: Path, *, full_text: bool, runs: int, concurrency: int | None) -> None:
    """Time the gather stages in this process and print one JSON line."""
    sys.path.insert(0, str(ROOT))
    from feedletter.config import Config
    from feedletter.ingest import gather
    from feedletter.store import Store
    from feedletter.stories import stages as stories

    urls = listing.read_text().split()
    config = Config.model_validate({
        "store": f"sqlite:///{listing.parent / 'bench.db'}", "allow_private": True,
        "gather": {"concurrency": concurrency} if concurrency else {},
        "sources": [{"name": f"feed-{i}", "url": u, "full_text": "auto" if full_text else "never"}
                    for i, u in enumerate(urls)]})
    store = Store.open(config.store_url())
    timings = []
    for _ in range(runs):
        stages: dict[str, float] = {}
        started = mark = time.perf_counter()
        with gather.make_fetcher(config) as fetcher:
            results = gather.fetch_sources(config, store, fetcher)
            stages["fetch_parse"], mark = time.perf_counter() - mark, time.perf_counter()
            counts = gather.store_entries(config, store, results)
            stages["store"], mark = time.perf_counter() - mark, time.perf_counter()
            if full_text:
                extracted = gather.extract_articles(config, store, fetcher)
                stages["extract"], mark = time.perf_counter() - mark, time.perf_counter()
        cpu = time.process_time()
        grouped = stories.group(config, store)
        stages["group"] = time.perf_counter() - mark
        group_cpu = time.process_time() - cpu
        total = time.perf_counter() - started
        mark, cpu = time.perf_counter(), time.process_time()
        summarized, _ = stories.summarize(config, store)  # the flow's next stage, reported apart
        summarize_s = time.perf_counter() - mark
        summarize_cpu = time.process_time() - cpu
        timings.append({
            "total": total, "gather": total - stages["group"], "stages": stages,
            "ok": sum(r.status == "ok" for r in results),
            "not_modified": sum(r.status == "not_modified" for r in results),
            "errors": sum(r.status == "error" for r in results),
            "new": len(counts.new_ids), "duplicates": counts.duplicates,
            "extracted": extracted.extracted if full_text else 0, "stories": grouped.new_stories,
            "summarize": summarize_s, "summarized": summarized,
            # This process's CPU time in each (worker processes' not counted): a check on noise.
            "group_cpu": group_cpu, "summarize_cpu": summarize_cpu})
    store.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"runs": timings, "peak_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--no-peer", action="store_true", help="skip rss2email")
    parser.add_argument("--no-teaser", action="store_true", help="skip the --teaser farm")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="gather.concurrency for feedletter (default: the config default)")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--full-text", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, full_text=args.full_text, runs=args.runs, concurrency=args.concurrency)
        return
    if not (SHARED / "feedfarm.py").exists():
        print(f"bench_gather: skipped: {SHARED / 'feedfarm.py'} is absent")
        return
    print(f"== gather: {args.feeds} feeds x {args.items} items on loopback ==", flush=True)
    peer = None if args.no_peer else run_peer(args.feeds, args.items)
    with Farm(args.feeds, args.items) as farm:
        ours = run_child(farm.urls, full_text=False, runs=2, concurrency=args.concurrency)
        hits = farm.hits()
    first, second = ours["runs"]
    for label, run in (("first run ", first), ("second run", second)):
        stages = " ".join(f"{k}={v:.2f}s" for k, v in run["stages"].items())
        print(f"feedletter {label}: gather {run['gather']:.2f}s (+ group {run['stages']['group']:.2f}s "
              f"= {run['total']:.2f}s)  [{stages}] ok={run['ok']} 304={run['not_modified']} "
              f"errors={run['errors']} new={run['new']} dup={run['duplicates']} stories={run['stories']}; "
              f"then summarize {run['summarize']:.2f}s ({run['summarized']} stories); this process's CPU: "
              f"group {run['group_cpu']:.2f}s, summarize {run['summarize_cpu']:.2f}s")
    print(f"feedletter peak memory (ru_maxrss, both runs): {ours['peak_mb']:.0f} MB; farm hits {hits}")
    if peer:
        for label, theirs, run in (("first run ", peer["first"], first), ("second run", peer["second"], second)):
            # The measure: fetch + parse + dedupe + store. Parsing computes each article's
            # near-duplicate signature, so that is in it; same-story grouping (the flow's next stage,
            # which also matches the near-duplicates) is shown beside it.
            ratio, with_group = theirs / run["gather"], theirs / run["total"]
            verdict = "meets" if ratio >= TARGET else "MISSES"
            print(f"ratio {label}: rss2email {theirs:.2f}s / feedletter gather work {run['gather']:.2f}s = "
                  f"{ratio:.1f}x ({verdict} the {TARGET:g}x target); with grouping {run['total']:.2f}s = "
                  f"{with_group:.1f}x")
    if not args.no_teaser:
        with Farm(args.feeds, args.items, teaser=True) as farm:
            teaser = run_child(farm.urls, full_text=True, runs=1, concurrency=args.concurrency)
        run = teaser["runs"][0]
        stages = " ".join(f"{k}={v:.2f}s" for k, v in run["stages"].items())
        print(f"feedletter --teaser farm with full text: {run['total']:.2f}s [{stages}] new={run['new']} "
              f"extracted={run['extracted']} stories={run['stories']}; peak {teaser['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
