"""Run parse_feed over the real-world feeds in ../shared/corpus/feeds and report what happened.

For every file: did it parse, how many entries (against the manifest's item count), which error,
how long it took (best of three) and which engine read it; once with the fast path and once
with feedparser only. Each file is parsed in a child process with a time limit, so a hang shows
up as a timeout instead of stopping the run.

    python bench/eval_feeds.py [--corpus ../shared/corpus] [--limit SECONDS] [-v]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import multiprocessing
import sys
import time
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feedletter.errors import ParseError  # noqa: E402
from feedletter.ingest.parse.feeds import parse_feed  # noqa: E402

NOW = datetime(2030, 1, 1, tzinfo=UTC)  # fixed, so that no corpus date counts as "future"


@dataclass
class Outcome:
    entries: int = 0
    error: str = ""
    seconds: float = 0.0
    dated: int = 0
    titled: int = 0
    linked: int = 0
    prints: list[str] = field(default_factory=list)  # one digest of all fields per entry
    fallback: str = ""  # why feedparser read it instead of the fast engine


class _Fallbacks(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.reasons: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.reasons.append(record.getMessage().split(": feedparser takes over: ", 1)[-1])


def _parse_child(path: str, fast: bool, conn: Connection) -> None:
    data = Path(path).read_bytes()
    url = "https://corpus.invalid/" + Path(path).name
    fallbacks = _Fallbacks()
    engine_log = logging.getLogger("feedletter.ingest.parse.xml_feeds")
    engine_log.setLevel(logging.DEBUG)
    engine_log.addHandler(fallbacks)
    try:
        best = float("inf")
        for _ in range(3):  # the best of three: one cold run says more about the machine
            t0 = time.perf_counter()
            feed = parse_feed(data, url=url, source="corpus", now=NOW, fast=fast)
            best = min(best, time.perf_counter() - t0)
        out = Outcome(len(feed.entries), "", best,
                      sum(e.published != NOW for e in feed.entries),
                      sum(bool(e.title) for e in feed.entries),
                      sum(e.link.startswith(("http://", "https://")) for e in feed.entries),
                      [hashlib.sha1(repr(astuple(e)).encode()).hexdigest() for e in feed.entries])
    except ParseError as exc:
        out = Outcome(0, str(exc))
    except Exception as exc:  # a crash is exactly what this script is looking for
        out = Outcome(0, f"CRASH {type(exc).__name__}: {exc}")
    out.fallback = fallbacks.reasons[0] if fallbacks.reasons else ""
    conn.send(out)
    conn.close()


def run_one(path: Path, *, fast: bool, limit: float) -> Outcome:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_parse_child, args=(str(path), fast, child))
    proc.start()
    child.close()
    if parent.poll(limit):
        outcome: Outcome = parent.recv()
    else:
        outcome = Outcome(0, f"TIMEOUT after {limit:.0f} s", limit)
    proc.kill()
    proc.join()
    return outcome


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", default=str(ROOT / ".." / "shared" / "corpus"))
    ap.add_argument("--limit", type=float, default=10.0, help="seconds allowed per file")
    ap.add_argument("-v", "--verbose", action="store_true", help="one line per file")
    args = ap.parse_args()
    feeds = Path(args.corpus) / "feeds"
    if not feeds.is_dir():
        print("skipped: corpus absent")
        return 0
    manifest_path = feeds / "manifest.json"
    manifest = {m["file"]: m for m in json.loads(manifest_path.read_text())} if manifest_path.exists() else {}
    files = sorted(p for p in feeds.rglob("*") if p.is_file() and p.name != "manifest.json")

    rows = []
    for path in files:
        rel = path.relative_to(feeds).as_posix()
        fast = run_one(path, fast=True, limit=args.limit)
        slow = run_one(path, fast=False, limit=args.limit)
        rows.append((rel, manifest.get(rel, {}), fast, slow))

    if args.verbose:
        print(f"{'file':52} {'format':7} {'items':>5} {'fast':>5} {'fp':>5} {'ms':>7}  error")
        for rel, m, fast, slow in rows:
            items = m.get("items")
            print(f"{rel:52} {m.get('format') or '?':7} {'-' if items is None else items:>5} "
                  f"{fast.entries:>5} {slow.entries:>5} {fast.seconds * 1000:7.1f}  {fast.error[:70]}")
        print()

    parsed = [r for r in rows if not r[2].error]
    errors = [r for r in rows if r[2].error]
    expected = sum(m.get("items") or 0 for _, m, _, _ in rows)
    got = sum(f.entries for _, _, f, _ in rows)
    got_fp = sum(s.entries for _, _, _, s in rows)
    crashes = [r for r in rows if r[2].error.startswith(("CRASH", "TIMEOUT"))]
    short = [(rel, m.get("items"), f.entries) for rel, m, f, _ in rows
             if m.get("items") is not None and f.entries != m["items"]]
    disagree = [(rel, f.entries, s.entries) for rel, _, f, s in rows if f.entries != s.entries]
    same = sum(a == b for _, _, f, s in rows for a, b in zip(f.prints, s.prints, strict=False))
    differing = [rel for rel, _, f, s in rows if f.prints != s.prints]
    slowest = max(rows, key=lambda r: r[2].seconds)
    total_s = sum(f.seconds for _, _, f, _ in rows)
    total_fp = sum(s.seconds for _, _, _, s in rows)
    entries = max(got, 1)

    print(f"{'corpus':34} {feeds}")
    print(f"{'files':34} {len(rows)}")
    print(f"{'parsed':34} {len(parsed)}")
    print(f"{'parse errors (recorded)':34} {len(errors)}")
    print(f"{'crashes / timeouts':34} {len(crashes)}")
    print(f"{'entries (fast path)':34} {got}  (manifest items: {expected})")
    print(f"{'entries (feedparser only)':34} {got_fp}")
    print(f"{'entries identical on both paths':34} {same} / {got}")
    print(f"{'entries with a feed date':34} {sum(f.dated for _, _, f, _ in rows)} / {got}")
    print(f"{'entries with a title':34} {sum(f.titled for _, _, f, _ in rows)} / {got}")
    print(f"{'entries with an absolute link':34} {sum(f.linked for _, _, f, _ in rows)} / {entries}")
    fell_back = [(rel, f.fallback) for rel, _, f, _ in rows if f.fallback and not f.error]
    print(f"{'read by the fast engine':34} {len(parsed) - len(fell_back)} / {len(parsed)}")
    print(f"{'total parse time (fast path)':34} {total_s * 1000:.1f} ms")
    print(f"{'total parse time (feedparser)':34} {total_fp * 1000:.1f} ms")
    print(f"{'slowest file (fast path)':34} {slowest[0]} {slowest[2].seconds * 1000:.1f} ms")
    for rel, reason in fell_back:
        print(f"  slow   {rel}: {reason}")
    for rel, _, f, _ in errors:
        print(f"  error  {rel}: {f.error}")
    for rel, want, have in short:
        print(f"  count  {rel}: manifest {want}, parsed {have}")
    for rel, a, b in disagree:
        print(f"  paths  {rel}: fast {a}, feedparser {b}")
    if differing:
        print(f"  fields differ between paths in: {', '.join(Path(r).name for r in differing)}")
    return 1 if crashes else 0


if __name__ == "__main__":
    raise SystemExit(main())
