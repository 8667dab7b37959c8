"""Parse stage: every format to the same Entry, encodings, dates, hostile XML, both engines."""

from __future__ import annotations

import email.utils
import json
import logging
import time
import tracemalloc
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from xml.etree import ElementTree

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from feedletter.errors import ParseError
from feedletter.ingest.parse.feeds import entry_record, parse_date, parse_feed
from feedletter.ingest.parse.prepare import decode, feed_links, prepare
from feedletter.models import Entry, ParsedFeed

DATA = Path(__file__).parent / "data" / "parse"
FEED_URL = "https://feeds.example.org/feed.xml"
NOW = datetime(2024, 7, 1, 12, 0, tzinfo=UTC)

FEEDS = ["rss091.xml", "rss10.rdf", "rss20.xml", "atom10.xml", "jsonfeed11.json", "gb2312.xml",
         "latin1-undeclared.xml", "xmlbase.xml", "cdata-entities.xml", "dates.xml",
         "billion-laughs.xml", "external-entity.xml", "atom-details.xml", "podcast-crlf.xml", "atom03.xml",
         "rss-author-title.xml"]


def parse(name: str, **kw: object) -> ParsedFeed:
    return parse_feed((DATA / name).read_bytes(), url=FEED_URL, source="test", now=NOW, **kw)  # type: ignore[arg-type]


def by_title(feed: ParsedFeed) -> dict[str, Entry]:
    return {e.title: e for e in feed.entries}


@pytest.mark.parametrize(("name", "fmt", "count", "feed_title"), [
    ("rss091.xml", "rss091u", 2, "Old School Weekly"),
    ("rss10.rdf", "rss10", 2, "Science Notes"),
    ("rss20.xml", "rss20", 2, "Clinic Blog"),
    ("atom10.xml", "atom10", 2, "River & Garden"),
    ("atom03.xml", "atom03", 1, "Old Atom Log"),
    ("jsonfeed11.json", "json11", 2, "Energy Market Notes"),
])
def test_formats(name: str, fmt: str, count: int, feed_title: str) -> None:
    feed = parse(name)
    assert feed.format == fmt
    assert feed.title == feed_title
    assert len(feed.entries) == count
    for e in feed.entries:
        assert e.source == "test"
        assert e.title
        assert e.link.startswith(("http://", "https://"))
        assert e.published is not None and e.published.tzinfo is not None
        assert e.published.utcoffset() == UTC.utcoffset(None)


@pytest.mark.parametrize("name", FEEDS)
def test_fast_and_feedparser_paths_agree(name: str) -> None:
    fast = parse(name)
    slow = parse(name, fast=False)
    assert [asdict(e) for e in fast.entries] == [asdict(e) for e in slow.entries]
    assert (fast.title, fast.link, fast.format) == (slow.title, slow.link, slow.format)


def test_rss20_fields_and_keys() -> None:
    entries = by_title(parse("rss20.xml"))
    trial = entries["Ketamine & depression: what the new trial says"]
    assert trial.key == "guid:clinic-2024-0117"
    assert trial.guid == "clinic-2024-0117"
    assert trial.published == datetime(2024, 1, 17, 8, 15, tzinfo=UTC)
    assert trial.author == "Maria Keller"
    assert trial.summary == "<p>A short look at the <b>results</b>.</p>"
    assert trial.content.startswith("<p>The trial enrolled 120 patients.</p>")
    hours = entries["Opening hours over the holidays"]
    # No guid: the key is the canonical link, which is resolved against the feed URL.
    assert hours.link == "https://feeds.example.org/posts/holiday-hours"
    assert hours.key == "url:https://feeds.example.org/posts/holiday-hours"
    assert hours.author == "Front Desk"


def test_extra_tracking_parameters_leave_the_key() -> None:
    data = (DATA / "rss091.xml").read_bytes().replace(b"dialup.html", b"dialup.html?src=feed")
    feed = parse_feed(data, url=FEED_URL, source="t", now=NOW, extra_tracking=["src"])
    assert feed.entries[0].key == "url:https://old.example.com/items/dialup.html"


