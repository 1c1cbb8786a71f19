"""``birthday``: at ``BIRTHDAY_HOUR`` on the birthday, in the member's own time zone.

29 February birthdays are celebrated on 28 February in common years.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import Row, Select, select

from care.automation.rules import BIRTHDAY_HOUR, Trigger
from care.automation.triggers.base import BaseTrigger, Candidate
from care.core.quiet_hours import member_zone
from storage.models import Member


class Birthday(BaseTrigger[()]):
    trigger = Trigger.BIRTHDAY

    def query(self) -> Select[int]:
        # Every time zone's "today" lies within a day of UTC's: ask for the three month-days.
        days = [(self.now + timedelta(days=offset)).date() for offset in (-1, 0, 1)]
        month_days = {day.month * 100 + day.day for day in days}
        if any(is_leap_stand_in(day) for day in days):
            month_days.add(229)
        return select(Member.id).where(
            Member.birthday_md.in_(sorted(month_days)),
            ~self.touched_since(self.now - timedelta(days=300)),
        )

    def candidate(self, member: Member, row: Row[int]) -> Candidate | None:
        if member.birthday_md is None:
            return None
        zone = member_zone(member.timezone or self.config.default_timezone)
        today = self.now.astimezone(zone).date()
        for day in (today, today - timedelta(days=1)):
            if birthday_falls_on(member.birthday_md, day):
                due = datetime.combine(day, time(BIRTHDAY_HOUR), zone).astimezone(UTC)
                if self.start < due <= self.now:
                    return Candidate(member, f"{day.year}", due)
        return None


def is_leap_stand_in(day: date) -> bool:
    """28 February of a common year stands in for a 29 February birthday."""
    return day.month == 2 and day.day == 28 and not _is_leap(day.year)


def _is_leap(year: int) -> bool:
    return year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)


def birthday_falls_on(birthday_md: int, day: date) -> bool:
    """A birthday stored as month × 100 + day is celebrated on ``day``."""
    if birthday_md == day.month * 100 + day.day:
        return True
    return birthday_md == 229 and is_leap_stand_in(day)
