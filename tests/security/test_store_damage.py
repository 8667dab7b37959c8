"""A store that looks valid but is not: an empty file, a file damaged mid-way (issue 19)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from feedletter.errors import StoreError
from feedletter.schema import articles, stories
from feedletter.store import Store, now

COMMANDS = [["status"], ["articles", "list"], ["subscribers", "list", "-n", "weekly"], ["gather"], ["digest", "weekly"]]


def _config(tmp_path: Path, store: Path) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(f"store: sqlite:///{store}\nallow_private: true\nsources:\n"
                    "  - {name: town, url: 'http://127.0.0.1:9/feed.xml'}\n"
                    "newsletters:\n  - {name: weekly, title: Weekly, provider: file}\n")
    return path


def _run(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_API_URL", "FEEDLETTER_DEBUG"))}
    return subprocess.run([sys.executable, "-m", "feedletter.cli", *args, "--config", str(config)], env=env,
                          capture_output=True, text=True, timeout=120, cwd=config.parent)


def test_an_empty_store_file_is_refused_not_taken_for_a_new_store(tmp_path: Path) -> None:
    store = tmp_path / "feedletter.db"
    store.touch()
    with pytest.raises(StoreError, match=r"empty \(0 bytes\)"):
        Store.open(f"sqlite:///{store}")
    config = _config(tmp_path, store)
    run = _run(config, "status")
    assert run.returncode == 1 and store.stat().st_size == 0
    assert run.stderr.strip().count("\n") == 0 and "feedletter status --init" in run.stderr, run.stderr
    started = _run(config, "status", "--init")
    assert started.returncode == 0, started.stderr
    assert store.stat().st_size > 0 and _run(config, "status").returncode == 0


@pytest.mark.parametrize("start", ["second page", "middle"])
def test_a_store_damaged_mid_file_is_one_line_from_every_command(tmp_path: Path, start: str) -> None:
    path = tmp_path / "feedletter.db"
    store = Store.open(f"sqlite:///{path}")
    with store.begin() as conn:
        story = conn.execute(stories.insert().values(lead_id=None, created=now())).inserted_primary_key[0]
        conn.execute(articles.insert(), [
            {"key": f"k{i}", "source": "town", "url": f"https://x.example/{i}", "canonical": f"https://x.example/{i}",
             "title": f"Post {i}", "published": now(), "fetched": now(), "text": "words " * 200, "story_id": story}
            for i in range(400)])
    store.close()
    data = bytearray(path.read_bytes())
    # From the second page the schema is gone too, and opening fails; from the middle only rows are,
    # and the store opens and fails in whatever query reads them.
    cut = 4096 if start == "second page" else len(data) // 2
    data[cut:] = b"\xab" * (len(data) - cut)
    path.write_bytes(bytes(data))
    config = _config(tmp_path, path)
    failed = []
    for command in COMMANDS:
        run = _run(config, *command)
        lines = [line for line in run.stderr.splitlines() if line.strip()]
        # A command that never reads a damaged page may well succeed; one that does says so in a line.
        if run.returncode != 0:
            # One line says it (after a progress line, for a run), with no traceback and no retries.
            said = [line for line in lines if "damaged" in line]
            assert len(said) == 1 and said == lines[-1:] and lines[-1].startswith("store: "), (command, run.stderr)
            failed.append(command[0])
    assert "status" in failed  # status reads every page: it is where an operator looks
    assert failed == [c[0] for c in COMMANDS] if start == "second page" else len(failed) >= 2, failed
    # Nothing above tried to "repair" it (which would lose what a backup could still give back).
    # Whether quick_check raises or lists the damage depends on which pages the cut hits.
    with sa.create_engine(f"sqlite:///{path}").connect() as conn:
        try:
            found = conn.exec_driver_sql("PRAGMA quick_check").scalar()
        except sa.exc.DatabaseError:
            found = "malformed"
    assert found != "ok"