def test_atom_title_types_and_dates() -> None:
    entries = by_title(parse("atom10.xml"))
    assert set(entries) == {"Planting early tomatoes", "Compost: 3 < 4 bins"}
    tomatoes = entries["Planting early tomatoes"]
    assert tomatoes.published == datetime(2024, 4, 8, 10, 45, tzinfo=UTC)
    assert tomatoes.author == "Jun Park"
    assert "<strong>indoors</strong>" in tomatoes.content
    # Only an <updated> date: it stands in for the missing <published>.
    assert entries["Compost: 3 < 4 bins"].published == datetime(2024, 4, 10, 12, tzinfo=UTC)
    assert "<em>weekly</em>" in entries["Compost: 3 < 4 bins"].content


def test_atom03_fields() -> None:
    (entry,) = parse("atom03.xml").entries
    assert entry.title == "Hello & goodbye"
    assert entry.published == datetime(2005, 1, 9, 13, 0, tzinfo=UTC)  # <issued>
    assert entry.summary == "<p>Short.</p>"
    assert entry.content == "<p>Longer <b>text</b>.</p>"


def test_rdf_dc_fields() -> None:
    notes = parse("rss10.rdf").entries
    assert [e.author for e in notes] == ["Dr. Okafor", "Dr. Lind"]
    assert notes[0].published == datetime(2024, 5, 2, 6, 30, tzinfo=UTC)
    assert notes[0].key == "guid:https://science.example.org/notes/41"  # rdf:about, as given


def test_json_feed() -> None:
    prices, grid = parse("jsonfeed11.json").entries
    assert prices.title == "Spot prices fall & rise"
    assert prices.key == "guid:2024-06-03-prices"
    assert prices.author == "Ana Silva"
    assert prices.summary == "Overnight drop."
    assert prices.published == datetime(2024, 6, 3, 5, 0, tzinfo=UTC)
    assert grid.link == "https://feeds.example.org/notes/grid"
    assert grid.author == "Desk"  # the feed's author stands in
    assert grid.content == "<p>Two lines are down.</p><p>Repairs by Friday.</p>"
    assert grid.published == datetime(2024, 6, 4, 10, 0, tzinfo=UTC)


def test_json_detected_by_content_type_with_leading_space() -> None:
    data = b"\n  " + (DATA / "jsonfeed11.json").read_bytes()
    feed = parse_feed(data, url=FEED_URL, source="t", content_type="application/feed+json", now=NOW)
    assert len(feed.entries) == 2


@pytest.mark.parametrize(("name", "title", "summary"), [
    ("gb2312.xml", "春节快乐", "新年的第一篇文章"),
    ("latin1-undeclared.xml", "Noël à la cafétéria", "Crème brûlée © 2023"),
])
def test_encodings(name: str, title: str, summary: str) -> None:
    (entry,) = parse(name).entries
    assert entry.title == title
    assert entry.summary == summary


@pytest.mark.parametrize(("prefix", "encoding"), [
    (b"\xef\xbb\xbf", "utf-8"), (b"", "utf-8"),
])
def test_utf8_bom_and_leading_whitespace(prefix: bytes, encoding: str) -> None:
    data = prefix + b"\n\n  " + (DATA / "rss20.xml").read_bytes()
    assert decode(data)[1] == encoding
    assert len(parse_feed(data, url=FEED_URL, source="t", now=NOW).entries) == 2


