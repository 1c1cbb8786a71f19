"""The delivery worker through the Bot API simulator, with the real aiogram Bot.

Messages go out and are recorded; 403 marks the member unreachable for good; 429 slows the flow
down; 5xx is retried; consent and quiet hours are checked again at send time; a worker killed
mid-broadcast and started again sends nobody anything twice.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.clock import Clock, FrozenClock
from care.core.config import CareConfig
from care.messaging.delivery import INTERRUPTED, DeliveryWorker, in_flight_bound
from care.messaging.outbox import OutboxItem, campaign_counts, enqueue, enqueue_many
from care.messaging.ratelimit import RateLimiter
from storage.db import create_engine, create_session_factory
from storage.enums import MessageKind, OutboxStatus
from storage.models import Base, Campaign, Member, OutboxMessage
from tests.conftest import T0, TEST_TOKEN
from tests.simulator import BotAPISimulator
from tests.simulator.users import TINY_PNG

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
async def factory(sqlite_url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(sqlite_url)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def bot(sim: BotAPISimulator) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(sim.base_url))
    bot = Bot(TEST_TOKEN, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))
    yield bot
    await bot.session.close()


def worker_for(
    bot: Bot,
    factory: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    rate: float = 200.0,
    max_attempts: int = 5,
    **kwargs: object,
) -> DeliveryWorker:
    config = CareConfig(send_rate=rate, max_attempts=max_attempts)
    return DeliveryWorker(bot, factory, config, clock, **kwargs)  # type: ignore[arg-type]


async def add_members(
    factory: async_sessionmaker[AsyncSession],
    chat_ids: list[int],
    *,
    marketing: bool = True,
    tz: str = "Asia/Shanghai",
) -> list[int]:
    async with factory() as session, session.begin():
        await session.execute(
            insert(Member),
            [
                {
                    "telegram_id": chat_id,
                    "chat_id": chat_id,
                    "member_code": f"D{chat_id:09d}",
                    "status": "active",
                    "timezone": tz,
                    "marketing_opt_in": marketing,
                    "created_at": T0,
                }
                for chat_id in chat_ids
            ],
        )
        rows = await session.execute(
            select(Member.chat_id, Member.id).where(Member.chat_id.in_(chat_ids))
        )
        by_chat = {chat_id: member_id for chat_id, member_id in rows}
    return [by_chat[chat_id] for chat_id in chat_ids]


async def queue(
    factory: async_sessionmaker[AsyncSession],
    clock: Clock,
    key: str,
    chat_id: int,
    text: str,
    *,
    kind: MessageKind = MessageKind.MARKETING,
    member_id: int | None = None,
    **kwargs: object,
) -> int:
    async with factory() as session, session.begin():
        member = await session.get(Member, member_id) if member_id else None
        row = await enqueue(
            session,
            clock,
            CareConfig(),
            key=key,
            chat_id=chat_id,
            text=text,
            kind=kind,
            member=member,
            **kwargs,  # type: ignore[arg-type]
        )
        assert row is not None
        return row.id


async def rows_by_key(factory: async_sessionmaker[AsyncSession]) -> dict[str, OutboxMessage]:
    async with factory() as session:
        rows = await session.scalars(select(OutboxMessage))
        return {row.idempotency_key: row for row in rows}


# ------------------------------------------------------------------------ sending


async def test_messages_go_out_and_are_recorded_sent(
    sim: BotAPISimulator, bot: Bot, factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    li, ann = sim.user(2001, "Li", started=True), sim.user(2002, "Ann", started=True)
    li_id, ann_id = await add_members(factory, [li.id, ann.id])
    markup = {"inline_keyboard": [[{"text": "Rate us", "callback_data": "sv:1:abc"}]]}
    await queue(
        factory,
        clock,
        "welcome:li",
        li.id,
        "Welcome, <b>Li</b> &amp; co",
        member_id=li_id,
        reply_markup=markup,
    )
    photo_id = sim.register_photo(TINY_PNG)[-1]["file_id"]
    await queue(
        factory,
        clock,
        "spring:ann",
        ann.id,
        "<i>Spring</i> sale",
        member_id=ann_id,
        photo=photo_id,
    )
    owner = sim.user(900001, "Owner", started=True)
    await queue(factory, clock, "alert:staff", owner.id, "Staff alert", kind=MessageKind.ALERT)

    worker = worker_for(bot, factory, clock)
    assert await worker.drain_once() == 3

    assert [m.text for m in li.messages] == ["Welcome, Li & co"]
    assert [m.text for m in owner.messages] == ["Staff alert"]
    assert li.messages[0].inline_buttons == [["Rate us"]]
    assert li.messages[0].parse_mode == "HTML"
    assert ann.messages[0].photo == TINY_PNG and ann.messages[0].caption == "Spring sale"
    rows = await rows_by_key(factory)
    for key, user in (("welcome:li", li), ("spring:ann", ann)):
        row = rows[key]
        assert row.status == OutboxStatus.SENT and row.sent_at == clock.now()
        assert row.telegram_message_id == user.messages[0].message_id
        assert row.attempts == 1 and row.locked_until is None
    # Nothing left: another pass sends nothing.
    assert await worker.drain_once() == 0
    assert sim.stats.sent == 3


async def test_alerts_and_service_answers_overtake_a_broadcast(
    sim: BotAPISimulator, bot: Bot, factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    sim.register_chats(30_000, 40)
    members = await add_members(factory, list(range(30_000, 30_040)))
    async with factory() as session, session.begin():
        await enqueue_many(
            session,
            clock,
            CareConfig(),
            (
                OutboxItem(f"b:{i}", 30_000 + i, "Sale", MessageKind.MARKETING, member_id=m)
                for i, m in enumerate(members)
            ),
        )
    await queue(
        factory,
        clock,
        "ticket:answer",
        30_039,
        "We fixed it",
        kind=MessageKind.SERVICE,
        member_id=members[-1],
        respect_quiet_hours=False,
    )
    await worker_for(bot, factory, clock, batch_size=10).drain_once()
    assert sim.sent_log[0].chat_id == 30_039
    assert len(sim.sent_log) == 41


async def test_a_member_who_blocked_the_bot_is_marked_unreachable_and_never_retried(
    sim: BotAPISimulator, bot: Bot, factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    li, ann = sim.user(2101, "Li", started=True), sim.user(2102, "Ann", started=True)
    li_id, ann_id = await add_members(factory, [li.id, ann.id])
    await li.block()
    await queue(factory, clock, "a:li", li.id, "Hello Li", member_id=li_id)
    await queue(factory, clock, "a:ann", ann.id, "Hello Ann", member_id=ann_id)
    worker = worker_for(bot, factory, clock)
    await worker.drain_once()

    rows = await rows_by_key(factory)
    assert rows["a:li"].status == OutboxStatus.SKIPPED
    assert rows["a:li"].skip_reason == "unreachable"
    assert "blocked" in (rows["a:li"].last_error or "")
    assert rows["a:ann"].status == OutboxStatus.SENT
    async with factory() as session:
        blocked = await session.get(Member, li_id)
        assert blocked is not None and blocked.blocked_at == clock.now()
    assert sim.stats.errors_403 == 1

    # Later messages to Li are skipped without asking Telegram again, even after time passes.
    clock.advance(hours=2)
    await queue(factory, clock, "b:li", li.id, "Hello again", member_id=li_id)
    await queue(
        factory, clock, "c:li", li.id, "Your answer", member_id=li_id, kind=MessageKind.SERVICE
    )
    await worker.drain_once()
    rows = await rows_by_key(factory)
    assert {rows[k].skip_reason for k in ("b:li", "c:li")} == {"unreachable"}
    assert sim.stats.errors_403 == 1
    assert li.messages == []
    assert worker.stats.by_reason == {"unreachable": 3}


async def test_consent_and_deletion_are_checked_again_at_send_time(
    sim: BotAPISimulator, bot: Bot, factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    li, ann = sim.user(2201, "Li", started=True), sim.user(2202, "Ann", started=True)
    li_id, ann_id = await add_members(factory, [li.id, ann.id])
    await queue(factory, clock, "offer:li", li.id, "20% off", member_id=li_id)
    await queue(
        factory,
        clock,
        "survey:li",
        li.id,
        "How was it?",
        member_id=li_id,
        kind=MessageKind.SERVICE,
    )
    await queue(factory, clock, "offer:ann", ann.id, "20% off", member_id=ann_id)
    # After queueing, Li withdraws marketing consent and Ann deletes her data.
    async with factory() as session, session.begin():
        li_row, ann_row = await session.get(Member, li_id), await session.get(Member, ann_id)
        assert li_row is not None and ann_row is not None
        li_row.marketing_opt_in = False
        ann_row.status, ann_row.deleted_at = "deleted", clock.now()

    await worker_for(bot, factory, clock).drain_once()
    rows = await rows_by_key(factory)
    assert (rows["offer:li"].status, rows["offer:li"].skip_reason) == ("skipped", "no_consent")
    assert (rows["offer:ann"].status, rows["offer:ann"].skip_reason) == ("skipped", "deleted")
    assert rows["survey:li"].status == OutboxStatus.SENT
    assert [m.text for m in li.messages] == ["How was it?"]
    assert ann.messages == []


async def test_quiet_hours_hold_until_the_members_morning(
    sim: BotAPISimulator, bot: Bot, factory: async_sessionmaker[AsyncSession]
) -> None:
    clock = FrozenClock(datetime(2026, 3, 2, 14, 0, tzinfo=UTC))  # 22:00 in Shanghai
    li = sim.user(2301, "Li", started=True)
    (li_id,) = await add_members(factory, [li.id])
    await queue(factory, clock, "nudge:li", li.id, "Good morning offer", member_id=li_id)
    worker = worker_for(bot, factory, clock)
    assert await worker.drain_once() == 0
    clock.set(datetime(2026, 3, 3, 0, 59, tzinfo=UTC))  # 08:59 local: still quiet
    assert await worker.drain_once() == 0
    assert li.messages == []
    clock.set(datetime(2026, 3, 3, 1, 0, tzinfo=UTC))  # 09:00 local
    assert await worker.drain_once() == 1
    assert [m.text for m in li.messages] == ["Good morning offer"]


async def test_a_chat_that_does_not_exist_fails_without_retry(
    sim: BotAPISimulator, bot: Bot, factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    await queue(factory, clock, "ghost", 999_999, "Anyone?", kind=MessageKind.ALERT)
    worker = worker_for(bot, factory, clock)
    await worker.drain_once()
    clock.advance(hours=1)
    await worker.drain_once()
    row = (await rows_by_key(factory))["ghost"]
    assert row.status == OutboxStatus.FAILED and "chat not found" in (row.last_error or "")
    assert sim.stats.errors_400 == 1


# ----------------------------------------------------------------- failures, limits


async def test_a_server_error_is_retried_with_backoff_and_delivered_once(
    sim: BotAPISimulator, bot: Bot, factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    li = sim.user(2401, "Li", started=True)
    (li_id,) = await add_members(factory, [li.id])
    await queue(factory, clock, "r:li", li.id, "Retry me", member_id=li_id)
    sim.fail_next("sendMessage", status=502)
    worker = worker_for(bot, factory, clock)
    await worker.drain_once()
    row = (await rows_by_key(factory))["r:li"]
    assert (row.status, row.attempts) == (OutboxStatus.QUEUED, 1)
    assert row.not_before == clock.now() + timedelta(seconds=2)
    assert "Bad Gateway" in (row.last_error or "")
    clock.advance(seconds=1)
    assert await worker.drain_once() == 0  # the backoff holds
    clock.advance(seconds=1)
    await worker.drain_once()
    row = (await rows_by_key(factory))["r:li"]
    assert (row.status, row.attempts) == (OutboxStatus.SENT, 2)
    assert [m.text for m in li.messages] == ["Retry me"]


async def test_repeated_server_errors_give_up_after_max_attempts(
    sim: BotAPISimulator, bot: Bot, factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    li = sim.user(2501, "Li", started=True)
    (li_id,) = await add_members(factory, [li.id])
    await queue(factory, clock, "x:li", li.id, "Doomed", member_id=li_id)
    sim.fail_next("sendMessage", status=503, count=10)
    worker = worker_for(bot, factory, clock, max_attempts=2)
    for _ in range(3):
        await worker.drain_once()
        clock.advance(minutes=1)
    row = (await rows_by_key(factory))["x:li"]
    assert (row.status, row.attempts) == (OutboxStatus.FAILED, 2)
    assert (row.last_error or "").startswith("gave up after 2 attempts")
    assert sim.stats.injected == 2


async def test_an_unreachable_api_is_retried(
    sim: BotAPISimulator, factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    li = sim.user(2551, "Li", started=True)
    (li_id,) = await add_members(factory, [li.id])
    await queue(factory, clock, "n:li", li.id, "Through the outage", member_id=li_id)
    dead = Bot(
        TEST_TOKEN, session=AiohttpSession(api=TelegramAPIServer.from_base("http://127.0.0.1:9"))
    )
    try:
        await worker_for(dead, factory, clock).drain_once()
    finally:
        await dead.session.close()
    row = (await rows_by_key(factory))["n:li"]
    assert (row.status, row.attempts) == (OutboxStatus.QUEUED, 1)
    assert "ClientConnectorError" in (row.last_error or "")


async def test_a_request_that_timed_out_is_not_sent_again(
    sim: BotAPISimulator, bot: Bot, factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    li = sim.user(2561, "Li", started=True)
    (li_id,) = await add_members(factory, [li.id])
    await queue(factory, clock, "t:li", li.id, "Slow network", member_id=li_id)
    sim.method_latency["sendmessage"] = 1.5  # the answer comes too late
    worker = worker_for(bot, factory, clock, request_timeout=1)
    await worker.drain_once()
    sim.method_latency.clear()
    clock.advance(hours=1)
    await worker.drain_once()
    row = (await rows_by_key(factory))["t:li"]
    assert row.status == OutboxStatus.FAILED
    assert (row.last_error or "").startswith("uncertain")
    # Whether it arrived is unknown; what is certain is that it was asked for only once.
    assert sim.stats.per_method["sendmessage"] == 1


async def test_the_worker_keeps_telegrams_limits_without_a_single_429(
    sim: BotAPISimulator, bot: Bot, factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    sim.enforce_limits(global_rate=60, per_chat_rate=1.0)
    sim.register_chats(40_000, 60)
    members = await add_members(factory, list(range(40_000, 40_060)))
    for i, member_id in enumerate(members):
        await queue(factory, clock, f"l:{i}", 40_000 + i, "Hi", member_id=member_id)
    # Two more for one chat: they must leave a second apart.
    for n in range(2):
        await queue(factory, clock, f"same:{n}", 40_000, f"Part {n}", kind=MessageKind.ALERT)
    worker = worker_for(bot, factory, clock, rate=50)
    started = time.monotonic()
    assert await worker.drain_once() == 62
    elapsed = time.monotonic() - started
    assert sim.stats.errors_429 == 0 and sim.stats.sent == 62
    assert elapsed >= 61 / 50 * 0.95  # the configured rate, not faster
    same_chat = [r.timestamp for r in sim.sent_log if r.chat_id == 40_000]
    assert len(same_chat) == 3
    gaps = [b - a for a, b in pairwise(same_chat)]
    assert min(gaps) >= 0.98


async def test_a_forced_429_pauses_the_flow_and_everything_arrives_once(
    sim: BotAPISimulator, bot: Bot, factory: async_sessionmaker[AsyncSession], clock: FrozenClock
) -> None:
    sim.enforce_limits(global_rate=100, per_chat_rate=1.0)
    sim.register_chats(41_000, 20)
    members = await add_members(factory, list(range(41_000, 41_020)))
    for i, member_id in enumerate(members):
        await queue(factory, clock, f"p:{i}", 41_000 + i, f"Hi {i}", member_id=member_id)
    sim.fail_next("sendMessage", status=429, retry_after=1)
    worker = worker_for(bot, factory, clock, rate=50)
    started = time.monotonic()
    await worker.drain_once()
    assert worker.stats.rate_limited == 1 and sim.stats.errors_429 == 1
    # The first request got the 429: the flow stopped for the whole retry_after, then the
    # other 19 went at 50/s (0.4 s without the pause).
    assert sim.sent_log[0].timestamp - started >= 0.95
    assert time.monotonic() - started >= 1.3
    rows = await rows_by_key(factory)
    requeued = [r for r in rows.values() if r.status == OutboxStatus.QUEUED]
    assert len(requeued) == 1 and requeued[0].not_before == clock.now() + timedelta(seconds=1)
    clock.advance(seconds=1)
    await worker.drain_once()
    per_chat = Counter(record.chat_id for record in sim.sent_log)
    assert per_chat == Counter(range(41_000, 41_020))
    assert sim.stats.errors_429 == 1


async def test_the_limiter_spaces_sends_evenly() -> None:
    limiter = RateLimiter(200, per_chat_interval=0.05)
    loop = asyncio.get_running_loop()
    times: list[float] = []

    async def one(chat_id: int) -> None:
        await limiter.acquire(chat_id)
        times.append(loop.time())

    await asyncio.gather(*(one(n % 5) for n in range(100)))
    assert times[-1] - times[0] >= 99 / 200 * 0.95
    assert limiter.pause(10_000) == limiter.max_pause


# ---------------------------------------------------------------- stop and crash


async def test_a_clean_stop_hands_unsent_messages_back_to_the_queue(
    sim: BotAPISimulator, bot: Bot, factory: async_sessionmaker[AsyncSession]
) -> None:
    sim.register_chats(42_000, 60)
    members = await add_members(factory, list(range(42_000, 42_060)))
    clock = Clock()
    async with factory() as session, session.begin():
        await enqueue_many(
            session,
            clock,
            CareConfig(quiet_start=datetime.min.time(), quiet_end=datetime.min.time()),
            (
                OutboxItem(f"s:{i}", 42_000 + i, "Hi", MessageKind.MARKETING, member_id=m)
                for i, m in enumerate(members)
            ),
        )
    worker = worker_for(bot, factory, clock, rate=40)
    stop = asyncio.Event()
    running = asyncio.create_task(worker.run(stop))
    for _ in range(400):
        if sim.stats.sent >= 15:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(running, 10)
    rows = (await rows_by_key(factory)).values()
    states = Counter(row.status for row in rows)
    assert states[OutboxStatus.SENDING] == 0 and states[OutboxStatus.FAILED] == 0
    assert states[OutboxStatus.SENT] == sim.stats.sent
    assert states[OutboxStatus.QUEUED] == 60 - sim.stats.sent > 0


async def test_killing_the_worker_mid_broadcast_and_restarting_sends_nobody_anything_twice(
    sim: BotAPISimulator, factory: async_sessionmaker[AsyncSession], sqlite_url: str
) -> None:
    total, first_chat, batch = 2000, 50_000, 50
    sim.register_chats(first_chat, total)
    members = await add_members(factory, list(range(first_chat, first_chat + total)))
    clock = Clock()
    async with factory() as session, session.begin():
        campaign = Campaign(name="crash", audience={"kind": "all"}, template="x", created_at=T0)
        session.add(campaign)
        await session.flush()
        campaign_id = campaign.id
        await enqueue_many(
            session,
            clock,
            CareConfig(quiet_start=datetime.min.time(), quiet_end=datetime.min.time()),
            (
                OutboxItem(
                    f"c:{i}",
                    first_chat + i,
                    f"Spring sale {i}",
                    MessageKind.MARKETING,
                    member_id=m,
                    campaign_id=campaign_id,
                )
                for i, m in enumerate(members)
            ),
        )

    lease = 1.0
    command = [
        sys.executable,
        "-m",
        "care.messaging.delivery",
        "--database-url",
        sqlite_url,
        "--api-url",
        sim.base_url,
        "--token",
        TEST_TOKEN,
        "--rate",
        "1000",
        "--batch-size",
        str(batch),
        "--lease-seconds",
        str(lease),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60  # a loaded machine starts Python slowly
    while sim.stats.sent < total // 3:
        assert first.returncode is None, "the worker ended before it could be killed"
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    await first.wait()
    sent_before_restart = sim.stats.sent
    assert sent_before_restart < total

    await asyncio.sleep(lease + 0.2)  # the dead worker's lease runs out
    second = await asyncio.create_subprocess_exec(
        *command,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, errors = await asyncio.wait_for(second.communicate(), 90)
    assert second.returncode == 0, errors.decode()

    per_chat = Counter(record.chat_id for record in sim.sent_log)
    assert max(per_chat.values()) == 1, "somebody got the broadcast twice"
    async with factory() as session:
        counts = await campaign_counts(session, campaign_id)
        interrupted = set(
            await session.scalars(
                select(OutboxMessage.chat_id).where(OutboxMessage.last_error == INTERRUPTED)
            )
        )
        sent_chats = set(
            await session.scalars(
                select(OutboxMessage.chat_id).where(OutboxMessage.status == OutboxStatus.SENT)
            )
        )
        left = await session.scalar(
            select(func.count())
            .select_from(OutboxMessage)
            .where(OutboxMessage.status.in_([OutboxStatus.QUEUED, OutboxStatus.SENDING]))
        )
    assert left == 0
    assert counts["sent"] + counts["failed"] == total
    assert counts["failed"] == len(interrupted) <= in_flight_bound(batch)
    # Everyone recorded as sent got it once; everyone else is one of the in-flight rows.
    assert sent_chats <= set(per_chat)
    missing = set(range(first_chat, first_chat + total)) - set(per_chat)
    assert missing <= interrupted
    assert sim.stats.sent > sent_before_restart


async def test_two_replicas_drain_one_outbox_without_sending_anything_twice(
    sim: BotAPISimulator, bot: Bot, any_db_url: str, clock: FrozenClock
) -> None:
    engines = [create_engine(any_db_url), create_engine(any_db_url)]
    try:
        async with engines[0].begin() as connection:
            await connection.run_sync(Base.metadata.create_all)
        factories = [create_session_factory(engine) for engine in engines]
        sim.register_chats(60_000, 300)
        members = await add_members(factories[0], list(range(60_000, 60_300)))
        async with factories[0]() as session, session.begin():
            await enqueue_many(
                session,
                clock,
                CareConfig(),
                (
                    OutboxItem(f"r:{i}", 60_000 + i, "Hi", MessageKind.MARKETING, member_id=m)
                    for i, m in enumerate(members)
                ),
            )
        replicas = [
            worker_for(bot, factory, clock, rate=1000, batch_size=20) for factory in factories
        ]
        handled = await asyncio.gather(*(replica.drain_once() for replica in replicas))
        assert sum(handled) == 300 and min(handled) > 0  # both took a share
        assert Counter(record.chat_id for record in sim.sent_log) == Counter(range(60_000, 60_300))
        async with factories[0]() as session:
            sent = await session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.status == OutboxStatus.SENT)
            )
        assert sent == 300
    finally:
        for engine in engines:
            await engine.dispose()
