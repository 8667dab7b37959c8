"""How fast each candidate parser reads a realistic feed, to choose parse.py's fast path.

The feed is generated here: RSS 2.0, 20 items, each with an HTML description and a
``content:encoded`` body, about 60 KB in all — the size of a typical blog feed.

    python bench/bench_parse.py [--rounds N]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

WORDS = ["feed", "parser", "digest", "story", "article", "email", "newsletter", "summary", "cluster",
         "python", "energy", "market", "health", "clinic", "research", "policy", "city", "river",
         "garden", "music", "science", "history"]


def _sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + "."


def make_rss(items: int = 20, target_bytes: int = 60_000, seed: int = 7) -> bytes:
    """An RSS 2.0 document of ``items`` items padded to roughly ``target_bytes``."""
    rng = random.Random(seed)
    per_item = max(500, target_bytes // items - 700)
    parts = ['<?xml version="1.0" encoding="UTF-8"?>\n'
             '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/"'
             ' xmlns:dc="http://purl.org/dc/elements/1.1/">\n<channel>\n'
             '<title>Bench Blog</title><link>https://bench.example/</link>'
             '<description>Generated for feedletter benchmarks</description>\n']
    for i in range(items):
        body: list[str] = []
        size = 0
        while size < per_item:
            para = (f'<p>{_sentence(rng, 18)} <a href="https://bench.example/ref/{i}/{size}">'
                    f"{rng.choice(WORDS)}</a> {_sentence(rng, 14)} &amp; <em>{rng.choice(WORDS)}</em></p>")
            body.append(para)
            size += len(para)
        html = "\n".join(body)
        day = 1 + i % 28
        parts.append(
            f"<item><title>{_sentence(rng, 7)} &amp; more</title>"
            f"<link>https://bench.example/posts/{i}?utm_source=rss</link>"
            f'<guid isPermaLink="false">bench-{i}</guid>'
            f"<pubDate>Mon, {day:02d} Jan 2024 10:{i:02d}:00 +0100</pubDate>"
            f"<dc:creator>Author {i % 3}</dc:creator>"
            f"<description><![CDATA[<p>{_sentence(rng, 30)}</p>]]></description>"
            f"<content:encoded><![CDATA[{html}]]></content:encoded></item>\n")
    parts.append("</channel>\n</rss>\n")
    return "".join(parts).encode("utf-8")


def _candidates() -> dict[str, Callable[[bytes], Any]]:
    import fastfeedparser
    import feedparser
    import feedparser_rs

    from feedletter.ingest.parse import feeds as parse

    url = "https://bench.example/feed.xml"
    return {
        "feedparser (defaults)": lambda d: feedparser.parse(d),
        "feedparser (sanitize/resolve off)": lambda d: feedparser.parse(
            d, sanitize_html=False, resolve_relative_uris=False),
        "feedparser_rs": lambda d: feedparser_rs.parse(d, sanitize_html=False),
        "fastfeedparser": lambda d: fastfeedparser.parse(d),
        "feedletter parse_feed": lambda d: parse.parse_feed(d, url=url, source="bench"),
        "feedletter parse_feed (feedparser only)": lambda d: parse.parse_feed(
            d, url=url, source="bench", fast=False),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=30)
    args = ap.parse_args()
    data = make_rss()
    print(f"feed: {len(data) / 1000:.1f} KB, 20 items, {args.rounds} rounds; median ms per feed")
    base = None
    for name, fn in _candidates().items():
        count = len(fn(data).entries)
        times = []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            fn(data)
            times.append(time.perf_counter() - t0)
        ms = statistics.median(times) * 1000
        base = base or ms
        print(f"{name:42} {ms:8.2f} ms  {base / ms:6.1f}x  entries={count}  "
              f"500 feeds: {ms * 500 / 1000:6.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
