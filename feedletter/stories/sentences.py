"""Sentences of a story's texts: where they split, which lines are chrome, which sentences could stand
in a summary, and which are the writer chatting.

Used by the extractive summarizer (:mod:`feedletter.stories.summarize`) and by selection's summary
quality; knows nothing of scores.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from feedletter.text.boilerplate import _has_call_key, _has_key, _is_boilerplate
from feedletter.text.whitespace import squash


def wordset(text: str) -> frozenset[str]:
    """The whitespace-separated words of ``text``, as a set (word lists written as text)."""
    return frozenset(text.split())


_ABBREVIATIONS = wordset("""
mr mrs ms dr prof sr jr st mt vs inc ltd co corp gov sen rep gen col lt sgt capt no fig approx
dept est jan feb mar apr jun jul aug sep sept oct nov dec mon tue wed thu fri sat sun u.s u.k e.g i.e
a.m p.m ph.d
""")


# A sentence ends at . ! ? (optionally followed by closing quotes/brackets) before whitespace and a
# likely sentence start; whether the dot really ends a sentence is decided in split_sentences. The
# match opens with that . ! or ?, which stays with the sentence.
_BOUNDARY = re.compile(r"[.!?][\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9])")

_TERMINAL = (".", "!", "?", ":", "\"", "”", "’", ")")

_WRAP_MIN = 40

# Where a wrapped line may stop mid-sentence besides a lower-case word.
_OPEN_ENDS = frozenset(",;(-–—&/")

# A list item as sanitize.html_to_text writes it ("- ", "1. "), or with a bullet of its own.
LIST_ITEM = re.compile(r"(?:[-•*·▪–]|\d{1,2}[.)])\s")

# A sentence is complete when it ends with . ! ? (an ellipsis is a cut, not an end), possibly
# inside quotes or brackets.
_COMPLETE = re.compile(r"(?<!\.\.)[.!?][\"'”’)\]]*$")

_CLOSING = "\"'”’)]"

# Without end punctuation a line may still be a sentence (microblogs skip the full stop) if it
# has a verb; headings, captions, link titles and labels mostly have none of these.
_VERBISH = re.compile(
    r"\b(?:is|are|was|were|be|been|has|have|had|do|does|did|will|would|can|could|should|may|might|"
    r"must|said|says|'s|’s|'re|’re|'ve|’ve|'ll|’ll|n't|n’t)\b|[a-z]{2}ed\b")


# An editor's elision at a sentence's edge ("[…] Instead of…"), left over from a quotation.
_ELISION = re.compile(r"^\[(?:…|\.\.\.)\]\s*|\s*\[(?:…|\.\.\.)\]$")

# A numbered label opening a sentence ("Option 2: Buy the tools…", "Step 3: …"): an item of a list
# written as prose, which means little without the items around it.
_LABEL = re.compile(r"[A-Z][\w'’-]*(?:\s+[\w'’-]+)?\s+\d{1,3}[a-z]?\s*[:.)]\s")

# Code, not prose: assignments, braces, comments, a shell prompt.
_CODE = re.compile(r"[{}]|\s=\s|=>|(?<![:/])//|\s\$\s|\(\);|\b[0-9a-f]{16,}\b")

# _CODE's last branch alone (a word of 16 or more hex digits), opening with its character class
# (see above): every other branch needs one of _CODE_MARKS, which most sentences lack.
_HEX_WORD = re.compile(r"[0-9a-f](?<!\w[0-9a-f])[0-9a-f]{15,}(?!\w)")

_CODE_MARK = re.compile(r"[{}=$]|//|\(\);")
_CODE_MARKS = ("{", "}", "=", "$", "//", "();")  # _CODE_MARK's matches
_DIGITS = "0123456789"

_TITLE_WORD = re.compile(r"\w+")

_TITLE_CUT = re.compile(r"\s*(?:…|\.\.\.)\s*$")

# What may stand between a title and the sentence it is glued to.
_TITLE_GLUE = " \t:;,.|-–—•·"


@dataclass(frozen=True, slots=True)
class Marks:
    """What of chrome and code a text may hold, read from the whole text once.

    A flag that is False holds for every sentence of the text too, so that the tests that need
    the mark skip each sentence at once: ``keys`` and ``calls`` for the key words boilerplate's
    rules need, ``digits`` for a digit (every business ad gives a phone number or a street
    address, and every numbered label a number), ``code`` for one of ``_CODE_MARK``'s marks. A
    sentence is a part of its text that starts and ends between words (or such parts joined after
    a . ! or ?, which none of the marks can span), which is what makes them carry over. Each is a
    plain substring test: a regex search over the whole text cost more than it saved.
    """

    keys: bool = True
    calls: bool = True
    digits: bool = True
    code: bool = True

    @classmethod
    def of(cls, text: str, *, keys: bool | None = None) -> Marks:
        """The marks of ``text``; ``keys``, when the caller knows it already."""
        return cls(_has_key(text) if keys is None else keys, _has_call_key(text), any(d in text for d in _DIGITS),
                   any(m in text for m in _CODE_MARKS))


ANY = Marks()


def split_sentences(text: str) -> list[str]:
    """Sentences of ``text``; abbreviations, initials and decimals do not end a sentence.

    Lines are kept apart (a heading or a chrome line is not part of the next sentence) except
    where a long line stops mid-sentence, which is hard wrapping.
    """
    return list(_sentences(text_blocks(text.splitlines())))


def _sentences(blocks: Iterable[str]) -> Iterator[str]:
    """The sentences of ``blocks``, lazily: a caller that wants only the first few stops early."""
    for block in blocks:
        start = 0
        pending = ""
        for m in _BOUNDARY.finditer(block):
            end = m.start() + 1  # just past the . ! or ?
            piece = block[start:end]
            start = m.end()
            if _ends_with_abbreviation(piece):
                pending += piece + " "
                continue
            sentence = (pending + piece).strip()
            if sentence:
                yield sentence
            pending = ""
        sentence = (pending + block[start:]).strip()
        if sentence:
            yield sentence


def text_blocks(lines: Iterable[str], *, drop_boilerplate: bool = False) -> list[str]:
    """Lines as blocks: a line joins the one before only where that one wraps mid-sentence.

    A blank line always ends a block, and a heading, a list item or a caption is never joined to
    the next line, whose first sentence would otherwise start with it.
    """
    return _blocks(lines, drop_boilerplate)[0]


def blocks_and_marks(text: str) -> tuple[list[str], Marks]:
    """``text``'s blocks without chrome (:func:`text_blocks`) and the :class:`Marks` of their text
    (``"\n".join(blocks)``)."""
    blocks, keyed, joined = _blocks(text.splitlines(), True)
    # The blocks hold no key word where the lines held none, unless two lines were joined with a
    # space that a key word spans ("email" + "address"): the lines' search, made already, tells.
    return blocks, Marks.of("\n".join(blocks), keys=None if keyed or joined else False)


def _blocks(lines: Iterable[str], drop_boilerplate: bool) -> tuple[list[str], bool, bool]:
    """:func:`text_blocks`, whether the lines may hold a boilerplate key word (when chrome is
    dropped; else True), and whether any two lines were joined."""
    blocks: list[str] = []
    wraps = False  # the last block's line may go on in the next one
    joined = False
    squashed = [squash(raw) for raw in lines]
    # A line can hold one of the boilerplate rules' key words only if all the lines together do
    # (see Marks): most texts hold none, and their lines skip that check. The other marks are not
    # worth reading here: most lines are long paragraphs, which skip those rules anyway.
    marks = Marks(keys=_has_key("\n".join(squashed))) if drop_boilerplate else ANY
    for line in squashed:
        if not line:
            wraps = False
            continue
        if drop_boilerplate and _chrome(line, marks):
            continue  # a wrapped sentence goes on past a chrome line between its halves
        if wraps and _continues(blocks[-1], line):
            blocks[-1] += " " + line
            joined = True
        else:
            blocks.append(line)
        wraps = len(line) >= _WRAP_MIN and not line.endswith(_TERMINAL) and LIST_ITEM.match(line) is None
    return blocks, marks.keys, joined


def _chrome(line: str, marks: Marks) -> bool:
    """``is_boilerplate(line)``, given the ``marks`` of a text that ``line`` is part of; ``line`` is
    folded already (a line of text_blocks, or a sentence cut from its blocks)."""
    return _is_boilerplate(line, marks.keys and _has_key(line), calls=marks.calls, ads=marks.digits, folded=True)


def _complete(sentence: str) -> bool:
    """``_COMPLETE.search(sentence) is not None``, from the sentence's end rather than by a search."""
    if "\n" in sentence:  # $ also matches before a final line break: the regex knows how
        return _COMPLETE.search(sentence) is not None
    body = sentence.rstrip(_CLOSING)
    return body[-1:] in (".", "!", "?") and body[-3:-1] != ".."


