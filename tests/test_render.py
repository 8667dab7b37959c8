from __future__ import annotations

import re
from pathlib import Path

import pytest

from feedletter.config import Config
from feedletter.errors import ConfigError, RenderError
from feedletter.issue.placeholders import personalize
from feedletter.issue.render import GMAIL_CLIP_BYTES, compile_mjml, render_digest, review_digest
from tests.fixtures_email import TITLES, WHEN, email_config, render_sample, story


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return email_config(tmp_path)


def _override(tmp_path: Path, name: str, mjml: str, text: str = "%%UNSUBSCRIBE_URL%%\n") -> None:
    templates = tmp_path / "templates"
    (templates / name).parent.mkdir(parents=True, exist_ok=True)
    (templates / name).write_text(mjml, encoding="utf-8")
    if name.endswith(".mjml.j2") and "/" not in name:
        (templates / name.replace(".mjml.j2", ".txt.j2")).write_text(text, encoding="utf-8")


MINIMAL = """<mjml><mj-body><mj-section><mj-column><mj-text>
{BODY}
<a href="%%UNSUBSCRIBE_URL%%">Unsubscribe</a> {{{{ newsletter.postal_address }}}}
</mj-text></mj-column></mj-section></mj-body></mjml>
"""


def test_digest_renders_every_part_of_the_layout(config: Config) -> None:
    newsletter = config.newsletter("weekly")
    out = render_digest(config, newsletter, [story(1, image="https://ledger.example/1.jpg"),
                                             story(2, "Library hours")], number=3, issued=WHEN,
                        web_url="https://news.example.com/weekly/3/", source_titles=TITLES)
    assert out.subject == "Riverside Weekly: Footbridge opens"
    assert out.preheader == "Also: Library hours"
    assert out.html.startswith("<!doctype html>") and 'lang="en"' in out.html
    assert re.search(r'<div style="display:none;[^"]*">Also: Library hours', out.html), "preheader is hidden"
    assert "Riverside Weekly" in out.html and "Issue 3 · 23 November 2026" in out.html
    assert '<a href="https://ledger.example/1"' in out.html and "Library hours" in out.html
    assert "City Ledger · 23 Nov 2026" in out.html and "The bridge opened on Saturday." in out.html
    assert "Also covered by" in out.html and ">Valley Post</a>" in out.html
    assert out.html.count(">Read more</a>") == 2
    assert re.search(r'<img alt="Footbridge opens"[^>]*src="https://ledger.example/1.jpg"[^>]*width="528"',
                     out.html)
    assert 'href="https://news.example.com/weekly/3/"' in out.html and "12 Mill Lane" in out.html
    assert "prefers-color-scheme: dark" in out.html and 'name="color-scheme"' in out.html
    for part in (out.html, out.text):
        assert "%%UNSUBSCRIBE_URL%%" in part
    assert "1. Footbridge opens" in out.text and "City Ledger · 23 Nov 2026" in out.text
    assert "Read more: https://ledger.example/1" in out.text
    assert "Also covered by: Valley Post <https://valley.example/b>" in out.text
    assert "View in browser: https://news.example.com/weekly/3/" in out.text and "12 Mill Lane" in out.text
    assert review_digest(out, newsletter) == ((), ())


def test_feed_titles_are_escaped(config: Config) -> None:
    hostile = '<script>alert(1)</script><img src=x onerror=alert(2)>'
    out = render_digest(config, config.newsletter("weekly"), [story(1, hostile, hostile)], number=1,
                        issued=WHEN, web_url=None, source_titles={})
    assert "<script>" not in out.html and "<img src=x" not in out.html
    assert "&lt;script&gt;" in out.html
    assert hostile in out.text  # the plain-text part is not HTML: it carries the words as they are


def test_personalize_escapes_for_html_only() -> None:
    html = personalize('<a href="%%UNSUBSCRIBE_URL%%">x</a> %%NAME%%', unsubscribe_url="https://u/t?a=1&b=2",
                       name="<Ann>", html=True)
    assert html == '<a href="https://u/t?a=1&amp;b=2">x</a> &lt;Ann&gt;'
    assert personalize("%%NAME%%", unsubscribe_url="", name="<Ann>", html=False) == "<Ann>"


