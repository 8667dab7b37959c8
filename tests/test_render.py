from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from feedletter.config import Config
from feedletter.errors import ConfigError, RenderError
from feedletter.issue.placeholders import personalize
from feedletter.issue.render import GMAIL_CLIP_BYTES, compile_mjml, render_digest, review_digest
from feedletter.models import Coverage
from tests.fixtures_email import TITLES, WHEN, email_config, render_sample, story, stressful_stories


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
    assert out.subject == "Riverside Weekly: Footbridge opens +1 more"
    assert out.preheader == "Also: Library hours"
    assert out.html.startswith("<!doctype html>") and 'lang="en"' in out.html
    assert re.search(r'<div style="display:none;[^"]*">Also: Library hours', out.html), "preheader is hidden"
    assert "Riverside Weekly" in out.html and "Issue 3 · 23 November 2026" in out.html
    assert '<a href="https://ledger.example/1"' in out.html and "Library hours" in out.html
    assert "City Ledger · 23 Nov 2026" in out.html and "The bridge opened on Saturday." in out.html
    assert "Also covered by" in out.html and ">Valley Post</a>" in out.html
    # The lead story's picture spans the card, capped at its width, with the title as alt text.
    assert re.search(r'<img alt="Footbridge opens"[^>]*src="https://ledger.example/1.jpg"[^>]*width="576"',
                     out.html)
    assert 'href="https://news.example.com/weekly/3/"' in out.html and "12 Mill Lane" in out.html
    assert "prefers-color-scheme: dark" in out.html and 'name="color-scheme"' in out.html
    for part in (out.html, out.text):
        assert "%%UNSUBSCRIBE_URL%%" in part
    assert "1. Footbridge opens" in out.text and "City Ledger · 23 Nov 2026" in out.text
    assert "Read at City Ledger: https://ledger.example/1" in out.text
    assert "Also covered by: Valley Post <https://valley.example/b>" in out.text
    assert "View in browser: https://news.example.com/weekly/3/" in out.text and "12 Mill Lane" in out.text
    assert review_digest(out, newsletter) == ((), ())


def test_plain_text_entries_hang_under_their_titles_past_nine(config: Config) -> None:
    """An entry's lines start where its title does: three spaces under "9. ", four under "10. "."""
    summary = "The bridge opened on Saturday after nineteen months of work, and the council says " * 2
    out = render_digest(config, config.newsletter("weekly"), [story(i, f"Story {i}", summary) for i in range(1, 11)],
                        number=1, issued=WHEN, web_url=None, source_titles=TITLES)
    body = out.text.split("\n" + "-" * 60 + "\n", 1)[0]  # the footer's rule ends the entries
    entries = re.split(r"\n(?=\d+\. Story \d+\n)", body)[1:]
    assert len(entries) == 10
    for number, entry in enumerate(entries, 1):
        title, *lines = [line for line in entry.splitlines() if line.strip()]
        assert title == f"{number}. Story {number}"
        hang = len(f"{number}. ")
        assert len(lines) == 6 and all(re.match(rf" {{{hang}}}\S", line) for line in lines), lines
        assert all(len(line) <= 72 for line in lines)


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
    assert out.subject == "Riverside Weekly: " + "A" * 51 + "…"  # cut to 70 characters
    assert review_digest(out, config.newsletter("weekly")) == ((), ())
    strict = email_config(tmp_path, "    checks: {subject_max: 40}\n").newsletter("weekly")
    failures, warnings = review_digest(out, strict)
    assert failures == () and warnings[0].startswith("subject_length: subject is 70 characters (limit 40)")
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
     "</mj-body></mjml>", r"line 5 .*</mj-text> inside <mj-button> opened on line 5 \(is its </mj-button> missing\?\)"),
    ("<mjml>\n<mj-body>\n<mj-section>\n<mj-column>\n<mj-text>x</mj-txt>\n<mj-text>y</mj-text>\n"
     "</mj-column></mj-section>\n</mj-body></mjml>", "line 5 .*unknown MJML tag </mj-txt>"),
    ("<mjml>\n<mj-body>\n<mj-section>\n<mj-column>\n<mj-text>x\n<mj-text>y</mj-text>\n"
     "</mj-column></mj-section>\n</mj-body></mjml>", "line 6 .*<mj-text> inside <mj-text> opened on line 5"),
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


# --- the shape of an issue: contents, sections, intro, greeting, footer, calls to action --------

def _newsletter_with(tmp_path: Path, extra: str) -> Config:
    return email_config(tmp_path, extra)


