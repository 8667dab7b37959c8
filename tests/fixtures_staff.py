"""Staff-side fixtures: a config with several newsletters, and stories written straight into the store.

Writing stories directly (rather than gathering the demo site) keeps the selection tests to
milliseconds and lets each test say exactly which story is old, long, pinned or covered twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feedletter.config import Config, load_config
from feedletter.schema import articles, stories
from feedletter.store import Store

AT = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
SUMMARY = "The council approved the new footbridge on Monday. Work starts in the spring and ends in May."

STAFF_CONFIG = """\
store: sqlite:///{db}
site: {{base_url: "https://news.example.com"}}
sources:
  - {{name: city-ledger, url: "https://ledger.example/feed", tags: [city]}}
  - {{name: valley-post, url: "https://valley.example/feed", tags: [city], priority: 1}}
  - {{name: clinic, url: "https://clinic.example/feed", tags: [health]}}
newsletters:
  - name: city
    title: City Weekly
    from: "City <news@city.example>"
    postal_address: "12 Mill Lane, Wrenford"
    select: {{tags: [city], since: all}}
  - name: health
    title: Health Weekly
    from: "Health <news@health.example>"
    postal_address: "12 Mill Lane, Wrenford"
    select: {{tags: [health], since: all}}
"""


def staff_config(tmp_path: Path, newsletters: str = "") -> Config:
    """The config above; ``newsletters`` replaces its newsletters block when given."""
    text = STAFF_CONFIG.format(db=tmp_path / "staff.db")
    if newsletters:
        text = text[:text.index("newsletters:")] + "newsletters:\n" + newsletters
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@pytest.fixture
def staff(tmp_path: Path) -> Iterator[tuple[Config, Store]]:
    config = staff_config(tmp_path)
    store = Store.open(config.store_url())
    yield config, store
    store.close()


_counter = iter(range(1, 1_000_000))


def put_story(store: Store, source: str, title: str, *, summary: str = SUMMARY, age: timedelta = timedelta(hours=1),
              text: str = "", also: tuple[str, ...] = (), created: datetime | None = None) -> int:
    """A summarized story led by one article of ``source``, also carried by ``also``; returns its id."""
    n = next(_counter)
    published = AT - age
    with store.begin() as conn:
        story_id = int(conn.execute(stories.insert().values(created=created or AT - age, summary=summary))
                       .inserted_primary_key[0])  # type: ignore[index]
        lead = 0
        for i, name in enumerate((source, *also)):
            url = f"https://{name}.example/{n}-{i}"
            row = conn.execute(articles.insert().values(
                key=url, source=name, url=url, canonical=url, title=title if i == 0 else f"{title} ({name})",
                published=published, fetched=published, text=text or f"{title}.", story_id=story_id,
                clustered=True))
            if i == 0:
                lead = int(row.inserted_primary_key[0])  # type: ignore[index]
        conn.execute(stories.update().where(stories.c.id == story_id).values(lead_id=lead))
    return story_id
