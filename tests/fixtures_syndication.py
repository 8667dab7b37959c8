"""A store holding real rendered issues, for the syndication tests: stories are written straight into
the store (no network), then each issue goes through the digest stages (select, render with MJML, save).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest.mock import patch

import sqlalchemy as sa

from feedletter.config import Config, load_config
from feedletter.issue.digest import prepare_digest, save_issue
from feedletter.schema import articles, stories
from feedletter.store import Store

START = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
SOURCES = ("riverside-clinic", "city-ledger", "valley-post")
# Hostile text that must come out escaped or defused everywhere it is published.
HOSTILE_TITLE = 'Council <script>alert("t")</script> votes on the bridge'
HOSTILE_URL = "javascript:alert('also')"


def write_config(tmp_path: Path, *, feeds: str = "[rss, atom, json, stories]", per_page: int = 2,
                 hub: str | None = None, store: str | None = None, site: str = "", newsletter: str = "") -> Path:
    """``site``: more ``key: value`` items of the site mapping; ``newsletter``: more lines of the
    newsletter, each indented by four spaces."""
    hub_line = f", websub_hub: '{hub}'" if hub else ""
    text = f"""\
store: {store or 'sqlite:///' + str(tmp_path / 'feedletter.db')}
site: {{base_url: 'https://news.example.com/archive', archive_dir: public, title: Example News,
        archive_per_page: {per_page}{hub_line}{", " + site if site else ""}}}
sources:
{chr(10).join(f"  - {{name: {name}, url: 'https://{name}.example.org/feed.xml', tags: [local]}}" for name in SOURCES)}
newsletters:
  - name: weekly
    title: Riverside Weekly
    select: {{max_stories: 2, since: all}}
    from: 'Riverside Weekly <news@riverside.example>'
    postal_address: '12 Mill Lane, Wrenford'
    feeds: {feeds}
{newsletter}"""
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def story_title(n: int) -> str:
    return HOSTILE_TITLE if n == 1 else f"Story number {n} about the riverside"


# What each story is about: distinct subjects, so that selection gives each its own entry.
_TOPICS = ["a new ferry timetable for the harbour adds early crossings on weekdays and removes late boats",
           "the library's winter reading programme offers poetry workshops for children and evening lectures",
           "repairs to the old stone bridge at Mill Lane close the towpath until spring engineers warn",
           "a flu vaccination clinic at the school opens for pupils parents and teachers without appointment",
           "the council's budget vote on bus fares raises tickets while pensioners keep free travel",
           "a jazz festival in the market square brings trumpeters singers and food stalls for three nights",
           "flood defences along the canal get steel barriers pumps and higher walls after last winter",
           "the hospital's new maternity ward has twelve private rooms birthing pools and extra midwives",
           "a recycling scheme for garden waste collects leaves branches and grass cuttings every fortnight",
           "the football club's stadium plans include a larger stand floodlights and a covered concourse",
           "a heritage trail through the old mill explains waterwheels looms and weavers' cottages",
           "broadband cables laid under the high street bring gigabit speeds to shops and flats"]


def story_text(n: int) -> str:
    return f"Text {n}: {_TOPICS[n % len(_TOPICS)]}."


def add_stories(store: Store, first: int, count: int) -> None:
    """Stories ``first`` … ``first+count-1``; each has a lead and, from another source, a second telling."""
    with store.begin() as conn:
        for n in range(first, first + count):
            published = START + timedelta(days=n)
            sid = conn.execute(stories.insert().values(created=published, summary=(
                f"Summary of story {n}: the council & the clinic <b>agree</b>. It matters to readers."),
                summary_hash=f"h{n}")).inserted_primary_key[0]
            lead_source, other = SOURCES[n % 3], SOURCES[(n + 1) % 3]
            ids = []
            lead_url = HOSTILE_URL.replace("also", "lead") if n == 1 else f"https://{lead_source}.example.org/story-{n}"
            for source, url in ((lead_source, lead_url),
                                (other, HOSTILE_URL if n == 1 else f"https://{other}.example.org/s{n}")):
                row = conn.execute(articles.insert().values(
                    key=f"{source}-{n}", source=source, url=url, canonical=url, title=story_title(n),
                    published=published, fetched=published, text=story_text(n), clustered=True,
                    story_id=sid))
                ids.append(row.inserted_primary_key[0])
            conn.execute(stories.update().where(stories.c.id == sid).values(lead_id=ids[0]))


def add_issues(config: Config, store: Store, count: int) -> list[int]:
    """``count`` issues of two stories each, a week apart; returns their numbers."""
    with store.begin() as conn:
        known = int(conn.execute(sa.select(sa.func.count()).select_from(stories)).scalar_one())
    add_stories(store, known + 1, 2 * count)
    newsletter = config.newsletters[0]
    numbers = []
    for _ in range(count):
        with store.begin() as conn:
            done = int(conn.execute(sa.text("select count(*) from issues")).scalar_one())
        # As an older feedletter saved them, before issues left out stories with a javascript: link:
        # stores hold such issues, and publishing must still defuse what they carry.
        with patch("feedletter.issue.digest._checked", lambda newsletter, story: story):
            prepared = prepare_digest(config, store, newsletter, at=START + timedelta(days=60 + 7 * done, hours=1))
        assert prepared is not None
        save_issue(store, prepared)
        numbers.append(prepared.number)
    return numbers


def seeded(tmp_path: Path, issues: int = 5, **options: object) -> tuple[Config, Store]:
    config = load_config(write_config(tmp_path, **options))  # type: ignore[arg-type]
    store = Store.open(config.store_url())
    add_issues(config, store, issues)
    return config, store