def test_utf16_with_bom() -> None:
    text = (DATA / "rss20.xml").read_text("utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16"')
    feed = parse_feed(text.encode("utf-16"), url=FEED_URL, source="t", now=NOW)
    assert feed.entries[0].title.startswith("Ketamine & depression")


def test_http_charset_beats_wrong_declaration() -> None:
    body = '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Ærø</title>' \
           "<item><title>Smørrebrød</title><link>https://dk.example/1</link></item></channel></rss>"
    feed = parse_feed(body.encode("cp1252"), url=FEED_URL, source="t",
                      content_type="text/xml; charset=windows-1252", now=NOW)
    assert feed.title == "Ærø"
    assert feed.entries[0].title == "Smørrebrød"


def test_xml_base_and_relative_links() -> None:
    feb, about = parse("xmlbase.xml").entries
    assert feb.link == "https://base.example.org/journal/2024/february.html"
    assert about.link == "https://base.example.org/about"


def test_cdata_and_entities() -> None:
    feed = parse("cdata-entities.xml")
    assert feed.title == "Café & Code"
    fish, resume = feed.entries
    assert fish.title == "Fish & Chips served & reviewed"
    assert fish.summary == "Café\u00a0prices — “quoted” — and AT&T"
    assert resume.title == "Résumé tips & tricks"
    # Inside CDATA an entity is HTML source text and stays exactly as written.
    assert resume.summary == "<p>Use &nbsp; wisely &bogus; here</p>"


def test_missing_invalid_and_future_dates() -> None:
    now = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
    entries = by_title(parse_feed((DATA / "dates.xml").read_bytes(), url=FEED_URL, source="t", now=now))
    assert entries["No date at all"].published == now
    assert entries["Garbage date"].published == now
    assert entries["Far future"].published == now  # clamped
    assert entries["Slightly ahead"].published == datetime(2024, 3, 5, 18, tzinfo=UTC)  # within a day
    assert entries["Naive ISO"].published == datetime(2024, 3, 1, 10, tzinfo=UTC)
    assert entries["Zoned"].published == datetime(2024, 3, 1, 15, tzinfo=UTC)


def test_no_now_means_current_time() -> None:
    before = datetime.now(UTC)
    feed = parse_feed((DATA / "dates.xml").read_bytes(), url=FEED_URL, source="t")
    published = by_title(feed)["No date at all"].published
    assert published is not None and before <= published <= datetime.now(UTC)


@pytest.mark.parametrize(("value", "expected"), [
    ("Tue, 05 Mar 2024 10:00:00 GMT", datetime(2024, 3, 5, 10, tzinfo=UTC)),
    ("2024-03-05T10:00:00+02:00", datetime(2024, 3, 5, 8, tzinfo=UTC)),
    ("2024-03-05T10:00:00.123Z", datetime(2024, 3, 5, 10, 0, 0, 123000, tzinfo=UTC)),
    ("2024-03-05", datetime(2024, 3, 5, tzinfo=UTC)),
    ("not a date", None),
    ("", None),
    (None, None),
])
def test_parse_date(value: str | None, expected: datetime | None) -> None:
    assert parse_date(value) == expected


@pytest.mark.parametrize(("name", "problem"), [
    ("html-page.html", "not a feed (looks like HTML)"),
    ("empty.xml", "empty document"),
    ("garbage.bin", "not a feed"),
])
def test_non_feeds_raise_parse_error(name: str, problem: str) -> None:
    with pytest.raises(ParseError) as info:
        parse(name)
    assert str(info.value).startswith(f"parse: {FEED_URL}: {problem}")


@pytest.mark.parametrize("body", [
    b"<?xml version='1.0'?><opml version='2.0'><head/><body/></opml>",
    b'{"hello": "world"}',
    b"{not json",
    b"   \n\t ",
])
def test_other_documents_raise_parse_error(body: bytes) -> None:
    with pytest.raises(ParseError):
        parse_feed(body, url=FEED_URL, source="t", now=NOW)


def _bounded(data: bytes) -> tuple[ParsedFeed, float, int]:
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        feed = parse_feed(data, url=FEED_URL, source="t", now=NOW)
        elapsed = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return feed, elapsed, peak


def test_billion_laughs_does_not_expand() -> None:
    feed, elapsed, peak = _bounded((DATA / "billion-laughs.xml").read_bytes())
    (entry,) = feed.entries
    assert "lollol" not in entry.title + entry.summary
    assert entry.title == "&lol9;"
    assert elapsed < 2 and peak < 50_000_000


def test_quadratic_blowup_does_not_expand() -> None:
    blob = "A" * 40_000
    refs = "&big;" * 5_000
    doc = (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY big "{blob}">]>'
           f'<rss version="2.0"><channel><title>Q</title><item><title>q</title>'
           f"<link>https://q.example/1</link><description>{refs}</description></item></channel></rss>")
    feed, elapsed, peak = _bounded(doc.encode())
    (entry,) = feed.entries
    assert "AAAA" not in entry.summary
    assert len(entry.summary) <= len(refs)
    assert elapsed < 2 and peak < 50_000_000


def test_external_entities_do_not_leak() -> None:
    feed, elapsed, _ = _bounded((DATA / "external-entity.xml").read_bytes())
    (entry,) = feed.entries
    text = json.dumps([feed.title, *entry_record(entry).values()])
    assert "root:" not in text and "/bin/" not in text
    assert entry.title == "Read &secret;"
    assert elapsed < 2


