"""`feedletter validate`: the config's problems, then the templates', each with its file and line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from feedletter.cli import app
from feedletter.config import Config
from feedletter.validate import Problem, check_file, template_problems
from tests.fixtures_email import email_config


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return email_config(tmp_path)


def _override(tmp_path: Path, name: str, mjml: str) -> None:
    (tmp_path / "templates" / name).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "templates" / name).write_text(mjml, encoding="utf-8")


def test_templates_are_rendered_and_their_errors_reported(tmp_path: Path, config: Config) -> None:
    assert template_problems(config) == []
    _override(tmp_path, "partials/footer.mjml.j2", "<mj-section>\n<mj-column>\n<mj-text>{{ nope }}</mj-text>\n"
              "</mj-column></mj-section>\n")
    assert template_problems(config) == [
        Problem(None, "newsletters[0] (weekly).template",
                "render: partials/footer.mjml.j2:3: template error: 'nope' is undefined")]
    text = (tmp_path / "sources.yaml").read_text()
    assert [p.line for p in template_problems(config, text)] == [5]  # the newsletter's, as it names no template


@pytest.mark.parametrize(("before", "after", "problem"), [
    # Branches a story without a picture, other tellings or a subject never takes.
    ('<mj-column width="34%"', '<mj-colum width="34%"', "unknown MJML tag <mj-colum>"),
    ("{{ more.title }}", "{{ more.titel }}",
     "partials/story.mjml.j2:19: template error: 'dict object' has no attribute 'titel'"),
    ('alt="{{ story.image_alt or story.title }}" width="576px"', 'alt="{{ story.image_alt.text }}" width="576px"',
     "has no attribute 'text'"),
    ("{% if story.summary %}", "{% if not story.summary %}{{ story.summary.first }}{% endif %}{% if story.summary %}",
     "has no attribute 'first'"),
])
def test_every_branch_of_the_story_card_is_rendered(tmp_path: Path, config: Config, before: str, after: str,
                                                    problem: str) -> None:
    card = (Path(__file__).resolve().parent.parent / "templates" / "partials" / "story.mjml.j2").read_text()
    assert before in card
    _override(tmp_path, "partials/story.mjml.j2", card.replace(before, after, 1))
    found = template_problems(config)
    assert len(found) == 1 and problem in found[0].message, found


def test_a_story_for_each_section_is_rendered(tmp_path: Path) -> None:
    config = email_config(tmp_path, "    sections: [{title: Health, tags: [health]}, {title: Other}]\n")
    assert template_problems(config) == []
    heading = "{{ section.title | upper }}"
    digest = (Path(__file__).resolve().parent.parent / "templates" / "digest.mjml.j2").read_text()
    _override(tmp_path, "digest.mjml.j2",
              digest.replace(heading, heading + "{% if section.title == 'Health' %}{{ nope }}{% endif %}", 1))
    found = template_problems(config)
    assert len(found) == 1 and "'nope' is undefined" in found[0].message, found


def test_validate_command_reports_a_broken_override_before_any_send(tmp_path: Path, config: Config) -> None:
    _override(tmp_path, "partials/story.mjml.j2", "<mj-section>\n<mj-column>\n<mj-text>\n{% for %}\n"
              "</mj-text></mj-column></mj-section>\n")
    result = CliRunner().invoke(app, ["validate", str(tmp_path / "sources.yaml")])
    assert result.exit_code == 1
    assert result.output.strip() == (f"{tmp_path / 'sources.yaml'}:5: newsletters[0] (weekly).template: "
                                     "render: partials/story.mjml.j2:4: template syntax error: Expected an expression, "
                                     "got 'end of statement block'")


@pytest.mark.parametrize(("text", "expected"), [
    (None, "{file}: cannot read: No such file or directory"),
    ("stor: x\n", "{file}:1: stor: unknown field 'stor' (did you mean 'store'?)"),
    ("newsletters:\n  - name: weekly\n    title: Weekly\n    template: nosuch\n",
     "{file}:4: newsletters[0] (weekly).template: nosuch.mjml.j2 not found"),
])
def test_each_problem_names_its_file_and_line(tmp_path: Path, text: str | None, expected: str) -> None:
    file = tmp_path / "sources.yaml"
    if text is not None:
        file.write_text(text, encoding="utf-8")
    config, problems = check_file(file)
    assert config is None
    assert str(problems[0]).startswith(expected.format(file=file))
    assert all(p.file == str(file) for p in problems)


MIXED = """\
store: sqlite:///x.db
sources:
  - name: clinic
    url: https://clinic.example/feed
    tags: [health]
  - name: ledger
    url: ftp://ledger.example/feed
    tags: [city, council]
newsletters:
  - name: weekly
    title: Weekly
    select: {tags: [helth, city]}
    template: house
  - name: sport
    title: Sport
    select: {tags: [football]}
"""


def test_every_problem_at_once_in_file_order_naming_each_item(tmp_path: Path) -> None:
    """A bad field, two tags no source has and a missing template: one run shows them all, by line."""
    file = tmp_path / "sources.yaml"
    file.write_text(MIXED, encoding="utf-8")
    result = CliRunner().invoke(app, ["validate", str(file)])
    assert result.exit_code == 1
    assert [line.split(" (looked in")[0] for line in result.output.splitlines()] == [
        f"{file}:7: sources[1] (ledger).url: not an http(s) URL: 'ftp://ledger.example/feed'",
        f"{file}:12: newsletters[0] (weekly).select.tags[0]: no source has the tag 'helth' "
        "(did you mean 'health'?)",
        f"{file}:13: newsletters[0] (weekly).template: house.mjml.j2 not found",
        f"{file}:13: newsletters[0] (weekly).template: house.txt.j2 not found",
        f"{file}:16: newsletters[1] (sport).select.tags[0]: no source has the tag 'football' "
        "(known: city, council, health)",
    ]


def test_a_selected_tag_some_source_has_is_fine(tmp_path: Path) -> None:
    file = tmp_path / "sources.yaml"
    file.write_text(MIXED.replace("ftp://", "https://").replace("helth", "health").replace("football", "council")
                    .replace("    template: house\n", ""), encoding="utf-8")
    config, problems = check_file(file)
    assert problems == [] and config is not None


def test_templates_are_checked_beside_a_newsletter_with_bad_fields(tmp_path: Path) -> None:
    file = tmp_path / "sources.yaml"
    file.write_text(MIXED.replace("    title: Weekly\n", "    provider: pigeon\n"), encoding="utf-8")
    _, problems = check_file(file)
    assert [(p.line, p.path) for p in problems if "weekly" in p.path] == [
        (10, "newsletters[0] (weekly).title"), (11, "newsletters[0] (weekly).provider"),
        (12, "newsletters[0] (weekly).select.tags[0]"),
        (13, "newsletters[0] (weekly).template"), (13, "newsletters[0] (weekly).template")]
