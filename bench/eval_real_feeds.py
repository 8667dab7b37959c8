"""Gather the real-world feeds of ../shared/corpus/feeds as a user would, build an issue, report what a reader loses.

Every feed file is served from a loopback HTTP server this script starts (and stops), with a
temporary sources.yaml (one source per feed, nothing else fetched) and a temporary SQLite store.
The gather stages run in-process through the library's plain stage functions (not Prefect), then
the digest stage builds one 10-entry issue, written as digest.html/.txt/.json to ``--out``.

Printed, each on its own line:

- posts lost: entries with their own identity (a distinct GUID, or no GUID and a distinct link) in
  an independent reading of each file (feedparser, called here directly) against the articles the
  store holds for that source (its articles plus carrier rows naming it);
- same-source merges: articles put in one story with another post of their own source that is not
  a near-duplicate of it;
- subjects: the number of stories, and the issue's entries with ``more`` items if digest.json has them;
- the top source's share of the issue's entries;
- summaries with chrome: stored summaries matching the boilerplate patterns below.

    python bench/eval_real_feeds.py [--corpus ../shared/corpus] [--out DIR] [-v]

Exits 0 with a message when the corpus is absent (a user's clone has no ../shared).
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import feedparser
import sqlalchemy as sa
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feedletter.config import Config, load_config  # noqa: E402
from feedletter.ingest import gather  # noqa: E402
from feedletter.issue.digest import digest_record, prepare_digest  # noqa: E402
from feedletter.schema import articles, carriers  # noqa: E402
from feedletter.schema import stories as stories_table  # noqa: E402
from feedletter.store import Store  # noqa: E402
from feedletter.stories import stages as stories  # noqa: E402

DEFAULT_CORPUS = ROOT.parent / "shared" / "corpus"
NEWSLETTER = "real-feeds"
MAX_STORIES = 10


# -- the feeds and the server --------------------------------------------------------------------

@dataclass(frozen=True)
class Feed:
    file: str  # relative to the feeds folder, as in manifest.json
    name: str  # the source's name in the temporary sources.yaml
    title: str


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:50] or "feed"


def list_feeds(feeds_dir: Path) -> list[Feed]:
    """The feeds of ``manifest.json`` (every feed file under the folder when there is none), named from their files."""
    manifest = feeds_dir / "manifest.json"
    if manifest.is_file():
        rows = [(r["file"], r.get("title") or "") for r in json.loads(manifest.read_text(encoding="utf-8"))]
    else:
        rows = [(str(p.relative_to(feeds_dir)), "") for p in sorted(feeds_dir.rglob("*"))
                if p.is_file() and p.suffix in (".xml", ".rss", ".atom", ".rdf", ".json")]
    out: list[Feed] = []
    taken: set[str] = set()
    for file, title in rows:
        path = Path(file)
        name = _slug(path.stem)
        if name in taken:  # DaringFireball.atom and DaringFireball.rss
            name = _slug(f"{path.stem}-{path.suffix}")
        while name in taken:
            name += "-x"
        taken.add(name)
        out.append(Feed(file, name, title.strip() or path.stem))
    return out


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        del format, args


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 (a free port) in a thread; yield its base URL; stop it afterwards."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(_Quiet, directory=str(directory)))
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, name="eval-real-feeds-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def write_config(folder: Path, feeds: Sequence[Feed], base_url: str, *, max_stories: int = MAX_STORIES) -> Path:
    """A sources.yaml: one source a feed (loopback allowed, no page fetched), a store in ``folder``, one newsletter."""
    data = {
        "store": f"sqlite:///{folder / 'feedletter.db'}",
        "allow_private": True,
        "site": {"base_url": "http://127.0.0.1/archive", "archive_dir": str(folder / "public"),
                 "title": "Real feeds"},
        "gather": {"timeout": 15},
        "sources": [{"name": f.name, "title": f.title, "url": base_url + quote(f.file), "full_text": "never",
                     "allow_private": True} for f in feeds],
        "newsletters": [{"name": NEWSLETTER, "title": "Real feeds", "select": {"max_stories": max_stories},
                         "from": "Real feeds <news@example.org>",
                         "postal_address": "Real feeds · 1 Example Street · Nowhere"}],
    }
    path = folder / "sources.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


# -- gather and digest through the library ---------------------------------------------------------

@dataclass
class Run:
    fetched: int = 0
    errors: list[str] = field(default_factory=list)
    new: int = 0
    duplicates: int = 0
    stories_new: int = 0
    summarized: int = 0
    seconds: float = 0.0


def run_gather(config: Config, store: Store) -> Run:
    """fetch → store → extract → group → summarize, the stage functions flows/gather.py wraps."""
    run = Run()
    started = time.monotonic()
    with gather.make_fetcher(config) as fetcher:
        results = gather.fetch_sources(config, store, fetcher)
        run.fetched = sum(r.status == "ok" for r in results)
        run.errors = [f"{r.source}: {r.error}" for r in results if r.status == "error"]
        counts = gather.store_entries(config, store, results)
        run.new, run.duplicates = len(counts.new_ids), counts.duplicates
        gather.extract_articles(config, store, fetcher)  # full_text: never, so nothing to fetch
    grouped = stories.group(config, store)
    run.stories_new = grouped.new_stories
    run.summarized, _ = stories.summarize(config, store)
    run.seconds = time.monotonic() - started
    return run


def build_issue(config: Config, store: Store, out: Path) -> dict[str, Any] | None:
    """The next issue as ``feedletter digest NAME --dry-run`` makes it: digest.html/.txt/.json in ``out``."""
    prepared = prepare_digest(config, store, config.newsletter(NEWSLETTER))
    if prepared is None:
        return None
    record = digest_record(prepared)
    out.mkdir(parents=True, exist_ok=True)
    (out / "digest.html").write_text(prepared.rendered.html, encoding="utf-8")
    (out / "digest.txt").write_text(prepared.rendered.text, encoding="utf-8")
    (out / "digest.json").write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return record


# -- posts lost ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reading:
    """An independent reading of one feed file (feedparser, not feedletter's parser)."""

    entries: int
    identities: int  # distinct GUIDs + distinct links of GUID-less entries
    guids: int  # distinct GUIDs alone: the baseline to reach
    anonymous: int  # neither GUID nor link


def read_feed(data: bytes) -> Reading:
    parsed = feedparser.parse(data)
    if not parsed.entries and data.lstrip() != data:  # a blank line before the XML declaration
        parsed = feedparser.parse(data.lstrip())
    guids: set[str] = set()
    links: set[str] = set()
    anonymous = 0
    for entry in parsed.entries:
        guid = (entry.get("id") or "").strip()
        link = (entry.get("link") or "").strip()
        if guid:
            guids.add(guid)
        elif link:
            links.add(link)
        else:
            anonymous += 1
    return Reading(len(parsed.entries), len(guids) + len(links), len(guids), anonymous)


def stored_per_source(store: Store) -> dict[str, int]:
    """Distinct articles each source brought: its own articles and the ones it carried."""
    own = sa.select(articles.c.source.label("source"), articles.c.id.label("article_id"))
    carried = sa.select(carriers.c.source.label("source"), carriers.c.article_id.label("article_id"))
    both = sa.union(own, carried).subquery()
    with store.begin() as conn:
        rows = conn.execute(sa.select(both.c.source, sa.func.count(sa.distinct(both.c.article_id)))
                            .group_by(both.c.source)).all()
    return {str(r[0]): int(r[1]) for r in rows}


@dataclass(frozen=True)
class Lost:
    feed: Feed
    reading: Reading
    stored: int

    @property
    def lost(self) -> int:
        return max(0, self.reading.identities - self.stored)


def posts_lost(feeds_dir: Path, feeds: Sequence[Feed], store: Store) -> list[Lost]:
    held = stored_per_source(store)
    return [Lost(f, read_feed((feeds_dir / f.file).read_bytes()), held.get(f.name, 0)) for f in feeds]


# -- same-source merges ------------------------------------------------------------------------------

def same_source_merges(store: Store) -> list[tuple[int, str, list[str]]]:
    """``(story id, source, titles)`` for each story holding 2+ articles of one source, none a near-duplicate."""
    with store.begin() as conn:
        rows = conn.execute(sa.select(articles.c.story_id, articles.c.source, articles.c.title)
                            .where(articles.c.story_id.is_not(None), articles.c.duplicate_of.is_(None))
                            .order_by(articles.c.story_id, articles.c.id)).all()
    groups: dict[tuple[int, str], list[str]] = defaultdict(list)
    for story_id, source, title in rows:
        groups[(int(story_id), str(source))].append(str(title))
    return [(sid, src, titles) for (sid, src), titles in groups.items() if len(titles) > 1]


# -- summaries with chrome ----------------------------------------------------------------------------

_CAPS = r"[A-Z][\w’'&-]*"
_SMALL = r"(?:of|the|and|or|to|a|an|in|on|for|with|at|by|from|vs\.?)"
_CLAUSE = (r"(?:The|A|An|This|That|These|Those|It|Its|We|I|I'm|He|She|They|Our|My|Your|His|Her|Their|In|On|At|"
           r"After|Before|When|While|If|As|For|With|Today|Yesterday|Last|Earlier|Here|There|So|But|And|Now)")
# A heading glued to its first sentence: 4+ Title-Case words (small words between allowed), then a
# capitalised word opening a clause, then a lower-case word; no punctuation between them.
_GLUED = rf"(?<![\w,;:])(?:{_CAPS}\s+(?:{_SMALL}\s+)?){{3,}}{_CAPS}\s+{_CLAUSE}\s+[a-z]"

CHROME: dict[str, re.Pattern[str]] = {name: re.compile(pattern, flags) for name, pattern, flags in [
    ("click here", r"\bclick here\b", re.I),
    ("read in full", r"\bread (?:this|the) (?:article|post|story) in full\b|\bread the full (?:article|post|story)\b",
     re.I),
    ("continue reading", r"\bcontinue reading\b", re.I),
    ("appeared first on", r"\bappeared first on\b", re.I),
    ("read more", r"\bread more\b", re.I),
    ("share/follow/subscribe", (r"\bshare (?:this(?: article| post| story| page)?\s*"
                                r"(?:[:|]|on (?:facebook|twitter|linkedin))|on (?:facebook|twitter|linkedin)\b)"
      r"|\bfollow us\b|\bsubscribe (?:now|here|today|to (?:our|my))\b"), re.I),
    ("leave a reply", r"\bleave a (?:reply|comment)\b", re.I),
    ("N comments", r"\b\d+\s+comments?\b", re.I),
    ("by admin", r"\bby admin\b", re.I),
    ("crumbs", r"\bHome\s*[›»>]|\bHome News\b", 0),
    ("photo credit", r"\b(?:photo|image|picture)s?\s*(?:credit|courtesy|by)\b|\bcredit:\s", re.I),
    ("phone number", r"\(\d{3}\)\s*\d{3}[-.\s]\d{4}\b|\b\d{3}[-.]\d{3}[-.]\d{4}\b", 0),
    ("heading glued to a sentence", _GLUED, 0),
    ("byline", r"^\s*[Bb]y [A-Z][\w.’'-]+:?(?: [A-Z][\w.’'-]+)+", 0),
    ("contact block", r"\b(?:e-?mail|facebook|twitter|youtube|telegram|instagram):\s*\S+", re.I),
]}


def _squash(text: str) -> str:
    return " ".join(text.split())


def chrome_in(summary: str, title: str) -> list[str]:
    """What chrome ``summary`` holds (``title``: its story's title), as ``pattern name: 'matched text'``."""
    found = [f"{name}: {m.group(0)!r}" for name, pattern in CHROME.items() if (m := pattern.search(summary))]
    head, lead = _squash(title).casefold(), _squash(summary).casefold()
    if len(head) >= 12 and lead.startswith(head):
        found.append("starts with the title")
    return found


def _lead_sentences(text: str, n: int = 3) -> str:
    """The first ``n`` sentences, split naively: the baseline an extractive summarizer should beat."""
    return " ".join(re.split(r"(?<=[.!?])\s+", _squash(text))[:n])


def summaries_with_chrome(store: Store) -> tuple[int, list[tuple[str, str, list[str]]], int]:
    """(summaries, offending (title, summary, patterns), baseline: lead-3 of the lead articles with chrome)."""
    with store.begin() as conn:
        rows = conn.execute(sa.select(stories_table.c.summary, articles.c.title, articles.c.text)
                            .join(articles, articles.c.id == stories_table.c.lead_id)
                            .where(stories_table.c.summary != "")).all()
    bad = [(str(title), str(summary), names) for summary, title, _ in rows
           if (names := chrome_in(str(summary), str(title)))]
    baseline = sum(bool(chrome_in(_lead_sentences(str(text)), str(title))) for _, title, text in rows)
    return len(rows), bad, baseline


# -- the report ---------------------------------------------------------------------------------------

def _count(store: Store, table: sa.Table) -> int:
    with store.begin() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def _clip(text: str, width: int = 160) -> str:
    text = _squash(text)
    return text if len(text) <= width else text[:width - 1] + "…"


def print_issue(record: dict[str, Any]) -> None:
    print(f"\n== issue: {record['subject']}")
    for i, s in enumerate(record["stories"], 1):
        print(f"\n{i:2}. {s['title']}  [{s['source']}]  {s['url']}")
        for line in _squash(s["summary"]).split("\n"):
            print(f"    {line}")
        for a in s.get("also") or []:
            print(f"    also: {a.get('source')}: {a.get('title')}")
        for m in s.get("more") or []:
            label = " · ".join(str(m[k]) for k in ("source", "title") if isinstance(m, dict) and m.get(k)) \
                if isinstance(m, dict) else str(m)
            print(f"    more: {label or m}")
    print()


def report(corpus: Path, out: Path, *, verbose: bool = False) -> dict[str, Any]:
    """Run everything and print the report; return the figures."""
    feeds_dir = corpus / "feeds"
    feeds = list_feeds(feeds_dir)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="feedletter-eval-") as tmp, serve(feeds_dir) as base:
        config = load_config(write_config(Path(tmp), feeds, base))
        store = Store.open(config.store_url())
        try:
            run = run_gather(config, store)
            print(f"gather: {len(feeds)} feeds served from {base}, {run.fetched} fetched, {len(run.errors)} errors, "
                  f"{run.new} articles, {run.duplicates} duplicates, {run.stories_new} stories, "
                  f"{run.summarized} stories summarized in {run.seconds:.1f} s")
            for error in run.errors:
                print(f"  fetch error: {error}")
            record = build_issue(config, store, out)
            figures.update(_report_store(feeds_dir, feeds, store, record, verbose=verbose))
        finally:
            store.close()
    print(f"issue written to {out}  (digest.html, digest.txt, digest.json)")
    if record is not None and verbose:
        print_issue(record)
    return figures


