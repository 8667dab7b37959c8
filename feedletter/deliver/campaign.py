"""Issue-level sends through a campaign provider (Listmonk, Mailchimp), at most one per issue.

Each remote step is recorded around the call: ``creating`` → (create) → ``created`` with the
campaign id → ``starting`` → (start) → ``started``. A rerun resumes from the record: it never
starts a campaign it has recorded as started, and when it finds ``starting`` (a crash during the
start call) it asks the provider whether the campaign is already under way before starting it.
A crash between the create call and its record can leave an unsent draft behind on the provider's
side; the rerun creates a fresh one, so subscribers still get the issue once. A lease keeps two
runs from working on the same campaign at once.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol, cast

import sqlalchemy as sa

from feedletter.config import Config, Newsletter
from feedletter.deliver.message import IssueContent
from feedletter.errors import DeliveryError
from feedletter.plugins import PROVIDERS
from feedletter.store import Store, campaigns, now

LEASE = timedelta(minutes=10)


class CampaignClient(Protocol):
    name: str

    def create(self, issue: IssueContent) -> str: ...

    def start(self, campaign_id: str) -> None: ...

    def is_started(self, campaign_id: str) -> bool: ...


@dataclass(frozen=True)
class CampaignResult:
    provider: str
    campaign_id: str | None
    state: str
    created: bool = False  # this call created the campaign
    started: bool = False  # this call started it


def make_client(config: Config, newsletter: Newsletter) -> CampaignClient:
    """The campaign client of the newsletter's provider; secrets come from the environment only."""
    provider = PROVIDERS.get(newsletter.provider)
    if provider.kind != "campaign":
        known = " or ".join(n for n in PROVIDERS.names() if PROVIDERS.get(n).kind == "campaign")
        raise DeliveryError(provider.name, f"not a campaign provider ({known})", transient=False)
    return cast(CampaignClient, provider.factory(config, newsletter))


def send_campaign(config: Config, store: Store, issue: IssueContent,
                  client: CampaignClient | None = None) -> CampaignResult:
    """Create and start the issue's campaign unless the store says it already went out."""
    client = client or make_client(config, issue.newsletter)
    key = sa.and_(campaigns.c.issue_id == issue.issue_id, campaigns.c.provider == client.name)
    owner = uuid.uuid4().hex
    row = _claim(store, issue.issue_id, client.name, owner)
    if row is None:
        with store.begin() as conn:
            found = conn.execute(sa.select(campaigns).where(key)).mappings().one()
        return CampaignResult(client.name, found["campaign_id"], found["state"])
    campaign_id, state = row
    created = started = False
    try:
        if campaign_id is None:
            campaign_id = client.create(issue)
            created = True
            _record(store, key, owner, campaign_id=campaign_id, state="created")
            state = "created"
        if state == "starting" and client.is_started(campaign_id):
            state = "started"
        if state != "started":
            _record(store, key, owner, state="starting")
            client.start(campaign_id)
            started = True
            state = "started"
        _record(store, key, owner, state="started", started=now(), lease_owner=None, lease_until=None,
                error=None)
    except DeliveryError as exc:
        _record(store, key, owner, error=str(exc)[:500], lease_owner=None, lease_until=None)
        raise
    return CampaignResult(client.name, campaign_id, state, created, started)


def _claim(store: Store, issue_id: int, provider: str, owner: str) -> tuple[str | None, str] | None:
    """Take the campaign's record under a lease; None when it is started or another run holds it."""
    stamp = now()
    key = sa.and_(campaigns.c.issue_id == issue_id, campaigns.c.provider == provider)
    with store.begin() as conn:
        exists = conn.execute(sa.select(campaigns.c.state).where(key)).first()
        if exists is None:
            try:
                with conn.begin_nested():
                    conn.execute(campaigns.insert().values(issue_id=issue_id, provider=provider,
                                                           state="creating", created=stamp))
            except sa.exc.IntegrityError:
                pass  # another run inserted it first; the lease below decides who goes on
    with store.begin() as conn:
        won = conn.execute(campaigns.update().where(
            key, campaigns.c.state != "started",
            sa.or_(campaigns.c.lease_until.is_(None), campaigns.c.lease_until < stamp))
            .values(lease_owner=owner, lease_until=stamp + LEASE)).rowcount
        if won != 1:
            return None
        row = conn.execute(sa.select(campaigns.c.campaign_id, campaigns.c.state).where(key)).one()
    return row.campaign_id, row.state


def _record(store: Store, key: sa.ColumnElement[bool], owner: str, **values: object) -> None:
    with store.begin() as conn:
        conn.execute(campaigns.update().where(key, campaigns.c.lease_owner == owner).values(**values))


def recorded(store: Store, issue_id: int) -> list[dict[str, object]]:
    """The campaigns recorded for an issue (for status output and tests)."""
    with store.begin() as conn:
        return [dict(r) for r in conn.execute(sa.select(campaigns).where(campaigns.c.issue_id == issue_id))
                .mappings()]

