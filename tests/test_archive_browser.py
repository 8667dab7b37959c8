"""The archive in a real browser: headless Chromium loads the index and an issue over loopback HTTP,
the story titles are in the rendered DOM, and the screenshots show something other than a blank page.

Phone widths: headless Chromium lays out no window narrower than 500 px, so a page is shown in an
iframe of the width under test, from the same loopback origin; a script in the outer page measures
the framed page's elements and writes a JSON report that ``--dump-dom`` prints. Screenshots of the
archive home (before and after the first issue), an issue, a story and the subscribe form, at 375
and 1000 px, land in the test's tmp dir (or $FEEDLETTER_SCREENSHOTS) for a person to look at.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from feedletter.config import Config, load_config
from feedletter.publish.site import publish
from feedletter.sitehost import SiteHost
from feedletter.store import Store
from feedletter.web.app import create_app
from tests.fixtures_syndication import add_issues, seeded, story_title, write_config
from tests.test_web import serving

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install -y chromium)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]
# Where screenshots are kept for a person to look at; a temporary folder unless this is set.
SHOTS = os.environ.get("FEEDLETTER_SCREENSHOTS")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SiteHost, Path]]:
    folder = tmp_path_factory.mktemp("browser")
    config, store = seeded(folder, issues=3)
    root = publish(config, store).root
    store.close()
    with SiteHost(root) as host:
        yield host, folder


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=90)


def png_pixels(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and raw rows of an 8-bit, non-interlaced RGB/RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        chunk = data[pos + 8:pos + 8 + length]
        header = chunk if kind == b"IHDR" else header
        idat += chunk if kind == b"IDAT" else b""
        pos += 12 + length
    width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and color in (2, 6) and interlace == 0
    channels = 3 if color == 2 else 4
    stride = width * channels
    raw = zlib.decompress(idat)
    rows: list[bytes] = []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):  # undo the PNG row filter (None, Sub, Up, Average, Paeth)
            a = line[x - channels] if x >= channels else 0
            b = previous[x]
            c = previous[x - channels] if x >= channels else 0
            if kind == 1:
                line[x] = (line[x] + a) & 0xFF
            elif kind == 2:
                line[x] = (line[x] + b) & 0xFF
            elif kind == 3:
                line[x] = (line[x] + (a + b) // 2) & 0xFF
            elif kind == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append(bytes(line))
        previous = line
    return width, height, rows


def screenshot(url: str, shot: Path, profile: Path) -> None:
    run = chromium(f"--screenshot={shot}", "--window-size=900,1400", url, profile=profile)
    assert shot.is_file(), run.stderr[-2000:]


def dark_share(shot: Path) -> float:
    """The share of sampled pixels that are clearly not background: text, buttons, the masthead."""
    width, _, rows = png_pixels(shot.read_bytes())
    channels = len(rows[0]) // width
    sampled = dark = 0
    for row in rows[::4]:
        for x in range(0, width * channels, channels * 4):
            sampled += 1
            dark += sum(row[x:x + 3]) < 3 * 160
    return dark / sampled


@pytest.mark.slow
@pytest.mark.parametrize(("path", "titles"), [
    ("/weekly/", ["Riverside Weekly: Story number 2 about the riverside", "Story number 4 about the riverside"]),
    ("/weekly/2/", [story_title(4), story_title(3)]),
])
def test_chromium_shows_the_story_titles(served: tuple[SiteHost, Path], path: str, titles: list[str]) -> None:
    host, folder = served
    profile = folder / f"profile{path.replace('/', '-')}"
    run = chromium("--dump-dom", host.url(path), profile=profile)
    assert run.returncode == 0, run.stderr[-2000:]
    for title in titles:
        assert title in run.stdout, title
    shots = Path(SHOTS) if SHOTS else folder
    shots.mkdir(parents=True, exist_ok=True)
    shot = shots / f"archive{path.replace('/', '-').rstrip('-')}.png"
    screenshot(host.url(path), shot, profile)
    width, height, _ = png_pixels(shot.read_bytes())
    assert (width, height) == (900, 1400)
    assert 0.005 < dark_share(shot) < 0.9, "the page looks blank (or all dark)"


# --- what a new reader sees, at phone and desktop widths -------------------------------------

LOGO = ('<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
        '<rect width="64" height="64" rx="12" fill="#1f3a5f"/>'
        '<path d="M8 40 Q20 26 32 40 T56 40" stroke="#8cc4ff" stroke-width="5" fill="none"/></svg>')
ABOUT = """\
    description: "News from the riverside towns: the clinic, the council and the valley, chosen from three local blogs."
    schedule: {cron: "0 8 * * MON", timezone: Europe/Berlin}
