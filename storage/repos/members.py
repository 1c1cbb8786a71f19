"""Members: look-ups by every identity a member has, and creation."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import BigInteger, Integer, Select, bindparam, func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db import before_begin
from storage.models import Member, MemberInterest, PointsEntry
from storage.repos.loyalty import (
    PRELOADED_HISTORY,
    TIERS_FINGERPRINT,
    tiers_fingerprint_query,
)
from storage.repos.staff import staff_version_query
from storage.repos.updates import handled_before


@cache
def _context_statements() -> tuple[Select[Member, int, bool, str], Select[int, bool]]:
    """The update-context SELECTs, built once: every update runs one, and building the
    statement (and its cache key) anew cost about as much CPU as running it. An ``update_id``
    of None matches no row, so it reads as "not handled before". A member's also brings the
    tiers along as one string (``storage.repos.loyalty.TIERS_FINGERPRINT``)."""
    version = func.coalesce(staff_version_query(), 0)
    handled = handled_before(bindparam("update_id", type_=BigInteger))
    member = select(Member, version, handled, tiers_fingerprint_query()).where(
        Member.telegram_id == bindparam("telegram_id", type_=BigInteger)
    )
    return member, select(version, handled)


@cache
def _context_with_history_statement() -> Select[Any]:
    """The member's context SELECT with their latest ledger entries joined on (the member's
    columns repeat on each row; one row with no entry when there is none): /points needs both,
    and a second statement would cost another round trip."""
    member, _stranger = _context_statements()
    return (
        member.add_columns(PointsEntry)
        .outerjoin(PointsEntry, PointsEntry.member_id == Member.id)
        .order_by(PointsEntry.id.desc())
        .limit(bindparam("history", type_=Integer))
    )


class MemberRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, member_id: int) -> Member | None:
        return await self.session.get(Member, member_id)

    async def by_telegram_id(self, telegram_id: int) -> Member | None:
        return await self.session.scalar(select(Member).where(Member.telegram_id == telegram_id))

    async def for_update_context(
        self, telegram_id: int, update_id: int | None, history: int = 0
    ) -> tuple[Member | None, int, bool]:
        """The member behind an update, the staff version and whether the update was handled
        before, in one SELECT for a member (two for a stranger).

        Interests stay unloaded (``load_interests`` where they are used); the staff version
        tells the caller whether its in-process copy of the staff roles is still current. With
        ``history``, the member's latest ledger entries (up to that many) come in the same
        SELECT and ``PointsRepo.history`` answers from them in this session.
        """
        member_statement, stranger_statement = _context_statements()
        params: dict[str, Any] = {"telegram_id": telegram_id, "update_id": update_id}
        # At an update's start, before its transaction: a read-only update then costs one
        # round trip on PostgreSQL, not BEGIN, SELECT and COMMIT (see ``before_begin``).
        async with before_begin(self.session):
            if history > 0:
                params["history"] = history
                statement = _context_with_history_statement()
                rows = (await self.session.execute(statement, params)).all()
                row = rows[0] if rows else None
                if row is not None:
                    entries = [entry for *_context, entry in rows if entry is not None]
                    self.session.info[PRELOADED_HISTORY] = (row[0].id, history, entries)
            else:
                row = (await self.session.execute(member_statement, params)).first()
            if row is not None:
                self.session.info[TIERS_FINGERPRINT] = row[3]
                return row[0], int(row[1]), bool(row[2])
            stranger = (await self.session.execute(stranger_statement, params)).one()
        return None, int(stranger[0]), bool(stranger[1])

    async def load_interests(self, member: Member) -> list[MemberInterest]:
        """The member's interests, read now unless this session has them already."""
        if "interests" in inspect(member).unloaded:
            await self.session.refresh(member, ["interests"])
        return member.interests

    async def locales_by_telegram_id(self, telegram_ids: list[int]) -> dict[int, str]:
        rows = await self.session.execute(
            select(Member.telegram_id, Member.locale).where(Member.telegram_id.in_(telegram_ids))
        )
        return {telegram_id: locale for telegram_id, locale in rows if telegram_id}

    async def names_by_telegram_id(
        self, telegram_ids: list[int]
    ) -> dict[int, tuple[str | None, str | None]]:
        """Name and @username of the members behind these Telegram ids (an erased member has
        neither, and no Telegram id left to be found by)."""
        rows = await self.session.execute(
            select(Member.telegram_id, Member.name, Member.username).where(
                Member.telegram_id.in_(telegram_ids)
            )
        )
        return {
            telegram_id: (name, username) for telegram_id, name, username in rows if telegram_id
        }

    async def by_ids(self, member_ids: list[int]) -> list[Member]:
        return list(await self.session.scalars(select(Member).where(Member.id.in_(member_ids))))

    async def by_code(self, member_code: str) -> Member | None:
        return await self.session.scalar(
            select(Member).where(Member.member_code == member_code.upper())
        )

    async def code_taken(self, member_code: str) -> bool:
        found = await self.session.scalar(
            select(Member.id).where(Member.member_code == member_code)
        )
        return found is not None

    async def add(self, member: Member) -> Member:
        self.session.add(member)
        await self.session.flush()
        return member

    async def count_registered_since(self, since: datetime) -> int:
        return int(
            await self.session.scalar(
                select(func.count()).select_from(Member).where(Member.registered_at >= since)
            )
            or 0
        )
