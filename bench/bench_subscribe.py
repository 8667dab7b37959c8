"""The subscribe form under a mail-bomb attempt: many posts for a few victims, on loopback (issue 19).

``feedletter web``'s app runs in this process under uvicorn on 127.0.0.1, with its confirmation
sender thread and the file provider. Client threads post the form for a handful of victim addresses,
each thread as its own client IP (``X-Forwarded-For``, which uvicorn trusts from 127.0.0.1, as behind
a local reverse proxy). Then the queue is drained and the figures printed:

- requests queued (within the limits) and confirmation emails sent, against what the limits allow
  (``web.limits``: per address a day, per client IP an hour, per newsletter an hour; one mail per
  address an hour);
- response codes, p50/p99 latency, requests per second;
- peak memory: the process's RSS growth during the run (server and clients share the process).

    python bench/bench_subscribe.py [--posts 2000] [--threads 20] [--victims 5] [--store URL]

Prints one JSON line as well. Bounded: loopback only, a fixed number of posts, a 30 s timeout each.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SECRET = "bench-secret-0123456789abcdef0123"


@dataclass
class Figures:
    posts: int
    threads: int
    victims: int
    seconds: float
    per_second: float
    statuses: dict[str, int]
    queued: int
    queued_allowed: int
    sent: int
    sent_allowed: int
    most_to_one_victim: int
    p50_ms: float
    p99_ms: float
    rss_growth_mb: float
    rss_peak_mb: float


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(workdir: Path, *, posts: int = 2000, threads: int = 20, victims: int = 5, store_url: str | None = None,
        timeout: float = 30.0) -> Figures:
    os.environ.setdefault("FEEDLETTER_SECRET", SECRET)
    import httpx
    import sqlalchemy as sa
    import uvicorn

    from feedletter.config import load_config
    from feedletter.store import Store
    from feedletter.web import optin
    from feedletter.web.app import create_app

    outbox = workdir / "outbox"
    config_path = workdir / "sources.yaml"
    config_path.write_text(
        f"store: {store_url or 'sqlite:///' + str(workdir / 'bench.db')}\n"
        f"site: {{base_url: 'https://news.example.com', archive_dir: '{workdir / 'public'}'}}\n"
        f"providers: {{file: {{dir: '{outbox}'}}}}\n"
        "sources:\n  - {name: blog, url: 'https://blog.example/feed'}\n"
        "newsletters:\n  - {name: weekly, title: Bench Weekly, from: 'Bench <news@bench.example>', provider: file}\n",
        encoding="utf-8")
    config = load_config(config_path)
    store = Store.open(config.store_url())
    queued = 0

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        nonlocal queued
        queued += statement.startswith("INSERT INTO subscribe_requests")

    sa.event.listen(store.engine, "before_cursor_execute", count)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(config, store), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    serving = threading.Thread(target=server.run, daemon=True)
    serving.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.05)

    latencies: list[float] = []
    statuses: dict[str, int] = {}
    lock = threading.Lock()
    rss_before = _rss_mb()
    targets = [f"victim{v}@example.com" for v in range(victims)]

    def client(n: int) -> None:
        mine: list[float] = []
        codes: dict[str, int] = {}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout,
                          headers={"X-Forwarded-For": f"198.51.100.{n + 1}"}) as http:
            for i in range(n, posts, threads):
                started = time.perf_counter()
                try:
                    code = str(http.post("/subscribe", data={"email": targets[i % victims],
                                                             "newsletter": "weekly"}).status_code)
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                mine.append(time.perf_counter() - started)
                codes[code] = codes.get(code, 0) + 1
        with lock:
            latencies.extend(mine)
            for code, k in codes.items():
                statuses[code] = statuses.get(code, 0) + k

    started = time.monotonic()
    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.monotonic() - started
    time.sleep(0.5)
    server.should_exit = True
    serving.join(timeout=30)
    optin.send_confirmations(config, store)  # whatever the thread had not sent yet
    store.close()
    rss_peak = _rss_mb()
    limits = config.web.limits
    sent_to: dict[str, int] = {}
    for eml in outbox.glob("*.eml"):
        to = next(line for line in eml.read_text().splitlines() if line.startswith("To: "))[4:]
        sent_to[to] = sent_to.get(to, 0) + 1
    latencies.sort()
    return Figures(
        posts=posts, threads=threads, victims=victims, seconds=round(seconds, 2),
        per_second=round(posts / seconds, 1), statuses=statuses, queued=queued,
        queued_allowed=min(victims * limits.address_per_day, threads * limits.ip_per_hour,
                           limits.newsletter_per_hour),
        sent=sum(sent_to.values()), sent_allowed=victims, most_to_one_victim=max(sent_to.values(), default=0),
        p50_ms=round(latencies[len(latencies) // 2] * 1000, 1),
        p99_ms=round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000, 1),
        rss_growth_mb=round(rss_peak - rss_before, 1), rss_peak_mb=round(rss_peak, 1))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posts", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=20)
    parser.add_argument("--victims", type=int, default=5)
    parser.add_argument("--store", default=None, help="an empty store's URL, e.g. a new PostgreSQL database "
                        "(default: a fresh SQLite file)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-subscribe-") as tmp:
        figures = run(Path(tmp), posts=args.posts, threads=args.threads, victims=args.victims, store_url=args.store)
    print(f"subscribe: {figures.posts} posts from {figures.threads} clients for {figures.victims} victims, "
          f"loopback uvicorn, {'SQLite' if not args.store else args.store.split(':')[0]}")
    print(f"  {figures.seconds:.1f} s, {figures.per_second:.0f} posts/s, answers {figures.statuses}")
    print(f"  queued {figures.queued} (limits allow {figures.queued_allowed}), emails sent {figures.sent} "
          f"(limits allow {figures.sent_allowed}; most to one victim: {figures.most_to_one_victim})")
    print(f"  latency p50 {figures.p50_ms} ms, p99 {figures.p99_ms} ms")
    print(f"  peak RSS {figures.rss_peak_mb:.0f} MB (+{figures.rss_growth_mb:.1f} MB during the run)")
    print(json.dumps({"bench": "subscribe", **asdict(figures)}))
    ok = (figures.queued <= figures.queued_allowed and figures.sent <= figures.sent_allowed
          and set(figures.statuses) == {"200"})
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
