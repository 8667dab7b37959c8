"""`make demo` is a newcomer's first command: it must run to the end and say where things went."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import ROOT


def _free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the demo's servers do
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.slow
def test_the_demo_runs_both_flows_and_sends_the_digest() -> None:
    if not (_free(8089) and _free(8025)):
        pytest.skip("the demo's ports 8089/8025 are in use")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    done = subprocess.run([sys.executable, str(ROOT / "demo" / "run.py")], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "gather #1   5 sources fetched · 21 new articles" in out
    assert "gather #2   5 not modified (HTTP 304) · 0 new articles" in out
    assert "8 stories · 3 sent · the mail server received 3" in out
    assert (ROOT / "build" / "demo" / "mail" / "00001.eml").exists()


def test_the_demo_site_served_by_hand_has_no_placeholder_left() -> None:
    """README: `python -m feedletter.sitehost demo/site --port N` serves the demo site with its own address."""
    import time
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "feedletter.sitehost", str(ROOT / "demo" / "site"),
                               "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None and "serving" in server.stdout.readline()
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/city-ledger/atom.xml", timeout=5) as answer:
                    body = answer.read().decode()
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert "%BASE%" not in body and f'href="http://127.0.0.1:{port}/city-ledger/atom.xml"' in body
    finally:
        server.terminate()
        server.wait(10)
