"""/delete_me with ``REDIS_URL`` set: the person's conversation state leaves Redis too.

With several replicas aiogram keeps conversation state in Redis, with no expiry and no index
of a user's keys; erasure has to find every key in which they are the user (their private
chat, a group they wrote in, a forum thread) and leave everyone else's alone. Runs against the
real Redis (a database of its own, emptied before and after).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram.fsm.storage.base import DefaultKeyBuilder, StorageKey
from redis.asyncio import Redis
from sqlalchemy import select

from bot.fsm import RedisFsmStorage
from storage.models import Member
from tests.conftest import running_bot
from tests.journey_helpers import label, register, wait_button, without_throttling
from tests.simulator import BotAPISimulator

REDIS_URL = os.environ.get("TEST_REDIS_ERASURE_URL", "redis://127.0.0.1:6379/14")
PERSON = 7_123_456_789
OTHER = 7_000_000_001
GROUP = -1_001_234_567_890
SECRET = "Borogove confession"


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except OSError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    await client.flushdb()
    try:
        yield client
    finally:
        await client.flushdb()
        await client.aclose()


async def _everything(redis: Redis) -> list[tuple[str, str]]:
    found = []
    async for name in redis.scan_iter(match="*"):
        kind = (await redis.type(name)).decode()
        value = (await redis.get(name) or b"").decode() if kind == "string" else ""
        found.append((name.decode(), value))
    return found


async def test_delete_me_erases_the_persons_fsm_keys_in_redis(
    sim: BotAPISimulator, sqlite_url: str, clock: Any, redis: Redis
) -> None:
    async with running_bot(sim, sqlite_url, clock, redis_url=REDIS_URL) as running:
        app = without_throttling(running)
        storage = app.dp.storage
        assert isinstance(storage, RedisFsmStorage)
        user = app.user(PERSON, first_name="Jabber", language_code="en")
        await register(user, "en")
        bot_id = app.bot.id
        # Conversations elsewhere: a group, a forum thread; and another person's, which stays.
        for key in (
            StorageKey(bot_id=bot_id, chat_id=PERSON, user_id=PERSON),
            StorageKey(bot_id=bot_id, chat_id=GROUP, user_id=PERSON),
            StorageKey(bot_id=bot_id, chat_id=GROUP, user_id=PERSON, thread_id=77),
            # A thread whose number is the person's id does not make OTHER's key theirs.
            StorageKey(bot_id=bot_id, chat_id=GROUP, user_id=OTHER, thread_id=PERSON),
            StorageKey(bot_id=bot_id, chat_id=OTHER, user_id=OTHER),
        ):
            await storage.set_state(key, "Feedback:text")
            await storage.set_data(key, {"draft": SECRET, "user": key.user_id})
        before = await _everything(redis)
        assert sum(str(PERSON) in name for name, _ in before) >= 6
        assert sum(SECRET in value for _, value in before) == 5

        await user.send("/delete_me")
        await wait_button(user, label("en", "delete.yes"))
        await user.press(label("en", "delete.yes"))
        await user.expect("All your data has been deleted")
        await app.settle()

        after = await _everything(redis)
        fsm_keys = [name for name, _ in after if name.startswith("fsm:")]
        assert sorted(fsm_keys) == sorted(
            [
                f"fsm:{GROUP}:{PERSON}:{OTHER}:state",
                f"fsm:{GROUP}:{PERSON}:{OTHER}:data",
                f"fsm:{OTHER}:{OTHER}:state",
                f"fsm:{OTHER}:{OTHER}:data",
            ]
        )
        # Nothing the person wrote stays; other keys naming them (the per-user order queue,
        # flood control) are bookkeeping without content that expires within minutes.
        assert sum(SECRET in value for _, value in after) == 2
        for name, _ in after:
            if str(PERSON) in name and not name.startswith("fsm:"):
                assert await redis.ttl(name) > 0, name
        async with app.session() as session:
            assert await session.scalar(select(Member).where(Member.telegram_id == PERSON)) is None


async def test_forget_user_reads_every_shape_of_key(redis: Redis) -> None:
    """With bot ids and destinies in the key, the user's place counted from the end still holds."""
    storage = RedisFsmStorage(
        redis=redis, key_builder=DefaultKeyBuilder(with_bot_id=True, with_destiny=True)
    )
    keys = [
        StorageKey(bot_id=1, chat_id=PERSON, user_id=PERSON),
        StorageKey(bot_id=2, chat_id=PERSON, user_id=PERSON, destiny="other"),
        StorageKey(bot_id=PERSON, chat_id=GROUP, user_id=OTHER, thread_id=PERSON),
        StorageKey(bot_id=1, chat_id=PERSON, user_id=OTHER, destiny=str(PERSON)),
    ]
    for key in keys:
        await storage.set_state(key, "S:s")
        await storage.set_data(key, {"x": 1})
    await storage.forget_user(PERSON)
    assert [await storage.get_state(key) for key in keys] == [None, None, "S:s", "S:s"]
    assert [await storage.get_data(key) for key in keys] == [{}, {}, {"x": 1}, {"x": 1}]
