"""Looking inside one stage: ``parse``, ``extract``, ``cluster`` and ``summarize`` run the code the
flows run on a file or standard input, and print JSON."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from feedletter.cli.common import emit, open_input
from feedletter.errors import FeedletterError


def parse(
    feed: Annotated[str, typer.Argument(help="a feed file, a URL, or - for standard input")],
    source: Annotated[str, typer.Option(help="source name to stamp on entries")] = "cli",
) -> None:
    """Parse a feed; print one JSON line per entry."""
    from feedletter.ingest.parse.feeds import entry_record, parse_feed

    if feed.startswith(("http://", "https://")):
        from feedletter.ingest.fetch import Fetcher

        with Fetcher() as fetcher:
            result = fetcher.get(feed)
        data, url, ctype = result.body or b"", result.url, result.content_type
    else:
        data = sys.stdin.buffer.read() if feed == "-" else Path(feed).read_bytes()
        url, ctype = (feed if feed != "-" else "stdin"), None
    parsed = parse_feed(data, url=url, source=source, content_type=ctype)
    for entry in parsed.entries:
        emit(json.dumps(entry_record(entry), ensure_ascii=False))


def extract(
    html_file: Annotated[str, typer.Argument(help="an HTML file, or - for standard input")],
    url: Annotated[str | None, typer.Option(help="the page's URL, for relative links")] = None,
) -> None:
    """Extract an article page's text; print JSON with title, author, published, text."""
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


def cluster(jsonl: Annotated[str, typer.Argument(help="lines of {id, title, text[, url]}, or -")]) -> None:
    """Group documents into stories and subjects; print {id, cluster, subject, duplicate_of} per line."""
    from feedletter.ingest.parse.feeds import parse_date
    from feedletter.models import Document
    from feedletter.stories.cluster import cluster_documents

    rows = _read_jsonl(jsonl, ("id", "title", "text"))
    docs = [Document(id=str(r["id"]), title=r["title"], text=r["text"], url=r.get("url"),
                     source=r.get("source"), published=parse_date(r.get("published"))) for r in rows]
    for a in cluster_documents(docs):
        emit(json.dumps({"id": a.id, "cluster": a.cluster, "subject": a.subject, "duplicate_of": a.duplicate_of}))


def summarize(
    jsonl: Annotated[str, typer.Argument(help="lines of {id, title, text}, or -")],
    sentences: Annotated[int, typer.Option(min=1, max=10)] = 3,
) -> None:
    """Summarize documents; print {id, summary} per line."""
    from feedletter.stories.summarize import summarize as run_summarize

    for row in _read_jsonl(jsonl, ("id", "title", "text")):
        emit(json.dumps({"id": row["id"], "summary": run_summarize(row["title"], [row["text"]],
                                                                         sentences=sentences)},
                        ensure_ascii=False))
