"""Grouping and summarizing alone, on a store filled once from the loopback feed farm.

``bench_gather.py`` times the whole gather; this one repeats only its last two stages
(``stories.group``, then ``stories.summarize``) on a copy of a store that the farm filled once and
that is kept under build/ (``--rebuild`` fills it again), so that the two can be timed, compared
and profiled without fetching 500 feeds each time. Each run works on a fresh copy of that store,
in a child process of its own, so that its peak memory (ru_maxrss) is its own.

    python bench/bench_stories.py                      # 500 feeds x 20 items, one run
    python bench/bench_stories.py --feeds 50 --runs 3
    python bench/bench_stories.py --profile /tmp/prof  # cProfile of each stage to /tmp/prof.{group,summarize}
    python bench/bench_stories.py --dump out.json      # stories and summaries, to compare two versions
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "bench-stories"


def _config(db: Path, urls: list[str]) -> Any:
    from feedletter.config import Config

    return Config.model_validate({
        "store": f"sqlite:///{db}", "allow_private": True,
        "sources": [{"name": f"feed-{i}", "url": u, "full_text": "never"} for i, u in enumerate(urls)]})


def fill(feeds: int, items: int) -> Path:
    """The cached store of the farm's articles, fetched and stored but not grouped."""
    db = CACHE / f"farm-{feeds}x{items}.db"
    listing = db.with_suffix(".txt")
    if db.exists() and listing.exists():
        return db
    sys.path.insert(0, str(ROOT / "bench"))
    from bench_gather import Farm

    from feedletter.ingest import gather
    from feedletter.store import Store

    CACHE.mkdir(parents=True, exist_ok=True)
    db.unlink(missing_ok=True)
    with Farm(feeds, items) as farm:
        config = _config(db, farm.urls)
        store = Store.open(config.store_url())
        with gather.make_fetcher(config) as fetcher:
            results = gather.fetch_sources(config, store, fetcher)
            gather.store_entries(config, store, results)
        store.close()
    listing.write_text("\n".join(farm.urls))
    return db


def child(db: Path, profile: str | None, dump: str | None) -> None:
    """Group and summarize on ``db`` (a copy) in this process; print one JSON line."""
    sys.path.insert(0, str(ROOT))
    import sqlalchemy as sa

    from feedletter.schema import articles
    from feedletter.schema import stories as stories_table
    from feedletter.store import Store
    from feedletter.stories import stages as stories

    config = _config(db, db.with_suffix(".txt").read_text().split())
    store = Store.open(config.store_url())
    # In a gather, the fetch stage has started the fork server already (worker processes parse
    # feeds): start it the same way, untimed, so that the stages here pay what they pay there.
    from feedletter.workers import CpuPool, processes_for

    with CpuPool(processes_for(config.gather.processes), after=0, preload=["feedletter.ingest.entries"]) as cpu:
        cpu.run(int)
        cpu.wait_ready(60)
    timings: dict[str, float] = {}
    outcome: dict[str, Any] = {}
    drafts: dict[str, str] = {}  # the group stage's summaries made ahead, for the summarize stage
    for stage in ("group", "summarize"):
        run = (lambda: stories.group(config, store)) if stage == "group" else (
            lambda: stories.summarize(config, store, drafts))  # noqa: B023 - called in this round
        if profile:
            import cProfile

            profiler = cProfile.Profile()
            started = time.perf_counter()
            result = profiler.runcall(run)
            timings[stage] = time.perf_counter() - started
            profiler.dump_stats(f"{profile}.{stage}")
        else:
            started, cpu = time.perf_counter(), time.process_time()
            result = run()
            timings[stage] = time.perf_counter() - started
            timings[f"{stage}_cpu"] = time.process_time() - cpu
        if stage == "group":
            drafts = result.drafts
            outcome[stage] = {**{k: v for k, v in result.__dict__.items() if k != "drafts"}, "drafted": len(drafts)}
        else:
            outcome[stage] = list(result)
    if dump:
        with store.begin() as conn:
            rows = conn.execute(sa.select(articles.c.key, articles.c.story_id, articles.c.duplicate_of)
                                .order_by(articles.c.id)).all()
            story_rows = conn.execute(sa.select(stories_table.c.id, stories_table.c.lead_id,
                                                stories_table.c.summary).order_by(stories_table.c.id)).all()
        Path(dump).write_text(json.dumps({
            "articles": [list(r) for r in rows], "stories": [list(r) for r in story_rows]}))
    store.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"timings": timings, "outcome": outcome, "peak_mb": peak_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--rebuild", action="store_true", help="fill the cached store again from the farm")
    parser.add_argument("--profile", help="write cProfile stats of each stage to PREFIX.group / PREFIX.summarize")
    parser.add_argument("--dump", help="write the stories and summaries of the (last) run to this JSON file")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.profile, args.dump)
        return
    if args.rebuild:
        shutil.rmtree(CACHE, ignore_errors=True)
    source = fill(args.feeds, args.items)
    print(f"== group + summarize: {args.feeds} feeds x {args.items} items (store {source}) ==", flush=True)
    for k in range(args.runs):
        with tempfile.TemporaryDirectory(prefix="bench-stories-") as tmp:
            db = Path(tmp) / "bench.db"
            shutil.copy(source, db)
            shutil.copy(source.with_suffix(".txt"), db.with_suffix(".txt"))
            cmd = [sys.executable, __file__, "--child", str(db)]
            if args.profile:
                cmd += ["--profile", args.profile]
            if args.dump:
                cmd += ["--dump", str(Path(args.dump).resolve())]
            out = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp, timeout=3600,
                                 env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
        if out.returncode != 0:
            raise SystemExit(f"bench_stories: the run failed:\n{out.stderr[-3000:]}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        t = result["timings"]
        cpu = (f" (this process's CPU: group {t['group_cpu']:.2f}s, summarize {t['summarize_cpu']:.2f}s)"
               if "group_cpu" in t else "")
        print(f"run {k + 1}: group {t['group']:.2f}s + summarize {t['summarize']:.2f}s = "
              f"{t['group'] + t['summarize']:.2f}s{cpu}; {result['outcome']}; peak {result['peak_mb']:.0f} MB",
              flush=True)


if __name__ == "__main__":
    main()
