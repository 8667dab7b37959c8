"""One poisoned item must not block every digest (issue 19): control characters, a huge title, a
javascript: or data: link. Ingest cleans what comes in; what is already stored, or still fails, is
left out of the issue with a warning naming its source and article, and the other stories go out."""

from __future__ import annotations

import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest

from feedletter.config import Config, load_config
from feedletter.issue import digest
from feedletter.sitehost import SiteHost
from feedletter.store import Store
from tests.conftest import run_gather
from tests.fixtures_email import email_config, story


def _newsletter(tmp_path: Path, checks: str = "") -> Config:
    return email_config(tmp_path, f"    provider: file\n{checks}store: sqlite:///{tmp_path / 'f.db'}\n")


@pytest.mark.parametrize("links", ["fail", "warn", "off"])
def test_a_stored_poisoned_story_is_left_out_and_the_rest_go_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, links: str) -> None:
    """Stories stored before ingest cleaned them: a BEL in a title breaks MJML, a javascript: link."""
    config = _newsletter(tmp_path, f"    checks: {{links: {links}}}\n")
    good = [story(1, "Footbridge opens"), story(2, "Library hours")]
    bell = replace(story(3, "Council\x07 votes\x1b[31m"), source="valley-post")
    script = replace(story(4, "Click me"), url="javascript:alert(document.cookie)")
    data = replace(story(5, "Data link"), url="data:text/html,<script>alert(1)</script>")
    monkeypatch.setattr(digest, "select_stories", lambda *a, **k: [good[0], bell, script, data, good[1]])
    store = Store.open(config.store_url())
    with caplog.at_level(logging.WARNING, logger="feedletter.issue.digest"):
        prepared = digest.prepare_digest(config, store, config.newsletter("weekly"))
    store.close()
    assert prepared is not None and [s.title for s in prepared.digest.stories] == ["Footbridge opens", "Library hours"]
    assert not prepared.review.failures, prepared.review.failures
    html = prepared.rendered.html
    assert "javascript:" not in html and "data:text" not in html and "\x07" not in html
    said = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert len(said) == 3
    assert any("'Council\\x07 votes" in m and "from valley-post" in m and "breaks the email" in m for m in said)
    assert any("javascript:alert" in m and "not an http(s) URL" in m for m in said)


def test_a_template_javascript_link_fails_the_checks_even_with_links_warn(tmp_path: Path) -> None:
    config = _newsletter(tmp_path, "    checks: {links: warn}\n")
    rendered = digest.render_digest(config, config.newsletter("weekly"), [story(1)], number=1,
                                    issued=story(1).published, web_url="https://news.example/1/", source_titles={})
    for href in ("javascript:alert(1)", " java\tscript:alert(1)", "&#106;avascript:alert(1)", "data:text/html,x"):
        poisoned = replace(rendered, html=rendered.html.replace("</body>", f'<a href="{href}">x</a></body>'))
        review = digest.review_digest(poisoned, config.newsletter("weekly"))
        assert any(f.startswith("links:") for f in review.failures), (href, review)
    relative = replace(rendered, html=rendered.html.replace("</body>", '<a href="/about">x</a></body>'))
    review = digest.review_digest(relative, config.newsletter("weekly"))
    assert not review.failures and any(w.startswith("links: relative") for w in review.warnings)


def test_the_issues_attack_replayed_through_a_feed(tmp_path: Path) -> None:
    """A JSON Feed with control characters, a 130,000-character title and javascript:/data: links,
    gathered and made into an issue: the issue goes out, small, clean, with every post's story."""
    root = tmp_path / "site"
    root.mkdir()
    texts = ["The council met on Tuesday and voted to rebuild the old bridge over the Wren by spring 2027.",
             "Flu vaccines arrive at the Riverside clinic next week; pharmacists expect 4,000 appointments.",
             "Kestrel Vale beat Millfield Park 2-1 on Saturday with a late header from Daniel James.",
             "The city library will open until nine on Thursdays after 1,200 readers asked for evening hours.",
             "Night buses on route N7 start on December 4, every 30 minutes between midnight and five."]
    items = [
        {"id": "1", "url": "https://town.example/bell", "title": "Bell\u0007 NUL\u0000 ESC\u001b[2J \ufffe title"},
        {"id": "2", "url": "https://town.example/huge", "title": "huge " * 26_000},
        {"id": "3", "url": "javascript:alert(1)", "title": "Script link"},
        {"id": "4", "url": "data:text/html,<b>x</b>", "title": "Data link"},
        {"id": "5", "url": "https://town.example/plain", "title": "A plain post"},
    ]
    for item, text in zip(items, texts, strict=True):
        item["content_text"] = text
    (root / "feed.json").write_text(json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Town",
                                                "items": items}))
    with SiteHost(root) as site:
        (tmp_path / "sources.yaml").write_text(
            f"store: sqlite:///{tmp_path / 'f.db'}\nallow_private: true\nsources:\n"
            f"  - {{name: town, url: '{site.url('feed.json')}'}}\n"
            "newsletters:\n  - {name: weekly, title: Weekly, provider: file, select: {since: all}, "
            "postal_address: '1 Main St'}\n")
        config = load_config(tmp_path / "sources.yaml")
        store = Store.open(config.store_url())
        run_gather(config, store)
    prepared = digest.prepare_digest(config, store, config.newsletter("weekly"))
    store.close()
    assert prepared is not None and not prepared.review.failures, prepared and prepared.review
    html = prepared.rendered.html
    assert len(html.encode()) < 102 * 1024
    assert "javascript:" not in html and "data:text" not in html
    assert not any(ord(c) < 32 and c not in "\t\n\r" for c in html + prepared.rendered.text)
    titles = [s.title for s in prepared.digest.stories]
    assert any(t.startswith("Bell") for t in titles) and max(map(len, titles)) <= 300
    # Every post was stored; those whose link was dropped have no page to send a reader to, and
    # are the ones the issue leaves out.
    assert len(titles) == 3 and not {"Script link", "Data link"} & set(titles)