def test_in_this_issue_links_each_title_to_its_card(config: Config) -> None:
    out = render_sample(config)
    titles = [s.title for s in stressful_stories()]
    contents = out.html.split("IN THIS ISSUE", 1)[1]
    for number, title in enumerate(titles, 1):
        assert re.search(rf'<a href="#story-{number}"[^>]*>{re.escape(title)}</a>', contents)
        assert f'<a id="story-{number}" name="story-{number}"></a>' in out.html
    # The anchors come in the order of the cards, each just before its card.
    positions = [out.html.index(f'id="story-{n}"') for n in (1, 2, 3)] + [out.html.index("You receive this")]
    assert positions == sorted(positions)
    for number, title in enumerate(titles):
        assert title in out.html[positions[number]:positions[number + 1]]
    assert "In this issue\n   1. Footbridge over the Wren" in out.text
    assert review_digest(out, config.newsletter("weekly")).failures == ()  # in-mail links pass the links check


def test_a_single_story_needs_no_contents_and_a_dangling_anchor_fails(tmp_path: Path, config: Config) -> None:
    out = render_sample(config, [story(1)])
    assert "IN THIS ISSUE" not in out.html and "In this issue" not in out.text
    _override(tmp_path, "anchor.mjml.j2", MINIMAL.format(BODY='<a href="#nowhere">x</a>'))
    newsletter = config.newsletter("weekly").model_copy(update={"template": "anchor"})
    bad = render_digest(config, newsletter, [story(1)], number=1, issued=WHEN, web_url=None, source_titles={})
    assert review_digest(bad, newsletter).failures == (
        "links: relative link '#nowhere': email links must be absolute http(s) URLs",)


SECTIONS = """\
    sections:
      - {title: City, tags: [city]}
      - {title: Health, tags: [health, care]}
"""


@pytest.mark.parametrize(("sections", "expected"), [
    ([], [("", [1, 2, 3, 4])]),
    ([("City", ["city"]), ("Health", ["health"])], [("City", [1, 3]), ("Health", [2]), ("More stories", [4])]),
    # A story goes under the first section it matches; empty sections are left out.
    ([("Health", ["health"]), ("City", ["city"]), ("Sport", ["sport"])], [("Health", [2, 3]), ("City", [1])
                                                                          , ("More stories", [4])]),
    # A section without tags takes the rest, where it stands.
    ([("Elsewhere", []), ("City", ["city"])], [("Elsewhere", [2, 4]), ("City", [1, 3])]),
])
def test_arrange_puts_stories_under_their_sections(sections: list[tuple[str, list[str]]],
                                                   expected: list[tuple[str, list[int]]]) -> None:
    from feedletter.config_newsletters import Section
    from feedletter.issue.contents import arrange

    stories = [story(1, tags=("city",)), story(2, tags=("health",)), story(3, tags=("city", "health")),
               story(4)]
    parts = arrange(stories, [Section(title=t, tags=tags) for t, tags in sections])
    assert [(p.title, [s.id for s in p.stories]) for p in parts] == expected


def test_sections_give_headings_and_numbering_in_both_parts(tmp_path: Path) -> None:
    config = _newsletter_with(tmp_path, SECTIONS)
    stories = [story(1, "Bridge", tags=("city",)), story(2, "Flu jabs", tags=("care",)),
               story(3, "Lanterns"), story(4, "Gritting", tags=("city",))]
    out = render_sample(config, stories)
    # Cards follow the sections: City (1, 4), Health (2), More stories (3), numbered in that order.
    order = [out.html.index(f">{t}</a>", out.html.index('id="story-1"')) for t in ("Bridge", "Gritting",
                                                                                     "Flu jabs", "Lanterns")]
    assert order == sorted(order)
    headings = [out.html.index(f">{h}</div>") for h in ("CITY", "HEALTH", "MORE STORIES")]
    assert headings == sorted(headings)
    assert re.search(r'href="#story-2"[^>]*>Gritting</a>', out.html)
    assert out.subject == "Riverside Weekly: Bridge +3 more"
    text = out.text
    assert text.index("  City\n   1. Bridge\n   2. Gritting\n  Health\n   3. Flu jabs\n  More stories\n"
                      "   4. Lanterns") < text.index("CITY\n----\n\n1. Bridge") < text.index("HEALTH\n------\n\n3. Flu")


