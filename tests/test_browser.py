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
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from feedletter.issue.placeholders import personalize
from feedletter.sitehost import SiteHost
from tests.fixtures_email import email_config, png, render_sample, story, stressful_stories

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)
pytestmark = [pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"),
              pytest.mark.slow]
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
         "--force-device-scale-factor=1"]
MEASURE = """<script>
addEventListener("load", () => {
  const width = window.innerWidth;
  const box = e => { const r = e.getBoundingClientRect();
    return {left: Math.round(r.left), right: Math.round(r.right), top: Math.round(r.top + scrollY),
            bottom: Math.round(r.bottom + scrollY), width: Math.round(r.width)}; };
  const wide = [...document.body.querySelectorAll("*")]
    .filter(e => e.getBoundingClientRect().right > width + 1)
    .slice(0, 5).map(e => e.tagName + "." + e.className + " " + Math.round(e.getBoundingClientRect().right));
  const card = document.querySelector(".card.story");
  const color = sel => { const e = document.querySelector(sel); return e ? getComputedStyle(e).color : null; };
  const report = {inner: width, scroll: document.documentElement.scrollWidth, wide,
    height: document.documentElement.scrollHeight,
    dark: matchMedia("(prefers-color-scheme: dark)").matches,
    card: card ? getComputedStyle(card).backgroundColor : null,
    opening: getComputedStyle(document.querySelector(".card.opening")).backgroundColor,
    text: color(".story-summary div"), section: color(".section-title div"), contents: color(".contents a"),
    images: [...document.images].map(i => [i.naturalWidth, Math.round(i.getBoundingClientRect().width)]),
    pictures: [...document.images].map(i => ({image: box(i), card: box(i.closest(".card")),
      title: box(i.closest(".card").querySelector(".story-title a"))})),
    cards: [...document.querySelectorAll(".card")].map(box)};
  // Follow "In this issue" to the third story: its card must come into view at the top.
  const link = document.querySelector('a[href="#story-3"]');
  const target = document.getElementsByName("story-3")[0];
  report.target = box(target).top;
  link.click();
  report.scrolled = Math.round(scrollY);
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


SHAPED = """\
    greeting: "Hi %%NAME%%,"
    intro: |
      This week the **footbridge** opened. Tell us what you think: [write to us](mailto:ed@riverside.example).
    sections:
      - {title: City, tags: [city]}
"""


@pytest.fixture
def digest_page(tmp_path: Path) -> Iterator[SiteHost]:
    """The stressful sample digest with an intro and sections, personalized, on a loopback server.

    The lead story has a 1600 px picture, the second a 900 px one (shown beside its text), and
    five short stories follow, so that "In this issue" links somewhere further down.
    """
    root = tmp_path / "www"
    root.mkdir()
    (root / "wide.png").write_bytes(png(1600, 500))
    (root / "thumb.png").write_bytes(png(900, 600, (200, 120, 40)))
    with SiteHost(root) as host:
        config = email_config(tmp_path, SHAPED)
        lead, second, third = stressful_stories(image=host.url("wide.png"))
        stories = [replace(lead, tags=("city",)), replace(second, image=host.url("thumb.png")), third,
                   *(story(i, f"Short story {i}") for i in range(4, 9))]
        rendered = render_sample(config, stories)
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
    # Every card has a margin at either side: 12 px at 600, 8 px on a phone.
    margin = 12 if width == 600 else 8
    assert all(c["left"] == margin and c["right"] == width - margin for c in report["cards"]), report["cards"]
    # The 1600 px picture spans the lead card and no more; the 900 px one is held inside its card too.
    (lead, thumb) = report["pictures"]
    assert [n for n, _ in report["images"]] == [1600, 900]
    assert lead["image"]["left"] == lead["card"]["left"] and lead["image"]["right"] == lead["card"]["right"]
    assert thumb["image"]["left"] == thumb["card"]["left"] + 24
    assert thumb["image"]["right"] <= thumb["card"]["right"] - 24
    shot = _screenshot(tmp_path, digest_page, width, report["height"], f"digest-{width}.png")
    print(f"screenshot: {shot}")


def test_pictures_sit_beside_the_text_and_stack_on_a_phone(tmp_path: Path, digest_page: SiteHost) -> None:
    wide = _measure(tmp_path, digest_page, 600)["pictures"][1]
    assert wide["image"]["width"] == 172 and wide["image"]["right"] < wide["title"]["left"]
    assert abs(wide["image"]["top"] - wide["title"]["top"]) < 10
    narrow = _measure(tmp_path, digest_page, 375)["pictures"][1]
    # On a phone the picture goes above the title, as wide as the text.
    assert narrow["image"]["bottom"] <= narrow["title"]["top"]
    assert narrow["image"]["width"] == narrow["card"]["width"] - 48


def test_in_this_issue_jumps_to_the_story(tmp_path: Path, digest_page: SiteHost) -> None:
    report = _measure(tmp_path, digest_page, 375)
    assert report["target"] > 1000  # the third story is well below the first screen
    assert abs(report["scrolled"] - report["target"]) <= 2, report


def test_dark_mode_darkens_the_cards(tmp_path: Path, digest_page: SiteHost) -> None:
    light = _measure(tmp_path, digest_page, 375)
    dark = _measure(tmp_path, digest_page, 375, "--force-dark-mode")
    assert light["dark"] is False and dark["dark"] is True
    assert light["card"] == "rgb(255, 255, 255)"
    channels = [int(c) for c in re.findall(r"\d+", dark["card"])[:3]]
    assert max(channels) < 80, f"card background in dark mode is {dark['card']}"
    assert dark["opening"] == dark["card"]
    # Text turns light on the dark cards, links and headings a lighter blue.
    for key in ("text", "contents", "section"):
        assert min(int(c) for c in re.findall(r"\d+", dark[key])[:3]) > 130, (key, dark[key])
        assert dark[key] != light[key]
    assert dark["scroll"] <= 375
    shot = _screenshot(tmp_path, digest_page, 375, dark["height"], "digest-375-dark.png", "--force-dark-mode")
    print(f"screenshot: {shot}")
