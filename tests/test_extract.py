"""Extraction of article pages: main content kept, site chrome gone, metadata read, no network."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedletter.errors import ExtractError
from feedletter.ingest.extract import extract, is_teaser
from feedletter.text.sanitize import html_to_text, sanitize_html

DATA = Path(__file__).parent / "data" / "extract"
CLINIC_URL = "https://clinic.example.org/blog/ketamine-trial/"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Extraction must never fetch anything: any connection attempt fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("extract tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module")
def clinic() -> bytes:
    return (DATA / "clinic-post.html").read_bytes()


def test_keeps_article_paragraphs_in_order(clinic: bytes) -> None:
    result = extract(clinic, CLINIC_URL)
    paragraphs = result.text.split("\n\n")
    assert paragraphs[0].startswith("A randomized trial published this month")
    assert "What this means for our patients" in paragraphs
    assert "- Sessions last about forty minutes, plus an hour of observation." in result.text
    assert "Rapid relief matters most" in result.text
    assert paragraphs[-1].startswith("Read the full study")
    assert result.text.index("three weeks") < result.text.index("antidepressants")


@pytest.mark.parametrize(
    "chrome",
    [
        "Home",  # breadcrumbs and menu
        "by admin",
        "0 comment",
        "Tweet",
        "22 shares",
        "Photo: Riverbend",
        "Tags:",
        "Related Articles",
        "Sleep and mood",
        "Leave a Reply",
        "Your email address will not be published",
        "Required fields",
        "555",
        "Suite 140",
        "Back to top",
        "cookies",
        "All rights reserved",
    ],
)
def test_drops_site_chrome(clinic: bytes, chrome: str) -> None:
    result = extract(clinic, CLINIC_URL)
    assert chrome not in result.text
    assert chrome not in result.html


def test_reads_metadata(clinic: bytes) -> None:
    result = extract(clinic, CLINIC_URL)
    assert result.title == "Ketamine for treatment-resistant depression: what the new trial shows"
    assert result.author == "Dana Whitfield"
    assert result.published == datetime(2024, 3, 5, 8, 30, tzinfo=UTC)
    assert result.published is not None and result.published.utcoffset() is not None


def test_html_is_simple_and_absolute(clinic: bytes) -> None:
    html = extract(clinic, CLINIC_URL).html
    assert html.startswith("<p>A randomized trial")
    assert "<h2>What this means for our patients</h2>" in html
    assert "<ul><li>Sessions last" in html
    assert "<blockquote>" in html
    assert '<a href="https://journal.example.com/ketamine-ect">' in html
    assert ('<img src="https://clinic.example.org/wp-content/uploads/infusion-room.jpg" '
            'alt="An infusion room with two reclining chairs">') in html
    for tag in ("<div", "<span", "<script", "<form", "<nav", "<figcaption", "class="):
        assert tag not in html
    # the page title is carried in .title, not repeated as the first heading
    assert "<h1" not in html and "<h2>Ketamine for" not in html


def test_str_input_and_no_url(clinic: bytes) -> None:
    result = extract(clinic.decode("utf-8"))
    assert "A randomized trial" in result.text


def test_decodes_declared_legacy_charset() -> None:
    page = ("<html><head><meta charset='iso-8859-1'><title>Caf\xe9</title></head><body><article>"
            + "<p>Le caf\xe9 \xe0 c\xf4t\xe9 de la gare ouvre d\xe9sormais \xe0 sept heures du matin, "
            "et la terrasse reste ouverte jusqu'au soir pendant tout l'\xe9t\xe9.</p>" * 3
            + "</article></body></html>").encode("latin-1")
    assert "Le café à côté de la gare" in extract(page).text


def test_keeps_sentences_that_only_look_like_chrome() -> None:
    keep = [
        "By then it was over, and the clinic had already moved its infusion chairs upstairs.",
        "Share prices of the two device makers rose after the approval.",
        "Call volumes to the crisis line doubled in the first week.",
    ]
    filler = ("<p>The new wing opened in spring with four treatment rooms, a quiet waiting area and "
              "a small garden that patients can use between sessions. Staff say the layout makes "
              "longer observation periods far more comfortable for everyone involved.</p>")
    page = ("<html><body><article><h1>Opening</h1>" + filler
            + "".join(f"<p>{s}</p>" for s in keep) + filler + "</article></body></html>")
    text = extract(page, "https://example.org/a").text
    for sentence in keep:
        assert sentence in text


def test_comment_wrapper_class_does_not_lose_article() -> None:
    paras = "".join(
        f"<p>Researchers followed {n} patients for a year and found that mood scores improved "
        f"steadily for most of them, with the largest change in month {n % 12 + 1}.</p>"
        for n in (120, 240, 360, 480)
    )
    page = (f"<html><body><div class='comments-open has-sidebar'><article>{paras}</article></div>"
            "</body></html>")
    assert extract(page).text.count("Researchers followed") == 4


@pytest.mark.parametrize("page", ["", "   ", b"", "<html><body></body></html>",
                                  "<html><body><nav><a href='/'>Home</a></nav></body></html>"])
def test_nothing_usable_raises(page: str | bytes) -> None:
    with pytest.raises(ExtractError) as info:
        extract(page, "https://example.org/empty")
    assert str(info.value).startswith("extract: https://example.org/empty: ")


@pytest.mark.parametrize(
    ("summary", "content", "expected"),
    [
        ("<p>Short teaser about ketamine.</p>", "", True),
        ("<p>" + "word " * 200 + "</p>", "", False),
        ("<p>" + "word " * 200 + "…</p>", "", True),
        ("<p>" + "word " * 200 + "...</p>", "", True),
        ("<p>" + "word " * 200 + " <a href='/x'>Read more</a></p>", "", True),
        ("<p>" + "word " * 200 + " <a href='/x'>Continue reading →</a></p>", "", True),
        ("<p>" + "word " * 200 + " [&#8230;]</p>", "", True),
        ("<p>" + "word " * 200 + " [...]</p>", "", True),
        ("<p>Short summary.</p>", "<p>" + "full text " * 300 + "</p>", False),
        ("", "<p>" + "full text " * 300 + "</p>", False),
        ("", "<p>" + "full text " * 300 + "… <a href='/x'>Read more</a></p>", True),
        ("", "", True),
        ("<p>A summary.</p>", "<img src='/a.png'>", True),  # content without text: the summary decides
        ("<p>" + "word " * 200 + "</p>", "<script>x()</script>", False),
    ],
)
def test_is_teaser(summary: str, content: str, expected: bool) -> None:
    assert is_teaser(summary, content) is expected
    # The same from the text the ingest made of the sanitized body (content, else summary).
    body_text = html_to_text(sanitize_html(content or summary, base_url="https://example.org/"))
    assert is_teaser(summary, content, body_text=body_text) is expected


def _page(body: str, title: str = "Sleep, mood and the weekly clinic schedule") -> str:
    return f"<html><head><title>{title}</title></head><body>{body}</body></html>"


ARTICLE = "".join(
    f"<p>Paragraph {n}: the clinic's sleep study enrolled adults with long-standing low mood and "
    f"tracked how their rest changed over {n + 3} weeks of treatment, with nurses checking in often.</p>"
    for n in range(1, 5)
)


@pytest.mark.parametrize(
    "prompt",
    [
        "To read the whole story, please subscribe to the Riverside Ledger.",
        "Never miss a story: sign up for our weekly newsletter.",
        "Follow the Riverside Ledger on Twitter and Instagram for updates.",
        "Get the latest clinic news straight to your phone with our app.",
        "This post contains affiliate links. We may earn a commission when you buy through them.",
        "We want to hear what you think about this article.",
        "(Credit: Riverbend Clinic archive)",
        "© 2024 Riverbend Clinic. All rights reserved.",
        "Release Date: 04/02/2024",
        "RIVERSIDELEDGER.COM",
        "Posted by Dana Whitfield | March 5, 2024 | 3 comments",
    ],
)
def test_drops_reader_prompts(prompt: str) -> None:
    page = _page(f"<article><h1>Sleep and mood</h1>{ARTICLE}<div class='x'>{prompt}</div>"
                 f"<p>{prompt}</p></article>")
    result = extract(page, "https://example.org/sleep")
    assert prompt not in result.text
    assert result.text.count("Paragraph") == 4


def test_article_kept_when_only_in_noscript() -> None:
    page = _page(f"<div id='app'></div><noscript><article>{ARTICLE}</article></noscript>"
                 "<noscript><img src='https://tracker.example/p.gif'></noscript>")
    assert extract(page).text.count("Paragraph") == 4


def test_article_header_standfirst_kept_site_header_dropped() -> None:
    standfirst = ("Nurses at the weekend clinic say the new schedule has shortened waiting times "
                  "for first appointments from six weeks to ten days.")
    page = _page("<header class='masthead'><a href='/'>Ledger</a> Login Register Subscribe</header>"
                 f"<article><header><h1>Sleep and mood</h1><p class='standfirst'>{standfirst}</p></header>"
                 f"{ARTICLE}</article>")
    text = extract(page).text
    assert standfirst in text
    assert "Login Register" not in text


def test_farm_style_teaser_page() -> None:
    """The shape of the bench farm's article pages: menu, share counter, comment form, footer ad."""
    page = _page(
        "<nav><a href='/'>Home</a> | <a href='/news'>News</a></nav><div class='share'>Share 14 comments</div>"
        f"<article><h1>Sleep and mood</h1>{ARTICLE}</article>"
        "<div class='comments'><h3>Leave a Reply</h3><p>Your email address will not be published. "
        "Required fields are marked *</p></div><footer>Back to top. Related Articles. "
        "Call 555-0123, 9 Harbour Road Suite 12.</footer>"
    )
    result = extract(page, "http://127.0.0.1:8765/post/1/2.html")
    assert result.text.count("Paragraph") == 4
    for chrome in ("Home", "Share", "Leave a Reply", "Your email", "Back to top", "555-0123", "Suite"):
        assert chrome not in result.text