def is_code(sentence: str, tokens: Sequence[str], marks: Marks = ANY) -> bool:
    """``_CODE.search(sentence) is not None`` (``tokens``: ``sentence.split()``; ``marks``: those
    of a text that ``sentence`` is part of).

    Every branch of _CODE but the hex word needs one of _CODE_MARK's marks, and a hex word of 16
    digits needs a token as long: most sentences have neither, and skip the search.
    """
    if marks.code and _CODE_MARK.search(sentence) is not None:
        return _CODE.search(sentence) is not None
    return bool(tokens) and max(map(len, tokens)) >= 16 and _HEX_WORD.search(sentence) is not None


def _continues(block: str, line: str) -> bool:
    """Whether ``line`` carries on the sentence ``block`` (a long line without end punctuation) stops in."""
    if LIST_ITEM.match(line):
        return False
    if line[0].islower():
        return True
    # A capital after the break: a name inside a wrapped sentence, or a new line after a heading.
    # Only prose wraps: its last word is lower case or it stops at a comma, and most of its
    # words are; a heading is mostly capitalized words ("Effective for Treatment-Resistant
    # Conditions").
    if not (block[-1].islower() or block[-1] in _OPEN_ENDS):
        return False
    tail = block[-200:].split()
    return 2 * sum(w[0].isupper() for w in tail) < len(tail)


