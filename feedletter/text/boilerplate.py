"""Rules that tell site chrome (crumbs, bylines, share buttons, ads) from article content.

Extraction leaves some chrome behind and feeds often append it to their text, so the summarizer
and the eval drop it line by line. Precision matters more than recall here: a rule that eats a
real sentence makes a summary worse than a leftover "Share this" does, so most rules are anchored
at the start of the line and limited to short lines, which is how chrome looks.
"""

from __future__ import annotations

import re

from feedletter.text.whitespace import squash

__all__ = ["is_boilerplate", "strip_boilerplate"]

# Chrome lines are short; an article sentence that happens to start with "Subscribe" or "Home"
# usually runs on well past this.
_SHORT = 90

# Whole-line or line-start patterns, checked only on short lines.
_SHORT_RULES = [
    # Navigation crumbs: "Home › News › Health", "Home / Blog", "Home News Health Local".
    r"home\s*(?:[›»>/|\-–]\s*\S.*)$",
    r"home(?:\s+[A-Z][\w&'-]*){1,6}$",
    r"you are here\s*:?",
    r"skip to (?:main )?content",
    r"back to top\b",
    r"(?:main )?menu$",
    # Bylines and comment counters.
    r"by\s+(?:admin|administrator|staff|editor|webmaster)\b",
    r"(?:posted|written|published|filed)\s+(?:by|in|on|under)\b",
    r"by\s+[\w.' -]{1,40}\s*[|•·]\s*",
    # "By Ruben Schade in Sydney, 2023-01-08.": a byline with a place and a date, nothing else.
    r"by\s+[\w.'-]+(?:\s+[\w.'-]+){0,3}(?:\s+in\s+[\w .'-]{1,30})?,?\s+"
    r"(?:\d{4}-\d\d-\d\d|\d{1,2}\s+[a-z]+\s+\d{4}|[a-z]+\s+\d{1,2},?\s+\d{4})\.?$",
    r"\d+\s+comments?$",
    r"no comments?(?: yet)?\.?$",
    r"(?:leave|add|post) a (?:comment|reply)\b",
    r"(?:one|\d+) (?:thoughts?|responses?|repl(?:y|ies)) (?:on|to)\b",
    r"cancel reply$",
    r"comments? (?:are )?closed\.?$",
    # Share and calls to action.
    r"share (?:this|on|via)\b",
    r"(?:share|tweet|pin|email|print)(?:\s*[|•·,/]\s*(?:share|tweet|pin|email|print|facebook|twitter|"
    r"linkedin|whatsapp|reddit))+\s*$",
    r"(?:facebook|twitter|linkedin|pinterest|whatsapp|reddit|email)(?:\s*[|•·,/]?\s*(?:facebook|twitter|"
    r"linkedin|pinterest|whatsapp|reddit|email|x))+\s*$",
    r"follow us\b",
    r"subscribe\b",
    r"sign up (?:for|to) (?:our|the) (?:newsletter|mailing list)",
    r"click here\b",
    r"read (?:more|the full (?:story|article)|on)\b",
    r"continue reading\b",
    r"(?:book|schedule|request) (?:an? |your )?(?:appointment|consultation|call|demo)\b",
    r"(?:call|contact) us (?:today|now)\b",
    # Image credits.
    r"(?:photo|image|picture|illustration|graphic|video)s?\s*(?:credit)?\s*:",
    r"(?:photo|image|picture)s? (?:courtesy|by|via)\b",
    r"(?:credit|source)\s*:",
    r"getty images$",
    # Comment forms.
    r"your email address will not be published",
    r"required fields are marked",
    r"save my name, email",
    # Related links.
    r"(?:related|recommended|popular|recent|more) (?:articles|posts|stories|reading|news)\b",
    r"you (?:may|might) also like\b",
    r"see also\s*:",
    r"tags?\s*:",
    r"categor(?:y|ies)\s*:",
    r"(?:previous|next) (?:post|article|story)\b",
    # Site navigation labels standing alone on a line.
    r"(?:top|latest|trending|popular|most read|editor's picks?) (?:stories|articles|news|posts)?\s*:?$",
    r"(?:terms (?:of (?:service|use)|and conditions)|privacy (?:policy|notice|settings)|"
    r"cookie (?:policy|settings)|dmca|accessibility|contact us|about us|sitemap|site map|"
    r"corrections? (?:and|&) clarifications)\s*$",
    r"toggle (?:navigation|menu)",
    r"opens? in (?:a )?new (?:window|tab)",
    r"(?:on this page|in this section|table of contents)\s*:?$",
    r"enter (?:your )?(?:keywords?|search terms?)",
    r"print (?:this )?(?:recipe|article|page|story)?\s*$",
    r"explore more$",
    r"live streams?$",
    r"view (?:my|the|our) (?:complete|full) profile",
    r"(?:simple theme\. )?powered by(?:\s+\S+){1,3}$",
    r"followers?\s*\(\d+\)",
    r"\d+\s*min(?:ute)?s?\s+read$",
    r"never miss (?:a|an|the)\b",
    r"missing out on the latest",
    r"(?:get|sign up for|join) (?:the|our) .{0,40}newsletter",
    r"post (?:your|a) comments?",
    # Advertising.
    r"advertisements?$",
    r"sponsored(?: content| post)?$",
    r"ad$",
    r"copyright(?: notice| policy)?\s*$",
]