def test_entry_record() -> None:
    entry = by_title(parse("rss20.xml"))["Ketamine & depression: what the new trial says"]
    record = entry_record(entry)
    assert list(record) == ["title", "link", "key", "published", "author", "summary", "content"]  # the CLI contract
    assert record["published"] == "2024-01-17T08:15:00Z"
    assert record["key"] == "guid:clinic-2024-0117"
    json.dumps(record)


def test_atom_details_both_engines_fix_up() -> None:
    (entry,) = parse("atom-details.xml").entries
    assert entry.link == "https://workshop.example.com/read?id=12&lang=en"  # href's &amp; decoded
    assert entry.author == "Lena Varga"  # inherited from the feed
    assert "<br />" in entry.content and "</br>" not in entry.content and "</hr>" not in entry.content


def test_podcast_item_fields() -> None:
    (entry,) = parse("podcast-crlf.xml").entries
    assert entry.title == "Episode 7: clamps"  # not the <author>'s <title>
    assert entry.author == "Sam Ortiz"  # the first author named, on both engines
    assert entry.summary == "<p>Short notes.</p>\n<p>Second line.</p>"  # CRLF folded
    assert entry.content == "<p>Full show notes.</p>\n<p>With a second paragraph.</p>"


def test_item_author_with_a_title_child() -> None:
    (entry,) = parse("rss-author-title.xml").entries
    assert entry.title == "Keep your teams productive"
    assert entry.author == "Dana Chu"


HOSTILE_PROLOGS = {
    "internal subset": '<!DOCTYPE rss [<!ENTITY a "AAAA"><!ENTITY b "&a;&a;&a;&a;">]>',
    "lower case": '<!doctype rss [<!ENTITY a "AAAA"><!ENTITY b "&a;&a;">]>',
    "bracket in a quoted value": '<!DOCTYPE rss [<!ENTITY a "]>AAAA"><!ENTITY b "&a;&a;">]>',
    "external": '<!DOCTYPE rss SYSTEM "file:///etc/passwd">',
    "public and parameter entity": ('<!DOCTYPE rss PUBLIC "-//X//DTD X//EN" "http://127.0.0.1:9/x.dtd" '
                                    '[<!ENTITY % p SYSTEM "file:///etc/hostname"> %p; <!ENTITY a "AAAA">]>'),
    "after a comment": '<!-- hi --><!DOCTYPE rss [<!ENTITY a "AAAA">]>',
    "stray entity declaration": '<!ENTITY a "AAAA">',
}


@pytest.mark.parametrize("prolog", HOSTILE_PROLOGS.values(), ids=HOSTILE_PROLOGS.keys())
def test_prepared_text_is_safe_for_any_xml_parser(prolog: str) -> None:
    doc = (f'<?xml version="1.0"?>{prolog}<rss version="2.0"><channel><title>t &a; &b;</title>'
           "<item><title>i &a;</title><link>https://x.example/1</link></item></channel></rss>")
    prepared = prepare(doc.encode(), url=FEED_URL)
    assert "<!DOCTYPE" not in prepared.text.upper()
    assert "<!ENTITY" not in prepared.text.upper()
    # The standard library's expat expands internal entities and reads DTDs it is given: after
    # prepare there is nothing left for it to expand.
    root = ElementTree.fromstring(prepared.text)
    assert root.findtext("channel/title") == "t &a; &b;"
    (entry,) = parse_feed(doc.encode(), url=FEED_URL, source="t", now=NOW).entries
    assert entry.title == "i &a;"


def test_quadratic_blowup_prepared_for_expat() -> None:
    doc = (f'<?xml version="1.0"?><!DOCTYPE rss [<!ENTITY big "{"A" * 40_000}">]>'
           f'<rss version="2.0"><channel><title>{"&big;" * 2_000}</title></channel></rss>')
    prepared = prepare(doc.encode(), url=FEED_URL)
    assert ElementTree.fromstring(prepared.text).findtext("channel/title") == "&big;" * 2_000


@pytest.mark.parametrize(("body", "content_type", "title"), [
    # GB2312 with no declaration: only the HTTP header says so.
    ("<rss version='2.0'><channel><title>春节</title></channel></rss>", "text/xml; charset=GB2312", "春节"),
    # Declared Latin-1 yet really UTF-8 (a common mistake).
    ("<?xml version='1.0' encoding='ISO-8859-1'?><rss version='2.0'><channel><title>Café</title>"
     "</channel></rss>", None, "Café"),
])
def test_charset_sources(body: str, content_type: str | None, title: str) -> None:
    codec = "gb2312" if content_type and "GB2312" in content_type else "utf-8"
    feed = parse_feed(body.encode(codec), url=FEED_URL, source="t", content_type=content_type, now=NOW)
    assert feed.title == title


