"""Processed Telegram updates: the ledger that makes handling an update idempotent."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BindParameter, ColumnElement, delete, exists, false, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import ProcessedUpdate


def handled_before(update_id: int | BindParameter[int] | None) -> ColumnElement[bool]:
    """Whether ``update_id`` (a value or a bound parameter) was handled before, as a column to
    select beside other things."""
    if update_id is None:
        return false()
    return exists().where(ProcessedUpdate.update_id == update_id)


class ProcessedUpdateRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def seen(self, update_id: int) -> bool:
        """True if a unit of work for ``update_id`` has committed (here or on another replica)."""
        found = await self.session.scalar(
            select(ProcessedUpdate.update_id).where(ProcessedUpdate.update_id == update_id)
        )
        return found is not None

    def add(self, update_id: int, now: datetime) -> None:
        """Record ``update_id`` in the session's transaction; a second commit of the same id
        fails on the primary key, which undoes that whole second unit of work."""
        self.session.add(ProcessedUpdate(update_id=update_id, handled_at=now))

    async def prune(self, before: datetime) -> int:
        result = await self.session.execute(
            delete(ProcessedUpdate).where(ProcessedUpdate.handled_at < before)
        )
        return int(getattr(result, "rowcount", 0) or 0)
