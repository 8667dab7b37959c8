from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from feedletter.config import load_config, parse_config
from feedletter.errors import ConfigError
from tests.conftest import ROOT

GOOD = """\
store: sqlite:///x.db
sources:
  - name: blog
    url: https://blog.example.com/feed.xml
    tags: [health]
newsletters:
  - name: weekly
    title: Weekly
    schedule: {cron: "0 8 * * MON", timezone: Europe/Berlin}
"""

# (what is wrong, the YAML, the expected line, the expected field path, a fragment of the message)
BAD = [
    ("unknown field with a hint", GOOD.replace("    tags: [health]", "    tagz: [health]"),
     5, "sources[0] (blog).tagz", "did you mean 'tags'"),
    ("bad URL", GOOD.replace("https://blog.example.com/feed.xml", "ftp://blog.example.com/feed"),
     4, "sources[0] (blog).url", "not an http(s) URL"),
    ("bad cron", GOOD.replace('"0 8 * * MON"', '"0 8 * *"'),
     9, "newsletters[0] (weekly).schedule.cron", "needs 5 fields"),
    ("bad cron value", GOOD.replace('"0 8 * * MON"', '"0 25 * * MON"'),
     9, "newsletters[0] (weekly).schedule.cron", "invalid cron"),
    ("cron line without its mapping", GOOD.replace('{cron: "0 8 * * MON", timezone: Europe/Berlin}', '"0 8 * * MON"'),
     9, "newsletters[0] (weekly).schedule", 'write it as {cron: "0 8 * * MON", timezone: Europe/London}'),
    ("a source given as a bare URL", GOOD.replace("newsletters:", "  - https://b.example/feed\nnewsletters:"),
     6, "sources[1]", "a source needs a name and a URL: write {name: my-blog, url: https://b.example/feed}"),
    ("a word for a number", GOOD.replace("    tags: [health]", "    priority: high"),
     5, "sources[0] (blog).priority", "needs a whole number, not 'high'"),
    ("a word for true or false", GOOD.replace("    tags: [health]", "    enabled: maybe"),
     5, "sources[0] (blog).enabled", "needs true or false, not 'maybe'"),
    ("YAML's yes for a choice", GOOD.replace("    tags: [health]", "    full_text: yes"),
     5, "sources[0] (blog).full_text", "must be 'auto', 'always' or 'never', not True"),
    ("a provider's settings in a newsletter", GOOD + "    smtp: {url_env: SMTP_URL}\n",
     10, "newsletters[0] (weekly).smtp", "a provider's settings go in the top-level section providers: smtp:"),
    ("unknown timezone", GOOD.replace("Europe/Berlin", "Mars/Olympus"),
     9, "newsletters[0] (weekly).schedule.timezone", "unknown timezone"),
    ("missing field", GOOD.replace("    title: Weekly\n", ""),
     7, "newsletters[0] (weekly).title", "required"),
    ("bad provider", GOOD + "    provider: pigeon\n",
     10, "newsletters[0] (weekly).provider", "'smtp'"),
    ("bad regex", GOOD.replace("    tags: [health]", "    include: ['(unclosed']"),
     5, "sources[0] (blog).include", "bad regular expression"),
    ("bad name", GOOD.replace("name: blog", "name: My Blog"),
     3, "sources[0] (My Blog).name", "not a valid name"),
    ("unknown top-level field", "stor: x\n" + GOOD, 1, "stor", "did you mean 'store'"),
    ("unknown select field", GOOD + "    select: {tag: [health]}\n",
     10, "newsletters[0] (weekly).select.tag", "did you mean 'tags'"),
    ("URL with a space", GOOD.replace("https://blog.example.com/feed.xml", "'https://blog.exa mple.com/f'"),
     4, "sources[0] (blog).url", "not a valid URL"),
    ("URL with a bad port", GOOD.replace("blog.example.com/", "blog.example.com:99999/"),
     4, "sources[0] (blog).url", "bad port"),
    ("URL without a host", GOOD.replace("https://blog.example.com/feed.xml", "https:///feed.xml"),
     4, "sources[0] (blog).url", "not an http(s) URL"),
    ("timezone abbreviation", GOOD.replace("Europe/Berlin", "CEST"),
     9, "newsletters[0] (weekly).schedule.timezone", "unknown timezone"),
    ("cron with words", GOOD.replace('"0 8 * * MON"', '"every monday at 8"'),
     9, "newsletters[0] (weekly).schedule.cron", "needs 5 fields"),
    ("duplicate source name", GOOD.replace("newsletters:", "  - name: blog\n    url: https://b.example/f\n"
                                                           "newsletters:"),
     6, "sources[1] (blog).name", "duplicate sources name 'blog' (first used on line 3)"),
    ("duplicate newsletter name", GOOD + "  - {name: weekly, title: Again}\n",
     10, "newsletters[1] (weekly).name", "duplicate newsletters name 'weekly' (first used on line 7)"),
    ("select names an unknown source", GOOD + "    select: {sources: [blogg]}\n",
     10, "newsletters[0] (weekly).select.sources[0]", "no source named 'blogg' (did you mean 'blog'?)"),
    ("bad since", GOOD + "    select: {since: lastweek}\n",
     10, "newsletters[0] (weekly).select.since", "since must be last_issue, all"),
    ("negative quality", GOOD + "    select: {min_quality: -1}\n",
     10, "newsletters[0] (weekly).select.min_quality", "greater than or equal to 0"),
    ("bad pin regex", GOOD + "    select: {pin_keywords: ['[x']}\n",
     10, "newsletters[0] (weekly).select.pin_keywords", "bad regular expression"),
    ("bad from address", GOOD + "    from: Weekly\n",
     10, "newsletters[0] (weekly).from", "from needs an email address"),
    ("max stories too big", GOOD + "    select: {max_stories: 500}\n",
     10, "newsletters[0] (weekly).select.max_stories", "less than or equal to 100"),
    ("section without a title", GOOD + "    sections:\n      - {tags: [health]}\n",
     11, "newsletters[0] (weekly).sections[0].title", "required field is missing"),
    ("section with an empty title", GOOD + "    sections: [{title: '', tags: [health]}]\n",
     10, "newsletters[0] (weekly).sections[0].title", "at least 1 character"),
    ("section tags not a list", GOOD + "    sections:\n      - {title: Health, tags: health}\n",
     11, "newsletters[0] (weekly).sections[0].tags", "needs a list, e.g. [health]"),
    ("section field misspelt", GOOD + "    sections:\n      - title: Health\n        tag: [health]\n",
     12, "newsletters[0] (weekly).sections[0].tag", "did you mean 'tags'"),
    ("sections not a list", GOOD + "    sections: {title: Health}\n",
     10, "newsletters[0] (weekly).sections", "needs a list: [a, b]"),
    ("two sections with one title", GOOD + "    sections: [{title: News, tags: [a]}, {title: News, tags: [b]}]\n",
     10, "newsletters[0] (weekly).sections", "two sections are titled 'News'"),
    ("two sections without tags", GOOD + "    sections: [{title: Rest}, {title: Others}]\n",
     10, "newsletters[0] (weekly).sections", "only one section can leave out tags"),
    ("greeting with another placeholder", GOOD + "    greeting: 'Hi %%EMAIL%%'\n",
     10, "newsletters[0] (weekly).greeting", "a greeting can only use %%NAME%%, not %%EMAIL%%"),
    ("intro twice", GOOD + "    intro: Hello\n    intro_file: intro.md\n",
     7, "newsletters[0] (weekly)", "intro and intro_file are both set: keep one"),
]


