"""Secrets never leave: a failing run with every secret set, and everything it wrote, searched for them."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from feedletter import subscribers
from feedletter.config import load_config
from feedletter.mailsink import _free_port
from feedletter.redact import redact, secret_values
from feedletter.sitehost import SiteHost
from feedletter.store import Store
from tests.conftest import ROOT, SECRET, run_gather, write_config

SMTP_PASSWORD = "Smtp-Pa55word-7f3a9"
STORE_PASSWORD = "St0re-Pa55word-91c2"
API_KEY = "sk-test-4d9e8f7a6b5c4d3e2f1a"


class _RefuseAll:
    """An SMTP server that wants AUTH and refuses every password: the failure operators meet most."""

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 OK"


@pytest.fixture
def strict_smtp() -> Iterator[int]:
    def deny(server: object, session: object, envelope: object, mechanism: str, data: object) -> AuthResult:
        assert isinstance(data, LoginPassword)
        return AuthResult(success=False, handled=False)

    port = _free_port()
    controller = Controller(_RefuseAll(), hostname="127.0.0.1", port=port, authenticator=deny,
                            auth_require_tls=False, ready_timeout=10)
    controller.start()
    yield port
    controller.stop()


def test_redact_masks_values_and_url_passwords() -> None:
    env = {"FEEDLETTER_SMTP_URL": f"smtp://u:{SMTP_PASSWORD}@mail:587", "OPENAI_API_KEY": API_KEY,
           "FEEDLETTER_SECRET": SECRET, "HOME": "/root"}
    secrets = secret_values([f"postgresql://app:{STORE_PASSWORD}@db/x"], env=env)
    text = (f"smtp://u:{SMTP_PASSWORD}@mail:587 {API_KEY} {SECRET} postgresql://app:{STORE_PASSWORD}@db/x "
            "https://other:hunter22@example.com/ /root")
    clean = redact(text, secrets)
    for secret in (SMTP_PASSWORD, API_KEY, SECRET, STORE_PASSWORD, "hunter22"):
        assert secret not in clean
    assert "smtp://u:***@mail:587" in clean and "/root" in clean
    # A URL without a password is not a secret: operators need to read it.
    assert secret_values(env={"FEEDLETTER_SMTP_URL": "smtp://127.0.0.1:25"}) == []


@pytest.mark.slow
def test_a_failing_run_with_secrets_set_leaks_none_of_them(prefect_harness: None, tmp_path: Path, site: SiteHost,
                                                          strict_smtp: int) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    path = write_config(tmp_path, site, extra="alerts: {to: ops@example.com, from: 'fl <fl@example.com>',"
                                              " provider: file}\n")
    config = load_config(path)
    store = Store.open(config.store_url())
    subscribers.add(store, "weekly", "reader@example.com")
    run_gather(config, store)
    store.close()

    env = {**os.environ, "PYTHONPATH": str(ROOT), "PREFECT_API_URL": str(PREFECT_API_URL.value()),
           "FEEDLETTER_SMTP_URL": f"smtp://newsletter:{SMTP_PASSWORD}@127.0.0.1:{strict_smtp}",
           "OPENAI_API_KEY": API_KEY, "FEEDLETTER_SECRET": SECRET, "PREFECT_LOGGING_LEVEL": "DEBUG",
           "FEEDLETTER_DEBUG": ""}
    env.pop("FEEDLETTER_DEBUG")
    secrets = [SMTP_PASSWORD, API_KEY, SECRET]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "feedletter.cli", *args, "--config", str(path)], env=env,
                              capture_output=True, text=True, timeout=240)

    digest = cli("digest", "weekly")
    assert digest.returncode == 69  # the server refuses the login: the issue pauses (issue 20)
    assert "authentication failed" in digest.stdout + digest.stderr
    outputs = {"digest": digest.stdout + digest.stderr}

    # validate, status and a store URL with a password in the config: shown only masked.
    bad = tmp_path / "bad.yaml"
    bad.write_text(path.read_text().replace("store: ", f"store: postgresql://app:{STORE_PASSWORD}@127.0.0.1:1/x\n"
                                                         "#", 1) + "stor: typo\n")
    validate = subprocess.run([sys.executable, "-m", "feedletter.cli", "validate", str(bad)], env=env,
                              capture_output=True, text=True, timeout=60)
    assert validate.returncode == 1
    outputs["validate"] = validate.stdout + validate.stderr
    outputs["status"] = cli("status").stdout
    gather_bad = subprocess.run([sys.executable, "-m", "feedletter.cli", "gather", "--config", str(bad)],
                                env=env, capture_output=True, text=True, timeout=240)
    assert gather_bad.returncode == 1
    outputs["gather-bad-store"] = gather_bad.stdout + gather_bad.stderr
    secrets.append(STORE_PASSWORD)

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
        # The session's harness holds other tests' runs too: ours are the ones with this config.
        digest_runs = [r for r in runs if r.parameters.get("config_path") == str(path)]
        assert len(digest_runs) == 1 and digest_runs[0].state is not None and digest_runs[0].state.is_failed()
        for run in digest_runs:
            outputs[f"run {run.id}"] = f"{run.parameters} {run.state.message if run.state else ''}"
            outputs[f"logs {run.id}"] = "\n".join(log.message for log in client.read_logs())
        outputs["artifacts"] = "\n".join(str(a.data) for a in client.read_artifacts())
    outputs["store"] = (tmp_path / "feedletter.db").read_bytes().decode("latin-1")
    alert_files = list((tmp_path / "outbox").glob("*.eml"))
    assert alert_files, "the failed run should have alerted operators"
    outputs["alert"] = "".join(f.read_text() for f in alert_files)
    decoded = [message_from_bytes(f.read_bytes(), policy=policy.default) for f in alert_files]
    outputs["alert, decoded"] = "".join(str(m.get_body(("plain",)).get_content()) for m in decoded)  # type: ignore[union-attr]
    assert "authentication failed" in outputs["alert, decoded"]

    for where, text in outputs.items():
        for secret in secrets:
            assert secret not in text, f"{secret[:6]}… leaked in {where}"
    # The command's own last word is one clear line (Prefect's run log above it keeps the traceback).
    assert digest.stderr.strip().splitlines()[-1].startswith("digest weekly: issue 1 paused: SMTP unreachable")
