"""Listmonk and Mailchimp campaigns against loopback fakes of their documented REST APIs.

Each fake (pytest-httpserver) checks method, path, authentication and JSON body of every request;
the store's campaign record must keep a rerun from creating or starting a second campaign.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from fixtures_delivery import make_issue
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from feedletter.config import Config
from feedletter.deliver import outbox, send_issue
from feedletter.deliver.campaign import recorded, send_campaign
from feedletter.deliver.providers.listmonk import ListmonkProvider
from feedletter.deliver.providers.mailchimp import MailchimpClient, MailchimpProvider, api_url
from feedletter.errors import DeliveryError
from feedletter.store import Store

HTML = '<p>Hi %%NAME%%</p><a href="%%UNSUBSCRIBE_URL%%">Unsubscribe</a>'
TEXT = "Hi %%NAME%%\nUnsubscribe: %%UNSUBSCRIBE_URL%%\n"


def _basic(user: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()


def _with(config: Config, provider: str, **providers: Any) -> Config:
    newsletter = config.newsletter("weekly").model_copy(update={"provider": provider})
    updated = config.model_copy(update={"newsletters": [newsletter],
                                        "providers": config.providers.model_copy(update=providers)})
    object.__setattr__(updated, "_source_path", config._path)
    return updated


class Calls:
    """Requests the fake saw, in order, as (method, path, json)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, Any]] = []

    def record(self, request: Request) -> Any:
        body = request.get_json(silent=True)
        self.seen.append((request.method, request.path, body))
        return body