"""
MEASURE = """<!doctype html><html><body style="margin:0">
<iframe id="page" src="%(path)s" style="display:block;border:0;width:%(width)dpx;height:%(height)dpx"></iframe>
<script>
document.getElementById("page").addEventListener("load", () => {
  const doc = document.getElementById("page").contentDocument;
  const boxes = {};
  for (const selector of %(selectors)s) {
    const element = doc.querySelector(selector);
    const r = element && element.getBoundingClientRect();
    boxes[selector] = r ? {top: r.top, bottom: r.bottom, left: r.left, right: r.right} : null;
  }
  const out = document.createElement("pre");
  out.id = "report";
  out.textContent = JSON.stringify({width: doc.documentElement.clientWidth,
    scroll: doc.documentElement.scrollWidth, height: doc.documentElement.scrollHeight, boxes});
  document.body.appendChild(out);
});
</script></body></html>"""
SCREEN = 812  # a phone's screen height, in CSS px


def shots_dir(folder: Path) -> Path:
    shots = Path(SHOTS) if SHOTS else folder / "shots"
    shots.mkdir(parents=True, exist_ok=True)
    return shots


def measure(host: SiteHost, folder: Path, path: str, width: int, selectors: list[str]) -> dict[str, Any]:
    """Lay ``path`` out ``width`` px wide; the page's width, scroll width, height and the selectors' boxes."""
    frame = f"measure-{len(list(host.root.glob('measure-*')))}.html"
    (host.root / frame).write_text(MEASURE % {"path": path, "width": width, "height": SCREEN,
                                              "selectors": json.dumps(selectors)}, encoding="utf-8")
    run = chromium("--window-size=1000,900", "--virtual-time-budget=5000", "--dump-dom", host.url(frame),
                   profile=folder / "profile-measure")
    found = re.search(r'<pre id="report">(.*?)</pre>', run.stdout, re.S)
    assert found, f"the measuring script did not run: {run.stdout[-500:]} {run.stderr[-500:]}"
    report: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return report


def shoot(host: SiteHost, folder: Path, path: str, width: int, name: str) -> Path:
    """A screenshot of the whole page (up to 4000 px tall), ``width`` px wide; checked not to be blank."""
    report = measure(host, folder, path, width, [])
    assert report["width"] == width and report["scroll"] <= width, f"{path} overflows at {width} px: {report}"
    height = min(int(report["height"]), 4000)
    shot = shots_dir(folder) / f"{name}-{width}.png"
    if width < 500:  # framed, as measured; the screenshot is cut to the window's width
        frame = f"shot-{name}-{width}.html"
        (host.root / frame).write_text(f'<!doctype html><body style="margin:0"><iframe src="{path}" style="'
                                       f'display:block;border:0;width:{width}px;height:{height}px"></iframe>',
                                       encoding="utf-8")
        url = host.url(frame)
    else:
        url = host.url(path)
    run = chromium(f"--window-size={width},{height}", "--virtual-time-budget=5000", f"--screenshot={shot}", url,
                   profile=folder / "profile-shots")
    assert shot.is_file(), run.stderr[-2000:]
    assert png_pixels(shot.read_bytes())[:2] == (width, height)
    assert 0.005 < dark_share(shot) < 0.9, f"{shot} looks blank (or all dark)"
    return shot


@pytest.fixture(scope="module")
def described(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SiteHost, Path, Config, Store]]:
    """A newsletter with a description, a schedule and a logo; its archive (no issues yet) on loopback."""
    folder = tmp_path_factory.mktemp("described")
    public = folder / "public"
    public.mkdir()
    (public / "logo.svg").write_text(LOGO, encoding="utf-8")
    with SiteHost(public) as host:
        config = load_config(write_config(folder, newsletter=ABOUT + (
            f"    logo: {{url: '{host.url('logo.svg')}', alt: Riverside Weekly, width: 64}}\n")))
        store = Store.open(config.store_url())
        try:
            yield host, folder, config, store
        finally:
            store.close()


@pytest.mark.slow
def test_archive_home_before_and_after_the_first_issue(described: tuple[SiteHost, Path, Config, Store]) -> None:
    host, folder, config, store = described
    publish(config, store)
    for width in (375, 1000):
        report = measure(host, folder, "/weekly/", width, ["h1", "p.description", "a.subscribe-button", "h2"])
        boxes = report["boxes"]
        # A new reader sees what it is and how to get it before anything else, on a phone's first screen.
        assert boxes["h1"]["bottom"] <= boxes["p.description"]["top"] <= boxes["a.subscribe-button"]["top"]
        assert boxes["a.subscribe-button"]["bottom"] < min(SCREEN, boxes["h2"]["top"])
        shoot(host, folder, "/weekly/", width, "archive-home-before")
        shoot(host, folder, "/", width, "archive-root-before")
    add_issues(config, store, 3)
    publish(config, store)
    for width in (375, 1000):
        shoot(host, folder, "/weekly/", width, "archive-home-after")
        shoot(host, folder, "/weekly/3/", width, "archive-issue")


@pytest.mark.slow
def test_story_page_shows_its_content_before_the_feed_links_on_a_phone(served: tuple[SiteHost, Path]) -> None:
    host, folder = served
    parts = ["article h1", "article h1 ~ p:not(.meta)", "article", "aside.subscribe", "p.feeds"]
    report = measure(host, folder, "/weekly/stories/4/", 375, parts)
    assert report["width"] == 375 and report["scroll"] <= 375
    title, summary, article, subscribe, feeds = (report["boxes"][part] for part in parts)
    assert title["bottom"] <= summary["top"] < summary["bottom"] < SCREEN, "the summary is not on the first screen"
    assert article["bottom"] <= subscribe["top"] < subscribe["bottom"] <= feeds["top"]


@pytest.mark.slow
def test_subscribe_form_at_phone_and_desktop_widths(described: tuple[SiteHost, Path, Config, Store]) -> None:
    host, folder, config, store = described
    with serving(create_app(config, store)) as app:
        form = httpx.get(app + "/subscribe")
        refused = httpx.post(app + "/subscribe", data={"email": "ann.example.com", "newsletter": "weekly"})
    assert form.status_code == 200 and refused.status_code == 400
    # The app forbids framing (X-Frame-Options), so a phone-width view frames a saved copy of its page.
    for name, reply in (("subscribe", form), ("subscribe-refused", refused)):
        (host.root / f"{name}.html").write_text(reply.text, encoding="utf-8")
        report = measure(host, folder, f"/{name}.html", 375, ["img.logo", "h1", "input[type=email]", "button"])
        boxes = report["boxes"]
        assert boxes["img.logo"] is not None and boxes["img.logo"]["bottom"] <= boxes["h1"]["top"]
        assert boxes["button"]["bottom"] < SCREEN, f"{name}: the button is below the first screen"
        for width in (375, 1000):
            shoot(host, folder, f"/{name}.html", width, name)
