"""OPML import into sources.yaml (comments kept, validated after) and export back out."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from feedletter.config import load_config, parse_config
from feedletter.errors import ConfigError
from feedletter.opml import import_opml, merge_sources, read_opml, write_opml
from tests.conftest import DEMO_SITE

NESTED = b"""<?xml version="1.0"?>
<opml version="1.0"><head><title>mine</title></head><body>
  <outline text="Health">
    <outline text="Clinics">
      <outline type="rss" text="Clinic A" xmlUrl="https://a.example/feed" category="/local,/Weekly News"/>
    </outline>
    <outline type="rss" title="B &amp; Co" text="b" xmlUrl="https://b.example/rss"/>
  </outline>
  <outline type="rss" text="Loose" xmlUrl="https://c.example/atom.xml"/>
  <outline text="no feed here" htmlUrl="https://d.example/"/>
</body></opml>
"""

CONFIG = """\
# our sources: keep this comment
store: sqlite:///x.db
sources:
  - name: city-ledger        # the council's paper
    url: "https://ledger.example/feed"
    tags: [city]

  # newsletters below: keep this comment too
newsletters:
  - {name: weekly, title: Weekly}
"""


def test_folders_and_categories_become_tags() -> None:
    feeds = read_opml(NESTED)
    assert [(f.title, f.url, f.tags) for f in feeds] == [
        ("Clinic A", "https://a.example/feed", ("health", "clinics", "local", "weekly-news")),
        ("B & Co", "https://b.example/rss", ("health",)),
        ("Loose", "https://c.example/atom.xml", ()),
    ]


def test_the_demo_opml_is_read() -> None:
    data = (DEMO_SITE / "feeds.opml").read_bytes().replace(b"%BASE%", b"https://demo.example")
    feeds = read_opml(data)
    assert len(feeds) == 5 and all(f.tags == ("alderton",) for f in feeds)
    assert feeds[0].url == "https://demo.example/city-ledger/atom.xml"


def test_import_appends_text_keeping_comments_and_validates(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(CONFIG)
    opml = tmp_path / "feeds.opml"
    opml.write_bytes(NESTED)
    result = import_opml(path, opml)
    text = path.read_text()
    assert text.startswith(CONFIG.split("\n\n")[0])  # everything up to the last source is untouched
    assert "# our sources: keep this comment" in text and "# newsletters below: keep this comment too" in text
    assert "  - name: city-ledger        # the council's paper" in text
    assert [s.name for s in result.added] == ["clinic-a", "b-co", "loose"]
    config = load_config(path)
    assert [s.name for s in config.sources] == ["city-ledger", "clinic-a", "b-co", "loose"]
    assert config.source("clinic-a").tags == ["health", "clinics", "local", "weekly-news"]
    assert config.newsletter("weekly").title == "Weekly"
    # a second import adds nothing and says why
    again = import_opml(path, opml)
    assert again.added == () and len(again.skipped) == 3 and path.read_text() == text


@pytest.mark.parametrize("start", ["", "store: sqlite:///x.db\n", "sources: []\nnewsletters: []\n",
                                   "store: sqlite:///x.db", "sources:\n  - {name: a, url: 'https://a.example/x'}"])
def test_import_into_small_or_empty_files(start: str) -> None:
    config, problems = parse_config(start)
    assert not problems
    merged = merge_sources(start, read_opml(NESTED), config)
    parsed, problems = parse_config(merged.text)
    assert not problems and parsed is not None
    assert {s.url for s in parsed.sources} >= {"https://a.example/feed", "https://c.example/atom.xml"}


def test_names_never_clash_with_existing_sources(tmp_path: Path) -> None:
    text = "sources:\n  - {name: loose, url: 'https://other.example/feed'}\n"
    merged = merge_sources(text, read_opml(NESTED), parse_config(text)[0])
    assert [s.name for s in merged.added] == ["clinic-a", "b-co", "loose-2"]


def test_inline_sources_are_refused_with_a_reason() -> None:
    text = "sources: [{name: a, url: 'https://a.example/x'}]\n"
    with pytest.raises(ConfigError, match="written inline"):
        merge_sources(text, read_opml(NESTED), parse_config(text)[0])


def test_not_opml_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not OPML"):
        read_opml(b"<html><body>hi</body></html>", "x.opml")
    with pytest.raises(ConfigError, match=r"x\.opml: not OPML"):
        read_opml(b"<opml", "x.opml")


def test_export_then_import_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(CONFIG.replace("    tags: [city]", "    tags: [city, news]"))
    exported = write_opml(load_config(path))
    root = ET.fromstring(exported)
    folder = root.find("body/outline")
    assert folder is not None and folder.get("text") == "city"
    feed = folder.find("outline")
    assert feed is not None and feed.get("xmlUrl") == "https://ledger.example/feed"
    assert feed.get("category") == "/city,/news"
    fresh = tmp_path / "fresh.yaml"
    fresh.write_text("")
    (tmp_path / "out.opml").write_text(exported)
    import_opml(fresh, tmp_path / "out.opml")
    back = load_config(fresh).sources
    assert [(s.url, s.tags) for s in back] == [("https://ledger.example/feed", ["city", "news"])]


def test_cli_import_and_export(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(CONFIG)
    (tmp_path / "feeds.opml").write_bytes(NESTED)
    cli = [sys.executable, "-m", "feedletter.cli"]
    done = subprocess.run([*cli, "sources", "import", "feeds.opml"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "added clinic-a  https://a.example/feed  tags: health, clinics, local, weekly-news" in done.stdout
    assert "3 sources added, 0 skipped" in done.stdout
    out = subprocess.run([*cli, "sources", "export"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert len(read_opml(out.stdout.encode())) == 4
    (tmp_path / "one.opml").write_text('<opml version="2.0"><body><outline type="rss" text="One" '
                                       'xmlUrl="https://one.example/feed"/></body></opml>')
    one = subprocess.run([*cli, "sources", "import", "one.opml"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert one.returncode == 0 and "sources.yaml: 1 source added, 0 skipped" in one.stdout, one.stdout + one.stderr
    bad = subprocess.run([*cli, "sources", "import", "sources.yaml"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 1 and "not OPML" in bad.stderr and "Traceback" not in bad.stderr


READER = b"""<?xml version="1.0"?>
<opml version="2.0"><head><title>a reader's export</title></head><body>
  <outline text="Local">
    <outline type="rss" text="Riverside Gazette" title="Riverside Gazette" xmlUrl="https://gazette.example/feed"
             htmlUrl="https://gazette.example/" category="/council"/>
    <outline type="rss" text="ignored when a title is set" title="Caf\xc3\xa9 \xc2\xabLe Pont\xc2\xbb: food &amp; drink"
             xmlUrl="https://cafe.example/rss" htmlUrl="javascript:alert(1)"/>
  </outline>
  <outline type="rss" text="Valley Post" xmlUrl="https://valley.example/atom.xml" htmlUrl="https://valley.example"/>