def test_fast_mode_still_extracts(clinic: bytes) -> None:
    result = extract(clinic, CLINIC_URL, fast=True)
    assert result.text.startswith("A randomized trial")
    assert "Leave a Reply" not in result.text


@settings(max_examples=60, deadline=None)
@given(st.one_of(
    st.text(max_size=300),
    st.binary(max_size=300),
    st.lists(st.sampled_from(["<p>", "</p>", "<div class='share'>", "</div>", "<article>", "<nav>",
                              "word ", "Leave a Reply ", "<script>", "<noscript>", "\x00", "&#0;",
                              "<meta charset='utf-16'>", "by admin 0 comment"]), max_size=60).map("".join),
))
def test_any_input_gives_result_or_extract_error(page: str | bytes) -> None:
    try:
        result = extract(page)
    except ExtractError:
        return
    assert result.text.strip()
    assert "<script" not in result.html


def test_phone_number_in_story_kept_but_ad_block_dropped() -> None:
    story = ("If you or someone you know is struggling, call the county crisis line at 555-010-0199 "
             "at any hour; counsellors answer in English and Spanish.")
    ad = "Riverbend Ketamine Clinic. Call 555-010-0123 to book. 12 Mill Street, Suite 4."
    page = _page(f"<article><h1>Sleep and mood</h1>{ARTICLE}<p>{story}</p><p>{ad}</p></article>")
    text = extract(page).text
    assert story in text
    assert "Riverbend Ketamine Clinic" not in text


