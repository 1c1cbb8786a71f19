"""The loyalty loop's money paths on SQLite and PostgreSQL: spending points and correcting
purchases change points and coupons together or not at all, even when two happen at once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.loyalty.corrections import CorrectionError, refund_purchase, void_purchase
from care.loyalty.purchases import record_purchase
from care.loyalty.rewards import RewardError, create_reward, redeem_reward
from storage.db import create_engine, create_session_factory
from storage.enums import LifecycleStage, MemberStatus, OfferKind, StaffRole
from storage.models import DEFAULT_TIERS, Base, Coupon, Member, PointsEntry, Tier

CONFIG = CareConfig(currency="CNY", points_per_unit=1)
Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
async def any_db(any_db_url: str) -> AsyncIterator[Factory]:
    engine = create_engine(any_db_url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
        await connection.execute(insert(Tier), [dict(tier) for tier in DEFAULT_TIERS])
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def new_member(session: AsyncSession, clock: FrozenClock, points: int = 0) -> Member:
    member = Member(
        telegram_id=None, chat_id=None, member_code="M0000001", status=MemberStatus.ACTIVE,
        created_at=clock.now(), registered_at=clock.now(),
        lifecycle_stage=LifecycleStage.PROSPECT, points_balance=points,
    )  # fmt: skip
    session.add(member)
    await session.flush()
    return member


async def in_two_sessions(
    factory: Factory, work: Callable[[AsyncSession], Awaitable[Any]]
) -> list[Any]:
    """Run ``work`` in two sessions at the same moment; an exception is returned, not raised."""
    gate = asyncio.Barrier(2)

    async def one() -> Any:
        async with factory() as session:
            await session.execute(select(1))
            await gate.wait()
            try:
                result = await work(session)
            except (RewardError, CorrectionError) as refused:
                await session.rollback()
                return refused
            await asyncio.sleep(0.05)  # hold the transaction open while the other one tries
            await session.commit()
            return result

    return list(await asyncio.gather(one(), one()))


async def test_two_redemptions_at_once_cannot_overspend(
    any_db: Factory, clock: FrozenClock
) -> None:
    async with any_db() as session:
        member = await new_member(session, clock, points=100)
        reward = await create_reward(
            session, clock, CONFIG, name_zh="九折券", name_en="10% off", points_cost=60,
            kind=OfferKind.PERCENT_OFF, value=10, created_by=None,
        )  # fmt: skip
        await session.commit()
    results = await in_two_sessions(
        any_db,
        lambda s: redeem_reward(s, clock, member_id=member.id, reward_id=reward.id, locale="en"),
    )
    refused = [r for r in results if isinstance(r, RewardError)]
    assert len(refused) == 1 and refused[0].reason == "not_enough"
    async with any_db() as session:
        fresh = await session.get(Member, member.id)
        assert fresh is not None and fresh.points_balance == 40
        assert await session.scalar(select(func.count()).select_from(Coupon)) == 1
        entries = list(await session.scalars(select(PointsEntry)))
        assert [(e.delta, e.balance_after) for e in entries] == [(-60, 40)]


async def test_a_failed_coupon_takes_no_points(any_db: Factory, clock: FrozenClock) -> None:
    async with any_db() as session:
        member = await new_member(session, clock, points=100)
        reward = await create_reward(
            session, clock, CONFIG, name_zh="", name_en="Mug", points_cost=30,
            kind=OfferKind.GIFT, value=0, created_by=None,
        )  # fmt: skip
        reward.offer.is_active = False  # the offer behind it ended
        await session.commit()
    async with any_db() as session:
        with pytest.raises(RewardError) as refused:
            await redeem_reward(
                session, clock, member_id=member.id, reward_id=reward.id, locale="zh"
            )
        assert refused.value.reason == "inactive"
        await session.commit()
        fresh = await session.get(Member, member.id)
        assert fresh is not None and fresh.points_balance == 100


async def test_two_tills_voiding_one_receipt_void_it_once(
    any_db: Factory, clock: FrozenClock
) -> None:
    async with any_db() as session:
        member = await new_member(session, clock)
        await record_purchase(
            session, CONFIG, clock, member_id=member.id, amount_minor=120_000, receipt_id="R-1"
        )
        await session.commit()
    results = await in_two_sessions(
        any_db,
        lambda s: void_purchase(
            s, CONFIG, clock, receipt="R-1", staff_telegram_id=1, staff_role=StaffRole.ADMIN
        ),
    )
    refused = [r for r in results if isinstance(r, CorrectionError)]
    assert len(refused) == 1 and refused[0].reason == "already_voided"
    async with any_db() as session:
        fresh = await session.get(Member, member.id)
        assert fresh is not None
        assert (fresh.points_balance, fresh.tier_code, fresh.purchase_count) == (0, "member", 0)
        assert (fresh.total_spent_minor, fresh.spend_12m_minor) == (0, 0)


async def test_partial_refunds_take_back_proportional_points(
    any_db: Factory, clock: FrozenClock
) -> None:
    async with any_db() as session:
        member = await new_member(session, clock)
        await record_purchase(
            session, CONFIG, clock, member_id=member.id, amount_minor=10_000, receipt_id="R-2"
        )  # ¥100 → 100 points
        await session.commit()
    admin: dict[str, Any] = {"staff_telegram_id": 1, "staff_role": StaffRole.ADMIN}
    async with any_db() as session:
        first = await refund_purchase(
            session, CONFIG, clock, receipt="R-2", amount_minor=3_350, **admin
        )
        second = await refund_purchase(
            session, CONFIG, clock, receipt="R-2", amount_minor=3_350, **admin
        )
        # 33.5% then 67% of 100 points, rounded down overall: 33, then 34 more.
        assert (first.points_taken, second.points_taken) == (33, 34)
        with pytest.raises(CorrectionError) as too_much:
            await refund_purchase(
                session, CONFIG, clock, receipt="R-2", amount_minor=3_301, **admin
            )
        assert too_much.value.reason == "too_much"
        last = await refund_purchase(
            session, CONFIG, clock, receipt="R-2", amount_minor=3_300, **admin
        )
        assert (last.points_taken, last.balance) == (33, 0)
        await session.commit()
        fresh = await session.get(Member, member.id)
        assert fresh is not None
        assert (fresh.total_spent_minor, fresh.purchase_count) == (0, 1)
