"""``feedletter init DIR``: a new project that works from a pip install, without this repository.

It writes sources.yaml (the feeds given, or one example feed), templates/ (copies of the
built-in ones, to edit), flows/deployments.py (Prefect deployments over feedletter's own flows)
and README.md (the first commands to run). Existing files are never overwritten unless asked.
"""

from __future__ import annotations

import ipaddress
import shutil
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from feedletter.errors import ConfigError
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
    # Only literal addresses: init stays offline, and the fetcher's SSRF guard checks names later.
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def _sources(feeds: Sequence[str]) -> str:
    blocks, names = [], set()
    for url in feeds:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"init: {url}: not an http(s) feed URL")
        base = slug((parts.hostname or "feed").removeprefix("www."), 58)
        name, n = base, 2
        while name in names:
            name, n = f"{base}-{n}", n + 1
        names.add(name)
        note = "   # an example feed: replace it with yours" if url == EXAMPLE_FEED else ""
        blocks.append(f"  - name: {name}{note}\n    url: \"{url}\"\n    tags: [news]\n")
    return "".join(blocks)


def files(feeds: Sequence[str], title: str) -> dict[str, str]:
    """The text files of a new project, by relative path."""
    feeds = list(feeds) or [EXAMPLE_FEED]
    private = any(_is_private(u) for u in feeds if u != EXAMPLE_FEED)
    sources = SOURCES.format(allow_private="true" if private else "false", title=title.replace('"', "'"),
                             private_note="   # a feed lives on a private address" if private else "",
                             sources=_sources(feeds))
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
