"""No burst after an import: the stage an imported history gives a member is their first
classification, not a change, so the win-back and last-chance rules do not fire for the whole
imported list at once; a later real change still counts."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.automation.engine import plan
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.imports.purchases import import_purchases
from care.loyalty.purchases import record_purchase
from care.segments.refresh import refresh_segments
from storage.enums import LifecycleStage as Stage
from storage.models import Member
from tests.staff_helpers import OWNER_ID, make_member, session_factory

CONFIG = CareConfig(owner_ids=frozenset({OWNER_ID}), holdout_pct=0)
Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
async def factory(sqlite_url: str, clock: FrozenClock) -> AsyncIterator[Factory]:
    async with session_factory(sqlite_url) as made:
        async with made() as session:
            for number in range(1, 7):
                member = await make_member(
                    session,
                    CONFIG,
                    clock,
                    100 + number,
                    f"M{number}",
                    phone=f"+861380000000{number}",
                )
                member.marketing_opt_in = True
            await session.commit()
        yield made


def history(clock: FrozenClock) -> io.StringIO:
    """Six regulars who each bought three times, 30 days apart, and stopped 100+ days ago."""
    lines = ["receipt_id,member,amount,purchased_at"]
    for number in range(1, 7):
        for visit in range(3):
            when = clock.now() - timedelta(days=100 + number + 30 * visit)
            lines.append(f"R{number}-{visit},+861380000000{number},50.00,{when.isoformat()}")
    return io.StringIO("\n".join(lines) + "\n")


async def stage_rule_decisions(factory: Factory, clock: FrozenClock) -> int:
    outcomes = await plan(factory, CONFIG, clock)
    return sum(o.decided for o in outcomes if o.rule in ("winback", "last_chance"))


async def test_an_imported_history_fires_no_stage_rule(
    factory: Factory, clock: FrozenClock
) -> None:
    report = await import_purchases(factory, CONFIG, clock, history(clock))
    assert report.ok and report.imported == 18
    async with factory() as session:
        members = list(await session.scalars(select(Member).where(Member.phone.is_not(None))))
    assert {m.lifecycle_stage for m in members} <= {Stage.AT_RISK, Stage.LAPSED}
    assert {m.stage_changed_at for m in members} == {None}
    assert await stage_rule_decisions(factory, clock) == 0

    clock.advance(hours=1)
    stats = await refresh_segments(factory, CONFIG, clock)
    assert stats.stage_changes == 0
    assert stats.stages.get(Stage.AT_RISK, 0) + stats.stages.get(Stage.LAPSED, 0) == 6
    assert await stage_rule_decisions(factory, clock) == 0

    # A real change later counts: one of them comes back, and the won-back window ends.
    async with factory() as session:
        member = await session.get(Member, members[0].id)
        assert member is not None
        await record_purchase(session, CONFIG, clock, member_id=member.id, amount_minor=5_000)
        await session.commit()
        assert member.lifecycle_stage == Stage.WON_BACK
        assert member.stage_changed_at == clock.now()
    clock.advance(days=70)
    stats = await refresh_segments(factory, CONFIG, clock)
    assert stats.stage_changes >= 1
    async with factory() as session:
        member = await session.get(Member, members[0].id)
        assert member is not None
        assert (member.lifecycle_stage, member.stage_changed_at) == (Stage.ACTIVE, clock.now())


async def test_a_first_refresh_classifies_without_stamping_then_changes_count(
    factory: Factory, clock: FrozenClock
) -> None:
    """Members whose aggregates arrived without a stage (never refreshed, never stamped)."""
    async with factory() as session:
        member = await make_member(session, CONFIG, clock, 999, "Old", phone="+8613999999999")
        member.marketing_opt_in = True
        member.purchase_count = 4
        member.first_purchase_at = clock.now() - timedelta(days=100)
        member.last_purchase_at = clock.now() - timedelta(days=25)
        member.avg_gap_days = 25.0
        await session.commit()
        member_id = member.id
    first = await refresh_segments(factory, CONFIG, clock)
    assert first.stage_changes == 0
    async with factory() as session:
        fresh = await session.get(Member, member_id)
        assert fresh is not None
        assert (fresh.lifecycle_stage, fresh.stage_changed_at) == (Stage.ACTIVE, None)
        assert fresh.segments_refreshed_at == clock.now()
    clock.advance(days=30)  # 55 days since the last purchase: more than 2 × 25
    second = await refresh_segments(factory, CONFIG, clock)
    assert second.stage_changes == 1
    async with factory() as session:
        fresh = await session.get(Member, member_id)
        assert fresh is not None
        assert (fresh.lifecycle_stage, fresh.stage_changed_at) == (Stage.AT_RISK, clock.now())
