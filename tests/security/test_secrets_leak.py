"""Secrets leak nowhere (issue 19): a provider that echoes every credential it is sent, a digest
run against it in this process, from the command line and as a Prefect flow, and everything the
runs left behind searched for the credentials.

What is searched: captured stdout, stderr and log records, the command's output, every text
column of every table in the store, every file under the run's folder (alert mails, the store's
file), and Prefect's side: flow and task run state messages, logs, artifacts, and Prefect's own
database file.
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
import sqlalchemy as sa

from feedletter import subscribers
from feedletter.config import Config, load_config, parse_config
from feedletter.deliver.api import BODY_LIMIT, authenticate, call_api
from feedletter.errors import DeliveryError, FeedletterError, MaskedError, is_transient, masked_errors
from feedletter.redact import MASK, SECRETS, MaskedStream, forms_of, mask
from feedletter.runner import InProcess
from feedletter.runs import digest_run
from feedletter.schema import metadata
from feedletter.sitehost import SiteHost
from feedletter.store import Store
from tests.conftest import ROOT, SECRET, run_gather, write_config

LISTMONK_USER = "lm-robot-user"
LISTMONK_TOKEN = "lm-T0ken-Zq81vX0pW4"
MAILCHIMP_KEY = "mc-Key-5b8d2e7f1a9c-us6"
SMTP_PASSWORD = "Pw/with/slash-93"  # never sent: masked as configured, encoded and decoded
LLM_KEY = "sk-llm-77c1d2e3f4a5"


@pytest.fixture(autouse=True)
def _forget_secrets() -> Iterator[None]:
    yield
    SECRETS.clear()


# -- the registry ---------------------------------------------------------------------------------

CONFIG_WITH_SECRETS = """\
store: sqlite:///{store}
newsletters:
  - {{name: weekly, title: Weekly, provider: listmonk}}
providers:
  listmonk: {{url: 'http://127.0.0.1:9', user_env: LM_WHO, token_env: LM_T0K, lists: [1]}}
  mailchimp: {{key_env: MC_K3Y_VAR, list_id: abc}}
  smtp: {{url_env: OUTBOUND_MAIL, dkim: {{domain: example.com, selector: s1, key_env: SIGNING_PEM}}}}
stories:
  llm: {{base_url: 'http://127.0.0.1:9/v1', model: m, api_key_env: SUMMARY_CRED}}
