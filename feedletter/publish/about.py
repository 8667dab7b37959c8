"""What a newsletter is, as a new reader meets it: title, description, logo, schedule in words, and
where to subscribe. The archive's pages and the web app's subscribe form show the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from feedletter.config import Config
from feedletter.config_fields import Schedule
from feedletter.config_newsletters import Logo, Newsletter

_DAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
_DAY_NAMES = {name[:3].upper(): number for number, name in enumerate(_DAYS)}


@dataclass(frozen=True)
class About:
    name: str
    title: str
    description: str
    schedule: str  # "every Monday at 08:00 (Europe/Berlin)", or "" when the cron has no short wording
    logo: Logo | None
    subscribe_url: str  # "" when the site names no place to subscribe

    @property
    def paragraphs(self) -> list[str]:
        return [" ".join(part.split()) for part in re.split(r"\n\s*\n", self.description) if part.strip()]


def about(config: Config, newsletter: Newsletter) -> About:
    return About(name=newsletter.name, title=newsletter.title, description=newsletter.description.strip(),
                 schedule=schedule_words(newsletter.schedule), logo=newsletter.logo,
                 subscribe_url=subscribe_url(config, newsletter))


def subscribe_url(config: Config, newsletter: Newsletter) -> str:
    """``site.subscribe_url`` for this newsletter, placeholders filled; "" when it is null."""
    template = config.site.subscribe_url
    if not template:
        return ""
    return template.replace("{base_url}", config.site.base_url.rstrip("/")).replace("{newsletter}", newsletter.name)


def schedule_words(schedule: Schedule | None) -> str:
    """The common crons in words ("every day at 07:30 (UTC)"); "" for the rest, rather than a guess."""
    if schedule is None:
        return ""
    minute, hour, day, month, weekday = schedule.cron.split()
    if not (minute.isdigit() and hour.isdigit()) or month != "*":
        return ""
    at = f"at {int(hour):02d}:{int(minute):02d} ({schedule.timezone})"
    if day == "*" and weekday == "*":
        return f"every day {at}"
    if day == "*":
        days = _weekdays(weekday)
        return f"every {days} {at}" if days else ""
    if day.isdigit() and weekday == "*":
        return f"on the {_ordinal(int(day))} of every month {at}"
    return ""


def _weekdays(field: str) -> str:
    """"MON" -> "Monday", "1-5" -> "weekday", "MON,THU" -> "Monday and Thursday"; "" if unusual."""
    numbers: set[int] = set()
    for part in field.split(","):
        ends = [_weekday(end) for end in part.split("-")]
        if len(ends) > 2 or any(end is None for end in ends):
            return ""
        first, last = (int(end or 0) for end in (ends[0], ends[-1]))
        if last < first:
            return ""
        numbers |= {n % 7 for n in range(first, last + 1)}  # cron's 7 is Sunday, as 0 is
    found = sorted(numbers, key=lambda n: (n + 6) % 7)  # Monday first
    if len(found) == 7:
        return "day"
    if found == [1, 2, 3, 4, 5]:
        return "weekday"
    names = [_DAYS[n] for n in found]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _weekday(value: str) -> int | None:
    if value.isdigit():
        return int(value) if int(value) <= 7 else None
    return _DAY_NAMES.get(value.upper())


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
