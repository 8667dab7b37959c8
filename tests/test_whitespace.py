"""whitespace.squash is exactly " ".join(text.split()), whatever the text."""

from __future__ import annotations

import sys

from hypothesis import example, given
from hypothesis import strategies as st

from feedletter.text.whitespace import squash

SPACES = [chr(c) for c in range(sys.maxunicode + 1) if chr(c).isspace()]


def test_the_shortcut_rests_on_only_the_space_being_printable_whitespace() -> None:
    assert [c for c in SPACES if c.isprintable()] == [" "]


@given(st.lists(st.one_of(st.text(max_size=8), st.sampled_from(SPACES), st.just("  "), st.just("\n\n")),
                max_size=40).map("".join))
@example("")
@example(" ")
@example("\n")
@example("a\n\n\nb  c ")
@example("a" + " " * 1000 + "b")
@example("word\u00a0word")
def test_squash_is_split_and_join(text: str) -> None:
    assert squash(text) == " ".join(text.split())
