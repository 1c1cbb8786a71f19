"""aiogram FSM storage in our own database, so a half-finished conversation survives restarts.

Most updates come from people in no conversation at all, yet aiogram asks for the state of every
one. The storage keeps the set of keys that *may* have a row: read once from the table, and grown
before every write (so it is a superset even while a write is still uncommitted). A key outside
it has no row, and its state is answered without a query. Keys are never taken out: a stale key
costs one query, a missing one would lose a conversation. The set is this process's, which fits
this storage: it goes with ``SimpleEventIsolation``, one process; replicas use Redis
(``RedisFsmStorage``).

Both storages can forget a person (``forget_user``, the erasure hook of
``care.members.privacy.delete_member_data``): every state and data record in which they are the
user, in any chat, thread or destiny.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, DefaultKeyBuilder, StateType, StorageKey
from aiogram.fsm.storage.redis import RedisStorage
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

    async def forget_user(self, telegram_id: int) -> None:
        """Erase every conversation of this user, in the update's transaction when in one."""
        async with self._session() as session:
            await FsmRepo(session).delete_for_user(telegram_id)


class RedisFsmStorage(RedisStorage):
    """aiogram's Redis storage, which can also forget a person everywhere.

    aiogram keeps no index of a user's keys, and its keys never expire by default, so erasure
    looks for them: a ``SCAN`` over the keys that contain the user's id, each one checked by its
    shape. ``DefaultKeyBuilder`` writes ``prefix[:bot][:business]:chat[:thread]:user[:destiny]
    :part``: counted from the end the user's id has a fixed place whatever the optional parts
    are, so a chat, thread or bot whose number happens to equal the id is never mistaken for it.
    """

    async def forget_user(self, telegram_id: int) -> None:
        builder = self.key_builder
        if not isinstance(builder, DefaultKeyBuilder):
            raise TypeError(f"cannot find a user's keys with {type(builder).__name__}")
        sep = builder.separator
        user_at = -3 if builder.with_destiny else -2
        doomed: list[bytes | str] = []
        async for name in self.redis.scan_iter(
            match=f"{builder.prefix}{sep}*{sep}{telegram_id}{sep}*", count=1000
        ):
            text = name.decode() if isinstance(name, bytes) else name
            parts = text.split(sep)
            if (
                len(parts) >= 4
                and parts[-1] in ("state", "data")
                and (parts[user_at] == str(telegram_id))
            ):
                doomed.append(name)
        if doomed:
            await self.redis.delete(*doomed)
