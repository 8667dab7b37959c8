from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from feedletter.config import load_config
from feedletter.errors import RenderError
from feedletter.models import Coverage, Story
from feedletter.render import GMAIL_CLIP_BYTES, check_digest, personalize, render_digest

CONFIG = """\
sources:
  - {name: city-ledger, url: "https://ledger.example/feed"}
newsletters:
  - name: weekly
    title: Riverside Weekly
    from: "Weekly <news@riverside.example>"
    postal_address: "12 Mill Lane, Wrenford"
"""
WHEN = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)


def _story(i: int, title: str = "Footbridge opens", summary: str = "The bridge opened on Saturday.") -> Story:
    return Story(id=i, title=title, url=f"https://ledger.example/{i}", source="city-ledger", published=WHEN,
                 summary=summary, also=(Coverage("valley-post", "Bridge day", "https://valley.example/b"),))


@pytest.fixture
def config(tmp_path: Path):  # type: ignore[no-untyped-def]
    path = tmp_path / "sources.yaml"
    path.write_text(CONFIG)
    return load_config(path)


def test_digest_renders_html_text_and_preheader(config) -> None:  # type: ignore[no-untyped-def]
    newsletter = config.newsletter("weekly")
    out = render_digest(config, newsletter, [_story(1), _story(2, "Library hours")], number=3, issued=WHEN,
                        web_url="https://news.example.com/weekly/3/", source_titles={"valley-post": "Valley Post"})
    assert out.subject == "Riverside Weekly: Footbridge opens"
    assert out.preheader and out.preheader in out.html
    assert out.html.startswith("<!doctype html>") and 'lang="en"' in out.html
    assert "Footbridge opens" in out.html and "Library hours" in out.html
    assert "Also covered by" in out.html and "Valley Post" in out.html and "https://valley.example/b" in out.html
    assert "https://news.example.com/weekly/3/" in out.html
    assert "Footbridge opens" in out.text and "https://ledger.example/1" in out.text
    assert "%%UNSUBSCRIBE_URL%%" in out.html and "%%UNSUBSCRIBE_URL%%" in out.text
    assert check_digest(out, newsletter) == []


def test_feed_titles_are_escaped(config) -> None:  # type: ignore[no-untyped-def]
    hostile = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    out = render_digest(config, config.newsletter("weekly"), [_story(1, hostile, hostile)], number=1,
                        issued=WHEN, web_url=None, source_titles={})
    assert "<script>" not in out.html and "onerror=" not in out.html.replace("onerror=alert(2)&gt;", "")
    assert "&lt;script&gt;" in out.html


def test_personalize_escapes_for_html_only() -> None:
    html = personalize('<a href="%%UNSUBSCRIBE_URL%%">x</a> %%NAME%%', unsubscribe_url="https://u/t?a=1&b=2",
                       name="<Ann>", html=True)
    assert html == '<a href="https://u/t?a=1&amp;b=2">x</a> &lt;Ann&gt;'
    assert personalize("%%NAME%%", unsubscribe_url="", name="<Ann>", html=False) == "<Ann>"


def test_checks_catch_size_and_missing_address(config) -> None:  # type: ignore[no-untyped-def]
    newsletter = config.newsletter("weekly").model_copy(update={"postal_address": ""})
    huge = "word " * (GMAIL_CLIP_BYTES // 4)
    out = render_digest(config, newsletter, [_story(1, summary=huge)], number=1, issued=WHEN, web_url=None,
                        source_titles={})
    problems = check_digest(out, newsletter)
    assert any("Gmail clips" in p for p in problems)
    assert any("postal address" in p for p in problems)


def test_template_error_names_template_and_line(config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "broken.mjml.j2").write_text("<mjml>\n<mj-body>\n{% if %}\n</mj-body></mjml>\n")
    (templates / "broken.txt.j2").write_text("x\n")
    newsletter = config.newsletter("weekly").model_copy(update={"template": "broken"})
    with pytest.raises(RenderError, match=r"broken\.mjml\.j2:3: template syntax error"):
        render_digest(config, newsletter, [_story(1)], number=1, issued=WHEN, web_url=None, source_titles={})


def test_unknown_mjml_tag_is_refused(config, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "typo.mjml.j2").write_text("<mjml>\n<mj-body>\n<mj-sectoin></mj-sectoin>\n</mj-body></mjml>\n")
    (templates / "typo.txt.j2").write_text("x\n")
    newsletter = config.newsletter("weekly").model_copy(update={"template": "typo"})
    with pytest.raises(RenderError, match=r"typo\.mjml\.j2:3: unknown MJML tag <mj-sectoin>"):
        render_digest(config, newsletter, [_story(1)], number=1, issued=WHEN, web_url=None, source_titles={})