def test_logo_has_alt_and_a_width_cap(tmp_path: Path) -> None:
    config = email_config(tmp_path, "    logo: {url: 'https://riverside.example/logo.png', alt: 'Riverside'}\n")
    out = render_sample(config)
    assert re.search(r'<img alt="Riverside"[^>]*src="https://riverside.example/logo.png"[^>]*width="160"',
                     out.html)
    with pytest.raises(ConfigError, match=r"newsletters\[0\] \(weekly\)\.logo\.width"):
        email_config(tmp_path, "    logo: {url: 'https://r.example/l.png', alt: 'R', width: 900}\n")


# --- pre-send checks -------------------------------------------------------------------------

def test_default_levels_fail_size_and_unsubscribe_and_warn_about_address(tmp_path: Path, config: Config) -> None:
    newsletter = config.newsletter("weekly").model_copy(update={"postal_address": ""})
    huge = "word " * (GMAIL_CLIP_BYTES // 4)
    out = render_digest(config, newsletter, [story(1, summary=huge)], number=1, issued=WHEN, web_url=None,
                        source_titles={})
    failures, warnings = review_digest(out, newsletter)
    assert len(failures) == 1 and failures[0].startswith("html_size: HTML is ")
    assert "Gmail clips messages over 102 KB" in failures[0]
    assert warnings == ("postal_address: no postal address in the footer (set newsletters[].postal_address)",)


def test_levels_come_from_the_newsletters_checks(tmp_path: Path) -> None:
    config = email_config(tmp_path, "    checks: {html_size: warn, postal_address: fail, subject_length: off,"
                                    " subject_max: 20}\n")
    newsletter = config.newsletter("weekly").model_copy(update={"postal_address": ""})
    out = render_digest(config, newsletter, [story(1, summary="word " * (GMAIL_CLIP_BYTES // 4))], number=1,
                        issued=WHEN, web_url=None, source_titles={})
    failures, warnings = review_digest(out, newsletter)
    assert [f.split(":")[0] for f in failures] == ["postal_address"]
    assert [w.split(":")[0] for w in warnings] == ["html_size"]
    with pytest.raises(ConfigError, match=r"sources.yaml:\d+: newsletters\[0\] \(weekly\)\.checks\.links: "):
        email_config(tmp_path, "    checks: {links: maybe}\n")


def test_missing_unsubscribe_is_a_failure_per_part(tmp_path: Path, config: Config) -> None:
    _override(tmp_path, "bare.mjml.j2", MINIMAL.format(BODY="x").replace("%%UNSUBSCRIBE_URL%%", "https://x.example/u"),
              text="no link here\n")
    newsletter = config.newsletter("weekly").model_copy(update={"template": "bare"})
    out = render_digest(config, newsletter, [story(1)], number=1, issued=WHEN, web_url=None, source_titles={})
    failures, _ = review_digest(out, newsletter)
    assert failures == ("unsubscribe: no unsubscribe link in the HTML part (the template must use %%UNSUBSCRIBE_URL%%)",
                        "unsubscribe: no unsubscribe link in the text part (the template must use %%UNSUBSCRIBE_URL%%)")


def test_relative_and_script_links_fail_and_images_without_alt_warn(tmp_path: Path, config: Config) -> None:
    body = ('<a href="/archive/1">old</a> <a href="javascript:alert(1)">x</a> <a href="mailto:a@b.example">m</a>'
            ' <a href="https://ok.example/">ok</a> <img src="https://ok.example/p.png"> '
            '<img src="https://ok.example/q.png" alt="Q">')
    _override(tmp_path, "links.mjml.j2", MINIMAL.format(BODY=body))
    newsletter = config.newsletter("weekly").model_copy(update={"template": "links"})
    out = render_digest(config, newsletter, [story(1)], number=1, issued=WHEN, web_url=None, source_titles={})
    failures, warnings = review_digest(out, newsletter)
    assert failures == ("links: relative link '/archive/1': email links must be absolute http(s) URLs",
                        "links: javascript: link 'javascript:alert(1)': email links must be absolute http(s) URLs")
    assert warnings == ("alt: image without alt text: https://ok.example/p.png",)


def test_long_or_empty_subject(tmp_path: Path, config: Config) -> None:
    newsletter = config.newsletter("weekly").model_copy(update={"subject": "{{ stories[0].title }}"})
    out = render_sample(config, [story(1, "A" * 160)])
    failures, warnings = review_digest(out, config.newsletter("weekly"))
    assert failures == () and warnings[0].startswith("subject_length: subject is 178 characters (limit 150)")
    blank = render_digest(config, newsletter.model_copy(update={"subject": "{{ ' ' }}"}), [story(1)], number=1,
                          issued=WHEN, web_url=None, source_titles={})
    assert review_digest(blank, newsletter).failures == ("subject: the subject is empty",)


# --- UTM -------------------------------------------------------------------------------------

def test_utm_true_tags_story_links_in_both_parts_but_not_our_own(tmp_path: Path) -> None:
    config = email_config(tmp_path, "    utm: true\n")
    out = render_sample(config, [story(1)], number=7)
    tagged = "https://ledger.example/1?utm_source=weekly&amp;utm_medium=email&amp;utm_campaign=weekly-7"
    assert f'href="{tagged}"' in out.html
    assert tagged.replace("&amp;", "&") in out.text
    assert "https://valley.example/b?utm_source=weekly" in out.text
    assert 'href="https://news.example.com/weekly/3/"' in out.html and 'href="%%UNSUBSCRIBE_URL%%"' in out.html


def test_utm_parameters_are_configurable_and_replace_the_sources_own(tmp_path: Path) -> None:
    config = email_config(tmp_path, "    utm: {source: riverside, medium: newsletter, campaign: 'issue-{number}'}\n")
    out = render_sample(config, [story(1)], number=2)
    assert "https://ledger.example/1?utm_source=riverside&utm_medium=newsletter&utm_campaign=issue-2" in out.text
    from feedletter.issue.render import utm_tagger

    track = utm_tagger(config.newsletter("weekly"), 2)
    assert track("https://x.example/a?id=4&utm_source=rss#top") == \
        "https://x.example/a?id=4&utm_source=riverside&utm_medium=newsletter&utm_campaign=issue-2#top"
    assert track("mailto:a@b.example") == "mailto:a@b.example"
    assert utm_tagger(email_config(tmp_path).newsletter("weekly"), 2)("https://x.example/") == "https://x.example/"
    with pytest.raises(ConfigError, match=r"newsletters\[0\] \(weekly\)\.utm.*unknown placeholder"):
        email_config(tmp_path, "    utm: {campaign: '{issue}'}\n")


# --- template errors -------------------------------------------------------------------------

def test_template_syntax_error_names_template_and_line(tmp_path: Path, config: Config) -> None:
    _override(tmp_path, "broken.mjml.j2", "<mjml>\n<mj-body>\n{% if %}\n</mj-body></mjml>\n")
    newsletter = config.newsletter("weekly").model_copy(update={"template": "broken"})
    with pytest.raises(RenderError, match=r"broken\.mjml\.j2:3: template syntax error"):
        render_digest(config, newsletter, [story(1)], number=1, issued=WHEN, web_url=None, source_titles={})


def test_error_in_an_overridden_partial_names_the_partial_and_line(tmp_path: Path, config: Config) -> None:
    _override(tmp_path, "partials/story.mjml.j2", "<mj-section><mj-column>\n<mj-text>\n{{ story.headline }}"
              "</mj-text></mj-column></mj-section>\n")
    with pytest.raises(RenderError, match=r"partials/story\.mjml\.j2:3: template error: .*'headline'"):
        render_sample(config)


@pytest.mark.parametrize(("mjml", "problem"), [
    ("<mjml>\n<mj-body>\n<mj-sectoin></mj-sectoin>\n</mj-body></mjml>", "line 3 .*unknown MJML tag <mj-sectoin>"),
    ("<mjml>\n<mj-body>\n<mj-section>\n<mj-column>\n<mj-button>x</mj-text>\n</mj-column></mj-section>\n"
     "</mj-body></mjml>", "line 5 .*<mj-button> is never closed"),
    ("<mjml>\n<mj-body>\n<mj-section><mj-column><mj-text>hi</mj-text></mj-column>\n</mj-body></mjml>",
     "line 4 .*</mj-body> closes <mj-section> opened on line 3"),
    ("<mjml>\n<mj-body>\n<mj-section>\n", "line 3 .*<mj-section> is never closed"),
])
def test_bad_mjml_is_refused_with_its_line(mjml: str, problem: str) -> None:
    with pytest.raises(RenderError, match=r"render: t\.mjml\.j2: rendered MJML " + problem):
        compile_mjml(mjml, "t.mjml.j2")


def test_mjml_comments_and_html_inside_text_are_left_alone() -> None:
    html = compile_mjml("<mjml><mj-body><!-- <mj-old> --><mj-section><mj-column><mj-text><b>x</b><br>"
                        "</mj-text></mj-column></mj-section></mj-body></mjml>")
    assert "<b>x</b>" in html
