"""Conversation state outlives the process: in the database by default, in Redis for replicas."""

from __future__ import annotations

import os

import pytest
from aiogram.fsm.storage.base import StorageKey
from aiogram.fsm.storage.redis import RedisStorage
from redis.asyncio import Redis
from sqlalchemy import select

from bot.app import create_dispatcher, create_services
from bot.fsm import SqlFsmStorage
from care.clock import FrozenClock
from storage.models import FsmRecord
from storage.repos.fsm import FsmRepo
from tests.conftest import make_settings

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