def test_decode_order() -> None:
    assert decode(b"\xff\xfe" + "<a/>".encode("utf-16-le"))[0] == "<a/>"
    assert decode(b"caf\xe9")[0] == "café"
    assert decode(b"caf\xe9", "text/xml; charset=nonsense-9")[0] == "café"


def test_doctype_comment_with_quote_is_skipped_whole() -> None:
    doc = ("<?xml version='1.0'?><!DOCTYPE rss [<!-- don't ]> --><!ENTITY a 'AAAA'>]>"
           "<rss version='2.0'><channel><title>ok &a;</title></channel></rss>")
    assert parse_feed(doc.encode(), url=FEED_URL, source="t", now=NOW).title == "ok &a;"


def test_huge_internal_subset_is_cut_quickly() -> None:
    subset = "".join(f'<!ENTITY e{i} "{"x" * 50}">' for i in range(100_000))  # ~6 MB
    doc = f"<!DOCTYPE rss [{subset}]><rss version='2.0'><channel><title>big</title></channel></rss>"
    t0 = time.perf_counter()
    feed = parse_feed(doc.encode(), url=FEED_URL, source="t", now=NOW)
    assert feed.title == "big"
    assert time.perf_counter() - t0 < 2


def test_deeply_nested_json_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="nested too deeply"):
        parse_feed(b'{"items": ' + b"[" * 200_000, url=FEED_URL, source="t", now=NOW)


@pytest.mark.parametrize("name", ["rss20.xml", "atom10.xml", "rss10.rdf", "jsonfeed11.json"])
@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.8, 0.95])
def test_truncated_documents_parse_or_raise_parse_error(name: str, fraction: float) -> None:
    data = (DATA / name).read_bytes()
    try:
        feed = parse_feed(data[: int(len(data) * fraction)], url=FEED_URL, source="t", now=NOW)
    except ParseError:
        return
    assert all(e.key and e.published for e in feed.entries)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.binary(max_size=400),
    st.text(max_size=300).map(lambda t: ("<rss version='2.0'><channel>" + t).encode()),
    st.lists(st.sampled_from(["<item>", "</item>", "<title>", "</title>", "&amp;", "&nbsp;", "&x;",
                              "<![CDATA[", "]]>", "<link>", "/a", "</link>", "<!DOCTYPE x [", "]>",
                              "<entry>", "<feed>", "\xe9", "<guid>", "</guid>", "<", "&"]),
             max_size=40).map(lambda parts: ("<rss version='2.0'><channel>" + "".join(parts)).encode()),
))
def test_any_bytes_give_a_feed_or_a_parse_error(data: bytes) -> None:
    for fast in (True, False):
        try:
            feed = parse_feed(data, url=FEED_URL, source="t", now=NOW, fast=fast)
        except ParseError:
            continue
        for e in feed.entries:
            assert e.key and e.published is not None and e.published.tzinfo is not None


def test_body_wins_over_a_json_content_type() -> None:
    feed = parse_feed((DATA / "rss20.xml").read_bytes(), url=FEED_URL, source="t",
                      content_type="application/json", now=NOW)
    assert feed.format == "rss20"


@pytest.mark.parametrize("body", [b"<body><p>Moved</p></body>", b"<div>hi</div>", b"<HTML><BODY>x"])
def test_html_fragments_look_like_html(body: bytes) -> None:
    with pytest.raises(ParseError, match="looks like HTML"):
        parse_feed(body, url=FEED_URL, source="t", now=NOW)


def test_a_blog_page_given_for_a_feed_names_the_feed_it_links_to() -> None:
    page = (b"<!doctype html><html><head><title>Wren notes</title>"
            b"<link rel='stylesheet' href='/s.css'><link rel='alternate' type='text/html' href='/fr/'>"
            b'<link rel="alternate" type="application/rss+xml" title="RSS" href="/feed/?a=1&amp;b=2">'
            b"<LINK REL=alternate TYPE=application/atom+xml HREF=https://wren.example/atom.xml>"
            b"</head><body><p>Hello</p></body></html>")
    with pytest.raises(ParseError, match=r"not a feed \(looks like HTML\); the page names its feed: "
                                         r"https://wren\.example/feed/\?a=1&b=2 \(use that as the source's url\)"):
        parse_feed(page, url="https://wren.example/blog/", source="t", now=NOW)
    assert feed_links(page.decode(), "https://wren.example/blog/") == [
        "https://wren.example/feed/?a=1&b=2", "https://wren.example/atom.xml"]
    assert feed_links("<link rel='alternate' type='application/rss+xml' href='javascript:x'>", FEED_URL) == []


