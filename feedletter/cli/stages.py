"""Looking inside one stage: ``parse``, ``extract``, ``cluster`` and ``summarize`` run the code the
flows run on a file or standard input, and print JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from feedletter.cli.common import ConfigOpt, config_or_defaults, emit, open_input
from feedletter.errors import FeedletterError


def parse(
    feed: Annotated[str, typer.Argument(help="a feed file, a URL, or - for standard input")],
    source: Annotated[str | None, typer.Option(help="source name to stamp on entries [default: the "
                                               "configured source with this URL, else cli]")] = None,
    config: ConfigOpt = None,
) -> None:
    """Parse a feed; print one JSON line per entry.

    The config (if any) gives what gather would use: the fetch limits and user agent, whether the
    feed may live on a private address (``allow_private``), and the tracking parameters keys ignore.
    """
    from feedletter.ingest.parse.feeds import entry_record, parse_feed

    cfg = config_or_defaults(config)
    known = next((s for s in cfg.sources if s.url == feed), None)
    if feed.startswith(("http://", "https://")):
        from feedletter.ingest.fetch import make_fetcher, private_allowed

        with make_fetcher(cfg) as fetcher:
            result = fetcher.get(feed, allow_private=private_allowed(cfg, known) if known else None)
        data, url, ctype = result.body or b"", result.url, result.content_type
    else:
        data = sys.stdin.buffer.read() if feed == "-" else Path(feed).read_bytes()
        url, ctype = (feed if feed != "-" else "stdin"), None
    parsed = parse_feed(data, url=url, source=source or (known.name if known else "cli"), content_type=ctype,
                        extra_tracking=cfg.gather.tracking_params)
    for entry in parsed.entries:
        emit(json.dumps(entry_record(entry), ensure_ascii=False))


def extract(
    html_file: Annotated[str, typer.Argument(help="an HTML file, or - for standard input")],
    url: Annotated[str | None, typer.Option(help="the page's URL, for relative links")] = None,
    config: ConfigOpt = None,
) -> None:
    """Extract an article page's text; print JSON with title, author, published, text.

    Extraction reads no setting: ``--config`` is taken, as by every command, and a file given must load.
    """
    if config is not None:
        config_or_defaults(config)
    from feedletter.ingest.extract import extract as run_extract
    from feedletter.text.boilerplate import strip_boilerplate

    data = sys.stdin.buffer.read() if html_file == "-" else Path(html_file).read_bytes()
    found = run_extract(data, url=url)
    typer.echo(json.dumps({"title": found.title, "author": found.author,
                           "published": found.published.isoformat() if found.published else None,
                           "text": strip_boilerplate(found.text)}, ensure_ascii=False))


def _read_jsonl(name: str, required: tuple[str, ...]) -> list[dict[str, Any]]:
    rows = []
    with open_input(name) as stream:
        for number, line in enumerate(stream, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise FeedletterError(f"{name}:{number}", f"not JSON: {exc.msg}") from None
            missing = [k for k in required if k not in row]
            if missing:
                raise FeedletterError(f"{name}:{number}", f"missing field(s): {', '.join(missing)}")
            rows.append(row)
    return rows


def cluster(jsonl: Annotated[str, typer.Argument(help="lines of {id, title, text[, url]}, or -")],
            config: ConfigOpt = None) -> None:
    """Group documents into stories and subjects; print {id, cluster, subject, duplicate_of} per line.

    The config (if any) gives the grouping settings gather uses: ``stories:`` window and thresholds,
    and the sources' priorities (for lines that name their ``source``).
    """
    from datetime import timedelta

    from feedletter.ingest.parse.feeds import parse_date
    from feedletter.models import Document
    from feedletter.stories.cluster import cluster_documents

    cfg = config_or_defaults(config)
    s = cfg.stories
    rows = _read_jsonl(jsonl, ("id", "title", "text"))
    docs = [Document(id=str(r["id"]), title=r["title"], text=r["text"], url=r.get("url"),
                     source=r.get("source"), published=parse_date(r.get("published"))) for r in rows]
    found = cluster_documents(docs, window=timedelta(days=s.window_days), threshold=s.same_story,
                              duplicate_threshold=s.near_duplicate,
                              priority={src.name: src.priority for src in cfg.sources})
    for a in found:
        emit(json.dumps({"id": a.id, "cluster": a.cluster, "subject": a.subject, "duplicate_of": a.duplicate_of}))


def summarize(
    jsonl: Annotated[str, typer.Argument(help="lines of {id, title, text}, or -")],
    sentences: Annotated[int | None, typer.Option(min=1, max=10, help="sentences per summary [default: "
                                                  "stories.summary_sentences, 3]")] = None,
    config: ConfigOpt = None,
) -> None:
    """Summarize documents; print {id, summary} per line.

    The config (if any) gives the summarizer gather uses (``stories.summarizer``) and its limits.
    """
    from feedletter.plugins import SUMMARIZERS

    cfg = config_or_defaults(config)
    summarizer = SUMMARIZERS.get(cfg.stories.summarizer).factory(cfg)  # as stories.stages.summarizer_for
    count = sentences or cfg.stories.summary_sentences
    for row in _read_jsonl(jsonl, ("id", "title", "text")):
        summary = summarizer.summarize(row["title"], [row["text"]], sentences=count,
                                       max_chars=cfg.stories.summary_chars)
        emit(json.dumps({"id": row["id"], "summary": summary}, ensure_ascii=False))
