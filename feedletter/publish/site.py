"""The site output: every newsletter's feeds (RSS 2.0, Atom 1.0, JSON Feed 1.1) and static web archive.

Everything is rebuilt from the store and nothing depends on the time of the build, so building
twice, or rebuilding in a fresh process, gives byte-identical files. Files whose bytes did not
change are left alone. Publishing an issue (the digest run) builds the site, and the ``websub``
output then announces the issue's feeds; ``publish`` (``feedletter syndicate``) builds it and
announces every feed whose bytes changed.

Layout under ``site.archive_dir``::

    index.html                      every newsletter
    NEWSLETTER/index.html           its issues, newest first (older pages: page/N/index.html)
    NEWSLETTER/N/index.html         issue N: the email as a web page
    NEWSLETTER/stories/ID/index.html  a story's permalink
    NEWSLETTER/rss.xml atom.xml feed.json          issues feeds (as listed in ``feeds``)
    NEWSLETTER/stories/rss.xml atom.xml feed.json  stories feeds (``feeds: [..., stories]``)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from feedletter.config import Config
from feedletter.errors import SyndicateError
from feedletter.publish.archive import Archive, environment, home_page
from feedletter.publish.feeds import feeds
from feedletter.publish.issues import PublishedIssue, addresses, load_issues
from feedletter.publish.output import Report
from feedletter.publish.websub import ping
from feedletter.store import Store

__all__ = ["SITE", "Published", "Site", "build", "publish"]


@dataclass
class Published:
    """What a build produced: every file, the ones whose bytes changed, and hub problems if any."""

    root: Path
    files: list[Path] = field(default_factory=list)
    changed: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    changed_feeds: list[str] = field(default_factory=list)  # their URLs: the WebSub topics
    hub_problems: list[str] = field(default_factory=list)


class Site:
    """Publishing an issue rebuilds the whole site: the issue's pages and feeds, and the pages that list it."""

    name = "site"

    def publish(self, config: Config, store: Store, issue: PublishedIssue) -> Report:
        return Report(self.name, len(build(config, store).files), "files")


SITE = Site()


def publish(config: Config, store: Store, *, rebuild: bool = False) -> Published:
    """Build the site and announce every feed whose bytes changed to the WebSub hub, if one is set."""
    result = build(config, store, rebuild=rebuild)
    if config.site.websub_hub and result.changed_feeds:
        result.hub_problems = ping(config.site.websub_hub, result.changed_feeds)
    return result


def build(config: Config, store: Store, *, rebuild: bool = False) -> Published:
    """Write every newsletter's feeds and archive under ``site.archive_dir``.

    ``rebuild`` rewrites every file even when its bytes are unchanged and removes files in the
    newsletters' folders that the store no longer produces (a deleted issue, a changed page size).
    """
    root = config.resolve(config.site.archive_dir)
    env = environment(config)
    result = Published(root)
    everyone: dict[str, list[PublishedIssue]] = {}
    for newsletter in config.newsletters:
        issues = load_issues(config, store, newsletter)
        everyone[newsletter.name] = issues
        folder = root / newsletter.name
        where = addresses(config, newsletter)
        produced: set[Path] = set()
        for relative, data in feeds(config, newsletter, issues, env):
            if _write(result, folder / relative, data, rebuild):
                result.changed_feeds.append(where.home + relative)
            produced.add(folder / relative)
        for relative, html in Archive(config, newsletter, env).pages(issues):
            _write(result, folder / relative, html.encode("utf-8"), rebuild)
            produced.add(folder / relative)
        if rebuild:
            result.removed += _prune(folder, produced)
    _write(result, root / "index.html", home_page(config, env, everyone).encode("utf-8"), rebuild)
    return result


def _write(result: Published, path: Path, data: bytes, rebuild: bool) -> bool:
    """Write ``data`` to ``path`` atomically if it differs (or always, when rebuilding); True if changed."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        changed = not path.is_file() or path.read_bytes() != data
        if changed or rebuild:
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
    except OSError as exc:
        raise SyndicateError(str(path), f"cannot write: {exc.strerror or exc}") from None
    result.files.append(path)
    if changed:
        result.changed.append(path)
    return changed


def _prune(folder: Path, produced: set[Path]) -> list[Path]:
    removed = []
    for path in sorted(folder.rglob("*"), reverse=True):
        if path.is_file() and path not in produced:
            path.unlink()
            removed.append(path)
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return removed