# Patterns that mark chrome wherever they appear in a line of any length.
_ANYWHERE_RULES = [
    r"your email address will not be published",
    r"required fields are marked \*",
    r"we use cookies\b",
    r"this (?:web)?site uses cookies\b",
    r"by (?:continuing to (?:use|browse)|using) this (?:web)?site,? you (?:agree|accept|consent)",
    r"accept (?:all )?cookies\b",
    r"all rights reserved",
    r"©",
    r"\(c\)\s*(?:\d{4}|copyright)",
    r"copyright\s*(?:\(c\)\s*)?\d{4}",
]

# A business ad: a street address or a phone number together with a call to act or a place
# to go. A bare number or year in an article sentence must not trigger it.
_PHONE = re.compile(r"(?:\+?\d{1,3}[\s.-]?)?\(?\d{3}\)?[\s.-]\d{3}[\s.-]\d{4}\b")
# A house number of up to five digits that starts a word: the lookbehind after the first digit does
# the work of a leading \b, so that the search can skip straight to digits instead of trying the
# pattern at every position (twice as fast on article sentences, which have few digits).
_STREET = re.compile(
    r"\d(?<!\w\d)\d{0,4}\s+(?:[A-Z][a-z]+\s+){1,3}(?:St|Street|Ave|Avenue|Rd|Road|Blvd|Boulevard|Dr|Drive|"
    r"Ln|Lane|Way|Suite|Ste|Pkwy|Parkway|Ct|Court|Pl|Place)\b\.?")
_PHONE_AD = re.compile(
    r"\b(?:call|phone|tel|contact|visit|book|appointment|consultation|clinic|office|located|"
    r"schedule|hours|today|suite|ste)\b", re.IGNORECASE)
# A street alone is common in news ("returned to 10 Downing Street"), so it needs a stronger cue.
_STREET_AD = re.compile(
    r"\b(?:visit us|call us|call|clinic|located at|suite|ste|appointments?|consultations?|"
    r"open (?:mon|tue|wed|thu|fri|sat|sun|daily|\d)|hours)\b", re.IGNORECASE)

# Calls to action and feed footers anywhere in the first sentence of a short line: "To read this
# article in full, please click here", "The post X appeared first on Y.", "… [read more]". Longer
# text that says "click here" is a paragraph with a link in it, which the summarizer splits into
# sentences and checks one by one.
_CALL_MAX = 200
_CALL_RULES = [
    r"\bclick(?:ing)? here\b",
    r"\bto (?:read|view|see) (?:this|the) (?:full )?(?:article|story|post|piece)(?: in full)?\b",
    r"\bappeared first on\b",
    r"\b(?:continue|keep) reading\b",
    r"\bread (?:the (?:full|whole|rest of the|complete) (?:story|article|post|piece|review|report)|more)\b"
    r"(?=\W*$|\s+(?:at|on|here|about|from)\b|\W*[»›→]|\s*\])",
    r"\[(?:…|\.\.\.|more|read more)\]\s*$",
    r"\b(?:follow|like|find) (?:us|me) on\b",
    r"\bsubscribe (?:to|for) (?:our|my|the) (?:newsletter|channel|podcast|feed|blog|mailing list)\b",
    r"\bshare this (?:post|article|story|page|with)\b",
    r"\b(?:leave|post|add) a (?:comment|reply)\b",
]
_CALL_KEYS = ("click", "read", "appeared first", "follow", "like us", "like me", "find us", "find me",
              "subscribe", "share this", "[", "comment", "reply")