@pytest.mark.parametrize(
    ("head", "article_top", "author", "published"),
    [
        ('<script type="application/ld+json">{"@context": "https://schema.org", "@type": "NewsArticle", '
         '"headline": "Sleep and mood", "datePublished": "2024-05-01T10:00:00-04:00", '
         '"author": {"@type": "Person", "name": "Ana Ruiz"}}</script>',
         "", "Ana Ruiz", datetime(2024, 5, 1, 14, 0, tzinfo=UTC)),
        ("", '<p class="byline">By Sam Okafor</p><time datetime="2023-11-02T07:15:00+00:00">Nov 2</time>',
         "Sam Okafor", datetime(2023, 11, 2, 7, 15, tzinfo=UTC)),
    ],
)
def test_metadata_from_json_ld_and_page_markup(head: str, article_top: str, author: str,
                                              published: datetime) -> None:
    page = (f"<html><head><title>Sleep and mood</title>{head}</head><body><article>"
            f"<h1>Sleep and mood</h1>{article_top}{ARTICLE}</article></body></html>")
    result = extract(page)
    assert result.author == author
    assert result.published == published
    assert "Sam Okafor" not in result.text  # the byline is metadata, not article text


def test_html_survives_the_sanitizer(clinic: bytes) -> None:
    html = extract(clinic, CLINIC_URL).html
    cleaned = sanitize_html(html, CLINIC_URL)
    for piece in ("<h2>What this means", "<ul><li>", "<blockquote>", "https://journal.example.com",
                  'rel="noopener noreferrer"', "infusion-room.jpg"):
        assert piece in cleaned


