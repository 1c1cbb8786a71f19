"""Flood control: a flooding shopper waits their turn (or is told to slow down); others do not."""

from __future__ import annotations

import asyncio
import os
import time
import uuid

import pytest
from redis.asyncio import Redis

from handlers.middlewares import MemoryFloodGate, RedisFloodGate
from tests.conftest import RunningBot

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


async def test_memory_gate_allows_a_burst_then_spaces_and_finally_drops() -> None:
    gate = MemoryFloodGate(rate=10.0, burst=3, max_wait=0.25)
    delays = [await gate.delay(7) for _ in range(6)]
    assert delays[:3] == [0.0, 0.0, 0.0]
    assert delays[3] == pytest.approx(0.1, abs=0.02)
    assert delays[4] == pytest.approx(0.2, abs=0.02)
    assert delays[5] is None
    assert await gate.delay(8) == 0.0  # another user is not affected


async def test_redis_gate_is_shared_by_replicas() -> None:
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.ping()
    except OSError:
        pytest.skip(f"no Redis at {REDIS_URL}")
    user_id = uuid.uuid4().int % 10**12
    try:
        replica_a = RedisFloodGate(redis, rate=10.0, burst=2, max_wait=0.15)
        replica_b = RedisFloodGate(redis, rate=10.0, burst=2, max_wait=0.15)
        assert await replica_a.delay(user_id) == 0.0
        assert await replica_b.delay(user_id) == 0.0
        assert await replica_a.delay(user_id) == pytest.approx(0.1, abs=0.03)
        assert await replica_b.delay(user_id) is None
    finally:
        await redis.delete(f"carebot:flood:{user_id}")
        await redis.aclose()


async def test_a_flooding_shopper_is_slowed_but_loses_nothing_and_others_are_served(
    app: RunningBot,
) -> None:
    flooder = app.user(2001, language_code="en")
    other = app.user(2002, language_code="en")
    for _ in range(10):
        await flooder.send("/help")
    began = time.monotonic()
    await other.send("/help")
    await other.next_message(timeout=2)
    assert time.monotonic() - began < 1.0

    answers = [await flooder.next_message(timeout=5) for _ in range(10)]
    assert all("What I can do" in answer.text for answer in answers)


async def test_a_shopper_far_over_the_limit_is_told_once_to_slow_down(app: RunningBot) -> None:
    flooder = app.user(2003, language_code="zh")
    for _ in range(25):
        await flooder.send("/help")
    await asyncio.sleep(4)
    texts = [message.text for message in flooder.messages]
    assert texts.count("您发送得太快了，请稍等片刻。") == 1
    assert 6 < sum("我能做什么" in text for text in texts) < 25