def _ends_with_abbreviation(piece: str) -> bool:
    # The piece's last word: pieces come from blocks, which hold no line breaks, so this is what
    # the regex (\S+)$ finds, at a fraction of its cost (\s and str.split agree on whitespace).
    if not piece or piece[-1].isspace() or piece.endswith(("!", "?")):
        return False
    token = piece.rsplit(None, 1)[-1].rstrip(".").lstrip("(\"'“‘").lower()
    # A lone capital ("J. R. R. Tolkien") is an initial, not a sentence end.
    return token in _ABBREVIATIONS or (len(token) == 1 and token.isalpha())


def title_words(title: str) -> list[str]:
    """The title's words, lower-cased; a title the feed cut from the text loses its ellipsis."""
    return [w.lower() for w in _TITLE_WORD.findall(_TITLE_CUT.sub("", title))]


_PLAIN_WORD = re.compile(r"[A-Za-z][a-z'’-]*[,;]?")


def _wordy(line: str) -> bool:
    """Whether most of an unpunctuated line is plain words: a log line, a table row or a list of
    figures ("Jul 18 17:45:21 host kernel: [16.2] eth0: Link is Down") is data, not a sentence."""
    tokens = line.split()
    return sum(_PLAIN_WORD.fullmatch(t) is not None for t in tokens) >= 0.6 * len(tokens)


def title_ends(sentence: str, heading: list[str]) -> list[int]:
    """Where each of ``sentence``'s first words ends, as long as they are ``heading``'s words (those
    :func:`title_words` gives): all of them when the sentence opens with the whole title."""
    ends: list[int] = []
    for m, w in zip(_TITLE_WORD.finditer(sentence), heading, strict=False):
        if m.group(0).lower() != w:
            break
        ends.append(m.end())
    return ends