"""
PEM_LINE = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7"


def test_every_secret_the_config_names_is_registered_at_load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Variable names that say nothing: only the config tells that they hold secrets.
    monkeypatch.setenv("LM_WHO", LISTMONK_USER)
    monkeypatch.setenv("LM_T0K", LISTMONK_TOKEN)
    monkeypatch.setenv("MC_K3Y_VAR", MAILCHIMP_KEY)
    monkeypatch.setenv("OUTBOUND_MAIL", f"smtp://news:{quote(SMTP_PASSWORD, safe='')}@127.0.0.1:1")
    monkeypatch.setenv("SUMMARY_CRED", LLM_KEY)
    monkeypatch.setenv("SIGNING_PEM", f"-----BEGIN PRIVATE KEY-----\n{PEM_LINE}\n-----END PRIVATE KEY-----\n")
    path = tmp_path / "sources.yaml"
    path.write_text(CONFIG_WITH_SECRETS.format(store=tmp_path / "f.db"))
    assert mask(LISTMONK_TOKEN) == LISTMONK_TOKEN  # nothing known yet
    load_config(path)
    for name in ("LM_T0K", "MC_K3Y_VAR", "OUTBOUND_MAIL", "SUMMARY_CRED", "SIGNING_PEM"):
        monkeypatch.delenv(name)  # registered once: masked even when the variable is gone
    for secret in (LISTMONK_TOKEN, MAILCHIMP_KEY, LLM_KEY, SMTP_PASSWORD, quote(SMTP_PASSWORD, safe=""),
                   quote(LISTMONK_TOKEN + "/x", safe=""), PEM_LINE):
        assert secret not in mask(f"said: {secret}!"), secret
    assert mask(json.dumps({"token": LISTMONK_TOKEN})) == json.dumps({"token": MASK})
    # A URL keeps what operators need to read; a user name is a secret only with its password.
    assert mask(f"smtp://news:{quote(SMTP_PASSWORD, safe='')}@127.0.0.1:1") == "smtp://news:***@127.0.0.1:1"
    assert mask(f"user {LISTMONK_USER}") == f"user {LISTMONK_USER}"


@pytest.mark.parametrize(("name", "secret"), [
    ("MAILCHIMP_API_KEY", True), ("FEEDLETTER_MAILCHIMP_KEY", True), ("LISTMONK_TOKEN", True),
    ("FEEDLETTER_SECRET", True), ("DB_PASSWORD", True), ("SMTP_PASS", True), ("GITHUB_AUTH", True),
    ("GCP_CREDENTIALS", True), ("api_key", True), ("APP_DATABASE_URL", True),
    ("KEYBOARD_LAYOUT", False), ("PASSAGE_DIR", False), ("MONKEY", False), ("AUTHOR", False), ("PWD", False),
])
def test_variables_named_as_credentials_are_secrets(monkeypatch: pytest.MonkeyPatch, name: str, secret: bool) -> None:
    value = "postgresql://app:Db-Pa55-word@db/x" if name.endswith("_URL") else "val-8f2c1e9d7b"
    monkeypatch.setenv(name, value)
    clean = mask(f"error: {value}")
    assert ("8f2c1e9d7b" not in clean and "Db-Pa55-word" not in clean) is secret


def test_values_shorter_than_six_characters_are_not_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    # "admin", a port, "true": masking them would hide ordinary words everywhere.
    monkeypatch.setenv("LISTMONK_TOKEN", "ab12x")
    monkeypatch.setenv("OTHER_TOKEN", "ab12xy")
    assert mask("ab12x ab12xy") == "ab12x ***"
    assert forms_of("12345") == set()


def test_a_basic_auth_pair_is_masked_in_every_form() -> None:
    session = requests.Session()
    authenticate(session, LISTMONK_USER, LISTMONK_TOKEN)
    pair = f"{LISTMONK_USER}:{LISTMONK_TOKEN}"
    header = "Basic " + base64.b64encode(pair.encode()).decode()
    clean = mask(f"{header} | {pair} | {quote(pair, safe='')} | Bearer abcdefgh1234")
    assert LISTMONK_TOKEN not in clean and header[6:] not in clean and "abcdefgh1234" not in clean


# -- SMTP URLs with reserved characters in the password -------------------------------------------

@pytest.mark.parametrize("password", ["Qzx/7kW3p", "841/Rt9Xq", "Vnb?Lp2#Hx4", "Jmk#Ye8/Gq5", "Wq1@Zr/Tk8"])
def test_an_smtp_url_that_cannot_be_read_is_reported_without_any_part_of_it(
        monkeypatch: pytest.MonkeyPatch, password: str) -> None:
    from feedletter.deliver.providers.smtp import smtp_mailer

    monkeypatch.setenv("OUTBOUND_MAIL", f"smtp://newsletter:{password}@mail.example:587?starttls=1")
    config = _parse("newsletters: [{name: w, title: W}]\nproviders: {smtp: {url_env: OUTBOUND_MAIL}}\n")
    with pytest.raises(DeliveryError) as info:
        smtp_mailer(config, config.newsletters[0])
    printed = "".join(traceback.format_exception(info.value))
    assert str(info.value).startswith("deliver: smtp: $OUTBOUND_MAIL is not a valid URL (percent-encode")
    for fragment in re.split(r"[/?#@]", password):
        assert fragment not in printed, fragment
    assert password not in mask(os.environ["OUTBOUND_MAIL"])


def _parse(text: str) -> Config:
    config, problems = parse_config(text)
    assert config is not None and not problems, problems
    return config


# -- the fake provider ----------------------------------------------------------------------------

class _Echo(BaseHTTPRequestHandler):
    """Listmonk (/api/…) and Mailchimp (/3.0/…) enough to refuse, quoting every credential sent."""

    def _refuse(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        auth = self.headers.get("Authorization", "")
        user, _, password = base64.b64decode(auth.split()[-1]).decode().partition(":") if auth else ("", "", "")
        echo = (f"you sent Authorization: {auth} (user {user}, password {password}, "
                f"encoded {quote(password, safe='')}, json {json.dumps(password)})")
        if self.path.startswith("/api/"):
            status, body = 403, {"message": f"invalid API credentials: {echo}"}
        elif self.path.startswith("/text"):
            status, body = 400, None
        else:
            status, body = 401, {"type": "https://mailchimp.com/developer/marketing/docs/errors/",
                                 "title": "API Key Invalid", "status": 401,
                                 "detail": f"Your API key may be invalid: {echo} " + "padding " * 80}
        data = (json.dumps(body) if body is not None else f"{echo} " * 30).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if body is not None else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PUT = _refuse

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def echoing_provider() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_provider_error_body_is_masked_then_trimmed(echoing_provider: str) -> None:
    session = requests.Session()
    authenticate(session, LISTMONK_USER, LISTMONK_TOKEN)
    for path in ("/text", "/3.0/campaigns"):
        with pytest.raises(DeliveryError) as info:
            call_api(session, "listmonk", "POST", echoing_provider + path, json={})
        detail = str(info.value).split(": HTTP 40", 1)[1][3:]
        assert len(detail) <= BODY_LIMIT and LISTMONK_TOKEN not in str(info.value), str(info.value)
        assert "you sent Authorization: Basic ***" in detail and not info.value.transient


def test_an_smtp_refusal_is_masked_then_trimmed(monkeypatch: pytest.MonkeyPatch) -> None:
    from feedletter.deliver.providers import smtp

    monkeypatch.setenv("FEEDLETTER_SMTP_URL", f"smtp://news:{quote(SMTP_PASSWORD, safe='')}@mail:25")
    error = smtp._refused("a@example.com", "RCPT TO", 550, f"5.7.1 you said {SMTP_PASSWORD} ".encode() * 40)
    assert SMTP_PASSWORD not in str(error) and len(str(error)) < smtp.REPLY_LIMIT + 60


# -- exceptions and log records -------------------------------------------------------------------

class _Opaque:
    def __str__(self) -> str:
        return f"token {LISTMONK_TOKEN}"


def test_exceptions_leave_with_their_messages_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LISTMONK_TOKEN", LISTMONK_TOKEN)
    assert LISTMONK_TOKEN not in str(DeliveryError("listmonk", f"refused {LISTMONK_TOKEN}", transient=False))
    with pytest.raises(ValueError) as plain, masked_errors():
        raise ValueError(f"bad {LISTMONK_TOKEN}")
    assert str(plain.value) == f"bad {MASK}"
    # A message made from another object cannot be cleaned in place: it is replaced, transience kept.
    with pytest.raises(MaskedError) as opaque, masked_errors():
        raise requests.ConnectionError(_Opaque())
    assert str(opaque.value) == f"feedletter: ConnectionError: token {MASK}" and is_transient(opaque.value)
    assert isinstance(opaque.value, FeedletterError)


def test_log_records_are_masked_for_handlers_added_later(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from feedletter.redact import guard_logging

    monkeypatch.setenv("LISTMONK_TOKEN", LISTMONK_TOKEN)
    guard_logging()
    log_file = tmp_path / "log.txt"
    handler = logging.FileHandler(log_file)
    logger = logging.getLogger("somewhere.else")
    logger.addHandler(handler)
    try:
        try:
            raise RuntimeError(f"inner {LISTMONK_TOKEN}")
        except RuntimeError:
            logger.error("failed with %s", LISTMONK_TOKEN, exc_info=True, stack_info=True)
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = log_file.read_text()
    assert "failed with ***" in text and "RuntimeError: inner ***" in text and LISTMONK_TOKEN not in text


def test_a_masked_stream_masks_what_is_printed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LISTMONK_TOKEN", LISTMONK_TOKEN)
    with open(tmp_path / "out.txt", "w") as raw:
        stream = MaskedStream(raw)
        print(f"token={LISTMONK_TOKEN}", file=stream)
        assert stream.encoding == raw.encoding
    assert (tmp_path / "out.txt").read_text() == "token=***\n"


# -- the whole run --------------------------------------------------------------------------------

def _credentials() -> list[str]:
    pair = f"{LISTMONK_USER}:{LISTMONK_TOKEN}"
    return [LISTMONK_TOKEN, MAILCHIMP_KEY, SMTP_PASSWORD, quote(SMTP_PASSWORD, safe=""), SECRET,
            quote(LISTMONK_TOKEN, safe=""), base64.b64encode(pair.encode()).decode(),
            base64.b64encode(f"feedletter:{MAILCHIMP_KEY}".encode()).decode()]


def _leaks(where: str, text: str) -> list[str]:
    return [f"{secret[:6]}… in {where}" for secret in _credentials() if secret in text]


def _store_texts(store: Store) -> Iterator[tuple[str, str]]:
    with store.begin() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)).mappings():
                for column, value in row.items():
                    if isinstance(value, str | bytes):
                        yield f"{table.name}.{column}", value if isinstance(value, str) else value.decode("latin-1")


def _files(folder: Path) -> Iterator[tuple[str, str]]:
    for path in folder.rglob("*"):
        if path.is_file():
            yield str(path), path.read_bytes().decode("latin-1")


@pytest.mark.slow
def test_an_echoing_provider_leaks_no_credential(prefect_harness: None, tmp_path: Path, site: SiteHost,
                                                 echoing_provider: str, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str],
                                                 caplog: pytest.LogCaptureFixture) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter, LogFilterFlowRunId
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker
    from prefect.settings import PREFECT_SERVER_DATABASE_CONNECTION_URL

    from feedletter_flows.digest import digest_flow

    caplog.set_level(logging.INFO)
    for name, value in {"LM_WHO": LISTMONK_USER, "LM_T0K": LISTMONK_TOKEN, "FEEDLETTER_MAILCHIMP_KEY": MAILCHIMP_KEY,
                        "OUTBOUND_MAIL": f"smtp://news:{quote(SMTP_PASSWORD, safe='')}@127.0.0.1:1"}.items():
        monkeypatch.setenv(name, value)
    path = write_config(tmp_path, site, provider="listmonk",
                        extra="alerts: {to: ops@example.com, from: 'fl <fl@example.com>', provider: file}\n")
    daily = "  - {name: daily, title: Daily, provider: mailchimp, from: 'D <d@example.com>', select: {since: all}}\n"
    providers = (f"providers: {{listmonk: {{url: '{echoing_provider}', user_env: LM_WHO, token_env: LM_T0K, "
                 f"lists: [3]}}, mailchimp: {{api_url: '{echoing_provider}/3.0', list_id: abc123}}, "
                 "smtp: {url_env: OUTBOUND_MAIL}, ")
    path.write_text(path.read_text().replace("providers: {", daily + providers, 1))
    config = load_config(path)
    store = Store.open(config.store_url())
    subscribers.add(store, "weekly", "reader@example.com")
    run_gather(config, store)
    outputs: dict[str, str] = {}

    # In this process, as a one-off command runs it without Prefect.
    with pytest.raises(DeliveryError, match="listmonk: POST /api/campaigns: HTTP 403"):
        digest_run(config, store, InProcess(), "weekly")

    # The command line without a Prefect API: what it prints.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "FEEDLETTER_DEBUG"))}
    env.update(PYTHONPATH=str(ROOT), PREFECT_HOME=str(tmp_path / "no-prefect"))
    for args in (["digest", "daily"], ["digest", "weekly", "--json"], ["status"]):
        done = subprocess.run([sys.executable, "-m", "feedletter.cli", *args, "--config", str(path)], env=env,
                              capture_output=True, text=True, timeout=120)
        outputs[" ".join(args)] = done.stdout + done.stderr
    assert "mailchimp: POST /3.0/campaigns: HTTP 401: Your API key may be invalid" in outputs["digest daily"]

    # As Prefect flow runs: their states, logs and artifacts, and Prefect's database.
    for newsletter in ("weekly", "daily"):
        with pytest.raises(DeliveryError, match="HTTP 40"):
            digest_flow(newsletter=newsletter, config_path=str(path))
    APILogWorker.drain_all(timeout=10)
    EventsWorker.drain_all(timeout=10)
    with get_client(sync_client=True) as client:
        ours = [r for r in client.read_flow_runs() if r.parameters.get("config_path") == str(path)]
        assert len(ours) == 2 and all(r.state is not None and r.state.is_failed() for r in ours)
        ids = [r.id for r in ours]
        outputs["flow runs"] = "\n".join(f"{r.parameters} {r.state.message if r.state else ''}" for r in ours)
        assert "HTTP 403: invalid API credentials: you sent Authorization: Basic ***" in outputs["flow runs"]
        # Task runs are recorded from their events, a moment after the flow ends: both sends failed.
        deadline = time.monotonic() + 30
        while True:
            tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
            outputs["task runs"] = "\n".join(str(t.state.message if t.state else "") for t in tasks)
            if outputs["task runs"].count("Task run encountered an exception DeliveryError") >= 2 \
                    or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert "HTTP 401: Your API key may be invalid" in outputs["task runs"]
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=ids)))
        outputs["prefect logs"] = "\n".join(log.message for log in logs)
        assert "HTTP 403: invalid API credentials: you sent Authorization: Basic ***" in outputs["prefect logs"]
        outputs["artifacts"] = "\n".join(str(a.data) for a in client.read_artifacts())
    url = PREFECT_SERVER_DATABASE_CONNECTION_URL.value()
    database = Path(str(getattr(url, "get_secret_value", lambda: url)()).split(":///", 1)[1])
    for file in database.parent.glob(database.name + "*"):  # the file and its write-ahead log
        outputs[f"prefect database {file.name}"] = file.read_bytes().decode("latin-1")
    assert any(name.startswith("prefect database") for name in outputs)

    captured = capsys.readouterr()
    outputs["stdout"], outputs["stderr"], outputs["log records"] = captured.out, captured.err, caplog.text
    outputs.update(_store_texts(store))
    store.close()
    outputs.update(_files(tmp_path))
    # The alert mails decoded: a raw search would miss a body sent as base64 or quoted-printable.
    alert_mails = [email.message_from_bytes(m.read_bytes(), policy=email.policy.default)
                   for m in (tmp_path / "outbox").glob("*.eml")]
    alert_texts = [f"{m['Subject']}\n{m.get_content()}" for m in alert_mails if isinstance(m, EmailMessage)]
    assert len(alert_texts) == 2 and any("HTTP 403: invalid API credentials" in m for m in alert_texts)
    outputs.update((f"alert mail {i}", text) for i, text in enumerate(alert_texts))

    # What is searched for did go out, and came back: the provider quotes it.
    assert LISTMONK_TOKEN in requests.post(f"{echoing_provider}/api/campaigns", auth=(LISTMONK_USER, LISTMONK_TOKEN),
                                           timeout=10).text
    assert [leak for where, found in outputs.items() for leak in _leaks(where, found)] == []