def test_an_atom_feed_wrapped_in_an_xhtml_page_is_read() -> None:
    body = (b'<?xml version="1.0"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" '
            b'"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
            b'<html xmlns="http://www.w3.org/1999/xhtml"><body>'
            b'<feed xmlns="http://www.w3.org/2005/Atom"><title>Wren notes</title>'
            b'<entry><title>Bench fixed</title><id>https://wren.example/1</id>'
            b'<link href="https://wren.example/1"/><updated>2014-07-21T21:14:39+02:00</updated>'
            b'<summary>The bench by the pond has new slats.</summary></entry>'
            b'<entry><title>Pond drained</title><id>https://wren.example/2</id>'
            b'<link href="https://wren.example/2"/><updated>2014-07-22T21:14:39+02:00</updated></entry>'
            b'</feed></body></html>')
    feed = parse_feed(body, url=FEED_URL, source="t", now=NOW)
    assert [e.title for e in feed.entries] == ["Bench fixed", "Pond drained"]
    # A page that only names a feed element without the Atom namespace is still no feed.
    with pytest.raises(ParseError, match="looks like HTML"):
        parse_feed(b"<html><body><feed>not one</feed></body></html>", url=FEED_URL, source="t", now=NOW)


def test_entry_without_title_gets_an_excerpt() -> None:
    body = ("<rss version='2.0'><channel><title>t</title><item><link>https://x.example/1</link>"
            "<description>&lt;p&gt;Just a short status update with no title at all, as "
            "microblogs publish them every day.&lt;/p&gt;</description></item></channel></rss>")
    (entry,) = parse_feed(body.encode(), url=FEED_URL, source="t", now=NOW).entries
    assert entry.title == "Just a short status update with no title at all, as microblogs publish them…"
    assert entry.key == "url:https://x.example/1"


def test_entry_without_guid_or_link_is_keyed_by_content() -> None:
    body = (b"<rss version='2.0'><channel><title>t</title>"
            b"<item><title>Only a title</title></item></channel></rss>")
    (entry,) = parse_feed(body, url=FEED_URL, source="t", now=NOW).entries
    assert entry.key.startswith("hash:")
    assert entry.link == ""


@pytest.mark.parametrize("fast", [True, False])
def test_permalink_guid_stands_in_for_a_missing_link(fast: bool) -> None:
    body = (b"<rss version='2.0'><channel><title>t</title><item><title>x</title>"
            b"<guid>https://x.example/posts/9</guid></item></channel></rss>")
    (entry,) = parse_feed(body, url=FEED_URL, source="t", now=NOW, fast=fast).entries
    assert entry.link == "https://x.example/posts/9"
    # The GUID is the key as given; the link it stands in for is what other feeds are matched by.
    assert entry.key == "guid:https://x.example/posts/9"


def test_channel_itunes_summary_keeps_the_fast_engine(caplog: pytest.LogCaptureFixture) -> None:
    body = ("<rss version='2.0' xmlns:itunes='http://www.itunes.com/dtds/podcast-1.0.dtd'><channel>"
            "<title>t</title><itunes:summary>About the show</itunes:summary><item><title>a</title>"
            "<link>https://x.example/a</link><description>Notes</description></item></channel></rss>")
    with caplog.at_level(logging.DEBUG, logger="feedletter.ingest.parse.xml_feeds"):
        (entry,) = parse_feed(body.encode(), url=FEED_URL, source="t", now=NOW).entries
        assert entry.summary == "Notes"
        assert not caplog.records
        parse("podcast-crlf.xml")
        assert "itunes:summary" in caplog.records[0].getMessage()


def test_utf16_without_bom() -> None:
    text = (DATA / "rss20.xml").read_text("utf-8").replace('encoding="UTF-8"', 'encoding="UTF-16BE"')
    feed = parse_feed(text.encode("utf-16-be"), url=FEED_URL, source="t", now=NOW)
    assert feed.title == "Clinic Blog"


