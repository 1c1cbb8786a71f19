"""Conversation state outlives the process: in the database by default, in Redis for replicas."""

from __future__ import annotations

import os
import time

import pytest
from aiogram import Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import RedisStorage
from aiogram.types import Message
from redis.asyncio import Redis
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.app import create_dispatcher, create_services
from bot.fsm import SqlFsmStorage
from care.core.clock import FrozenClock
from storage.models import AuditEntry, FsmRecord
from storage.repos.fsm import FsmRepo
from tests.conftest import make_settings, running_bot
from tests.simulator import BotAPISimulator

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
KEY = StorageKey(bot_id=1, chat_id=42, user_id=42)


async def test_state_and_data_survive_a_new_storage_over_the_same_database(
    sqlite_url: str, clock: FrozenClock
) -> None:
    services = create_services(make_settings(sqlite_url), clock)
    try:
        first = SqlFsmStorage(services.session_factory, clock)
        await first.set_state(KEY, "Registration:phone")
        await first.set_data(KEY, {"locale": "en", "name": "Mei"})

        second = SqlFsmStorage(services.session_factory, clock)  # as after a restart
        assert await second.get_state(KEY) == "Registration:phone"
        assert await second.get_data(KEY) == {"locale": "en", "name": "Mei"}
        assert await second.get_state(StorageKey(bot_id=1, chat_id=7, user_id=7)) is None

        await second.set_state(KEY, None)
        await second.set_data(KEY, {})
        async with services.session_factory() as session:
            assert (await session.scalars(select(FsmRecord))).all() == []
    finally:
        await services.engine.dispose()


async def test_forgetting_a_user_removes_their_conversations(
    sqlite_url: str, clock: FrozenClock
) -> None:
    services = create_services(make_settings(sqlite_url), clock)
    try:
        storage = SqlFsmStorage(services.session_factory, clock)
        await storage.set_state(KEY, "Feedback:text")
        await storage.set_state(StorageKey(bot_id=1, chat_id=43, user_id=43), "Feedback:text")
        async with services.session_factory() as session:
            await FsmRepo(session).delete_for_user(42)
            await session.commit()
        assert await storage.get_state(KEY) is None
        assert await storage.get_state(StorageKey(bot_id=1, chat_id=43, user_id=43)) is not None
    finally:
        await services.engine.dispose()


async def test_with_redis_url_the_dispatcher_keeps_state_in_redis(
    sqlite_url: str, clock: FrozenClock
) -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.ping()
    except OSError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    finally:
        await redis.aclose()
    services = create_services(make_settings(sqlite_url, redis_url=REDIS_URL), clock)
    dp = create_dispatcher(services)
    try:
        assert isinstance(dp.storage, RedisStorage)
        await dp.storage.set_state(KEY, "Registration:name")
        assert await dp.storage.get_state(KEY) == "Registration:name"
        await dp.storage.set_state(KEY, None)
    finally:
        await dp.storage.close()
        await services.engine.dispose()


async def test_a_handler_that_writes_and_then_changes_state_commits_both_at_once(
    sim: BotAPISimulator, sqlite_url: str, clock: FrozenClock
) -> None:
    """On SQLite a second writer would wait for the update's own lock; the FSM joins instead."""

    async def remember(message: Message, session: AsyncSession, state: FSMContext) -> None:
        session.add(AuditEntry(action="remember", created_at=clock.now()))
        await session.flush()  # the update now holds SQLite's write lock
        await state.set_state("Demo:waiting")
        await state.update_data(note="kept")
        await message.answer("noted")

    async def explode(message: Message, state: FSMContext) -> None:
        await state.set_state("Demo:never")
        raise RuntimeError("the update fails after changing state")

    async with running_bot(sim, sqlite_url, clock) as app:
        demo = Router(name="demo")
        demo.message.register(remember, Command("remember"))
        demo.message.register(explode, Command("explode"))
        app.dp.include_router(demo)
        app.dp.sub_routers.insert(0, app.dp.sub_routers.pop())
        user = app.user(3001, language_code="en")

        began = time.monotonic()
        await user.send("/remember")
        assert (await user.next_message(timeout=3)).text == "noted"
        assert time.monotonic() - began < 2.0
        await app.settle()
        key = StorageKey(bot_id=app.bot.id, chat_id=3001, user_id=3001)
        assert await app.dp.storage.get_state(key) == "Demo:waiting"
        assert await app.dp.storage.get_data(key) == {"note": "kept"}

        await user.send("/explode")
        await user.next_message()  # the apology
        await app.settle()
        assert await app.dp.storage.get_state(key) == "Demo:waiting"  # rolled back with it