_ANYWHERE_KEYS = ("email address", "required fields", "cookie", "rights reserved", "©", "(c)", "copyright")
_AD_MAX = 300
_SHORT_RE = re.compile("|".join(f"(?:{r})" for r in _SHORT_RULES), re.IGNORECASE)
_ANYWHERE_RE = re.compile("|".join(f"(?:{r})" for r in _ANYWHERE_RULES), re.IGNORECASE)
# "Home News Health" must keep its capitals to count as a crumb, so it is checked case-sensitively.
_CRUMB_WORDS = re.compile(r"Home(?:\s+[A-Z][\w&'-]*){1,6}$")
_LEAD_NOISE = re.compile(r"^[^\w©]+")
_WORD = re.compile(r"\w")
_DIGIT = re.compile(r"\d")
# Cheap necessary conditions for the two costly searches, which otherwise run on every article
# paragraph (about 0.1 ms each): every _ANYWHERE_RULES match holds one of these words, and every
# phone number ends in "ddd-dddd" (spelled \d\d\d, not \d{3}, so that the search skips to digits).
_PHONE_TAIL = re.compile(r"\d\d\d[\s.-]\d{4}\b")
_GAPS = re.compile(r"\n{3,}")
_CALL_RE = re.compile("|".join(f"(?:{r})" for r in _CALL_RULES), re.IGNORECASE)
_SENTENCE_END = re.compile(r"[.!?][\"'”’)\]]*\s+[\"'“‘(\[]?[A-Z0-9]")
# A crumb trail standing before a byline or a counter on one line: "Home News by admin 0 comment".
_CRUMB_LEAD = re.compile(r"Home(?:\s*[›»>/|]\s*|\s+)(?:[A-Z][\w&'-]*(?:\s*[›»>/|]\s*|\s+)){1,4}")


def is_boilerplate(line: str) -> bool:
    """True when ``line`` (a line or a sentence) is site chrome rather than article content."""
    return _is_boilerplate(line, _has_key(line))


def _has_key(text: str) -> bool:
    lower = text.lower()
    return any(k in lower for k in _ANYWHERE_KEYS)


def _has_call_key(text: str) -> bool:
    lower = text.lower()
    return any(k in lower for k in _CALL_KEYS)


def _is_boilerplate(line: str, keyed: bool, *, calls: bool = True, ads: bool = True, folded: bool = False) -> bool:
    # keyed: False when the line holds none of _ANYWHERE_KEYS (strip_boilerplate checks a whole
    # text at once); True when it may. calls and ads, likewise: False when the line holds none of
    # _CALL_KEYS (_has_call_key), or no digit (every ad gives a phone number or a street address).
    # folded: the line's whitespace is folded already (squash(line) == line).
    text = line if folded else squash(line)
    if not text:
        return False
    opens_on_word = _WORD.match(text) is not None  # then _LEAD_NOISE has nothing to strip: most lines
    if len(text) > _AD_MAX and opens_on_word:
        # A long paragraph: only the anywhere-rules apply, and most article text is such
        # paragraphs, so they skip the rest.
        return keyed and _has_key(text) and bool(_ANYWHERE_RE.search(text))
    if not opens_on_word:
        if not _WORD.search(text):
            return True  # only bullets, dashes or separators
        text = _LEAD_NOISE.sub("", text, count=1)
    # Substring checks first: the regexes are slow on long paragraphs that match nothing.
    if keyed and _has_key(text) and _ANYWHERE_RE.search(text):
        return True
    if len(text) <= _SHORT:
        m = _SHORT_RE.match(text)
        if m and _confirm_short(text, m.group(0)):
            return True
        crumb = _CRUMB_LEAD.match(text) if text.startswith("Home") else None
        if crumb and _SHORT_RE.match(text, crumb.end()):
            return True
    if calls and len(text) <= _CALL_MAX:
        call = _CALL_RE.search(text) if _has_call_key(text) else None
        # Only a call in the first sentence makes the whole line chrome; after a sentence of
        # content it is that content's tail, which the summarizer drops sentence by sentence.
        if call and _SENTENCE_END.search(text, 0, call.start() + 1) is None:
            return True
    # An ad is a short block; a long paragraph that gives an address is reporting.
    return ads and len(text) <= _AD_MAX and _is_business_ad(text)


def _confirm_short(text: str, matched: str) -> bool:
    # "Home" followed by words is a crumb only when the words are capitalized nav labels;
    # "Home prices rose" is a sentence.
    if matched.lower().startswith("home") and not re.match(r"home\s*[›»>/|\-–]", text, re.IGNORECASE):
        return bool(_CRUMB_WORDS.match(text))
    return True


def _is_business_ad(text: str) -> bool:
    # A phone number and a street address both hold a digit, which most lines and sentences lack:
    # one search for it (a regex's \d, any script's digits, as the two searches read them) tells,
    # in under half the time of the two.
    if _DIGIT.search(text) is None:
        return False
    has_phone = bool(_PHONE_TAIL.search(text)) and bool(_PHONE.search(text))
    has_street = bool(_STREET.search(text))
    if not (has_phone or has_street):
        return False
    if has_phone and has_street:
        return True
    if has_phone:
        return bool(_PHONE_AD.search(text))
    return bool(_STREET_AD.search(text))


def strip_boilerplate(text: str) -> str:
    """``text`` without its boilerplate lines; content lines and paragraph breaks are kept."""
    # A line can hold one of the anywhere-rules' words only if the whole text does: most texts
    # hold none, and their lines skip that check.
    keyed = _has_key(text)
    kept = [line for line in text.splitlines() if not _is_boilerplate(line, keyed)]
    out = "\n".join(kept)
    return (_GAPS.sub("\n\n", out) if "\n\n\n" in out else out).strip()
