"""The digest in a real browser: headless Chromium at phone and desktop widths, light and dark.

Headless Chromium will not make a window narrower than 500 px, so the digest is shown in an iframe
of the width under test (its media queries see the iframe's width, as a phone's would see the
screen's). Both pages come from a loopback server, so they share an origin: a script added to a
copy of the digest compares each element's right edge with the frame's width and writes a JSON
report into the outer page, which ``--dump-dom`` prints. Screenshots land in the test's tmp dir.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from feedletter.issue.placeholders import personalize
from feedletter.sitehost import SiteHost
from tests.fixtures_email import email_config, png, render_sample, stressful_stories

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"),
              pytest.mark.slow]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--force-device-scale-factor=1"]
MEASURE = """<script>
addEventListener("load", () => {
  const width = window.innerWidth;
  const wide = [...document.body.querySelectorAll("*")]
    .filter(e => e.getBoundingClientRect().right > width + 1)
    .slice(0, 5).map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right));
  const card = document.querySelector(".card td");
  const report = {inner: width, scroll: document.documentElement.scrollWidth, wide,
    height: document.documentElement.scrollHeight,
    dark: matchMedia("(prefers-color-scheme: dark)").matches,
    card: card ? getComputedStyle(card).backgroundColor : null,
    images: [...document.images].map(i => [i.naturalWidth, Math.round(i.getBoundingClientRect().width)])};
  const out = parent.document.createElement("pre");
  out.id = "overflow-report";
  out.textContent = JSON.stringify(report);
  parent.document.body.appendChild(out);
});
</script>"""


def _chromium(tmp_path: Path, *args: str) -> str:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    done = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", *args],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


FRAME = """<!doctype html><html><body style="margin:0;background:#888">
<iframe src="digest.html" style="display:block;border:0;width:{width}px;height:{height}px"></iframe>
</body></html>"""


def _frame(host: SiteHost, width: int, height: int = 1200) -> str:
    name = f"frame-{width}-{height}.html"
    (host.root / name).write_text(FRAME.format(width=width, height=height), encoding="utf-8")
    return host.url(name)


def _measure(tmp_path: Path, host: SiteHost, width: int, *extra: str) -> dict[str, Any]:
    dom = _chromium(tmp_path, "--window-size=800,1200", "--virtual-time-budget=5000", *extra,
                    "--dump-dom", _frame(host, width))
    found = re.search(r'<pre id="overflow-report">(.*?)</pre>', dom, re.S)
    assert found, f"the measuring script did not run: {dom[-500:]}"
    report: dict[str, Any] = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    return report


def _screenshot(tmp_path: Path, host: SiteHost, width: int, height: int, name: str, *extra: str) -> Path:
    shot = tmp_path / name
    height = min(height, 5000)
    _chromium(tmp_path, f"--window-size={max(width, 500)},{height}", "--virtual-time-budget=5000", *extra,
              f"--screenshot={shot}", _frame(host, width, height))
    assert shot.is_file() and shot.stat().st_size > 1000
    return shot


@pytest.fixture
def digest_page(tmp_path: Path) -> Iterator[SiteHost]:
    """The stressful sample digest, personalized, with a 1600 px image, on a loopback server."""
    root = tmp_path / "www"
    root.mkdir()
    (root / "wide.png").write_bytes(png(1600, 500))
    with SiteHost(root) as host:
        config = email_config(tmp_path)
        rendered = render_sample(config, stressful_stories(image=host.url("wide.png")))
        html = personalize(rendered.html, unsubscribe_url="https://news.example.com/unsubscribe/t0k",
                           name="Ann", html=True)
        (root / "digest.html").write_text(html.replace("</body>", MEASURE + "</body>"), encoding="utf-8")
        yield host


@pytest.mark.parametrize("width", [600, 375])
def test_no_horizontal_overflow(tmp_path: Path, digest_page: SiteHost, width: int) -> None:
    report = _measure(tmp_path, digest_page, width)
    assert report["inner"] == width
    assert report["scroll"] <= width, f"page is {report['scroll']} px wide at {width} px: {report['wide']}"
    assert report["wide"] == []
    # The 1600 px image is held inside the card, whatever the viewport.
    assert report["images"] and all(shown <= min(width, 600) - 48 for natural, shown in report["images"])
    assert report["images"][0][0] == 1600
    shot = _screenshot(tmp_path, digest_page, width, report["height"], f"digest-{width}.png")
    print(f"screenshot: {shot}")


def test_dark_mode_darkens_the_cards(tmp_path: Path, digest_page: SiteHost) -> None:
    light = _measure(tmp_path, digest_page, 375)
    dark = _measure(tmp_path, digest_page, 375, "--force-dark-mode")
    assert light["dark"] is False and dark["dark"] is True
    assert light["card"] == "rgb(255, 255, 255)"
    channels = [int(c) for c in re.findall(r"\d+", dark["card"])[:3]]
    assert max(channels) < 80, f"card background in dark mode is {dark['card']}"
    assert dark["scroll"] <= 375
    shot = _screenshot(tmp_path, digest_page, 375, dark["height"], "digest-375-dark.png", "--force-dark-mode")
    print(f"screenshot: {shot}")
