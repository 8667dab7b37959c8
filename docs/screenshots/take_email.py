"""Screenshots of the demo issue's email for the docs: docs/screenshots/email-{600,375,375-dark}.png.

    .venv/bin/python docs/screenshots/take_email.py

Gathers the bundled demo site into a scratch store (no Prefect, no mail sent), renders the next
issue of the demo newsletter as a subscriber named Ava would get it, and has headless Chromium
draw it at 600 and 375 px. The demo site is served on 127.0.0.1:8089, where the demo's feeds
say their pictures are, so that port must be free (`make demo` must not be running).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "screenshots"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
         "--disable-component-update", "--disable-sync", "--hide-scrollbars", "--force-device-scale-factor=1"]
# Headless Chromium lays a page out no narrower than 500 px (a narrower window only crops the
# screenshot): the email goes in an iframe of the width wanted, and a script reports the email's
# height so that the screenshot shows all of it.
FRAME = """<!doctype html><html><body style="margin:0;background:#ffffff">
<iframe id="mail" src="email.html" style="display:block;border:0;width:{width}px;height:{height}px"></iframe>
<script>document.getElementById("mail").addEventListener("load", e => {{
  const out = document.createElement("pre"); out.id = "height";
  out.textContent = e.target.contentDocument.documentElement.scrollHeight; document.body.appendChild(out);
}});</script></body></html>"""


def chromium(profile: Path, *args: str) -> str:
    browser = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
    if browser is None:
        sys.exit("take_email: chromium is not installed")
    done = subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000", *args],
                          capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0:
        sys.exit(f"take_email: chromium failed: {done.stderr[-1000:]}")
    return done.stdout


def demo_email(scratch: Path) -> str:
    """The demo newsletter's next issue, personalized for Ava; the demo site must be served on :8089."""
    from feedletter.config import load_config
    from feedletter.issue.digest import prepare_digest
    from feedletter.issue.placeholders import personalize
    from feedletter.runner import InProcess
    from feedletter.runs import gather_run
    from feedletter.store import Store

    config = load_config(ROOT / "sources.yaml")
    config = config.model_copy(update={"store": f"sqlite:///{scratch / 'demo.db'}"})
    object.__setattr__(config, "_source_path", str(ROOT / "sources.yaml"))
    store = Store.open(config.store_url())
    try:
        gather_run(config, store, InProcess())
        prepared = prepare_digest(config, store, config.newsletters[0])
    finally:
        store.close()
    if prepared is None:
        sys.exit("take_email: the demo gave no stories")
    html = prepared.rendered.html
    print(f"demo issue: {prepared.rendered.subject!r}, {len(prepared.digest.stories)} stories, "
          f"HTML {len(html.encode())} bytes, text {len(prepared.rendered.text.encode())} bytes")
    return personalize(html, unsubscribe_url=f"{config.site.base_url}/unsubscribe/example", name="Ava", html=True)


def main() -> int:
    sys.path.insert(0, str(ROOT))
    from feedletter.sitehost import SiteHost

    with tempfile.TemporaryDirectory() as tmp, SiteHost(ROOT / "demo" / "site", port=8089):
        scratch = Path(tmp)
        (scratch / "www").mkdir()
        (scratch / "www" / "email.html").write_text(demo_email(scratch), encoding="utf-8")
        with SiteHost(scratch / "www") as pages:
            shots = (("email-600.png", 600, ()), ("email-375.png", 375, ()),
                     ("email-375-dark.png", 375, ("--force-dark-mode",)))
            for name, width, extra in shots:
                page = scratch / "www" / f"frame-{width}.html"
                page.write_text(FRAME.format(width=width, height=1000), encoding="utf-8")
                dom = chromium(scratch / "profile", "--window-size=800,1000", *extra, "--dump-dom",
                               pages.url(page.name))
                found = re.search(r'<pre id="height">(\d+)</pre>', dom)
                height = min(int(found.group(1)) if found else 3000, 8000)
                page.write_text(FRAME.format(width=width, height=height), encoding="utf-8")
                chromium(scratch / "profile", f"--window-size={width},{height}", *extra,
                         f"--screenshot={OUT / name}", pages.url(page.name))
                print(json.dumps({"screenshot": str((OUT / name).relative_to(ROOT)), "width": width,
                                  "height": height}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
