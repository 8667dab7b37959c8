"""Tell a WebSub hub that feeds changed, so subscribers get new issues without polling.

WebSub (W3C) leaves the publisher-to-hub notice to each hub; the form every public hub accepts is
a POST of ``hub.mode=publish`` and ``hub.url=<topic>``, one topic per request. A hub being down
must not undo a published issue: problems are logged and returned, never raised.

As an output, it announces a published issue's feeds once per (issue, hub), claimed in the ledger:
a rerun does not ping again, and a ping that failed is tried again by the next call for the issue.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import requests

from feedletter import ledger
from feedletter.config import Config
from feedletter.publish.issues import PublishedIssue, addresses, feed_paths
from feedletter.publish.output import Report
from feedletter.store import Store

log = logging.getLogger("feedletter.publish.websub")

USER_AGENT = "feedletter-websub/0.1"


def ping(hub: str, topics: Iterable[str], *, timeout: float = 10.0) -> list[str]:
    """POST a publish notice to ``hub`` for each topic URL; return one problem line per failure."""
    problems = []
    with requests.Session() as session:
        session.headers["User-Agent"] = USER_AGENT
        for topic in topics:
            try:
                response = session.post(hub, data={"hub.mode": "publish", "hub.url": topic}, timeout=timeout,
                                        allow_redirects=False)
            except requests.RequestException as exc:
                problems.append(f"syndicate: {hub}: WebSub ping for {topic} failed: {exc.__class__.__name__}: {exc}")
                continue
            # Hubs answer 204 No Content (or 202/200); anything else means the notice was not taken.
            if not 200 <= response.status_code < 300:
                problems.append(f"syndicate: {hub}: WebSub ping for {topic} answered HTTP {response.status_code}")
    for problem in problems:
        log.warning("%s", problem)
    return problems


class WebSub:
    name = "websub"
    kind = "websub"  # its entries in the ledger

    def publish(self, config: Config, store: Store, issue: PublishedIssue) -> Report:
        hub = config.site.websub_hub
        if not hub:
            return Report(self.name, 0, "pings")
        newsletter = config.newsletter(issue.newsletter)
        topics = [addresses(config, newsletter).home + path for path in feed_paths(newsletter)]
        held = ledger.claim(store, self.kind, f"{issue.id}/{hub}") if topics else None
        if held is None:  # no feeds, or pinged for this issue already, or another run is at it
            return Report(self.name, 0, "pings")
        problems = ping(hub, topics)
        if problems:
            ledger.fail(store, held, "; ".join(problems))
        else:
            ledger.record(store, held, "pinged", done=True)
        return Report(self.name, len(topics) - len(problems), "pings", tuple(problems))


WEBSUB = WebSub()
