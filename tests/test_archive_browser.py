"""The archive in a real browser: headless Chromium loads the index and an issue over loopback HTTP,
the story titles are in the rendered DOM, and the screenshots show something other than a blank page.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from feedletter.publish.site import publish
from feedletter.sitehost import SiteHost
from tests.fixtures_syndication import seeded, story_title

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