@pytest.fixture
def listmonk(demo_config: Config, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("FEEDLETTER_LISTMONK_USER", "feedletter-api")
    monkeypatch.setenv("FEEDLETTER_LISTMONK_TOKEN", "tok-123")
    return _with(demo_config, "listmonk",
                 listmonk=ListmonkProvider(url=httpserver.url_for("/").rstrip("/"), lists=[3, 4]))


def _listmonk_fake(httpserver: HTTPServer, calls: Calls, status: str = "draft") -> None:
    auth = {"Authorization": _basic("feedletter-api", "tok-123")}

    def create(request: Request) -> Response:
        body = calls.record(request)
        assert body["lists"] == [3, 4] and body["content_type"] == "html" and body["type"] == "regular"
        assert body["subject"] == "Weekly: hello" and body["from_email"] == "Riverside Weekly <news@riverside.example>"
        assert "{{ UnsubscribeURL }}" in body["body"] and "%%" not in body["body"] + body["altbody"]
        return Response(json.dumps({"data": {"id": 42, "status": "draft"}}), content_type="application/json")

    def start(request: Request) -> Response:
        assert calls.record(request) == {"status": "running"}
        return Response(json.dumps({"data": {"id": 42, "status": "running"}}), content_type="application/json")

    def show(request: Request) -> Response:
        calls.record(request)
        return Response(json.dumps({"data": {"id": 42, "status": status}}), content_type="application/json")

    httpserver.expect_request("/api/campaigns", method="POST", headers=auth).respond_with_handler(create)
    httpserver.expect_request("/api/campaigns/42/status", method="PUT", headers=auth).respond_with_handler(start)
    httpserver.expect_request("/api/campaigns/42", method="GET", headers=auth).respond_with_handler(show)


def test_listmonk_campaign_is_created_and_started_once(listmonk: Config, store: Store,
                                                       httpserver: HTTPServer) -> None:
    calls = Calls()
    _listmonk_fake(httpserver, calls)
    issue = make_issue(listmonk, store, 3, html=HTML, text=TEXT)
    counts = send_issue(listmonk, store, issue.issue_id)
    assert counts.sent == 1 and counts.skipped == 3  # the outbox rows are settled: the list got it
    assert [(m, p) for m, p, _ in calls.seen] == [("POST", "/api/campaigns"), ("PUT", "/api/campaigns/42/status")]
    again = send_issue(listmonk, store, issue.issue_id)
    assert again.sent == 0 and len(calls.seen) == 2
    assert [(r["campaign_id"], r["state"]) for r in recorded(store, issue.issue_id)] == [("42", "started")]
    assert outbox.counts(store, issue.issue_id)["queued"] == 0
    httpserver.check_assertions()


def test_listmonk_rerun_after_a_crash_during_start_asks_before_starting(listmonk: Config, store: Store,
                                                                        httpserver: HTTPServer) -> None:
    calls = Calls()
    _listmonk_fake(httpserver, calls, status="running")
    issue = make_issue(listmonk, store, 1, html=HTML, text=TEXT)
    from feedletter.schema import ledger
    from feedletter.store import now

    with store.begin() as conn:  # what a run killed inside the start call leaves behind, its lease run out
        conn.execute(ledger.insert().values(kind="campaign", key=f"{issue.issue_id}/listmonk", ref="42",
                                            state="starting", created=now()))
    result = send_campaign(listmonk, store, issue)
    assert result.state == "started" and not result.started and not result.created
    assert [(m, p) for m, p, _ in calls.seen] == [("GET", "/api/campaigns/42")]


def test_listmonk_refusal_is_permanent_and_names_the_step(listmonk: Config, store: Store,
                                                          httpserver: HTTPServer) -> None:
    httpserver.expect_request("/api/campaigns", method="POST").respond_with_json(
        {"message": "invalid list IDs"}, status=400)
    issue = make_issue(listmonk, store, 1, html=HTML, text=TEXT)
    with pytest.raises(DeliveryError, match=r"listmonk: POST /api/campaigns: HTTP 400: invalid list IDs") as err:
        send_issue(listmonk, store, issue.issue_id)
    assert not err.value.transient


def test_listmonk_needs_its_secrets_from_the_environment(listmonk: Config, store: Store,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FEEDLETTER_LISTMONK_TOKEN")
    issue = make_issue(listmonk, store, 1)
    with pytest.raises(DeliveryError, match="FEEDLETTER_LISTMONK_TOKEN"):
        send_issue(listmonk, store, issue.issue_id)


KEY = "0123456789abcdef0123456789abcdef-us6"


@pytest.fixture
def mailchimp(demo_config: Config, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch) -> Config:
    monkeypatch.setenv("FEEDLETTER_MAILCHIMP_KEY", KEY)
    return _with(demo_config, "mailchimp", mailchimp=MailchimpProvider(
        list_id="aud-77", api_url=httpserver.url_for("/3.0")))


def test_mailchimp_campaign_content_and_send_once(mailchimp: Config, store: Store, httpserver: HTTPServer) -> None:
    calls = Calls()
    auth = {"Authorization": _basic("feedletter", KEY)}

    def create(request: Request) -> Response:
        body = calls.record(request)
        assert body["type"] == "regular" and body["recipients"] == {"list_id": "aud-77"}
        assert body["settings"]["subject_line"] == "Weekly: hello"
        assert body["settings"]["from_name"] == "Riverside Weekly"
        assert body["settings"]["reply_to"] == "news@riverside.example"
        return Response(json.dumps({"id": "c0ffee", "status": "save"}), content_type="application/json")

    def content(request: Request) -> Response:
        body = calls.record(request)
        assert "*|UNSUB|*" in body["html"] and "*|FNAME|*" in body["plain_text"] and "%%" not in body["html"]
        return Response(json.dumps({"html": body["html"]}), content_type="application/json")

    def send(request: Request) -> Response:
        calls.record(request)
        return Response(status=204)

    httpserver.expect_request("/3.0/campaigns", method="POST", headers=auth).respond_with_handler(create)
    httpserver.expect_request("/3.0/campaigns/c0ffee/content", method="PUT", headers=auth).respond_with_handler(content)
    httpserver.expect_request("/3.0/campaigns/c0ffee/actions/send", method="POST",
                              headers=auth).respond_with_handler(send)
    issue = make_issue(mailchimp, store, 2, html=HTML, text=TEXT)
    assert send_issue(mailchimp, store, issue.issue_id).sent == 1
    assert send_issue(mailchimp, store, issue.issue_id).sent == 0
    assert [(m, p) for m, p, _ in calls.seen] == [("POST", "/3.0/campaigns"), ("PUT", "/3.0/campaigns/c0ffee/content"),
                                                  ("POST", "/3.0/campaigns/c0ffee/actions/send")]
    httpserver.check_assertions()


def test_mailchimp_server_error_is_transient_and_the_rerun_resumes(mailchimp: Config, store: Store,
                                                                   httpserver: HTTPServer) -> None:
    httpserver.expect_request("/3.0/campaigns", method="POST").respond_with_json({"id": "abc", "status": "save"})
    httpserver.expect_request("/3.0/campaigns/abc/content", method="PUT").respond_with_json({})
    httpserver.expect_oneshot_request("/3.0/campaigns/abc/actions/send", method="POST").respond_with_json(
        {"title": "Service Unavailable"}, status=503)
    issue = make_issue(mailchimp, store, 1, html=HTML, text=TEXT)
    with pytest.raises(DeliveryError, match="HTTP 503") as err:
        send_issue(mailchimp, store, issue.issue_id)
    assert err.value.transient
    httpserver.expect_request("/3.0/campaigns/abc", method="GET").respond_with_json({"id": "abc", "status": "save"})
    httpserver.expect_request("/3.0/campaigns/abc/actions/send", method="POST").respond_with_data("", status=204)
    assert send_issue(mailchimp, store, issue.issue_id).sent == 1
    creates = [r for r, _ in httpserver.log if r.method == "POST" and r.path == "/3.0/campaigns"]
    assert len(creates) == 1, "the rerun reuses the recorded campaign"


def test_mailchimp_api_root_comes_from_the_key_suffix() -> None:
    assert api_url(KEY) == "https://us6.api.mailchimp.com/3.0"
    assert MailchimpClient(MailchimpProvider(), "abc-eu2").base == "https://eu2.api.mailchimp.com/3.0"
    with pytest.raises(DeliveryError, match="data-center"):
        api_url("nodashkey")
