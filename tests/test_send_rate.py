"""One send rate for the whole bot: replicas share SEND_RATE and the per-chat limit via Redis.

Three delivery workers — three real processes, as three replicas would be — drain one outbox at
SEND_RATE=25. The simulator enforces Telegram's limits at exactly 25 a second and one message a
second per chat, and records when each message arrived: no second ever holds more than 25, no
chat gets two messages within a second, nobody gets anything twice, nothing is lost.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections import Counter
from pathlib import Path

import pytest
from redis.asyncio import Redis
from sqlalchemy import func, select

from care.core.clock import Clock
from care.core.config import CareConfig
from care.messaging.outbox import OutboxItem, enqueue_many
from care.messaging.ratelimit import RedisRateLimiter
from storage.db import create_engine, create_session_factory
from storage.enums import MessageKind, OutboxStatus
from storage.models import Base, OutboxMessage
from tests.conftest import TEST_TOKEN
from tests.simulator import BotAPISimulator

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
RATE = 25
FIRST_CHAT = 70_000


async def _redis_or_skip() -> Redis:
    redis = Redis.from_url(REDIS_URL)
    try:
        await redis.ping()
    except OSError:
        await redis.aclose()
        pytest.skip(f"no Redis at {REDIS_URL}")
    return redis


async def _forget_send_schedule(redis: Redis, namespace: str) -> None:
    keys = [key async for key in redis.scan_iter(f"{namespace}:*")]
    if keys:
        await redis.delete(*keys)


def max_in_any_second(times: list[float]) -> int:
    """The most messages whose arrival times fall within one second of each other."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


@pytest.mark.slow
async def test_three_replicas_at_send_rate_25_never_exceed_25_a_second(any_db_url: str) -> None:
    redis = await _redis_or_skip()
    await _forget_send_schedule(redis, "carebot:send")
    engine = create_engine(any_db_url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    factory = create_session_factory(engine)
    # 130 chats get one message each; four chats get five each (their limit is one a second).
    chats = [FIRST_CHAT + i for i in range(130)] + [FIRST_CHAT + 200 + i % 4 for i in range(20)]
    async with factory() as session, session.begin():
        await enqueue_many(
            session,
            Clock(),
            CareConfig(),
            (
                OutboxItem(f"rate:{i}", chat, f"Notice {i}", MessageKind.SERVICE)
                for i, chat in enumerate(chats)
            ),
        )
    command = [
        sys.executable, "-m", "care.messaging.delivery",
        "--database-url", any_db_url, "--token", TEST_TOKEN, "--rate", str(RATE),
        "--redis-url", REDIS_URL, "--batch-size", "10",
    ]  # fmt: skip
    try:
        async with BotAPISimulator() as sim:
            sim.register_chats(FIRST_CHAT, 300)
            sim.enforce_limits(global_rate=RATE, per_chat_rate=1.0)
            env = {**os.environ, "PYTHONPATH": str(ROOT)}
            workers = [
                await asyncio.create_subprocess_exec(
                    *command,
                    "--api-url",
                    sim.base_url,
                    cwd=ROOT,
                    env=env,
                    stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE,
                )
                for _ in range(3)
            ]
            outputs = await asyncio.wait_for(
                asyncio.gather(*(worker.communicate() for worker in workers)), 120
            )
            for worker, (_, errors) in zip(workers, outputs, strict=True):
                assert worker.returncode == 0, errors.decode()
            shares = [int(out.decode().split("sent=")[1].split(",")[0]) for out, _ in outputs]
            log = list(sim.sent_log)
            refused = sim.stats.errors_429

        by_chat: dict[int, list[float]] = {}
        for record in log:
            by_chat.setdefault(record.chat_id, []).append(record.timestamp)
        gaps = [b - a for times in by_chat.values() for a, b in itertools.pairwise(times)]
        assert refused == 0, "the simulator refused a message: a limit was broken"
        assert max_in_any_second([record.timestamp for record in log]) <= RATE
        assert gaps and min(gaps) >= 1.0 - 0.02  # the simulator's own tolerance
        # Zero duplicates, zero losses: every message arrived exactly once.
        assert Counter(record.chat_id for record in log) == Counter(chats)
        async with factory() as session:
            sent = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.SENT)
            )
        assert sent == len(chats)
        # The replicas shared the work (and so the rate): not one of them sending alone.
        assert sum(shares) == len(chats) and sorted(shares)[-2] > 0
    finally:
        await _forget_send_schedule(redis, "carebot:send")
        await redis.aclose()
        await engine.dispose()


async def test_a_429_on_one_replica_pauses_them_all() -> None:
    redis = await _redis_or_skip()
    namespace = "carebot:test-pause"
    await _forget_send_schedule(redis, namespace)
    try:
        first = RedisRateLimiter(redis, 1000, 0, namespace=namespace)
        second = RedisRateLimiter(Redis.from_url(REDIS_URL), 1000, 0, namespace=namespace)
        assert first.pause(0.5) == 0.5
        await asyncio.sleep(0.05)  # the pause reaches Redis in the background
        loop = asyncio.get_running_loop()
        started = loop.time()
        await second.acquire(1)
        assert loop.time() - started >= 0.4
        await second.redis.aclose()
    finally:
        await _forget_send_schedule(redis, namespace)
        await redis.aclose()


async def test_the_standalone_worker_reads_its_settings_from_dot_env(
    sqlite_url: str, tmp_path: Path
) -> None:
    from care.messaging.delivery.__main__ import _parse_args

    engine = create_engine(sqlite_url)
    factory = create_session_factory(engine)
    async with factory() as session, session.begin():
        await enqueue_many(
            session,
            Clock(),
            CareConfig(),
            [OutboxItem("env:1", 71_001, "Hi", MessageKind.SERVICE)],
        )
    await engine.dispose()
    async with BotAPISimulator() as sim:
        sim.register_chats(71_001, 1)
        (tmp_path / ".env").write_text(
            f"DATABASE_URL={sqlite_url}\nBOT_TOKEN={TEST_TOKEN}\n"
            f"TELEGRAM_API_URL={sim.base_url}\nSEND_RATE=7\n"
        )
        env = {
            k: v
            for k, v in os.environ.items()
            if k not in {"DATABASE_URL", "BOT_TOKEN", "TELEGRAM_API_URL", "SEND_RATE", "REDIS_URL"}
        }
        worker = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "care.messaging.delivery", cwd=tmp_path,
            env={**env, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, errors = await asyncio.wait_for(worker.communicate(), 120)
        assert worker.returncode == 0, errors.decode()
        assert "sent=1," in out.decode()
        assert [m.text for m in sim.chat_messages(71_001)] == ["Hi"]

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        args = _parse_args([])
    finally:
        os.chdir(cwd)
    assert args.rate == 7.0 and args.database_url == sqlite_url and args.redis_url is None
