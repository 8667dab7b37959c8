"""Publishing issues beyond email, through outputs.

An output is anything a saved issue is published to after it is sent: the ``site`` (feeds and the
web archive, ``site.py``) and the ``websub`` hub (``websub.py``), in that order, so that the hub's
fetch finds the new feeds. Each keeps its own effects to once per issue, however often it is called:
the site is rebuilt from the store, byte for byte; an output that posts or pings claims each post in
the ledger (``feedletter.ledger``) first. Another output is a module with a class like these, and
``register`` (or a line in ``outputs``) to have the digest run call it.
"""

from __future__ import annotations

from feedletter.config import Config
from feedletter.publish.issues import load_issue
from feedletter.publish.output import Output, Report
from feedletter.store import Store

_registered: list[Output] = []


def outputs() -> list[Output]:
    """Every output an issue is published to, in order: the built-in ones, then those registered."""
    from feedletter.publish.site import SITE
    from feedletter.publish.websub import WEBSUB

    return [SITE, WEBSUB, *_registered]


def register(output: Output) -> Output:
    """Publish every issue to ``output`` too, after the outputs before it."""
    if any(known.name == output.name for known in outputs()):
        raise ValueError(f"an output named {output.name!r} is registered already")
    _registered.append(output)
    return output


def unregister(name: str) -> None:
    _registered[:] = [output for output in _registered if output.name != name]


def publish_issue(config: Config, store: Store, issue_id: int) -> list[Report]:
    """Publish a saved issue to every output, in order; an output that fails stops the ones after it."""
    issue = load_issue(config, store, issue_id)
    return [output.publish(config, store, issue) for output in outputs()]


__all__ = ["Output", "Report", "outputs", "publish_issue", "register", "unregister"]
