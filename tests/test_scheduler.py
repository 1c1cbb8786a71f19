"""The schedule: one leader, catch-up once after downtime, and the whole road end to end —
a shopper registers through the bot, the scheduler evaluates and drains, the welcome with its
coupon arrives in the shopper's language."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.clock import FrozenClock
from care.core.codes import display_code
from care.core.config import CareConfig
from care.scheduler import (
    LEADER,
    RULES_JOB,
    VALUE_JOB,
    CareScheduler,
    job_state,
    release_lease,
)
from storage.db import create_engine, create_session_factory
from storage.models import Base, Coupon, MemberValue, OutboxMessage
from tests.conftest import RunningBot
from tests.journey_helpers import member_of, register, without_throttling
from tests.rules_helpers import add_member, add_purchase

Factory = async_sessionmaker[AsyncSession]
CONFIG = CareConfig(holdout_pct=0)


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Factory]:
    db_engine = create_engine(sqlite_url)
    yield create_session_factory(db_engine)
    await db_engine.dispose()


def scheduler(db: Factory, clock: FrozenClock, holder: str) -> CareScheduler:
    # No bot is needed where nothing is delivered.
    return CareScheduler(None, db, CONFIG, clock, holder=holder, deliver=False)  # type: ignore[arg-type]


async def queued(db: Factory, rule: str) -> list[OutboxMessage]:
    async with db() as session:
        return list(await session.scalars(select(OutboxMessage).where(OutboxMessage.rule == rule)))


async def test_one_replica_leads_until_its_lease_runs_out(db: Factory, clock: FrozenClock) -> None:
    first, second = scheduler(db, clock, "replica-a"), scheduler(db, clock, "replica-b")
    assert await first.is_leader()
    assert not await second.is_leader()
    clock.advance(seconds=10)
    assert await first.is_leader()  # renewed on every tick
    clock.advance(seconds=10)
    assert not await second.is_leader()
    clock.advance(seconds=15, microseconds=1000)  # the leader went silent: its lease expired
    assert await second.is_leader()
    assert not await first.is_leader()
    await release_lease(db, "replica-b")  # a clean shutdown hands over at once
    assert await first.is_leader()
    state = await job_state(db, LEADER)
    assert state is not None and state.lease_holder == "replica-a"


async def test_only_the_leader_evaluates_the_rules(db: Factory, clock: FrozenClock) -> None:
    async with db() as session:
        await add_member(session, clock.now())
        await session.commit()
    leader, follower = scheduler(db, clock, "a"), scheduler(db, clock, "b")
    assert await leader.is_leader()
    assert await follower.run_rules() is None
    assert not await queued(db, "welcome")
    outcomes = await leader.run_rules()
    assert outcomes is not None
    assert {o.rule: o.sent for o in outcomes}["welcome"] == 1
    assert len(await queued(db, "welcome")) == 1


async def test_after_six_hours_down_the_missed_work_is_done_once(
    db: Factory, clock: FrozenClock
) -> None:
    start = clock.now()
    async with db() as session:
        buyer = await add_member(session, start - timedelta(days=20))
        await add_purchase(session, buyer, start - timedelta(hours=1))
        await session.commit()
    care = scheduler(db, clock, "a")
    assert await care.run_rules() is not None
    assert not await queued(db, "purchase_survey")  # due at start + 2h

    clock.advance(hours=6)  # the process was down; a member joined meanwhile
    async with db() as session:
        await add_member(session, start + timedelta(hours=1))
        await session.commit()
    # Ticks pile up after a restart; however many fire, the work is done once.
    results = await asyncio.gather(care.run_rules(), care.run_rules(), care.run_rules())
    assert all(result is not None for result in results)
    assert len(await queued(db, "purchase_survey")) == 1
    assert len(await queued(db, "welcome")) == 1
    state = await job_state(db, RULES_JOB)
    assert state is not None and state.covered_until == clock.now()
    clock.advance(minutes=1)
    outcomes = await care.run_rules()
    assert outcomes is not None and sum(o.decided for o in outcomes) == 0


async def test_segments_refresh_once_per_interval_however_often_asked(
    db: Factory, clock: FrozenClock
) -> None:
    care = scheduler(db, clock, "a")
    assert await care.run_segments()
    assert not await care.run_segments()
    clock.advance(minutes=59)
    assert not await care.run_segments()
    clock.advance(minutes=1)
    assert await care.run_segments()
    assert await care.run_campaigns() == 0
    assert await scheduler(db, clock, "b").run_segments() is False  # not the leader


async def test_the_segments_job_refits_customer_value_once_a_day(
    db: Factory, clock: FrozenClock
) -> None:
    async with db() as session:
        for number in range(60):
            member = await add_member(session, clock.now() - timedelta(days=200))
            for days_ago in reversed(range(number % 4 + 1)):
                await add_purchase(
                    session, member, clock.now() - timedelta(days=10 + 20 * days_ago)
                )
        await session.commit()
    care = scheduler(db, clock, "a")
    assert await care.run_segments()
    state = await job_state(db, VALUE_JOB)
    assert state is not None and state.covered_until == clock.now()
    async with db() as session:
        rows = list(await session.scalars(select(MemberValue)))
    assert len(rows) == 60
    clock.advance(hours=1)
    assert await care.run_segments()  # segments hourly …
    state = await job_state(db, VALUE_JOB)
    assert state is not None and state.covered_until == clock.now() - timedelta(hours=1)
    clock.advance(hours=23)
    assert await care.run_segments()  # … the value model daily
    state = await job_state(db, VALUE_JOB)
    assert state is not None and state.covered_until == clock.now()


@pytest.mark.slow
async def test_a_new_member_gets_the_welcome_with_a_coupon_in_their_language(
    app: RunningBot,
) -> None:
    without_throttling(app)
    ann = app.user(3101, first_name="Ann", language_code="en")
    lei = app.user(3102, first_name="Lei", language_code="zh")
    quiet = app.user(3103, first_name="Quiet", language_code="en")
    await register(ann, "en", marketing=True)
    await register(lei, "zh", marketing=True)
    await register(quiet, "en", marketing=False)

    care = CareScheduler(
        app.bot, app.services.session_factory, app.config, app.clock, holder="e2e",
        rules_every=timedelta(seconds=1),
    )  # fmt: skip
    await care.start()
    try:
        english = await ann.expect("Welcome to Test Shop", timeout=15)
        chinese = await lei.expect("欢迎加入Test Shop", timeout=15)
    finally:
        await care.stop()

    async with app.session() as session:
        coupons = {
            c.member_id: c
            for c in await session.scalars(select(Coupon).where(Coupon.source == "rule:welcome"))
        }
    for user, message in ((ann, english), (lei, chinese)):
        member = await member_of(app, user.id)
        assert member is not None
        assert display_code(coupons[member.id].code) in message.text
    assert "10%" in english.text and "Coupon code" in english.text
    assert "优惠券码" in chinese.text
    # The member who said no to offers got neither the message nor a coupon.
    quiet_member = await member_of(app, quiet.id)
    assert quiet_member is not None and quiet_member.id not in coupons
    assert not any("Coupon code" in (m.text or "") for m in quiet.messages)
    async with app.session() as session:
        to_quiet = await session.scalar(
            select(OutboxMessage.id).where(OutboxMessage.member_id == quiet_member.id)
        )
    assert to_quiet is None
    state = await job_state(app.services.session_factory, LEADER)
    assert state is not None and state.lease_holder is None  # handed over at shutdown


async def test_the_lease_is_exclusive_on_each_backend(any_db_url: str, clock: FrozenClock) -> None:
    db_engine = create_engine(any_db_url)
    async with db_engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    db = create_session_factory(db_engine)
    try:
        holders = [scheduler(db, clock, f"replica-{n}") for n in range(4)]
        won = await asyncio.gather(*(care.is_leader() for care in holders))
        assert sum(won) == 1
        leader = holders[won.index(True)]
        assert await leader.is_leader()
        await release_lease(db, leader.holder)
        assert sum(await asyncio.gather(*(care.is_leader() for care in holders))) == 1
    finally:
        await db_engine.dispose()