def _report_store(feeds_dir: Path, feeds: Sequence[Feed], store: Store, record: dict[str, Any] | None, *,
                  verbose: bool) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    lost = posts_lost(feeds_dir, feeds, store)
    identities = sum(x.reading.identities for x in lost)
    total_lost = sum(x.lost for x in lost)
    figures["lost"], figures["identities"] = total_lost, identities
    worst = sorted((x for x in lost if x.lost), key=lambda x: (-x.lost, x.feed.file))
    print(f"posts lost: {total_lost} of {identities} posts with their own identity "
          f"({sum(x.reading.entries for x in lost)} entries read by feedparser; baseline to reach: "
          f"{sum(x.reading.guids for x in lost)} distinct GUIDs + "
          f"{identities - sum(x.reading.guids for x in lost)} GUID-less distinct links; "
          f"{sum(x.reading.anonymous for x in lost)} entries with neither, not counted); "
          f"{sum(x.stored for x in lost)} stored")
    for x in worst[:8 if not verbose else len(worst)]:
        print(f"  {x.feed.file}: {x.reading.identities} entries vs {x.stored} stored "
              f"({x.reading.guids} GUIDs, {x.reading.entries} read)")

    merges = same_source_merges(store)
    merged = sum(len(titles) for *_, titles in merges)
    figures["same_source_merged"] = merged
    print(f"same-source merges: {merged} articles merged into a story with another post of their own source "
          f"({len(merges)} stories; target 0)")
    for story_id, source, titles in merges[:None if verbose else 0]:
        print(f"  story {story_id} [{source}]: " + " | ".join(_clip(t, 60) for t in titles[:5])
              + (f" | … {len(titles) - 5} more" if len(titles) > 5 else ""))

    n_stories, n_articles = _count(store, stories_table), _count(store, articles)
    with store.begin() as conn:
        unsummarized = int(conn.execute(sa.select(sa.func.count()).select_from(stories_table)
                                        .where(stories_table.c.summary == "")).scalar_one())
        choosable = int(conn.execute(sa.select(sa.func.count(sa.distinct(articles.c.source)))
                                     .join(stories_table, stories_table.c.lead_id == articles.c.id)
                                     .where(stories_table.c.summary != "")).scalar_one())
    figures["stories"] = n_stories
    entries = record["stories"] if record else []
    if entries and any("more" in s for s in entries):
        with_more = sum(bool(s.get("more")) for s in entries)
        figures["with_more"] = with_more
        subjects = f"{with_more}/{len(entries)} issue entries with more items"
    else:
        subjects = "n/a (no subjects yet)"
    print(f"subjects: {n_stories} stories from {n_articles} articles ({unsummarized} with an empty summary, "
          f"shown by title only); {subjects}")

    if record is None:
        print("top source: no issue (nothing to select)")
    else:
        per_source = Counter(s["source"] for s in entries)
        top, count = per_source.most_common(1)[0] if per_source else ("-", 0)
        figures["top_share"] = (count, len(entries), top)
        print(f"top source {count}/{len(entries)}: {top}  (per source: "
              + ", ".join(f"{name} {n}" for name, n in per_source.most_common())
              + f"; {choosable} sources lead a summarized story, so an even spread is 1/{len(entries)})")

    n_summaries, bad, baseline = summaries_with_chrome(store)
    figures["chrome"], figures["summaries"] = len(bad), n_summaries
    by_pattern = Counter(name.split(": ", 1)[0] for *_, names in bad for name in names)
    print(f"summaries with chrome: {len(bad)} of {n_summaries} (baseline, the lead article's first 3 sentences: "
          f"{baseline})" + (" — " + ", ".join(f"{k} {v}" for k, v in by_pattern.most_common()) if bad else ""))
    for title, summary, names in bad[:None if verbose else 0]:
        print(f"  {_clip(title, 60)}: {_clip(summary, 240)}\n    -> {'; '.join(names)}")
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--out", type=Path, default=None, help="where the issue is written (default: a temp dir)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the whole issue and every offending story and summary")
    args = parser.parse_args(argv)
    if not (args.corpus / "feeds").is_dir():
        print(f"eval_real_feeds: no corpus at {args.corpus / 'feeds'}; skipped")
        return 0
    logging.getLogger("feedletter").setLevel(logging.INFO if args.verbose else logging.ERROR)
    out = args.out or Path(tempfile.mkdtemp(prefix="feedletter-real-feeds-"))
    started = time.monotonic()
    report(args.corpus, out, verbose=args.verbose)
    print(f"done in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
