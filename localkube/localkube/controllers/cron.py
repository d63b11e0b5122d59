"""Standard 5-field cron schedules (the syntax CronJob's `spec.schedule` takes), parsed and stepped through.

Fields: minute, hour, day of month, month (or JAN-DEC), day of week (0-7, or SUN-SAT; 7 is Sunday), each `*`, `?`,
a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a comma-separated list of those; and the descriptors
`@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`. As in cron, when both day fields are
restricted a day matching either one fires; when one is `*` only the other counts.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

_DESCRIPTORS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
                "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *", "@hourly": "0 * * * *"}
_MONTHS = {name: i for i, name in enumerate(
    ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), start=1)}
_DAYS = {name: i for i, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}


class CronError(ValueError):
    """The schedule is not valid cron syntax (the message says which field and why)."""


@dataclass(frozen=True)
class Schedule:
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_starred: bool
    weekdays_starred: bool

    def day_matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        by_date = day.day in self.days
        by_weekday = (day.isoweekday() % 7) in self.weekdays
        if self.days_starred or self.weekdays_starred:
            return by_date and by_weekday
        return by_date or by_weekday

    def next_after(self, moment: dt.datetime, horizon_days: int = 366 * 5) -> dt.datetime | None:
        """The first firing strictly after `moment` (same tzinfo), or None within the horizon (e.g. Feb 30)."""
        start = moment.replace(second=0, microsecond=0) + dt.timedelta(minutes=1)
        hours, minutes = sorted(self.hours), sorted(self.minutes)
        for offset in range(horizon_days):
            day = start.date() + dt.timedelta(days=offset)
            if not self.day_matches(day):
                continue
            for hour in hours:
                if offset == 0 and hour < start.hour:
                    continue
                for minute in minutes:
                    if offset == 0 and hour == start.hour and minute < start.minute:
                        continue
                    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=moment.tzinfo)
        return None

    def last_until(self, earliest: dt.datetime, now: dt.datetime, limit: int = 100) -> tuple[dt.datetime | None, int]:
        """The latest firing in (earliest, now], and how many there were (`limit + 1` meaning: more than limit)."""
        last, count, moment = None, 0, earliest
        while count <= limit:
            moment = self.next_after(moment)
            if moment is None or moment > now:
                return last, count
            last, count = moment, count + 1
        window = dt.timedelta(minutes=1)  # too many to walk: look back from now in doubling windows
        while True:
            moment, found = max(earliest, now - window), None
            while (moment := self.next_after(moment)) is not None and moment <= now:
                found = moment
            if found is not None or now - window <= earliest:
                return found or last, count
            window *= 2


def _value(text: str, names: dict[str, int], field: str) -> int:
    upper = text.upper()
    if upper in names:
        return names[upper]
    if not text.isdigit():
        raise CronError(f"failed to parse int from {text}: {field}")
    return int(text)


def _field(text: str, low: int, high: int, field: str, names: dict[str, int] | None = None) -> tuple[set[int], bool]:
    """The values a field allows, and whether it was `*` (or `?`)."""
    names = names or {}
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = _value(step_text, {}, field) if step_text else 1
        if step_text and step == 0:
            raise CronError(f"step of range should be a positive number: {part}")
        if base in ("*", "?"):
            first, last = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            first, last = _value(a, names, field), _value(b, names, field)
        else:
            first = _value(base, names, field)
            last = high if step_text else first
        if first < low or last > high or first > last:
            raise CronError(f"end of range ({last}) above maximum ({high}): {part}" if last > high
                            else f"beginning of range ({first}) beyond end of range ({last}): {part}"
                            if first > last else f"beginning of range ({first}) below minimum ({low}): {part}")
        values.update(range(first, last + 1, step))
    return values, text.split("/")[0] in ("*", "?")


def parse(schedule: str) -> Schedule:
    text = " ".join(schedule.split())
    text = _DESCRIPTORS.get(text.lower(), text)
    fields = text.split(" ")
    if len(fields) != 5:
        raise CronError(f"expected exactly 5 fields, found {len(fields)}: {schedule}")
    minutes, _ = _field(fields[0], 0, 59, "minute")
    hours, _ = _field(fields[1], 0, 23, "hour")
    days, days_starred = _field(fields[2], 1, 31, "day of month")
    months, _ = _field(fields[3], 1, 12, "month", _MONTHS)
    weekdays, weekdays_starred = _field(fields[4], 0, 7, "day of week", _DAYS)
    weekdays = {d % 7 for d in weekdays}
    return Schedule(frozenset(minutes), frozenset(hours), frozenset(days), frozenset(months), frozenset(weekdays),
                    days_starred, weekdays_starred)
