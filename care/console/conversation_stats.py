"""The conversation figures of /stats: how fast the shop answers and resolves, what is open
now, and how shoppers rated each staff member's handling.

- **First response**: from the shopper's first message in a conversation (when it opened, for
  a conversation the shopper started) to the first staff answer after it. Conversations whose
  first message falls in the period and that have an answer count.
- **Resolution**: from a conversation's opening to its closing, for those closed in the
  period (a reopened and closed again conversation counts to its last closing).
- **Open / waiting**: conversations not closed now, and those of them where the shop owes the
  next answer.
- **Ratings**: the 1–5 rating a shopper gives after a conversation is closed
  (``Ticket.handling_rating``), credited to the staff member who closed it (or, failing that,
  to whom it was assigned), for conversations closed in the period.

Medians are read in SQL by position (one ``COUNT`` and one ``OFFSET`` query), with the
durations computed by the database in the same way on SQLite and PostgreSQL
(``care.core.sqltime.EpochDays``); nothing walks the conversations in Python.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, case, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from care.core.sqltime import SECONDS_PER_DAY, EpochDays
from storage.enums import MessageAuthor, TicketStatus
from storage.models import Ticket, TicketMessage
from storage.repos.tickets import UNCLOSED, waits_for_shop

_When = ColumnElement[Any] | QueryableAttribute[Any]


@dataclass(frozen=True, slots=True)
class StaffRating:
    """How shoppers rated the conversations one staff member closed (1–5)."""

    staff_telegram_id: int
    average: float
    count: int


@dataclass(frozen=True, slots=True)
class ConversationStats:
    open: int = 0
    waiting: int = 0
    first_response: timedelta | None = None
    first_response_count: int = 0
    resolution: timedelta | None = None
    resolution_count: int = 0
    ratings: list[StaffRating] = field(default_factory=list)


async def _median_seconds(
    session: AsyncSession, query: Select[float]
) -> tuple[timedelta | None, int]:
    """The median of the ``seconds`` column ``query`` selects, and over how many rows."""
    rows = query.subquery()
    count = int(await session.scalar(select(func.count()).select_from(rows)) or 0)
    if count == 0:
        return None, 0
    ordered = select(rows.c.seconds).order_by(rows.c.seconds)
    middle = [
        float(value)
        for value in await session.scalars(ordered.offset((count - 1) // 2).limit(2 - count % 2))
    ]
    return timedelta(seconds=round(sum(middle) / len(middle))), count


def _seconds_between(start: _When, end: _When) -> ColumnElement[float]:
    return ((EpochDays(end) - EpochDays(start)) * SECONDS_PER_DAY).label("seconds")


async def first_response(
    session: AsyncSession, since: datetime, until: datetime
) -> tuple[timedelta | None, int]:
    """The median time to the first staff answer, over conversations whose first shopper
    message came in ``[since, until]``, and how many were answered."""
    first_in = (
        select(
            TicketMessage.ticket_id.label("ticket_id"),
            func.min(TicketMessage.created_at).label("at"),
        )
        .where(TicketMessage.author == MessageAuthor.MEMBER.value)
        .group_by(TicketMessage.ticket_id)
        .subquery()
    )
    first_out = (
        select(
            first_in.c.ticket_id,
            first_in.c.at,
            func.min(TicketMessage.created_at).label("answered"),
        )
        .join(
            TicketMessage,
            and_(
                TicketMessage.ticket_id == first_in.c.ticket_id,
                TicketMessage.author == MessageAuthor.STAFF.value,
                TicketMessage.created_at >= first_in.c.at,
            ),
        )
        .where(first_in.c.at >= since, first_in.c.at <= until)
        .group_by(first_in.c.ticket_id, first_in.c.at)
        .subquery()
    )
    seconds = _seconds_between(first_out.c.at, first_out.c.answered)
    return await _median_seconds(session, select(seconds))


async def resolution(
    session: AsyncSession, since: datetime, until: datetime
) -> tuple[timedelta | None, int]:
    """The median time from opening to closing, over conversations closed in the period."""
    seconds = _seconds_between(Ticket.created_at, Ticket.closed_at)
    query = select(seconds).where(
        Ticket.status == TicketStatus.CLOSED.value,
        Ticket.closed_at >= since,
        Ticket.closed_at <= until,
    )
    return await _median_seconds(session, query)


async def staff_ratings(
    session: AsyncSession, since: datetime, until: datetime
) -> list[StaffRating]:
    """The average rating per staff member, best first (then by how many ratings)."""
    who = func.coalesce(Ticket.closed_by, Ticket.assigned_to).label("who")
    average = func.avg(Ticket.handling_rating)
    count = func.count(Ticket.handling_rating)
    rows = await session.execute(
        select(who, average, count)
        .where(
            Ticket.handling_rating.is_not(None),
            Ticket.closed_at >= since,
            Ticket.closed_at <= until,
            who.is_not(None),
        )
        .group_by(who)
        .order_by(average.desc(), count.desc(), who)
    )
    return [StaffRating(int(staff), float(avg), int(n)) for staff, avg, n in rows]


async def open_and_waiting(session: AsyncSession) -> tuple[int, int]:
    """Conversations not closed, and those of them waiting for the shop's answer (one query)."""
    waiting = func.sum(case((waits_for_shop(), 1), else_=0))
    row = (
        await session.execute(
            select(func.count(), func.coalesce(waiting, 0)).where(Ticket.status.in_(UNCLOSED))
        )
    ).one()
    return int(row[0]), int(row[1])


async def conversation_stats(
    session: AsyncSession, since: datetime, until: datetime
) -> ConversationStats:
    """Every conversation figure /stats shows, for the period ``[since, until]``."""
    open_count, waiting = await open_and_waiting(session)
    first, answered = await first_response(session, since, until)
    resolved, closed = await resolution(session, since, until)
    return ConversationStats(
        open=open_count,
        waiting=waiting,
        first_response=first,
        first_response_count=answered,
        resolution=resolved,
        resolution_count=closed,
        ratings=await staff_ratings(session, since, until),
    )