def test_intro_is_safe_markdown_in_html_and_text(tmp_path: Path) -> None:
    intro = ("    intro: |\n"
             "      Welcome to **issue 3**: the *footbridge* [is open](https://x.example/?a=1&b=2).\n"
             "      <script>alert(1)</script> [no](javascript:alert(2)) ![pic](https://x.example/p.png)\n"
             "\n"
             "      # not a heading\n"
             "\n"
             "      - one\n"
             "      - two, [mail us](mailto:ed@x.example)\n")
    out = render_sample(_newsletter_with(tmp_path, intro))
    html = out.html
    assert "<strong>issue 3</strong>" in html and "<em>footbridge</em>" in html
    assert '<a href="https://x.example/?a=1&amp;b=2" style="color:#1d5fa8;">is open</a>' in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="javascript:' not in html and "[no](javascript:alert(2))" in html  # left as typed
    assert "<h1" not in html and "# not a heading" in html
    assert re.search(r"<ul[^>]*>\s*<li[^>]*>one</li>", html)
    assert html.index("issue 3") < html.index("IN THIS ISSUE") < html.index('id="story-1"')
    assert ("Welcome to issue 3: the footbridge is open <https://x.example/?a=1&b=2>.\n<script>alert(1)</script>"
            in out.text.replace("\n", " ").replace(" <script>", "\n<script>"))
    assert "- one\n- two, mail us <ed@x.example>" in out.text
    assert out.text.index("Welcome") < out.text.index("In this issue")
    assert review_digest(out, config_of(tmp_path).newsletter("weekly")).failures == ()


def config_of(tmp_path: Path) -> Config:
    return email_config(tmp_path)


def test_intro_file_is_read_beside_the_config(tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "intro.md").write_text("From the *file*.\n", encoding="utf-8")
    out = render_sample(_newsletter_with(tmp_path, "    intro_file: notes/intro.md\n"))
    assert "From the <em>file</em>." in out.html and "From the file." in out.text
    missing = _newsletter_with(tmp_path, "    intro_file: notes/missing.md\n")
    with pytest.raises(RenderError, match=r"render: .*notes/missing\.md: cannot read the intro_file"):
        render_sample(missing)
    from feedletter.validate import template_problems

    assert [p.format("sources.yaml") for p in template_problems(missing, (tmp_path / "sources.yaml").read_text())] == [
        f"sources.yaml:9: newsletters[0] (weekly).intro_file: render: {tmp_path / 'notes' / 'missing.md'}: "
        "cannot read the intro_file: No such file or directory"]


def test_greeting_uses_the_name_or_reads_well_without_one(tmp_path: Path) -> None:
    out = render_sample(_newsletter_with(tmp_path, '    greeting: "Hi %%NAME%%,"\n'))
    assert "Hi %%NAME%%," in out.html and "\nHi %%NAME%%,\n" in out.text
    assert out.html.index("Hi %%NAME%%,") < out.html.index("IN THIS ISSUE")
    named = personalize(out.html, unsubscribe_url="https://u.example/t", name="Ann <A&B>", html=True)
    assert "Hi Ann &lt;A&amp;B&gt;," in named
    for name in ("", "  "):
        assert "Hi," in personalize(out.html, unsubscribe_url="https://u.example/t", name=name, html=True)
        assert "\nHi,\n" in personalize(out.text, unsubscribe_url="https://u.example/t", name=name, html=False)
    assert "greeting" not in render_sample(email_config(tmp_path)).html.split("<body", 1)[1]


def test_footer_says_why_the_reader_gets_it(tmp_path: Path) -> None:
    config = _newsletter_with(tmp_path, "site: {base_url: 'https://news.example.com/letters'}\n")
    out = render_sample(config)
    assert re.search(r"You receive this because you subscribed to Riverside Weekly at\s*"
                     r'<a href="https://news.example.com/letters"[^>]*>news.example.com</a>\.', out.html)
    footer = out.html[out.html.index("You receive this"):]
    assert 'href="%%UNSUBSCRIBE_URL%%"' in footer and 'href="https://news.example.com/weekly/3/"' in footer
    assert "12 Mill Lane, Wrenford WF1 2AB" in footer
    assert ("You receive this because you subscribed to Riverside Weekly at news.example.com.\n"
            "Unsubscribe: %%UNSUBSCRIBE_URL%%\nView in browser: https://news.example.com/weekly/3/\n"
            "12 Mill Lane, Wrenford WF1 2AB\n") in out.text


def test_calls_to_action_vary(config: Config) -> None:
    stories = [story(1), story(2, "Library hours"), replace(story(3, "Derby day"), source="valley-post")]
    out = render_sample(config, stories)
    assert "Read more" not in out.html and "Read more" not in out.text
    assert out.html.count('class="story-button"') == 1  # one button, on the lead story
    assert re.search(r'<a href="https://ledger.example/1"[^>]*>\s*Read the story at City Ledger\s*</a>', out.html)
    assert ">Read at City Ledger &rarr;</a>" in out.html.replace("→", "&rarr;")
    assert ">Read at Valley Post &rarr;</a>" in out.html.replace("→", "&rarr;")
    assert "Read at Valley Post: https://ledger.example/3" in out.text