def test_control_characters_are_dropped_and_the_fast_engine_keeps_reading(
        caplog: pytest.LogCaptureFixture) -> None:
    body = ("<rss version='2.0'><channel><title>t</title><item><title>Smart\x0b quotes\x1f</title>"
            "<link>https://x.example/a</link><description>a\x00b</description></item></channel></rss>")
    with caplog.at_level(logging.DEBUG, logger="feedletter.ingest.parse.xml_feeds"):
        (entry,) = parse_feed(body.encode(), url=FEED_URL, source="t", now=NOW).entries
    assert entry.title == "Smart quotes"
    assert entry.summary == "ab"
    assert not caplog.records


def test_markup_that_trips_feedparser_is_a_parse_error() -> None:
    # Found by the property test above: feedparser's loose parser raised KeyError('links') on it.
    with pytest.raises(ParseError, match="malformed feed"):
        parse_feed(b"<channel<item<link</item</link<", url=FEED_URL, source="t", now=NOW)


_PICTURES = b"""<?xml version='1.0'?>
<rss version='2.0' xmlns:media='http://search.yahoo.com/mrss/'>
<channel><title>t</title><link>https://ex.com/</link>
<item><title>Media</title><link>https://ex.com/a</link><media:content url='https://ex.com/a.jpg' medium='image'/>
<media:thumbnail url='https://ex.com/t.jpg'/><description>x</description></item>
<item><title>Thumbnail</title><link>https://ex.com/t</link><media:content url='https://ex.com/v.mp4' medium='video'/>
<media:thumbnail url='https://ex.com/t.jpg'/><description>x</description></item>
<item><title>Enclosure</title><link>https://ex.com/b</link>
<enclosure url='https://ex.com/b.png' type='image/png' length='1'/>
<description>y</description></item>
<item><title>Inline</title><link>https://ex.com/c</link>
<description>&lt;p&gt;hi &lt;img src="/c.jpg" alt="Bridge &amp;amp; river"&gt;&lt;/p&gt;</description></item>
<item><title>Pixel</title><link>https://ex.com/p</link><description>&lt;p&gt;x&lt;img src="/pixel.gif?u=1"
width="1" height="1" alt=""&gt;&lt;img src="/s/spacer.gif"&gt;&lt;img src="/real.jpg" alt="Real"&gt;&lt;/p&gt;
</description></item>
<item><title>Data URI</title><link>https://ex.com/d</link>
<description>&lt;img src="data:image/png;base64,AAAA"&gt;</description></item>
<item><title>Script</title><link>https://ex.com/e</link>
<description>&lt;img src="javascript:alert(1)"&gt;</description></item>
<item><title>Podcast</title><link>https://ex.com/f</link>
<enclosure url='https://ex.com/f.mp3' type='audio/mpeg' length='1'/>
<description>z</description></item>
</channel></rss>"""


@pytest.mark.parametrize("fast", [True, False])
def test_an_entry_carries_its_picture_and_only_an_http_one(fast: bool) -> None:
    feed = parse_feed(_PICTURES, url="https://ex.com/feed.xml", source="s", now=NOW, fast=fast)
    pictures = {e.title: (e.image, e.image_alt) for e in feed.entries}
    assert pictures == {
        "Media": ("https://ex.com/a.jpg", ""),  # media:content before media:thumbnail
        "Thumbnail": ("https://ex.com/t.jpg", ""),  # a video is no picture; its thumbnail is
        "Enclosure": ("https://ex.com/b.png", ""),
        "Inline": ("https://ex.com/c.jpg", "Bridge & river"),  # the first image of the HTML, made absolute
        "Pixel": ("https://ex.com/real.jpg", "Real"),  # tracking pixels and spacers are passed over
        "Data URI": (None, ""),
        "Script": (None, ""),
        "Podcast": (None, ""),
    }


def test_a_json_feed_item_image_is_its_picture() -> None:
    doc = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [
        {"id": "1", "url": "https://ex.com/1", "title": "One", "content_text": "x",
         "image": "/one.jpg"},
        {"id": "2", "url": "https://ex.com/2", "title": "Two", "content_text": "y",
         "banner_image": "https://cdn.ex/2.jpg"},
        {"id": "3", "url": "https://ex.com/3", "title": "Three", "content_text": "z",
         "image": "ftp://ex.com/3.jpg"},
    ]}).encode()
    feed = parse_feed(doc, url="https://ex.com/feed.json", source="s", now=NOW)
    assert [e.image for e in feed.entries] == ["https://ex.com/one.jpg", "https://cdn.ex/2.jpg", None]


