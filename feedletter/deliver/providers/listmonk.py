"""Listmonk: the issue becomes one campaign to the newsletter's lists, sent by Listmonk itself.

API (listmonk.app/docs/apis/campaigns): ``POST /api/campaigns`` with the HTML body and list IDs
creates a draft; ``PUT /api/campaigns/{id}/status`` with ``{"status": "running"}`` starts it;
``GET /api/campaigns/{id}`` tells its status. An API user's name and token authenticate (HTTP Basic).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import requests
from pydantic import field_validator

from feedletter.config_fields import Settings, check_http_url
from feedletter.deliver.api import authenticate, call_api
from feedletter.deliver.message import IssueContent
from feedletter.errors import DeliveryError
from feedletter.issue.placeholders import NAME, UNSUBSCRIBE_URL, to_merge_tags
from feedletter.plugins import ProviderEntry
from feedletter.redact import secret_env

if TYPE_CHECKING:
    from feedletter.config import Config
    from feedletter.config_newsletters import Newsletter

# Listmonk's own template tags for what feedletter fills in per subscriber when it sends by SMTP.
MERGE_TAGS = {UNSUBSCRIBE_URL: "{{ UnsubscribeURL }}", NAME: "{{ .Subscriber.FirstName }}"}
STARTED = ("running", "finished", "paused", "cancelled")


class ListmonkProvider(Settings):
    """``providers.listmonk``; the API user's name and token come from the environment only."""

    url: str = "http://localhost:9000"
    user_env: str = "FEEDLETTER_LISTMONK_USER"
    token_env: str = "FEEDLETTER_LISTMONK_TOKEN"
    lists: list[int] = []
    template_id: int | None = None

    _url = field_validator("url")(check_http_url)


class ListmonkClient:
    name = "listmonk"

    def __init__(self, settings: ListmonkProvider, user: str, token: str) -> None:
        self.settings = settings
        self.base = settings.url.rstrip("/")
        self.session = requests.Session()
        authenticate(self.session, user, token)

    @classmethod
    def from_config(cls, config: Config, newsletter: Newsletter | None = None) -> ListmonkClient:
        """The client every newsletter shares; each issue brings its own newsletter's lists."""
        del newsletter
        settings = PROVIDER.settings_in(config)
        # The user name is not a secret by itself; with the token (user:token, Basic auth) it is.
        user, token = os.environ.get(settings.user_env), secret_env(settings.token_env)
        if not user or not token:
            raise DeliveryError("listmonk", f"${settings.user_env} and ${settings.token_env} must be set "
                                "(an API user from Admin → Users)", transient=False)
        return cls(settings, user, token)

    def create(self, issue: IssueContent) -> str:
        lists = [int(x) for x in issue.newsletter.lists] or self.settings.lists
        if not lists:
            raise DeliveryError("listmonk", "no list IDs (providers.listmonk.lists or newsletters[].lists)",
                                transient=False)
        body: dict[str, Any] = {"name": f"{issue.newsletter.title} · issue {issue.issue_id}", "subject": issue.subject,
                "lists": lists, "from_email": issue.newsletter.sender, "type": "regular",
                "content_type": "html", "messenger": "email", "body": to_merge_tags(issue.html, MERGE_TAGS),
                "altbody": to_merge_tags(issue.text, MERGE_TAGS), "tags": ["feedletter", issue.newsletter.name]}
        if self.settings.template_id is not None:
            body["template_id"] = self.settings.template_id
        answer = call_api(self.session, self.name, "POST", f"{self.base}/api/campaigns", json=body)
        try:
            return str(answer["data"]["id"])
        except (KeyError, TypeError):
            raise DeliveryError("listmonk", "POST /api/campaigns: no campaign id in the answer",
                                transient=False) from None

    def start(self, campaign_id: str) -> None:
        call_api(self.session, self.name, "PUT", f"{self.base}/api/campaigns/{campaign_id}/status",
                 json={"status": "running"})

    def is_started(self, campaign_id: str) -> bool:
        answer = call_api(self.session, self.name, "GET", f"{self.base}/api/campaigns/{campaign_id}")
        return str((answer.get("data") or {}).get("status")) in STARTED


PROVIDER = ProviderEntry("listmonk", ListmonkProvider, "campaign", ListmonkClient.from_config)
