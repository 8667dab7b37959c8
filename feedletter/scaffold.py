"""``feedletter init DIR``: a new project that works from a pip install, without this repository.

It writes sources.yaml (the feeds given, or one example feed), templates/ (copies of the
built-in ones, to edit), flows/deployments.py (Prefect deployments over feedletter's own flows)
and README.md (the first commands to run). Existing files are never overwritten unless asked.

Each feed given is fetched once, briefly, for its title: the source is named after it (and gets
it as ``title:``). A feed that cannot be fetched is named after its host, or, when the host is an
address (``127.0.0.1``) that says nothing, after its path.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import urlsplit

from feedletter.errors import ConfigError, FeedletterError
from feedletter.issue.render import BUILTIN_TEMPLATES
from feedletter.opml import slug

EXAMPLE_FEED = "https://blog.python.org/feeds/posts/default"

SOURCES = """\
# feedletter configuration. Check it with `feedletter validate`; every field is described in the staff
# guide, docs/staff-guide.md ("sources.yaml reference"). Secrets never go here: they come from the environment.

store: sqlite:///.feedletter/feedletter.db   # or postgresql+psycopg://user@host/db
allow_private: {allow_private}{private_note}

site:
  base_url: https://news.example.com         # where the archive and unsubscribe links point
  archive_dir: public
  title: {title}

sources:
{sources}
newsletters:
  - name: weekly
    title: {title}
    schedule: {{cron: "0 8 * * MON", timezone: UTC}}
    select: {{tags: [news], max_stories: 10, since: last_issue}}
    subject: "{{{{ newsletter.title }}}}: {{{{ stories[0].title }}}}"
    from: "{title} <news@example.com>"
    postal_address: "Your organisation · 1 Example Street · Town"   # the law wants one in every mail
    provider: smtp                            # the SMTP URL comes from $FEEDLETTER_SMTP_URL
    feeds: [rss]

providers:
  smtp: {{url_env: FEEDLETTER_SMTP_URL}}
  file: {{dir: .feedletter/outbox}}
"""

# The flows file a new project gets: read from the shipped templates (it imports Prefect, which the
# library itself never does).
DEPLOYMENTS_TEMPLATE = BUILTIN_TEMPLATES / "init" / "deployments.py.txt"

README = """\
# {title}

A newsletter built with [feedletter](https://pypi.org/project/feedletter/).

```sh
pip install feedletter
export FEEDLETTER_SECRET=$(python -c "import secrets; print(secrets.token_urlsafe(32))")
export FEEDLETTER_SMTP_URL=smtp://user:password@smtp.example.com:587?starttls=1

feedletter validate                       # check sources.yaml
feedletter gather                         # fetch the feeds once
feedletter digest weekly --dry-run --out preview   # write what would be sent, send nothing
feedletter preview weekly                 # look at it at desktop and mobile widths
feedletter send-test weekly --to you@example.com   # a [TEST] copy to yourself only
python flows/deployments.py               # run everything on its schedule
```

- `sources.yaml`: feeds (`sources`) and newsletters; `feedletter sources import feeds.opml` adds feeds.
- `templates/`: the email templates; edit them, they win over the built-in ones.
- `flows/deployments.py`: the Prefect schedules.
"""


def _is_private(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    # Only literal addresses: the fetcher's SSRF guard checks names when the feed is fetched.
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def feed_title(url: str, *, timeout: float = 5.0) -> str:
    """The feed's own title, or "" when it cannot be fetched or read (init works offline too)."""
    from feedletter.ingest.fetch import Fetcher
    from feedletter.ingest.parse.feeds import parse_feed

    try:
        with Fetcher(timeout=timeout, connect_timeout=timeout, allow_private=_is_private(url)) as fetcher:
            result = fetcher.get(url)
        parsed = parse_feed(result.body or b"", url=result.url, source="init", content_type=result.content_type)
    except (FeedletterError, OSError, ValueError):
        return ""
    return " ".join(parsed.title.split())


# Path segments that name no site: /feed.xml, /rss/, /index.atom …
_GENERIC = {"feed", "feeds", "rss", "atom", "xml", "json", "index", "default", "posts", "rss2", "blog"}


def source_name(url: str, title: str = "") -> str:
    """A source's name: its feed's title, else its host, else (for an address like 127.0.0.1) its path."""
    if title and slug(title) != "feed":
        return slug(title, 58)
    parts = urlsplit(url)
    host = (parts.hostname or "").removeprefix("www.")
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if host and host != "localhost":
            return slug(host, 58)
    words = [w for w in (slug(p.rsplit(".", 1)[0]) for p in parts.path.split("/") if p) if w not in _GENERIC]
    return slug("-".join(words[-2:]), 58) if words else "feed"


def _sources(feeds: Sequence[str], titles: Callable[[str], str]) -> str:
    blocks, names = [], set()
    for url in feeds:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"init: {url}: not an http(s) feed URL")
    for url in feeds:
        title = "" if url == EXAMPLE_FEED else titles(url)
        base = source_name(url, title)
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.add(name)
        note = "   # an example feed: replace it with yours" if url == EXAMPLE_FEED else ""
        shown = f"    title: {json.dumps(title, ensure_ascii=False)}\n" if title else ""
        blocks.append(f"  - name: {name}{note}\n    url: \"{url}\"\n{shown}    tags: [news]\n")
    return "".join(blocks)


def files(feeds: Sequence[str], title: str, *, titles: Callable[[str], str] = feed_title) -> dict[str, str]:
    """The text files of a new project, by relative path; ``titles`` finds a feed's title (to name it)."""
    feeds = list(feeds) or [EXAMPLE_FEED]
    private = any(_is_private(u) for u in feeds if u != EXAMPLE_FEED)
    sources = SOURCES.format(allow_private="true" if private else "false", title=title.replace('"', "'"),
                             private_note="   # a feed lives on a private address" if private else "",
                             sources=_sources(feeds, titles))
    return {"sources.yaml": sources,
            "flows/deployments.py": DEPLOYMENTS_TEMPLATE.read_text(encoding="utf-8"),
            "README.md": README.format(title=title)}


def init_project(directory: Path, feeds: Sequence[str] = (), *, title: str = "Weekly News",
                 force: bool = False) -> list[Path]:
    """Write a new project into ``directory``; return the files written."""
    texts = files(feeds, title)
    templates = sorted(p for p in BUILTIN_TEMPLATES.rglob("*.j2") if p.is_file())
    targets = [directory / name for name in texts] + \
        [directory / "templates" / p.relative_to(BUILTIN_TEMPLATES) for p in templates]
    clashes = [str(t) for t in targets if t.exists()]
    if clashes and not force:
        raise ConfigError([f"init: {c}: exists (use --force to overwrite)" for c in clashes])
    for name, text in texts.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_text(text, encoding="utf-8")
    for template in templates:
        target = directory / "templates" / template.relative_to(BUILTIN_TEMPLATES)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, target)
    return targets