def _without_title(sentence: str, heading: list[str]) -> str:
    """``sentence`` without the title it repeats (``heading``: the title's words), or "" when only
    the title, or part of it, is left, or what follows does not start a sentence."""
    ends = title_ends(sentence, heading)
    if len(ends) == len(heading):
        rest = sentence[ends[-1]:].lstrip(_TITLE_GLUE)
        if not rest:
            return ""
        # Glued ("Title Ketamine is used…") when what follows starts a sentence of its own; a
        # title of one or two words opening a sentence ("Ketamine is used…") is not a repeat.
        if len(heading) < 3:
            return sentence
        return rest if rest[0].isupper() or rest[0].isdigit() or rest[0] in "\"“‘'(" else ""
    # All of the sentence is the title's opening: a title made of the text's first words.
    if len(ends) >= 3 and _TITLE_WORD.search(sentence[ends[-1]:]) is None:
        return ""
    return sentence


def _mostly_capitalized(sentence: str) -> bool:
    ws = sentence.split()
    return 2 * sum(w[0].isupper() for w in ws) > len(ws)


def summary_sentences(blocks: Sequence[str], heading: list[str], *, min_words: int,
                      marks: Marks = ANY) -> Iterator[str]:
    """The sentences of ``blocks`` that could stand in a summary, lazily.

    ``marks``: those of a text that every block is part of (see :class:`Marks`).
    """
    for s in _sentences(blocks):
        if heading and s[:1].lower() == heading[0][:1]:
            s = _without_title(s, heading)
        if s[:1] == "[" or s[-1:] == "]":
            s = _ELISION.sub("", s)
        # The word count is the cheaper test, and sentences past the limit are never looked at.
        tokens = s.split()
        if len(tokens) < min_words or _chrome(s, marks):
            continue
        if (marks.digits and _LABEL.match(s) is not None) or is_code(s, tokens, marks):
            continue
        if not _complete(s):
            # A label ("Option 2:"), a teaser's cut ("I took two steps..."), or a line
            # without end punctuation that has no verb: a heading or a caption.
            if s.endswith((":", "…", "...")):
                continue
            if _VERBISH.search(s) is None or _mostly_capitalized(s) or not _wordy(s):
                continue
        yield s


# Speech inside quotes belongs to a source, not to the writer's voice.
_QUOTED = re.compile(r"[\"“][^\"“”]*[\"”]")
# The writer addressing the reader or speaking as "we": blog chatter, not reporting. Lower-case
# "us" only, so that "the US" is not taken for it. A whole word: "(?<!\w.)" after its first letter
# stands for a leading \b. Contractions need no words of their own: "you" in "you're" already ends
# at a word boundary.
_CHAT_WORDS = ("You", "you", "Your", "your", "Yours", "yours", "Yourself", "yourself", "We", "we", "us",
               "Our", "our", "Ours", "ours", "Let's", "let's")


def _chat_word_pattern(words: Sequence[str]) -> str:
    """A regex for any of ``words`` as a whole word, written to be searched fast: it opens with the
    class of their first letters, then one branch per first letter (the letter checked by a
    lookbehind) rather than one per word, which the engine would try in turn at every such letter."""
    rests: dict[str, list[str]] = {}
    for w in words:
        rests.setdefault(w[0], []).append(re.escape(w[1:]))
    branches = "|".join(f"(?<={re.escape(first)})(?:{'|'.join(ends)})" for first, ends in rests.items())
    return "[" + "".join(map(re.escape, rests)) + r"](?<!\w.)(?:" + branches + r")\b"


_CHAT_WORD = re.compile(_chat_word_pattern(_CHAT_WORDS))
_GREETING = re.compile(r"(?:Good (?:morning|evening)|Hello|Hi)\b")


def is_chatty(sentence: str) -> bool:
    """Whether the writer, outside quotes, asks or exclaims, greets or talks of "you" and "we"."""
    text = _QUOTED.sub("", sentence) if '"' in sentence or "“" in sentence else sentence
    # The cheap tests first; the word search is the costly one.
    return (text.rstrip().endswith(("?", "!")) or _GREETING.match(text) is not None
            or _CHAT_WORD.search(text) is not None)
