from __future__ import annotations

import pytest

from feedletter.text.boilerplate import is_boilerplate, strip_boilerplate

CHROME = [
    "Home › News › Health",
    "Home » Blog » Ketamine therapy",
    "Home / Services",
    "Home News Health Local",
    "You are here: Home",
    "Skip to content",
    "by admin 0 comment",
    "By admin | 0 Comments",
    "Posted by Sarah Miller | 3 Comments",
    "Posted on March 3, 2024",
    "By Jane Doe | March 3, 2024",
    "By Tomas Wren in Leeds, 2024-01-08.",
    "By Ada Okafor, March 3, 2021",
    "12 Comments",
    "No comments yet",
    "Leave a Reply",
    "Leave a comment",
    "One thought on “Spring clean-up”",
    "Cancel reply",
    "Share this:",
    "Share on Facebook",
    "Facebook Twitter LinkedIn Email",
    "Tweet | Share | Pin",
    "Subscribe to our newsletter",
    "Sign up for our newsletter and never miss a post",
    "Click here to learn more",
    "Read more",
    "Read More »",
    "Continue reading →",
    "Follow us on Instagram",
    "Photo: Getty Images",
    "Image courtesy of the city council",
    "Credit: Reuters",
    "Photo credit: John Smith",
    "Your email address will not be published.",
    "Your email address will not be published. Required fields are marked *",
    "Required fields are marked *",
    "Back to top",
    "Related Articles",
    "Related Posts:",
    "You may also like",
    "Tags: health, ketamine",
    "We use cookies to improve your experience. By using this site you agree.",
    "This website uses cookies.",
    "Accept all cookies",
    "© 2024 Bright Clinic. All rights reserved.",
    "Copyright 2023 Example Media",
    "All rights reserved.",
    "Call us today at (555) 123-4567 to book your consultation.",
    "Bright Mind Clinic, 1200 Oak Street, Suite 4, Austin TX. Call 555-123-4567.",
    "Visit us at 450 Main Street, Suite 200 – open Monday to Friday.",
    "Advertisement",
    "ADVERTISEMENT",
    "Sponsored content",
    "Book your appointment online",
    "• • •",
    "Top Stories",
    "Latest articles",
    "Terms Of Service",
    "Privacy Policy",
    "Toggle navigation",
    "Opens in new window",
    "On this page:",
    "Enter your keywords",
    "Print Recipe",
    "Filed under",
    "Filed under: Health, Local",
    "Post Your Comments",
    "View my complete profile",
    "Simple theme. Powered by Blogger.",
    "Followers (7)",
    "5 min read",
    "Corrections and Clarifications",
    "Never miss the latest news by signing up",
    "GET THE WEEKLY NEWSLETTER",
]

CONTENT = [
    "Home prices rose 4.2% in March, the fastest pace since 2022.",
    "By 2025-06-01 the bridge must reopen, the council said.",
    "The council will reply to the petition by 15 May, a spokesperson said.",
    "In 2023 the clinic treated 1,200 patients with ketamine-assisted therapy.",
    "Subscribers to the streaming service grew by 3 million in the quarter.",
    "She said she would share the data with regulators next week.",
    "The photo, taken in 1969, shows the crew shortly before launch.",
    "Researchers at the university followed 240 adults for two years.",
    "The prime minister returned to 10 Downing Street on Monday evening.",
    "Readers wrote in with more than 300 comments on the proposal.",
    "Copyright lawyers said the ruling could reshape how AI models are trained on books.",
    "The team won 3-1 after a late goal by Martínez in the 89th minute.",
    "Posting record profits, the company said it would hire 500 engineers.",
    "By the end of the trial, 62 percent of patients reported fewer symptoms.",
    "The new phone costs $799 and ships on 12 September.",
    "Home to 40,000 people, the town depends on tourism.",
    "The advertisement market shrank for the third straight quarter, analysts said.",
    "Credits for solar panels will be extended until 2032 under the bill.",
    "The privacy policy change drew criticism from regulators in Brussels.",
    "Powered by solar panels, the village now exports electricity to the grid.",
    "Top stories of the year included the election and the floods, the editor said.",
    "She filed under a different name to avoid attention, court papers show.",
    "Print runs of the magazine fell to 20,000 copies last year.",
    "Latest figures show unemployment at 4.1 percent.",
    "Never before had the river risen so fast, residents said.",
]


@pytest.mark.parametrize("line", CHROME)
def test_chrome_is_boilerplate(line: str) -> None:
    assert is_boilerplate(line), line


@pytest.mark.parametrize("line", CONTENT)
def test_content_survives(line: str) -> None:
    assert not is_boilerplate(line), line


def test_empty_line_is_not_boilerplate() -> None:
    assert not is_boilerplate("")
    assert not is_boilerplate("   ")


def test_strip_boilerplate_keeps_content_and_order() -> None:
    text = "\n".join([
        "Home › News › Science",
        "Posted by admin | 2 Comments",
        "The probe reached orbit on Tuesday after a seven-month cruise.",
        "",
        "Photo: NASA",
        "Engineers will test its instruments over the next three weeks.",
        "Share this:",
        "Leave a Reply",
        "Your email address will not be published.",
    ])
    assert strip_boilerplate(text) == (
        "The probe reached orbit on Tuesday after a seven-month cruise.\n\n"
        "Engineers will test its instruments over the next three weeks."
    )


# Calls to action, feed footers and a crumb before a byline, anywhere in a short line or sentence
# (issue 15.6); each was content for the rules before.
CALLS = [
    "To read this article in full, please click here",
    "For the full schedule, click here.",
    "The post Ten quiet games for a long flight appeared first on Quiet Games Weekly.",
    "When I was done, I took two steps... [read more]",
    "Continue reading →",
    "Read the full story at the Valley Post.",
    "That was the week in the garden, read more »",
    "For more pictures of the harvest, follow us on Instagram.",
    "Don't forget to subscribe to our newsletter for weekly tips.",
    "Home News by admin 0 comment",
    "If you liked the recipe, leave a reply below.",
]

PROSE = [
    # A call after a sentence of content: the line is kept, the summarizer drops the call's sentence.
    "The harvest festival starts on Friday in the market square. Read more »",
    "She clicked through three screens before the form appeared, she told the inquiry.",
    "He had read more than 200 reports before the hearing, the judge said.",
    "Residents continue to read the council's plans with suspicion.",
    "Fans follow the team on every away trip, whatever the weather.",
    "Home News Corp shares fell 3% on Tuesday after the results.",
]


@pytest.mark.parametrize("line", CALLS)
def test_calls_to_action_are_boilerplate(line: str) -> None:
    assert is_boilerplate(line), line


@pytest.mark.parametrize("line", PROSE)
def test_prose_near_calls_to_action_survives(line: str) -> None:
    assert not is_boilerplate(line), line
