"""Shared data for the email tests: a config, stories that stress the layout, a PNG of any size."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedletter.config import Config, load_config
from feedletter.issue.render import Rendered, render_digest
from feedletter.models import Coverage, Story
from feedletter.store import Store

CONFIG = """\
sources:
  - {name: city-ledger, url: "https://ledger.example/feed", tags: [city]}
  - {name: valley-post, url: "https://valley.example/feed", tags: [health, care]}
newsletters:
  - name: weekly
    title: Riverside Weekly
    from: "Weekly <news@riverside.example>"
    postal_address: "12 Mill Lane, Wrenford WF1 2AB"
"""
WHEN = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
TITLES = {"city-ledger": "City Ledger", "valley-post": "Valley Post"}


def email_config(tmp_path: Path, extra: str = "") -> Config:
    """The CONFIG above, with ``extra`` lines appended to the newsletter (indent them by four spaces)."""
    path = tmp_path / "sources.yaml"
    path.write_text(CONFIG + extra, encoding="utf-8")
    return load_config(path)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    """A newsletter delivered by the file provider, with its store and archive in tmp_path."""
    return email_config(tmp_path, "    provider: file\n"
                        f"store: sqlite:///{tmp_path / 'fl.db'}\n"
                        f"site: {{base_url: 'https://news.example.com', archive_dir: '{tmp_path / 'public'}'}}\n"
                        f"providers: {{file: {{dir: '{tmp_path / 'outbox'}'}}}}\n")


@pytest.fixture
def store(config: Config) -> Iterator[Store]:
    handle = Store.open(config.store_url())
    yield handle
    handle.close()


def story(i: int, title: str = "Footbridge opens", summary: str = "The bridge opened on Saturday.",
          image: str | None = None, tags: tuple[str, ...] = ()) -> Story:
    return Story(id=i, title=title, url=f"https://ledger.example/{i}", source="city-ledger", published=WHEN,
                 summary=summary, image=image, tags=tags,
                 also=(Coverage("valley-post", "Bridge day", "https://valley.example/b"),))


def stressful_stories(image: str | None = None) -> list[Story]:
    """Stories that break careless layouts: long words, long titles, a wide image, several sources."""
    long_word = "https://ledger.example/" + "very-long-path-segment-" * 5 + "end"
    return [
        story(1, "Footbridge over the Wren opens after two years of works and a public vote on its name",
              "The new footbridge opened on Saturday. " * 6 + f"Plans are at {long_word} for anyone curious.",
              image=image),
        story(2, "Library hours extended", "The central library will stay open until 9 pm on weekdays."),
        story(3, "Supercalifragilisticexpialidociousnessforthesakeofitunbrokenwordinthetitle",
              "Short summary."),
    ]


def render_sample(config: Config, stories: list[Story] | None = None, *, number: int = 3) -> Rendered:
    newsletter = config.newsletter("weekly")
    return render_digest(config, newsletter, stories or stressful_stories(), number=number, issued=WHEN,
                         web_url="https://news.example.com/weekly/3/", source_titles=TITLES)


def png(width: int, height: int, rgb: tuple[int, int, int] = (40, 120, 200)) -> bytes:
    """A solid-colour PNG, written by hand so that the tests need no imaging library."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(row * height))
            + chunk(b"IEND", b""))
