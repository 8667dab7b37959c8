"""Issue-level sends through a campaign provider (Listmonk, Mailchimp), at most one per issue.

Each remote step is recorded around the call: ``creating`` → (create) → ``created`` with the
campaign id → ``starting`` → (start) → ``started``. A rerun resumes from the record: it never
starts a campaign it has recorded as started, and when it finds ``starting`` (a crash during the
start call) it asks the provider whether the campaign is already under way before starting it.
A crash between the create call and its record can leave an unsent draft behind on the provider's
side; the rerun creates a fresh one, so subscribers still get the issue once. The record is the
campaign's ledger entry (``feedletter.ledger``), whose lease keeps two runs from working on the
same campaign at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, cast

from feedletter import ledger
from feedletter.config import Config
from feedletter.config_newsletters import Newsletter
from feedletter.deliver.message import IssueContent
from feedletter.errors import DeliveryError
from feedletter.plugins import PROVIDERS
from feedletter.store import Store

KIND = "campaign"  # its entries in the ledger


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
    key = ledger_key(issue.issue_id, client.name)
    held = ledger.claim(store, KIND, key, state="creating")
    if held is None:  # started already, or another run is at it
        found = ledger.entry(store, KIND, key)
        assert found is not None
        return CampaignResult(client.name, found.ref, found.state)
    created = started = False
    try:
        campaign_id = held.ref
        if campaign_id is None:
            campaign_id = client.create(issue)
            created = True
            held = ledger.record(store, held, "created", ref=campaign_id)
        if not (held.state == "starting" and client.is_started(campaign_id)):
            held = ledger.record(store, held, "starting")
            client.start(campaign_id)
            started = True
        held = ledger.record(store, held, "started", done=True)
    except DeliveryError as exc:
        ledger.fail(store, held, str(exc))
        raise
    return CampaignResult(client.name, campaign_id, held.state, created, started)


def ledger_key(issue_id: int, provider: str) -> str:
    """The campaign's entry in the ledger (store.py moves records from before the ledger to the same key)."""
    return f"{issue_id}/{provider}"


def recorded(store: Store, issue_id: int) -> list[dict[str, object]]:
    """The campaigns recorded for an issue (for status output and tests)."""
    return [{"issue_id": issue_id, "provider": e.key.split("/", 1)[1], "campaign_id": e.ref, "state": e.state,
             "created": e.created, "started": e.done, "lease_until": e.lease_until, "error": e.error}
            for e in ledger.entries(store, KIND, f"{issue_id}/")]