def test_tables_and_line_breaks_in_text() -> None:
    table = ("<table><tr><th>Plan</th><th>Sessions</th></tr><tr><td><p>Starter</p></td><td>6</td></tr>"
             "</table><p>Chapter from the book<br>entitled <i>Beautiful Sleep</i>, 2021.</p>")
    result = extract(_page(f"<article><h1>Sleep and mood</h1>{ARTICLE}{table}</article>"))
    assert "Plan | Sessions\nStarter | 6" in result.text
    assert "Chapter from the book\nentitled Beautiful Sleep, 2021." in result.text
    assert "<table><tr><td>Plan</td><td>Sessions</td></tr>" in result.html


@pytest.mark.parametrize(
    ("base_tag", "link", "image"),
    [
        ("", "https://example.org/blog/hours/", "https://example.org/blog/post/img/chair.jpg"),
        ("<base href='https://cdn.example.org/a/'>", "https://cdn.example.org/hours/",
         "https://cdn.example.org/a/img/chair.jpg"),
    ],
)
def test_relative_urls_resolved_against_page(base_tag: str, link: str, image: str) -> None:
    page = (f"<html><head><title>Hours</title>{base_tag}</head><body><article><h1>Hours</h1>{ARTICLE}"
            "<p>See <a href='../hours/'>our hours</a>.<img src='img/chair.jpg' alt='A chair'></p>"
            "</article></body></html>")
    html = extract(page, "https://example.org/blog/post/").html
    assert f'<a href="{link}">our hours</a>' in html
    assert f'<img src="{image}" alt="A chair">' in html


def test_a_teasers_tail_is_told_as_the_full_search_tells_it() -> None:
    import random

    from feedletter.ingest.extract import _TEASER_TAIL, _ends_as_teaser

    rnd = random.Random(5)
    pieces = ["Read more", "read  MORE", "Continue reading", "continue readinG", "more »", "more»", "…", "...",
              "[…]", "[...]", ".", "!", " ", "\n", "_", "e", "g", "İ", "word", "more_", "reading.", "» ", ":)", "x"]
    tails = ["", "The end.", "Read more »", "Continue reading →", "So much more", "Eating", *(
        "".join(rnd.choice(pieces) for _ in range(rnd.randint(1, 8))) for _ in range(20000))]
    for tail in tails:
        assert _ends_as_teaser(tail) == (_TEASER_TAIL.search(tail) is not None), tail
