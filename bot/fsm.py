"""aiogram FSM storage in our own database, so a half-finished conversation survives restarts.

Most updates come from people in no conversation at all, yet aiogram asks for the state of every
one. The storage keeps the set of keys that *may* have a row: read once from the table, and grown
before every write (so it is a superset even while a write is still uncommitted). A key outside
it has no row, and its state is answered without a query. Keys are never taken out: a stale key
costs one query, a missing one would lose a conversation. The set is this process's, which fits
this storage: it goes with ``SimpleEventIsolation``, one process; replicas use Redis.
"""

from __future__ import annotations

import asyncio
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
        self._keys: set[str] | None = None
        self._keys_loading = asyncio.Lock()

    async def _known_keys(self) -> set[str]:
        if self._keys is None:
            async with self._keys_loading:
                if self._keys is None:
                    async with unit_of_work(self.session_factory) as session:
                        self._keys = set(await FsmRepo(session).keys())
        return self._keys

    async def _may_exist(self, key: str) -> bool:
        return key in await self._known_keys()

    async def _will_write(self, key: str) -> None:
        (await self._known_keys()).add(key)

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
        name = storage_key(key)
        if value is None and not await self._may_exist(name):
            return  # clearing what was never there
        await self._will_write(name)
        async with self._session() as session:
            await FsmRepo(session).put(name, self.clock.now(), state=value, data=None)

    async def get_state(self, key: StorageKey) -> str | None:
        name = storage_key(key)
        if not await self._may_exist(name):
            return None
        async with self._session() as session:
            record = await FsmRepo(session).get(name)
            return record.state if record else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        name = storage_key(key)
        if not data and not await self._may_exist(name):
            return
        await self._will_write(name)
        async with self._session() as session:
            await FsmRepo(session).put(name, self.clock.now(), data=dict(data))

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        name = storage_key(key)
        if not await self._may_exist(name):
            return {}
        async with self._session() as session:
            record = await FsmRepo(session).get(name)
            return dict(record.data) if record else {}

    async def close(self) -> None:
        return None
