"""Mailchimp: the issue becomes one regular campaign to the newsletter's audience.

Marketing API 3.0: ``POST /campaigns`` (type, recipients.list_id, settings), then
``PUT /campaigns/{id}/content`` (html, plain_text), then ``POST /campaigns/{id}/actions/send``;
``GET /campaigns/{id}`` tells its status. The API key authenticates (HTTP Basic, any user name) and
names the data center: a key ending in ``-us6`` is served by https://us6.api.mailchimp.com/3.0.
"""

from __future__ import annotations

from email.utils import parseaddr
from typing import TYPE_CHECKING

import requests

from feedletter.config_fields import Settings
from feedletter.deliver.api import authenticate, call_api
from feedletter.deliver.message import IssueContent
from feedletter.errors import DeliveryError
from feedletter.issue.placeholders import NAME, UNSUBSCRIBE_URL, to_merge_tags
from feedletter.plugins import ProviderEntry
from feedletter.redact import secret_env

if TYPE_CHECKING:
    from feedletter.config import Config
    from feedletter.config_newsletters import Newsletter

# Mailchimp merge tags for what feedletter fills in per subscriber when it sends by SMTP.
MERGE_TAGS = {UNSUBSCRIBE_URL: "*|UNSUB|*", NAME: "*|FNAME|*"}
STARTED = ("sending", "sent", "schedule")


class MailchimpProvider(Settings):
    """``providers.mailchimp``; the API key comes from the environment only."""

    key_env: str = "FEEDLETTER_MAILCHIMP_KEY"
    list_id: str = ""
    # Normally derived from the key's data-center suffix (…-us6 → https://us6.api.mailchimp.com/3.0).
    api_url: str | None = None


def api_url(key: str) -> str:
    """The API root for a key: its suffix after the last '-' is the data center."""
    prefix, _, dc = key.rpartition("-")
    if not prefix or not dc.isalnum():
        raise DeliveryError("mailchimp", "the API key has no data-center suffix (like …-us6)", transient=False)
    return f"https://{dc}.api.mailchimp.com/3.0"


class MailchimpClient:
    name = "mailchimp"

    def __init__(self, settings: MailchimpProvider, key: str) -> None:
        self.settings = settings
        self.base = (settings.api_url or api_url(key)).rstrip("/")
        self.session = requests.Session()
        authenticate(self.session, "feedletter", key)

    @classmethod
    def from_config(cls, config: Config, newsletter: Newsletter | None = None) -> MailchimpClient:
        """The client every newsletter shares; each issue brings its own newsletter's audience."""
        del newsletter
        settings = PROVIDER.settings_in(config)
        key = secret_env(settings.key_env)
        if not key:
            raise DeliveryError("mailchimp", f"${settings.key_env} is not set (an API key like …-us6)",
                                transient=False)
        return cls(settings, key)

    def create(self, issue: IssueContent) -> str:
        newsletter = issue.newsletter
        audience = newsletter.lists[0] if newsletter.lists else self.settings.list_id
        if not audience:
            raise DeliveryError("mailchimp", "no audience (providers.mailchimp.list_id or newsletters[].lists)",
                                transient=False)
        name, address = parseaddr(newsletter.sender)
        reply_to = parseaddr(newsletter.reply_to)[1] if newsletter.reply_to else address
        answer = call_api(self.session, self.name, "POST", f"{self.base}/campaigns", json={
            "type": "regular", "recipients": {"list_id": audience},
            "settings": {"subject_line": issue.subject, "title": f"{newsletter.title} · issue {issue.issue_id}",
                         "from_name": name or newsletter.title, "reply_to": reply_to}})
        campaign_id = answer.get("id")
        if not campaign_id:
            raise DeliveryError("mailchimp", "POST /campaigns: no campaign id in the answer", transient=False)
        call_api(self.session, self.name, "PUT", f"{self.base}/campaigns/{campaign_id}/content",
                 json={"html": to_merge_tags(issue.html, MERGE_TAGS),
                       "plain_text": to_merge_tags(issue.text, MERGE_TAGS)})
        return str(campaign_id)

    def start(self, campaign_id: str) -> None:
        call_api(self.session, self.name, "POST", f"{self.base}/campaigns/{campaign_id}/actions/send")

    def is_started(self, campaign_id: str) -> bool:
        answer = call_api(self.session, self.name, "GET", f"{self.base}/campaigns/{campaign_id}")
        return str(answer.get("status")) in STARTED


PROVIDER = ProviderEntry("mailchimp", MailchimpProvider, "campaign", MailchimpClient.from_config)