</body></opml>
"""


def _sources(path: Path) -> list[tuple[str, str, str | None, str | None, list[str]]]:
    return [(s.name, s.url, s.title, s.site, s.tags) for s in load_config(path).sources]


def test_titles_and_sites_survive_import_export_import(tmp_path: Path) -> None:
    opml = tmp_path / "reader.opml"
    opml.write_bytes(READER)
    first = tmp_path / "first.yaml"
    import_opml(first, opml)
    imported = _sources(first)
    assert imported == [
        ("riverside-gazette", "https://gazette.example/feed", "Riverside Gazette", "https://gazette.example/",
         ["local", "council"]),
        ("caf-le-pont-food-drink", "https://cafe.example/rss", "Café «Le Pont»: food & drink", None, ["local"]),
        ("valley-post", "https://valley.example/atom.xml", "Valley Post", "https://valley.example", []),
    ]
    assert '    title: "Riverside Gazette"\n    site: https://gazette.example/\n' in first.read_text()
    exported = write_opml(load_config(first))
    feed = ET.fromstring(exported).find("body/outline/outline")
    assert feed is not None and feed.attrib == {
        "type": "rss", "text": "Riverside Gazette", "title": "Riverside Gazette",
        "xmlUrl": "https://gazette.example/feed", "htmlUrl": "https://gazette.example/", "category": "/local,/council"}
    (tmp_path / "exported.opml").write_text(exported, encoding="utf-8")
    second = tmp_path / "second.yaml"
    import_opml(second, tmp_path / "exported.opml")
    assert _sources(second) == imported


def test_an_untitled_source_is_exported_under_the_name_readers_see(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(CONFIG)
    feed = ET.fromstring(write_opml(load_config(path))).find("body/outline/outline")
    assert feed is not None and feed.get("text") == feed.get("title") == "City Ledger"
    assert feed.get("htmlUrl") is None
