"""The README and docs/ are a user's manual: the commands they show exist and do what they say,
and every link between them leads somewhere."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from feedletter.cli import app
from tests.conftest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
README = "\n".join(page.read_text(encoding="utf-8") for page in PAGES)
FEEDLETTER = [sys.executable, "-m", "feedletter.cli"]


def _commands() -> set[tuple[str, ...]]:
    found = set()
    for match in re.finditer(r"`feedletter ((?:[a-z][a-z-]+)(?: (?:status|enable|import|export|add|list|remove|"
                             r"add/list/remove))?)", README):
        words = match.group(1).split()
        if words[-1] == "add/list/remove":
            found |= {(words[0], w) for w in ("add", "list", "remove")}
        else:
            found.add(tuple(words))
    return found


@pytest.mark.parametrize("command", sorted(_commands()))
def test_every_command_in_the_readme_exists(command: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*command, "--help"])
    assert result.exit_code == 0, f"feedletter {' '.join(command)}: {result.output}"


def test_the_bundled_config_validates() -> None:
    result = subprocess.run([*FEEDLETTER, "validate", "sources.yaml"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr


def test_the_readme_shell_examples_run(tmp_path: Path) -> None:
    blocks = re.findall(r"```sh\n(.*?)```", README, flags=re.S)
    example = next(b for b in blocks if "feedletter parse" in b)
    script = example.replace("feedletter ", f"{sys.executable} -m feedletter.cli ")
    bash = shutil.which("bash")
    assert bash
    result = subprocess.run([bash, "-eo", "pipefail", "-c", script], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    first, summary = result.stdout.strip().splitlines()
    assert set(json.loads(first)) == {"title", "link", "key", "published", "author", "summary", "content"}
    assert json.loads(summary)["id"] == "1" and json.loads(summary)["summary"]


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_link_between_the_pages_leads_somewhere() -> None:
    anchors = {page.resolve(): {_anchor(h) for h in re.findall(r"(?m)^#+ (.*)$", page.read_text())}
               for page in PAGES}
    broken = []
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if target.startswith(("http://", "https://", "mailto:")):
                continue
            path, _, anchor = target.partition("#")
            resolved = (page.parent / path).resolve() if path else page.resolve()
            if not resolved.exists() or (anchor and resolved in anchors and anchor not in anchors[resolved]):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, broken
    assert len((ROOT / "README.md").read_bytes()) < 12_000  # the README is an entry; the manual is docs/
