"""JSON API calls to campaign providers (Listmonk, Mailchimp), with their failures sorted for retries.

What a provider says back when it refuses is shown and stored trimmed (:data:`BODY_LIMIT`) and
masked: a provider may quote the credentials it was sent.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import requests

from feedletter.errors import DeliveryError
from feedletter.redact import register_pair, trimmed

__all__ = ["BODY_LIMIT", "authenticate", "call_api"]

BODY_LIMIT = 300  # characters of a provider's error body kept in messages and the store


def authenticate(session: requests.Session, user: str, password: str) -> None:
    """HTTP Basic auth for every call of ``session``; the pair is masked wherever it would be printed."""
    register_pair(user, password)
    session.auth = (user, password)


def call_api(session: requests.Session, provider: str, method: str, url: str, *,
             json: dict[str, Any] | None = None, timeout: float = 30.0) -> dict[str, Any]:
    """One JSON API call; 429, 5xx and network failures are transient, other refusals permanent."""
    path = urlsplit(url).path
    try:
        response = session.request(method, url, json=json, timeout=timeout)
    except requests.RequestException as exc:
        raise DeliveryError(provider, f"{method} {path}: {exc.__class__.__name__}: {exc}", transient=True) from None
    if response.status_code >= 400:
        try:
            body = response.json()
            detail = str(body.get("message") or body.get("detail") or body.get("title") or body)
        except ValueError:
            detail = response.text
        raise DeliveryError(provider, f"{method} {path}: HTTP {response.status_code}: {trimmed(detail, BODY_LIMIT)}",
                            transient=response.status_code == 429 or response.status_code >= 500)
    if not response.content:
        return {}
    try:
        data = response.json()
    except ValueError:
        raise DeliveryError(provider, f"{method} {path}: answer is not JSON", transient=False) from None
    return data if isinstance(data, dict) else {"data": data}
