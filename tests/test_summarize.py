from __future__ import annotations

import json
import time

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from feedletter.stories.llm import PROMPT_VERSION, LLMSummarizer
from feedletter.stories.sentences import split_sentences
from feedletter.stories.summarize import SUMMARIZER_VERSION, ExtractiveSummarizer, Summarizer, summarize
from feedletter.text.whitespace import truncate_words

STORY_A = """Home › News › Science
Posted by admin | 3 Comments
The European Space Agency's Juice probe completed a flyby of Venus on Saturday, using the planet's
gravity to bend its path toward Jupiter. The spacecraft passed 11,000 km above the clouds at 4.2 km/s
relative to the planet, Dr. Elena Ruiz of ESA said. Engineers confirmed that all ten instruments were
healthy after the manoeuvre.
Photo: ESA
Share this:
The probe launched in April 2023 and will reach Jupiter in July 2031. It will study the icy moons
Ganymede, Callisto and Europa, which may hide oceans beneath their crusts.
Leave a Reply
Your email address will not be published."""

STORY_B = """Europe's Juice spacecraft swung past Venus on Saturday in a gravity assist that put it on course
for Jupiter. The flyby took the probe 11,000 km above the Venusian clouds. Mission controllers in Darmstadt
said the probe was in good health. Juice is expected to arrive at Jupiter in 2031 to study Ganymede.
Subscribe to our newsletter
© 2026 Space Daily. All rights reserved."""


def test_split_sentences_survives_abbreviations_and_decimals() -> None:
    text = ("Dr. Smith paid $4.50 for it at 3 p.m. on Main St. yesterday. Prices rose 2.5% in the U.S. "
            "last year! Did J. R. R. Tolkien write it? \"Yes,\" she said. The end.")
    assert split_sentences(text) == [
        "Dr. Smith paid $4.50 for it at 3 p.m. on Main St. yesterday.",
        "Prices rose 2.5% in the U.S. last year!",
        "Did J. R. R. Tolkien write it?",
        "\"Yes,\" she said.",
        "The end.",
    ]


def test_etc_ends_a_sentence_before_a_capital() -> None:
    """A list that trails off with "etc." ends its sentence when a capital follows (all 14 such places
    in the corpus's feeds and pages do); before a lower-case word it goes on."""
    text = ("They check timezones, opening hours, etc. A phone is a calculator. "
            "Cables, chargers, etc. are sold apart.")
    assert split_sentences(text) == ["They check timezones, opening hours, etc.", "A phone is a calculator.",
                                     "Cables, chargers, etc. are sold apart."]


def test_split_sentences_respects_lines_and_paragraphs() -> None:
    assert split_sentences("Title line\nFirst sentence here.\n\nSecond one here.") == [
        "Title line", "First sentence here.", "Second one here."]


def test_truncate_words_never_cuts_a_word() -> None:
    assert truncate_words("short", 10) == "short"
    out = truncate_words("The quick brown fox jumps over the lazy dog", 20)
    assert len(out) <= 20 and out.endswith("…")
    assert out == "The quick brown fox…"


def test_summary_drops_boilerplate_and_respects_limit() -> None:
    title = "Juice probe flies past Venus on its way to Jupiter"
    out = summarize(title, [STORY_A], sentences=3, max_chars=400)
    assert 0 < len(out) <= 400
    for chrome in ("Home", "Posted by", "Photo:", "Share", "Reply", "email address"):
        assert chrome not in out
    assert "flyby of Venus" in out  # the lead sentence carries the story
    assert "Dr. Elena Ruiz" not in out or "Dr. Elena Ruiz of ESA said." in out


def test_summary_keeps_article_order_within_a_text() -> None:
    out = summarize("Juice probe flies past Venus", [STORY_A], sentences=3, max_chars=1000)
    sents = split_sentences(out)
    body = " ".join(STORY_A.split())
    positions = [body.index(s) for s in sents]
    assert positions == sorted(positions)


