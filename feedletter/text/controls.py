"""Characters no reader should get from a feed: control characters, noncharacters and bidi overrides.

A BEL or an ESC in a title breaks the MJML compile and can drive a terminal; U+FFFE is not a
character at all; a right-to-left override turns "gnp.exe" into "exe.png" on screen. They are
removed at ingest, from every field of an entry, so no later stage has to think about them. Tab,
line feed and carriage return stay (whitespace folding deals with them), and so do the
left-to-right and right-to-left marks and joiners that real text in mixed scripts and emoji use.
"""

from __future__ import annotations

import re

__all__ = ["for_terminal", "strip_controls"]

_REMOVED = "".join([
    *(chr(c) for c in range(0x00, 0x20) if chr(c) not in "\t\n\r"),
    chr(0x7F), *(chr(c) for c in range(0x80, 0xA0)),  # DEL and the C1 controls
    *(chr(c) for c in range(0x202A, 0x202F)),  # LRE RLE PDF LRO RLO
    *(chr(c) for c in range(0x2066, 0x206A)),  # LRI RLI FSI PDI
    *(chr(c) for c in range(0xFDD0, 0xFDF0)), "\ufffe", "\uffff",  # noncharacters
])
_FOUND = re.compile("[" + re.escape(_REMOVED) + "]")
_TABLE = dict.fromkeys(map(ord, _REMOVED))


def strip_controls(text: str) -> str:
    """``text`` without control characters (but tab and line breaks), noncharacters and bidi overrides."""
    # The search runs in C and finds nothing in nearly every text: only those pay for translate.
    return text.translate(_TABLE) if _FOUND.search(text) is not None else text


_TERMINAL_UNSAFE = re.compile("[" + re.escape(_REMOVED + "\t\n\r") + "]")


def for_terminal(text: str) -> str:
    """``text`` safe to print as one field of one line: every control character, bidi override and
    noncharacter shown as an escape (``\\x1b``, ``\\u202e``) instead of acting on the terminal.

    What the store holds from before ingest cleaned it, or an error message quoting a server, may
    still carry them; ``articles list``, ``sources status`` and ``status`` print through this.
    """
    if _TERMINAL_UNSAFE.search(text) is None:
        return text
    return _TERMINAL_UNSAFE.sub(lambda m: repr(m.group(0))[1:-1] if ord(m.group(0)) < 0x100 else
                                f"\\u{ord(m.group(0)):04x}", text)