def test_control_characters_and_bidi_overrides_never_leave_the_parser() -> None:
    poisoned = "Bell\u0007 nul\u0000 esc\u001b[31m not\ufffe a \u202eexe.png\u202c"
    doc = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Feed\u0007", "items": [
        {"id": "1", "url": "https://ex.com/1", "title": poisoned, "content_html": f"<p>{poisoned}</p>",
         "authors": [{"name": "Jo\u0008 Doe"}]}]}).encode()
    rss = (b"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title><link>https://ex.com/</link>"
           b"<item><title>Bell&#x7; in a title</title><link>https://ex.com/2</link><description>x</description>"
           b"</item></channel></rss>")
    (entry,) = parse_feed(doc, url="https://ex.com/feed.json", source="s", now=NOW).entries
    for value in (entry.title, entry.content, entry.author or ""):
        assert not any(ord(c) < 32 or c in "\ufffe\u202e\u202c" for c in value), repr(value)
    assert entry.title == "Bell nul esc[31m not a exe.png" and entry.author == "Jo Doe"
    for fast in (True, False):
        feed = parse_feed(rss, url="https://ex.com/feed.xml", source="s", now=NOW, fast=fast)
        assert [e.title for e in feed.entries] == ["Bell in a title"]


def test_a_huge_title_is_cut_at_a_word() -> None:
    doc = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [
        {"id": "1", "url": "https://ex.com/1", "title": "word " * 26_000, "content_text": "x"}]}).encode()
    (entry,) = parse_feed(doc, url="https://ex.com/feed.json", source="s", now=NOW).entries
    assert len(entry.title) <= 300 and entry.title.endswith("word…")


def test_only_http_links_stay_and_the_others_are_counted() -> None:
    links = ["javascript:alert(1)", "data:text/html,<b>x</b>", "mailto:a@example.org", "/relative", "https://ex.com/ok"]
    doc = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": [
        {"id": str(i), "url": link, "title": f"Item {i}", "content_text": "x"}
        for i, link in enumerate(links)]}).encode()
    feed = parse_feed(doc, url="https://ex.com/feed.json", source="s", now=NOW)
    assert [e.link for e in feed.entries] == ["", "", "", "https://ex.com/relative", "https://ex.com/ok"]
    assert feed.dropped_links == 3 and len(feed.entries) == 5  # the posts themselves are kept


def test_a_feed_over_the_entry_cap_keeps_its_newest_entries() -> None:
    items = "".join(f"<item><title>Post {i}</title><link>https://ex.com/{i}</link><guid>g{i}</guid>"
                    f"<pubDate>{email.utils.format_datetime(NOW - timedelta(hours=i))}</pubDate>"
                    f"<description>x</description></item>" for i in (3, 0, 4, 1, 2))
    doc = f"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>{items}</channel></rss>".encode()
    feed = parse_feed(doc, url="https://ex.com/feed.xml", source="s", now=NOW, max_entries=3)
    assert [e.title for e in feed.entries] == ["Post 0", "Post 1", "Post 2"] and feed.capped == 2


def test_an_archive_feed_of_many_entries_stays_on_the_fast_engine(caplog: pytest.LogCaptureFixture) -> None:
    """feedparser_rs stops at 10,000 entries by default, which once sent such feeds to feedparser (100x slower)."""
    items = "".join(f"<item><title>Post {i}</title><link>https://ex.com/{i}</link><guid>g{i}</guid>"
                    f"<description>x</description></item>" for i in range(12_000))
    doc = f"<?xml version='1.0'?><rss version='2.0'><channel><title>t</title>{items}</channel></rss>".encode()
    with caplog.at_level(logging.DEBUG, logger="feedletter.ingest.parse.xml_feeds"):
        feed = parse_feed(doc, url="https://ex.com/feed.xml", source="s", now=NOW, max_entries=1000)
    assert len(feed.entries) == 1000 and feed.capped == 11_000
    assert not [r for r in caplog.records if "feedparser takes over" in r.getMessage()]