def test_summary_across_texts_removes_redundancy() -> None:
    out = summarize("Juice probe flies past Venus", [STORY_A, STORY_B], sentences=3, max_chars=600)
    sents = split_sentences(out)
    assert len(sents) == 3
    # Both texts say the probe passed 11,000 km above the clouds; it must be said once at most.
    assert out.count("11,000 km") <= 1
    assert "Subscribe" not in out and "©" not in out


def test_summary_is_deterministic() -> None:
    a = summarize("Juice", [STORY_B, STORY_A])
    assert a == summarize("Juice", [STORY_B, STORY_A])


def test_tiny_limit_cuts_at_word_boundary() -> None:
    out = summarize("Juice", [STORY_A], sentences=2, max_chars=50)
    assert 0 < len(out) <= 50
    assert out.endswith("…")
    assert out[:-1].split()[-1] in STORY_A.split() or out[:-1].split()[-1].rstrip(",.") in STORY_A


@pytest.mark.parametrize("texts", [[], [""], ["Share this\nLeave a Reply"]])
def test_empty_or_chrome_only_gives_empty(texts: list[str]) -> None:
    assert summarize("Anything", texts) == ""


def test_sentence_count_is_respected() -> None:
    assert len(split_sentences(summarize("Juice", [STORY_A, STORY_B], sentences=1, max_chars=600))) == 1


def test_extractive_meets_protocol() -> None:
    s: Summarizer = ExtractiveSummarizer()
    assert s.name == "extractive"
    assert s.version == SUMMARIZER_VERSION


# --- LLM summarizer against a loopback fake of an OpenAI-compatible server ---



def _reply(content: str) -> Response:
    body = {"id": "x", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}
    return Response(json.dumps(body), content_type="application/json")


