"""Terminal output escapes what the store holds (issue 19): a title or an error quoting a server may
carry ESC sequences or bidi overrides from before ingest cleaned them; printing them must not act."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from feedletter.schema import articles, sources, stories
from feedletter.store import Store, now
from feedletter.text.controls import for_terminal

NASTY = "Clear\x1b[2J\x1b]0;owned\x07 \u202egnp.exe"


def test_for_terminal_shows_controls_as_escapes() -> None:
    assert for_terminal(NASTY) == "Clear\\x1b[2J\\x1b]0;owned\\x07 \\u202egnp.exe"
    assert for_terminal("Plain title — ünïcode ✓") == "Plain title — ünïcode ✓"


def test_articles_list_status_and_sources_status_escape_the_store(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(f"store: sqlite:///{tmp_path / 'f.db'}\nsources:\n  - {{name: town, url: 'https://t.example/f'}}\n")
    store = Store.open(f"sqlite:///{tmp_path / 'f.db'}")
    with store.begin() as conn:
        story = conn.execute(stories.insert().values(lead_id=None, created=now())).inserted_primary_key[0]
        conn.execute(articles.insert().values(key="k", source="town", url="https://t.example/\x1b[31m", story_id=story,
                                              canonical="https://t.example/a", title=NASTY, published=now(),
                                              fetched=now()))
        conn.execute(sources.insert().values(name="town", url="https://t.example/f", configured_url="https://t.example/f",
                                             failures=1, last_success=now(),
                                             last_error=f"fetch: https://t.example/f: HTTP 500: {NASTY}"))
    store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_API_URL")}
    for command in (["articles", "list"], ["status"], ["sources", "status"]):
        run = subprocess.run([sys.executable, "-m", "feedletter.cli", *command, "--config", str(path)], env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, (command, run.stderr)
        assert "\x1b" not in run.stdout + run.stderr and "\u202e" not in run.stdout + run.stderr, command
    listed = subprocess.run([sys.executable, "-m", "feedletter.cli", "articles", "list", "--config", str(path)],
                            env=env, capture_output=True, text=True, timeout=120).stdout
    assert "Clear\\x1b[2J" in listed and listed.count("\t") == 4  # one line, five fields
