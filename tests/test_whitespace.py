"""whitespace.squash is exactly " ".join(text.split()), whatever the text."""

from __future__ import annotations

import sys

from hypothesis import example, given
from hypothesis import strategies as st

from feedletter.text.whitespace import squash, squash_tail

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



@given(st.lists(st.sampled_from(["ab", "longword", "é", ".", " ", "  ", "\n", "\t", "\u00a0", "\u2029"]),
                max_size=400).map("".join), st.integers(min_value=0, max_value=250))
@example(" " * 900 + "end", 200)
@example("end" + " " * 900, 200)
@example("a" * 900, 1)
def test_squash_tail_is_the_end_of_the_whole_fold(text: str, size: int) -> None:
    assert squash_tail(text, size) == (squash(text)[-size:] if size else "")
