"""aiogram FSM storage in our own database, so a half-finished conversation survives restarts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.clock import Clock
from storage.db import current_session, unit_of_work
from storage.repos.fsm import FsmRepo


def storage_key(key: StorageKey) -> str:
    return ":".join(
        str(part)
        for part in (
            key.bot_id,
            key.chat_id,
            key.user_id,
            key.thread_id or "",
            key.business_connection_id or "",
            key.destiny,
        )
    )


class SqlFsmStorage(BaseStorage):
    """Inside an update, reads and writes join the update's own session (one commit, no second
    writer); anywhere else each call is its own short transaction."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.session_factory = session_factory
        self.clock = clock

    @asynccontextmanager
    async def _session(self) -> AsyncIterator[AsyncSession]:
        joined = current_session()
        if joined is not None:
            yield joined
            return
        async with unit_of_work(self.session_factory) as session:
            yield session

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = state.state if isinstance(state, State) else state
        async with self._session() as session:
            await FsmRepo(session).put(storage_key(key), self.clock.now(), state=value, data=None)

    async def get_state(self, key: StorageKey) -> str | None:
        async with self._session() as session:
            record = await FsmRepo(session).get(storage_key(key))
            return record.state if record else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        async with self._session() as session:
            await FsmRepo(session).put(storage_key(key), self.clock.now(), data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with self._session() as session:
            record = await FsmRepo(session).get(storage_key(key))
            return dict(record.data) if record else {}

    async def close(self) -> None:
        return None