@pytest.mark.parametrize(("subject", "lead", "others", "expected"), [
    ("Riverside Weekly: Bridge to be rebuilt", "Bridge to be rebuilt", 4,
     "Riverside Weekly: Bridge to be rebuilt +4 more"),
    ("Riverside Weekly: Bridge to be rebuilt", "Bridge to be rebuilt", 0, "Riverside Weekly: Bridge to be rebuilt"),
    # The subject does not name the lead story: no count.
    ("Riverside Weekly, issue 12", "Bridge to be rebuilt", 4, "Riverside Weekly, issue 12"),
    # Fits without the count but not with it: the whole subject, no count.
    ("Riverside Weekly: Kingfisher Footbridge opens across the Wren at last", "Kingfisher Footbridge opens", 3,
     "Riverside Weekly: Kingfisher Footbridge opens across the Wren at last"),
    # Too long anyway: cut at a word, with the count.
    ("Riverside Weekly: Footbridge over the Wren opens after two years of works and a public vote on its name",
     "Footbridge over the Wren opens", 2, "Riverside Weekly: Footbridge over the Wren opens after two… +2 more"),
    ("Riverside Weekly: Footbridge over the Wren opens after two years of works and a public vote on its name",
     "Footbridge over the Wren opens", 0, "Riverside Weekly: Footbridge over the Wren opens after two years of…"),
    # One giant word is cut where it must be.
    ("Weekly: " + "x" * 90, "x" * 90, 1, "Weekly: " + "x" * 53 + "… +1 more"),
    ("  Spaces   everywhere  ", "Spaces", 1, "Spaces everywhere +1 more"),
])
def test_subjects_fit_in_70_characters(subject: str, lead: str, others: int, expected: str) -> None:
    from feedletter.issue.contents import fit_subject

    fitted = fit_subject(subject, lead, others)
    assert fitted == expected and len(fitted) <= 70


def test_long_titles_make_a_subject_of_at_most_70_characters(config: Config) -> None:
    out = render_sample(config)  # a 86-character lead title, two more stories
    assert out.subject == "Riverside Weekly: Footbridge over the Wren opens after two… +2 more"
    assert len(out.subject) <= 70


def test_a_typical_issue_is_one_compile_and_well_under_the_clip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 ) -> None:
    """Ten stories with pictures, sections, an intro and a greeting: one MJML compile, under 102 KB."""
    import feedletter.issue.render as render

    compiles: list[int] = []
    real = render.mjml2html

    def counting(mjml: str, **kwargs: object) -> object:
        compiles.append(1)
        return real(mjml, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(render, "mjml2html", counting)
    config = _newsletter_with(tmp_path, SECTIONS + '    greeting: "Hi %%NAME%%,"\n    intro: |\n'
                              + "      A week of *news* from the valley, with [a map](https://x.example/map).\n" * 3)
    summary = ("The council voted on Tuesday to rebuild the old bridge over the Wren, after a survey found "
               "cracks in two of its piers. Work starts in spring and should take a year. ") * 3
    stories = [replace(story(i, f"A typical headline for story number {i} about life in the valley", summary[:600],
                             image=f"https://cdn.ledger.example/images/2026/11/story-{i}-large.jpg",
                             tags=(("city",), ("health",), ())[i % 3]),
                       more=(Coverage("valley-post", "Another telling of a related event", "https://valley.example/m"),))
               for i in range(1, 11)]
    out = render_sample(config, stories)
    size = len(out.html.encode())
    print(f"typical 10-story issue: HTML {size} bytes, text {len(out.text.encode())} bytes")
    assert compiles == [1]
    assert size < 80 * 1024, size  # leaves room under Gmail's 102 KB clip
    assert out.html.count("<img ") == 10 and review_digest(out, config.newsletter("weekly")) == ((), ())
    for part in (out.text,):
        assert "A week of news from the valley" in part and "In this issue" in part and "CITY" in part
        assert all(s.title in part and s.url in part for s in stories)


def test_dark_mode_covers_every_part() -> None:
    head = (Path(__file__).resolve().parents[1] / "templates" / "partials" / "head.mjml.j2").read_text()
    dark = head.split("prefers-color-scheme: dark", 1)[1].split("@media only screen", 1)[0]
    for selector in (".body", ".card", ".footer", ".story-meta", ".kicker", ".contents", ".section-title",
                     ".story-title a", ".story-button", ".rule"):
        assert selector in dark, selector