def test_llm_posts_versioned_prompt_and_returns_reply(httpserver: HTTPServer,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    seen: list[dict[str, object]] = []

    def handler(request: Request) -> Response:
        assert request.headers["Authorization"] == "Bearer sk-test"
        body = request.get_json()
        seen.append(body)
        return _reply("  Juice flew past Venus on Saturday,\n gaining speed for Jupiter.  ")

    httpserver.expect_request("/v1/chat/completions", method="POST").respond_with_handler(handler)
    llm = LLMSummarizer(httpserver.url_for("/v1"), "tiny-model", api_key_env="TEST_LLM_KEY", timeout=5)
    out = llm.summarize("Juice probe flies past Venus", [STORY_A, STORY_B], sentences=2, max_chars=300)
    assert out == "Juice flew past Venus on Saturday, gaining speed for Jupiter."
    assert llm.last_source == "llm:tiny-model"
    assert llm.version == PROMPT_VERSION
    (body,) = seen
    assert body["model"] == "tiny-model"
    assert body["temperature"] == 0
    messages = body["messages"]
    assert isinstance(messages, list) and [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert "Title: Juice probe flies past Venus" in user
    assert "at most 2 sentences" in user and "300 characters" in user
    assert "Article 1:" in user and "Article 2:" in user
    assert "Leave a Reply" not in user and "Posted by" not in user  # chrome is not sent


def test_llm_reply_is_cut_to_the_limit(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/chat/completions", method="POST").respond_with_handler(
        lambda r: _reply("word " * 200))
    llm = LLMSummarizer(httpserver.url_for(""), "m", api_key_env="FEEDLETTER_NO_SUCH_KEY")
    out = llm.summarize("t", ["Some text about a thing that happened today."], max_chars=100)
    assert len(out) <= 100 and out.endswith("…")


@pytest.mark.parametrize("response", [
    Response("overloaded", status=503),
    Response("not json", content_type="application/json"),
    Response(json.dumps({"choices": []}), content_type="application/json"),
    Response(json.dumps({"choices": [{"message": {"content": "   "}}]}), content_type="application/json"),
])
def test_llm_falls_back_to_extractive_on_error(httpserver: HTTPServer, response: Response) -> None:
    httpserver.expect_request("/chat/completions").respond_with_response(response)
    llm = LLMSummarizer(httpserver.url_for(""), "m", timeout=5)
    out = llm.summarize("Juice probe flies past Venus", [STORY_A], max_chars=400)
    assert out == summarize("Juice probe flies past Venus", [STORY_A], max_chars=400)
    assert llm.last_source == "extractive"


def test_llm_falls_back_on_timeout(httpserver: HTTPServer) -> None:
    def slow(request: Request) -> Response:
        time.sleep(1.0)
        return _reply("too late")

    httpserver.expect_request("/chat/completions").respond_with_handler(slow)
    llm = LLMSummarizer(httpserver.url_for(""), "m", timeout=0.2)
    assert llm.summarize("Juice", [STORY_B]) == summarize("Juice", [STORY_B])
    assert llm.last_source == "extractive"


def test_llm_falls_back_when_server_is_down() -> None:
    llm = LLMSummarizer("http://127.0.0.1:9", "m", timeout=1)
    assert llm.summarize("Juice", [STORY_B]) == summarize("Juice", [STORY_B])


# One invented event told by three sites: each opens with the same fact (who, what, where, when) in
# its own words, and the blog talks to its readers. Written for this test.
FERRY_WIRE = """Harbour Lines launched its first electric ferry, the Selkie, on the Marrow Estuary on Monday,
March 9, cutting the crossing between Portbury and Keld Point to 11 minutes.
The vessel carries 220 passengers and 30 bicycles and recharges in eight minutes at each quay.
It cost 14.5 million euros, of which the regional council paid 9 million.
Captain Ines Varga, who has crossed the estuary for 22 years, said the ship was "quieter than the gulls".
Harbour Lines plans to replace its two diesel ferries by 2029."""

FERRY_LOCAL = """Commuters on both banks of the Marrow Estuary boarded the Selkie on Monday morning, March 9, as
Harbour Lines put its electric ferry into service between Portbury and Keld Point.
The ship takes 220 passengers and 30 bikes, and a fast charger at each quay tops it up in eight minutes.
Skipper Ines Varga said regulars had been queueing since six.
The regional council contributed 9 million euros of the 14.5 million euro price."""

FERRY_BLOG = """If you commute from Portbury and have ever sat in the queue for the old diesel boat, your
mornings just got shorter: the Selkie is running from Monday, March 9, between Portbury and Keld Point.
We rode it three times and loved the silence on deck.
Harbour Lines says the crossing now takes 11 minutes instead of 18.
Why does it matter? Because you will get to work earlier."""

FERRY_TEXTS = [FERRY_WIRE, FERRY_LOCAL, FERRY_BLOG]


def _particulars(sentence: str) -> set[str]:
    # Capitalized words past the first, and numbers: the names, places and dates a sentence states.
    words = sentence.replace(",", "").replace(".", " ").split()
    caps = {w.lower() for w in words[1:] if w[:1].isupper()}
    return caps | {w for w in words if w.isdigit()}


def _states_a_fact_twice(summary: str) -> bool:
    facts = [_particulars(s) for s in split_sentences(summary)]
    for i, a in enumerate(facts):
        for b in facts[i + 1:]:
            common = len(a & b)
            if a and b and common >= 2 and common >= 0.5 * min(len(a), len(b)):
                return True
    return False


@pytest.mark.parametrize("order", [(0, 1, 2), (1, 0, 2), (2, 0, 1), (1, 2, 0)])
def test_story_from_several_sites_states_each_fact_once(order: tuple[int, int, int]) -> None:
    texts = [FERRY_TEXTS[k] for k in order]
    out = summarize("Electric ferry Selkie enters service on the Marrow Estuary", texts, sentences=3,
                    max_chars=600)
    sents = split_sentences(out)
    assert len(sents) == 3
    assert not _states_a_fact_twice(out), out
    # The blog's chatter never gets in, even when the blog is the lead text.
    for chatter in ("you", "We rode", "Why does it matter", "Because"):
        assert chatter not in out, out
    # Informative sentences win: the summary gives the ship's numbers, not only its name.
    assert sum(any(ch.isdigit() for ch in s) for s in sents) >= 2, out


def test_previous_version_did_repeat_the_story() -> None:
    # The same story through the summarizer with the new rules switched off (extractive-3): the
    # test above fails on it, so it does measure the change.
    before = ExtractiveSummarizer(fact_overlap=None, fact_weight=0.0, chatter_penalty=0.0, min_facts=0)
    outs = [before.summarize("Electric ferry Selkie enters service", [FERRY_TEXTS[k] for k in order],
                             sentences=3, max_chars=600) for order in ((0, 1, 2), (1, 0, 2), (2, 0, 1))]
    assert any(_states_a_fact_twice(o) or "you" in o for o in outs), outs
    assert SUMMARIZER_VERSION != "extractive-3"  # cached summaries of the old rules are not reused


def test_sentences_without_particulars_still_fill_a_plain_story() -> None:
    # An essay with no names or numbers: the particulars rule must not starve it.
    text = ("Gardening teaches patience in a way few other hobbies manage. Seeds take their time and "
            "cannot be hurried by anyone. Weeds on the other hand arrive quickly and without invitation. "
            "Most gardeners learn to enjoy the slow pace after a season or two.")
    assert len(split_sentences(summarize("On patience", [text], sentences=3, max_chars=600))) == 3


def test_demo_footbridge_story_states_each_fact_once() -> None:
    # The demo's three tellings of the footbridge opening (demo/expected.json same_story), as the
    # pipeline extracts them; the lead changes with the sites' priorities, so every order counts.
    from pathlib import Path

    from feedletter.ingest.extract import extract

    site = Path(__file__).resolve().parent.parent / "demo" / "site"
    pages = ["city-ledger/kingfisher-footbridge-opens.html", "morning-teaser/posts/new-footbridge-finally-open.html",
             "valley-post/bridge-day-neighbours-cross-the-wren.html"]
    found = [extract((site / p).read_text(encoding="utf-8"), f"http://demo.test/{p}") for p in pages]
    for order in ((0, 1, 2), (1, 0, 2), (2, 0, 1)):
        for limit in (400, 600):
            out = summarize(found[order[0]].title or "", [found[k].text for k in order], max_chars=limit)
            assert out and not _states_a_fact_twice(out), out
            assert "you" not in out.lower().split(), out
            assert "Kingfisher Footbridge" in out


# --- Summaries an editor would write (issue 15.6): hand-written cases modelled on real feeds ---

CLINIC_BODY = ("Ketamine is often used for depression that has not responded to two or more other "
               "treatments. Doctors at the Harlow Clinic gave 120 patients six infusions over three weeks. "
               "Two thirds of them reported fewer symptoms a month later, the clinic said.")

# Each: (title, text, what must not be in the summary). Every case fails on extractive-4.
NOISE = [
    pytest.param("Switches down",
                 "Two of my network switches failed at the same second on Friday evening.\n\n"
                 "Here is what the two machines logged when their links dropped:\n\n"
                 "Jul 18 17:45:21 wren kernel: [1658547.28] eth0: sunxi-0:00 - Link is Down\n"
                 "Jul 18 17:45:21 finch kernel: [512418.00] eth3: e100 0000:00:0c.0 Link is Down\n\n"
                 "I think a transient on the power grid crashed both switches at once.",
                 "kernel", id="log-lines"),
    pytest.param("Ketamine for hard cases",
                 "Effective for Treatment-Resistant Conditions\n\n" + CLINIC_BODY,
                 "Conditions Ketamine", id="heading-then-blank-line"),
    pytest.param("Ketamine for hard cases",
                 "Effective for Treatment-Resistant Conditions\n" + CLINIC_BODY,
                 "Conditions Ketamine", id="heading-on-the-line-before"),
    pytest.param("Options for the migration",
                 "There are two ways to move the team's files to the new intranet.\n\n"
                 "- Option 1: Use the built-in migration tools (SharePoint):\n"
                 "- Option 2: Buy the tools that your staff already like to use every day.\n\n"
                 "The migration should be finished before the old servers are retired in June.",
                 "Option", id="list-items"),
    pytest.param("Options for the migration",
                 "There are two ways to move the team's files to the new intranet. Option 2: Buy the tools "
                 "that your staff already like to use every day. The migration should be finished before "
                 "the old servers are retired in June.",
                 "Option 2", id="numbered-label-in-prose"),
    pytest.param("Pocket Farm review: a calm little game",
                 "Pocket Farm review: a calm little game\n\nPocket Farm asks very little of its players "
                 "and gives back a quiet hour. The harvest runs on a real-time clock of four hours. "
                 "There are no ads, and the full game costs five dollars.",
                 "review: a calm", id="title-as-first-line"),
    pytest.param("Pocket Farm review: a calm little game",
                 "Pocket Farm review: a calm little game Pocket Farm asks very little of its players and "
                 "gives back a quiet hour. The harvest runs on a real-time clock of four hours.",
                 "review: a calm", id="title-glued-to-first-sentence"),
    pytest.param("Pocket Farm review",
                 "Pocket Farm asks very little of its players and gives back a quiet hour. The harvest runs "
                 "on a real-time clock of four hours.\nTo read this article in full, please click here",
                 "click here", id="read-in-full-click-here"),
    pytest.param("Pocket Farm review",
                 "Pocket Farm asks very little of its players and gives back a quiet hour. The harvest runs "
                 "on a real-time clock of four hours. The post Ten calm games for 2026, ranked appeared first "
                 "on Quiet Games Weekly.",
                 "appeared first", id="appeared-first-on"),
    pytest.param("Morning walk",
                 "The dogs and I took the long way round the park this morning. The frost had turned the "
                 "grass white along the river. When we got home, I found the gate open and... [read more]",
                 "read more", id="read-more-tail"),
    pytest.param("Morning walk",
                 "The dogs and I took the long way round the park this morning. The frost had turned the "
                 "grass white along the river. You can continue reading about our walk on the blog →",
                 "continue reading", id="continue-reading"),
    pytest.param("Ketamine for hard cases",
                 "Home News by admin 0 comment\n" + CLINIC_BODY,
                 "admin", id="crumb-and-byline"),
    pytest.param("Ketamine for hard cases",
                 CLINIC_BODY + " For more stories from the clinic every week, follow us on Instagram.",
                 "follow us", id="follow-prompt"),
    pytest.param("Retry loops in shell",
                 "A retry loop keeps a flaky step from failing the whole build.\n"
                 "until make test; do sleep 5; done && echo finished = true\n"
                 "It gives up only when the job's own time limit runs out, which is usually enough.",
                 "sleep 5", id="code-line"),
]


@pytest.mark.parametrize(("title", "text", "noise"), NOISE)
def test_summary_carries_no_noise(title: str, text: str, noise: str) -> None:
    out = summarize(title, [text], sentences=3, max_chars=600)
    assert out, text
    assert noise not in out, out


@pytest.mark.parametrize(("title", "text", "noise"), NOISE)
def test_summary_sentences_are_whole(title: str, text: str, noise: str) -> None:
    for sentence in split_sentences(summarize(title, [text], sentences=3, max_chars=600)):
        assert sentence[-1] in ".!?\"”)", sentence
        assert not sentence.startswith(("- ", "Option")), sentence


def test_clinic_ad_stays_out() -> None:
    # Already dropped by extractive-4 (kept as a guard): an ad with a phone number inside a paragraph.
    out = summarize("Ketamine for hard cases",
                    [CLINIC_BODY + " To book a consultation, call the Harlow Clinic at (555) 201-3344 today."])
    assert out and "555" not in out, out


def test_title_alone_gives_no_summary() -> None:
    # A microblog post whose title is its whole text: the digest shows the title, nothing to repeat.
    assert summarize("Looking forward to the meetup tonight at the old library.",
                     ["Looking forward to the meetup tonight at the old library."]) == ""


@pytest.mark.parametrize(("title", "text", "expected"), [
    # A title-less microblog post: its title is its own first words, cut; the summary reads on.
    ("Future-of-journalism conferences that ignore blogging are not about the future…",
     "Future-of-journalism conferences that ignore blogging are not about the future of journalism.",
     "…of journalism."),
    ("Expecting two packages today: the new Apple TV, and my new iPhone 5S (32 GB,…",
     "Expecting two packages today: the new Apple TV, and my new iPhone 5S (32 GB, space gray).",
     "…space gray)."),
    # A podcast's one-line description, without a full stop and with a verb the sentence test misses.
    ("Thyroid Nodules", "Dr. Niall Jefferson talks Thyroid Nodules with Dr. Faruque Riffat",
     "Dr. Niall Jefferson talks Thyroid Nodules with Dr. Faruque Riffat"),
    # A search alert's snippet, cut by the alert.
    ("Pineview advances in District II playoffs",
     "Pineview second baseman Brayden Slack, right, tries to tag out Rumford runner James Lynch, who slides "
     "into second with a double in the second ...",
     "Pineview second baseman Brayden Slack, right, tries to tag out Rumford runner James Lynch, who slides "
     "into second with a double in the second ..."),
    # The sentences before a link, not the link.
    ("Google Hindi Input",
     "This video introduces new features of Google Hindi Input, including material design, Hinglish suggestion, "
     "full-screen handwriting etc. Download Google Hindi input at: https://play.example/hindi?id=1&hl=en",
     "This video introduces new features of Google Hindi Input, including material design, Hinglish suggestion, "
     "full-screen handwriting etc."),
    # Nothing that says more than the title: the speaker's name before it is not enough.
    ("Nasal Steroids", "Dr. Larry Kalish: Nasal Steroids", ""),
    # Data, chrome and lists never stand in for a summary.
    ("Coins for sale", "1--688401--688800---19 2--651201--651600--19.2 3--508401--508800---19 4--699201", ""),
    ("A post", "Leave a Reply\nYour email address will not be published. Required fields are marked *", ""),
    ("Links", "- one link to a page about gardens\n- another link to a page about rivers", ""),
    ("Code", "for (i = 0; i < n; i++) { total += i; } // sum them", ""),
])
def test_a_story_without_whole_sentences_gets_its_first_paragraph(title: str, text: str, expected: str) -> None:
    assert summarize(title, [text]) == expected


def test_short_title_opening_a_sentence_is_kept() -> None:
    out = summarize("Ketamine", [CLINIC_BODY])
    assert out.startswith("Ketamine is often used"), out


@pytest.mark.parametrize(("text", "expected"), [
    # A hard-wrapped sentence, broken before a lower-case word and before a name.
    ("The council voted on Monday to close the old bridge to cars from\nnext spring, said the mayor.",
     ["The council voted on Monday to close the old bridge to cars from next spring, said the mayor."]),
    ("The probe will study the icy moons of the outer planet, among them\nGanymede and Europa.",
     ["The probe will study the icy moons of the outer planet, among them Ganymede and Europa."]),
    # A Title-Case heading of more than 40 characters stays apart from the next line.
    ("Effective for Treatment-Resistant Conditions\nKetamine is used when other drugs fail.",
     ["Effective for Treatment-Resistant Conditions", "Ketamine is used when other drugs fail."]),
    # Never across a blank line, however the first paragraph ends.
    ("A paragraph that ends without any punctuation at all because\n\nthe next one starts here.",
     ["A paragraph that ends without any punctuation at all because", "the next one starts here."]),
    # A list item is never joined to the line before or after it.
    ("These are the two ways we found to move the files over to it\n- copy them by hand\n- sync them",
     ["These are the two ways we found to move the files over to it", "- copy them by hand", "- sync them"]),
])
def test_lines_join_only_where_a_sentence_wraps(text: str, expected: list[str]) -> None:
    assert split_sentences(text) == expected


def test_version_bumped_for_new_rules() -> None:
    assert SUMMARIZER_VERSION not in ("extractive-3", "extractive-4", "extractive-5")