@pytest.mark.parametrize(("case", "text", "line", "path", "fragment"), BAD, ids=[b[0] for b in BAD])
def test_each_problem_names_its_line_and_field(case: str, text: str, line: int, path: str, fragment: str) -> None:
    config, problems = parse_config(text)
    assert config is None
    formatted = [p.format("sources.yaml") for p in problems]
    assert any(f.startswith(f"sources.yaml:{line}: {path}: ") and fragment in f for f in formatted), formatted


def test_yaml_syntax_error_has_a_line() -> None:
    _, problems = parse_config("sources:\n  - name: a\n    url: [unclosed\n")
    assert problems and problems[0].line is not None and "YAML syntax" in problems[0].message


def test_duplicate_names_are_refused() -> None:
    text = GOOD.replace("newsletters:", "  - {name: blog, url: 'https://b.example/f'}\nnewsletters:")
    _, problems = parse_config(text)
    assert [(p.line, p.message) for p in problems] == [
        (6, "duplicate sources name 'blog' (first used on line 3)")]


def test_duplicates_are_reported_beside_other_problems() -> None:
    text = GOOD.replace("newsletters:", "  - {name: blog, url: 'ftp://b'}\nnewsletters:")
    _, problems = parse_config(text)
    assert sorted((p.line, p.path) for p in problems) == [(6, "sources[1] (blog).name"),
                                                          (6, "sources[1] (blog).url")]


