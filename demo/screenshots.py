"""The pictures in docs/screenshots/, taken from the demo: run `make demo` first, then

    .venv/bin/python demo/screenshots.py

It rebuilds the demo's archive from its store (build/demo/), serves it, the web app and the demo
site (for the stories' pictures) on loopback, and has headless Chromium take the archive's home, its
newest issue (whole) and the subscribe form, 1000 px wide. Look at them before committing: that is
what they are for.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
WIDTH = 1000
DEMO_SITE_PORT = 8089  # where sources.yaml says the demo's feeds, pages and pictures are


def _chromium() -> str:
    found = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if found is None:
        sys.exit("screenshots: Chromium is not installed (apt-get install -y chromium)")
    return found


def _run(browser: str, profile: Path, height: int, *args: str) -> str:
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--force-device-scale-factor=1", f"--user-data-dir={profile}",
                           f"--window-size={WIDTH},{height}", "--virtual-time-budget=5000", *args],
                          capture_output=True, text=True, timeout=120, check=True).stdout


def _height(browser: str, profile: Path, folder: Path, base: str, path: str) -> int:
    """The page's height at WIDTH, measured from a same-origin frame (a screenshot is only the window)."""
    frame = folder / "_measure.html"
    frame.write_text(f'<!doctype html><body style="margin:0"><iframe id="f" src="{path}" style="border:0;'
                     f'width:{WIDTH}px;height:200px"></iframe><script>f.onload = () => document.body.insertAdjacent'
                     'HTML("beforeend", "<pre id=h>" + f.contentDocument.documentElement.scrollHeight + "</pre>")'
                     '</script>', encoding="utf-8")
    try:
        found = re.search(r'<pre id="h">(\d+)</pre>', _run(browser, profile, 800, "--dump-dom", f"{base}/{frame.name}"))
    finally:
        frame.unlink()
    return min(int(html.unescape(found.group(1))), 5000) if found else 1600


def _shoot(browser: str, profile: Path, url: str, name: str, height: int) -> None:
    shot = OUT / f"{name}.png"
    _run(browser, profile, height, f"--screenshot={shot}", url)
    print(f"screenshots: {shot.relative_to(ROOT)}  {WIDTH}x{height}  ({url})")


def main() -> int:
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    import uvicorn

    from feedletter.config import load_config
    from feedletter.publish.issues import load_issues
    from feedletter.publish.site import publish
    from feedletter.sitehost import SiteHost, port_free
    from feedletter.store import Store
    from feedletter.web.app import create_app

    config = load_config(ROOT / "sources.yaml")
    newsletter = config.newsletters[0]
    if not (ROOT / "build" / "demo" / "feedletter.db").is_file():
        sys.exit("screenshots: no demo store in build/demo/; run `make demo` first")
    store = Store.open(config.store_url())
    try:
        issues = load_issues(config, store, newsletter)
        if not issues:
            sys.exit("screenshots: the demo store has no issue; run `make demo` first")
        root = publish(config, store).root  # with the templates as they are now
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(create_app(config, store), host="127.0.0.1", port=port,
                                               log_level="warning", lifespan="off"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        browser = _chromium()
        OUT.mkdir(parents=True, exist_ok=True)
        with SiteHost(root) as archive, tempfile.TemporaryDirectory() as temporary, \
                contextlib.ExitStack() as stack:
            if port_free(DEMO_SITE_PORT):  # the stories' pictures live on the demo site
                stack.enter_context(SiteHost(ROOT / "demo" / "site", port=DEMO_SITE_PORT))
            profile = Path(temporary)
            home, issue = f"/{newsletter.name}/", f"/{newsletter.name}/{issues[0].number}/"
            _shoot(browser, profile, archive.url(home), "archive-home",
                   _height(browser, profile, root, archive.base, home))
            _shoot(browser, profile, archive.url(issue), "archive-issue",
                   _height(browser, profile, root, archive.base, issue))
            _shoot(browser, profile, f"http://127.0.0.1:{port}/subscribe?newsletter={newsletter.name}", "subscribe",
                   640)
        server.should_exit = True
        thread.join(timeout=10)
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
