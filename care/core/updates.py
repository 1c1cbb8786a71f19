"""Idempotent updates: an update whose unit of work committed is never handled again.

Telegram re-sends an update it got no 2xx for, and a replica may have committed it just before
the answer was lost; the id is recorded in the update's own transaction, so "handled" and
"recorded" commit together or not at all, on every replica sharing the database.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.repos.updates import ProcessedUpdateRepo

# Telegram keeps an unconfirmed update for 24 hours: an id older than two days cannot come back.
KEEP_PROCESSED = timedelta(days=2)


async def already_handled(session: AsyncSession, update_id: int) -> bool:
    return await ProcessedUpdateRepo(session).seen(update_id)


def record_handled(session: AsyncSession, update_id: int, now: datetime) -> None:
    ProcessedUpdateRepo(session).add(update_id, now)


async def prune_handled(session_factory: async_sessionmaker[AsyncSession], now: datetime) -> int:
    """Forget update ids too old to be re-sent; returns how many went."""
    async with session_factory() as session, session.begin():
        return await ProcessedUpdateRepo(session).prune(now - KEEP_PROCESSED)
