"""Conversation state (aiogram FSM) rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import FsmRecord


class FsmRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, key: str) -> FsmRecord | None:
        return await self.session.get(FsmRecord, key)

    async def put(
        self, key: str, now: datetime, *, state: str | None = None, data: dict[str, Any] | None
    ) -> None:
        """Store ``state`` (or, with ``data`` given, the data) for ``key``; empty rows vanish."""
        record = await self.get(key)
        if record is None:
            if state is None and not data:
                return  # clearing what was never there
            record = FsmRecord(key=key, state=None, data={}, updated_at=now)
            self.session.add(record)
        if data is None:
            record.state = state
        else:
            record.data = dict(data)
        record.updated_at = now
        if record.state is None and not record.data:
            await self.session.delete(record)
        await self.session.flush()

    async def delete_for_user(self, user_id: int) -> None:
        """Forget every conversation of one user (their data was deleted)."""
        await self.session.execute(delete(FsmRecord).where(FsmRecord.key.like(f"%:{user_id}:%")))

    async def keys(self) -> list[str]:
        return list(await self.session.scalars(select(FsmRecord.key)))
