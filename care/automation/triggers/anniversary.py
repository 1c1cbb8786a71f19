"""``anniversary`` (each whole year of membership) and ``nps_cycle`` (every ``delay`` of it).

Both ask the registration dates that fall one period back from the window, for as many periods
as the oldest membership spans: one indexed range per period.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Row, Select, and_, func, or_, select

from care.automation.rules import Trigger
from care.automation.triggers.base import BaseTrigger, Candidate
from storage.models import Member

MAX_YEARS = 30


def add_years(value: datetime, years: int) -> datetime:
    """The same calendar moment ``years`` later (29 February becomes 28 February)."""
    try:
        return value.replace(year=value.year + years)
    except ValueError:
        return value.replace(year=value.year + years, day=28)


class _Periodic(BaseTrigger[()]):
    # How long the oldest member has been one: bounds the periods worth asking about.
    membership_span = timedelta(0)

    async def prepare(self) -> None:
        first = await self.session.scalar(select(func.min(Member.registered_at)))
        self.membership_span = self.now - first if first is not None else timedelta(0)

    def periods_ago(
        self, period: Callable[[int], datetime], count: int
    ) -> list[ColumnElement[bool]]:
        """Registered within the window, shifted back by period ``k``, for k in 1..count."""
        return [
            and_(
                Member.registered_at > period(k) - (self.now - self.start),
                Member.registered_at <= period(k),
            )
            for k in range(1, count + 1)
        ]


class Anniversary(_Periodic):
    trigger = Trigger.ANNIVERSARY

    def query(self) -> Select[int]:
        years = min(MAX_YEARS, self.membership_span.days // 365 + 1)
        ranges = self.periods_ago(lambda k: add_years(self.now, -k), years)
        return select(Member.id).where(
            or_(*ranges), ~self.touched_since(self.now - timedelta(days=300))
        )

    def candidate(self, member: Member, row: Row[int]) -> Candidate | None:
        assert member.registered_at is not None
        for years in range(1, MAX_YEARS + 1):
            due = add_years(member.registered_at, years)
            if due > self.now:
                return None
            if due > self.start:
                return Candidate(member, f"year:{years}", due, {"years": years})
        return None


class NpsCycle(_Periodic):
    trigger = Trigger.NPS_CYCLE

    def query(self) -> Select[int]:
        cycles = self.membership_span // self.rule.delay + 1
        ranges = self.periods_ago(lambda k: self.now - self.rule.delay * k, cycles)
        return select(Member.id).where(or_(*ranges), *self.repeat_guard())

    def candidate(self, member: Member, row: Row[int]) -> Candidate | None:
        assert member.registered_at is not None
        cycle = int((self.now - member.registered_at) / self.rule.delay)
        due = member.registered_at + self.rule.delay * cycle
        if cycle < 1 or due <= self.start:
            return None
        return Candidate(member, f"cycle:{cycle}", due)