def test_good_config_loads_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(GOOD)
    config = load_config(path)
    assert config.source("blog").full_text == "auto"
    assert config.newsletter("weekly").select.max_stories == 10
    assert config.store_url() == f"sqlite:///{tmp_path / 'x.db'}"
    with pytest.raises(ConfigError, match="no newsletter named 'monthly'"):
        config.newsletter("monthly")


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feedletter.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_validate_command_exit_codes(tmp_path: Path) -> None:
    good = tmp_path / "sources.yaml"
    good.write_text(GOOD)
    ok = _cli("validate", str(good), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD[0][1])
    result = _cli("validate", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{bad}:5: sources[0] (blog).tagz: unknown field 'tagz'" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_reports_a_missing_template(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(GOOD + "    template: nosuch\n")
    result = _cli("validate", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert f"{path}:10: newsletters[0] (weekly).template: nosuch.mjml.j2 not found" in result.stderr
    assert f"{path}:10: newsletters[0] (weekly).template: nosuch.txt.j2 not found" in result.stderr


def test_validate_finds_templates_beside_the_config(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(GOOD + "    template: house\n")
    (tmp_path / "templates").mkdir()
    for suffix in (".mjml.j2", ".txt.j2"):
        builtin = ROOT / "templates" / f"digest{suffix}"
        (tmp_path / "templates" / f"house{suffix}").write_text(builtin.read_text())
    result = _cli("validate", str(path), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{path}: ok (1 source, 1 newsletter)"


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(GOOD.replace("tags:", "tagz:").replace("Europe/Berlin", "Mars/Olympus"))
    result = _cli("validate", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"{path}:5: sources[0] (blog).tagz: unknown field 'tagz' (did you mean 'tags'?)",
        f"{path}:9: newsletters[0] (weekly).schedule.timezone: unknown timezone 'Mars/Olympus' "
        "(use an IANA name like Europe/Berlin)"]


def test_sections_intro_and_greeting_load(tmp_path: Path) -> None:
    good = GOOD.replace("    tags: [health]", "    tags: [health, care]")  # a section's tags are sources' tags
    config, problems = parse_config(good + textwrap.indent(textwrap.dedent("""\
        greeting: "Hi %%NAME%%,"
        intro_file: notes/intro.md
        sections:
          - {title: Health, tags: [health, care]}
          - title: Everything else
        """), "    "))
    assert problems == [] and config is not None
    weekly = config.newsletter("weekly")
    assert weekly.greeting == "Hi %%NAME%%," and weekly.intro_file == "notes/intro.md" and weekly.intro == ""
    assert [(s.title, s.tags) for s in weekly.sections] == [("Health", ["health", "care"]), ("Everything else", [])]


def test_the_staff_guide_email_snippet_validates() -> None:
    """The staff guide's greeting, intro and sections example, as a newsletter of its own."""
    import re

    guide = (ROOT / "docs" / "staff-guide.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", guide, re.S) if "sections:" in b)
    item = "\n".join(line for line in textwrap.dedent(block).splitlines() if "# …" not in line)
    tags = sorted({tag.strip() for found in re.findall(r"tags: \[([^\]]*)\]", item) for tag in found.split(",")})
    good = GOOD.replace("    tags: [health]", f"    tags: [{', '.join(tags)}]")  # the guide's sources have them
    text = good.replace("newsletters:\n", "newsletters:\n" + textwrap.indent(item, "  ") + "\n    title: R\n")
    config, problems = parse_config(text)
    assert not problems and config is not None, [p.format("sources.yaml") for p in problems]
    weekly = config.newsletter("riverside-weekly")
    assert [s.title for s in weekly.sections] == ["Around town", "Health", "Elsewhere"]
    assert weekly.greeting == "Hi %%NAME%%," and "Kingfisher Footbridge" in weekly.intro


def test_the_staff_guide_snippets_validate(tmp_path: Path) -> None:
    """The staff guide's "add a feed" and "second newsletter" snippets, pasted into the demo config."""
    import re

    from tests.conftest import ROOT

    guide = (ROOT / "docs" / "staff-guide.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", guide, re.S)
    source, newsletter = (
        "\n".join(line for line in textwrap.dedent(block).splitlines()[1:] if not line.strip().startswith("# …"))
        for block in blocks[:2])
    text = (ROOT / "sources.yaml").read_text()
    text = text.replace("\nnewsletters:\n", "\n" + source + "\n\nnewsletters:\n", 1)
    text = text.replace("\nproviders:\n", "\n" + newsletter + "\n\nproviders:\n", 1)
    config, problems = parse_config(text)
    assert not problems, [p.format("sources.yaml") for p in problems]
    assert config is not None and config.source("city-hall").tags == ["city"]
    assert config.newsletter("bridge-watch").select.include == ["bridge", "footbridge"]
