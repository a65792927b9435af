"""Partition windows: the unit every read, transform and write works on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class InvalidPartitionKey(ValueError):
    """A partition key that is not an ISO calendar date."""


def parse_partition_key(key: str) -> date:
    """Validate a partition key before it can reach a SQL predicate or a path."""
    if not isinstance(key, str) or not _ISO_DATE.match(key):
        raise InvalidPartitionKey(f"partition key {key!r} is not a date of the form YYYY-MM-DD")
    try:
        return date.fromisoformat(key)
    except ValueError as error:
        raise InvalidPartitionKey(f"partition key {key!r} is not a real calendar date: {error}") from None


def describe_days(days: list[date] | tuple[date, ...]) -> str:
    """Days for a message: consecutive days as one range, e.g. `2013-01-03, 2013-01-05..2013-01-07`."""
    ranges: list[list[date]] = []
    for day in sorted(days):
        if ranges and (day - ranges[-1][-1]).days == 1:
            ranges[-1].append(day)
        else:
            ranges.append([day])
    return ", ".join(
        group[0].isoformat() if len(group) == 1 else f"{group[0].isoformat()}..{group[-1].isoformat()}"
        for group in ranges
    )


@dataclass(frozen=True)
class PartitionWindow:
    """A half-open range of days [start, end)."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if not isinstance(self.start, date) or not isinstance(self.end, date):
            raise InvalidPartitionKey("a partition window is bounded by dates")
        if self.end <= self.start:
            raise InvalidPartitionKey(f"empty partition window [{self.start}, {self.end})")

    @classmethod
    def for_keys(cls, first_key: str, last_key: str) -> PartitionWindow:
        return cls(parse_partition_key(first_key), parse_partition_key(last_key) + timedelta(days=1))

    @classmethod
    def from_datetimes(cls, start: datetime, end: datetime) -> PartitionWindow:
        return cls(start.date(), end.date())

    @classmethod
    def single_day(cls, day: date) -> PartitionWindow:
        return cls(day, day + timedelta(days=1))

    def days(self) -> Iterator[date]:
        day = self.start
        while day < self.end:
            yield day
            day += timedelta(days=1)

    @property
    def last_day(self) -> date:
        """The window's last day, inclusive: what a partition range ends on."""
        return self.end - timedelta(days=1)

    @property
    def day_count(self) -> int:
        return (self.end - self.start).days

    def shifted_start(self, days_before: int) -> PartitionWindow:
        """The window widened to include `days_before` earlier days."""
        return PartitionWindow(self.start - timedelta(days=days_before), self.end)

    def predicate(self, column: str) -> str:
        # Both bounds are date objects (validated on construction), so this literal is safe SQL.
        return f"`{column}` >= DATE'{self.start.isoformat()}' AND `{column}` < DATE'{self.end.isoformat()}'"

    def __str__(self) -> str:
        if self.last_day == self.start:
            return self.start.isoformat()
        return f"{self.start.isoformat()}..{self.last_day.isoformat()}"
