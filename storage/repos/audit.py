"""The audit log: who did what, when. Rows are only ever added."""

from __future__ import annotations

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import AuditEntry, Reward, SurveyResponse, Ticket


class AuditRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, entry: AuditEntry) -> AuditEntry:
        self.session.add(entry)
        await self.session.flush()
        return entry

    async def recent(
        self, *, limit: int = 50, action: str | None = None, actor_telegram_id: int | None = None
    ) -> list[AuditEntry]:
        """The newest entries first, optionally for one action or one actor."""
        query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
        if action is not None:
            query = query.where(AuditEntry.action == action)
        if actor_telegram_id is not None:
            query = query.where(AuditEntry.actor_telegram_id == actor_telegram_id)
        return list(await self.session.scalars(query))

    async def page(
        self,
        *,
        limit: int,
        offset: int,
        action_prefix: str | None = None,
        actor_telegram_id: int | None = None,
    ) -> tuple[list[AuditEntry], int]:
        """One page of entries, newest first, and how many match in all.

        ``action_prefix`` keeps one kind of action: ``purchase`` matches ``purchase.record``.
        """
        conditions: list[ColumnElement[bool]] = []
        if action_prefix is not None:
            conditions.append(AuditEntry.action.startswith(f"{action_prefix}.", autoescape=True))
        if actor_telegram_id is not None:
            conditions.append(AuditEntry.actor_telegram_id == actor_telegram_id)
        total = await self.session.scalar(select(func.count(AuditEntry.id)).where(*conditions))
        rows = await self.session.scalars(
            select(AuditEntry)
            .where(*conditions)
            .order_by(AuditEntry.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return list(rows), int(total or 0)

    async def members_of_tickets(self, ticket_ids: list[int]) -> dict[int, int]:
        """``{ticket id: member id}``: whose conversation an entry about a ticket was."""
        if not ticket_ids:
            return {}
        rows = await self.session.execute(
            select(Ticket.id, Ticket.member_id).where(Ticket.id.in_(ticket_ids))
        )
        return {ticket_id: member_id for ticket_id, member_id in rows}

    async def members_of_responses(self, response_ids: list[int]) -> dict[int, int]:
        """``{survey response id: member id}``: whose score an entry about a response was."""
        if not response_ids:
            return {}
        rows = await self.session.execute(
            select(SurveyResponse.id, SurveyResponse.member_id).where(
                SurveyResponse.id.in_(response_ids)
            )
        )
        return {response_id: member_id for response_id, member_id in rows}

    async def reward_names(self, reward_ids: list[int]) -> dict[int, tuple[str, str]]:
        """``{reward id: (Chinese name, English name)}``."""
        if not reward_ids:
            return {}
        rows = await self.session.execute(
            select(Reward.id, Reward.name_zh, Reward.name_en).where(Reward.id.in_(reward_ids))
        )
        return {reward_id: (zh, en) for reward_id, zh, en in rows}
