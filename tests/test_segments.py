"""Segments: the pure stage rules, and the set-based refresh that must agree with them."""

from __future__ import annotations

import random
import sqlite3
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import care.segments.refresh as segments
from benchmarks import datagen
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.loyalty.purchases import record_purchase
from care.loyalty.tiers import tier_for_spend
from care.segments.refresh import refresh_segments
from care.segments.rules import (
    MIN_USUAL_GAP_DAYS,
    StageFacts,
    churn_risk,
    days_since,
    lifecycle_stage,
    quintile_positions,
    quintile_score,
    usual_gap_days,
    value_tier,
)
from storage.db import create_engine, create_session_factory
from storage.enums import CURRENT_STAGES, MemberStatus
from storage.enums import LifecycleStage as Stage
from storage.models import DEFAULT_TIERS, Base, Member, Purchase, Tier

CONFIG = CareConfig()
Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
async def db(sqlite_url: str) -> AsyncIterator[Factory]:
    engine = create_engine(sqlite_url)
    yield create_session_factory(engine)
    await engine.dispose()


@pytest.fixture
async def any_db(any_db_url: str) -> AsyncIterator[Factory]:
    engine = create_engine(any_db_url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
        await connection.execute(insert(Tier), [dict(tier) for tier in DEFAULT_TIERS])
    yield create_session_factory(engine)
    await engine.dispose()


def facts(now: datetime, **changes: Any) -> StageFacts:
    """A regular buyer (5 purchases, every 10 days, the last 3 days ago); override any field."""
    values: dict[str, Any] = {
        "blocked": False,
        "marketing_opt_in": True,
        "purchase_count": 5,
        "first_purchase_at": now - timedelta(days=43),
        "last_purchase_at": now - timedelta(days=3),
        "avg_gap_days": 10.0,
        "stage": Stage.ACTIVE,
        "stage_changed_at": now - timedelta(days=100),
    }
    values.update(changes)
    return StageFacts(**values)


# --- the pure rules ---------------------------------------------------------------------------


def test_stage_rules_first_match_wins(clock: FrozenClock) -> None:
    now = clock.now()
    day = timedelta(days=1)

    def stage(**changes: Any) -> Stage:
        return lifecycle_stage(facts(now, **changes), now, CONFIG, shop_gap_days=30.0)

    assert stage() == Stage.ACTIVE
    assert stage(blocked=True, marketing_opt_in=False) == Stage.UNREACHABLE
    # Consent is a flag, not a stage: a member who declined offers still buys and is active.
    assert stage(marketing_opt_in=False) == Stage.ACTIVE
    assert stage(marketing_opt_in=False, last_purchase_at=now - 41 * day) == Stage.LAPSED
    assert stage(purchase_count=0, last_purchase_at=None, first_purchase_at=None) == (
        Stage.PROSPECT
    )
    # Own gap 10 days: at risk after 2×10, lapsed after 4×10.
    assert stage(last_purchase_at=now - 20 * day) == Stage.ACTIVE
    assert stage(last_purchase_at=now - 21 * day) == Stage.AT_RISK
    assert stage(last_purchase_at=now - 41 * day) == Stage.LAPSED
    # Two purchases are too few for an own gap: the shop's 30 days decide (60 / 120).
    two = {"purchase_count": 2, "avg_gap_days": 2.0}
    assert stage(**two, last_purchase_at=now - 59 * day) == Stage.ACTIVE
    assert stage(**two, last_purchase_at=now - 61 * day) == Stage.AT_RISK
    assert stage(**two, last_purchase_at=now - 121 * day) == Stage.LAPSED
    # New: a single purchase within new_member_days.
    one = {"purchase_count": 1, "avg_gap_days": None, "last_purchase_at": now - 5 * day}
    assert stage(**one, first_purchase_at=now - 5 * day) == Stage.NEW
    assert stage(**one, first_purchase_at=now - 31 * day) == Stage.ACTIVE
    # Won back: buying normally after at risk / lapsed, for won_back_days.
    assert stage(stage=Stage.AT_RISK) == Stage.WON_BACK
    assert stage(stage=Stage.LAPSED) == Stage.WON_BACK
    assert stage(stage=Stage.WON_BACK, stage_changed_at=now - 59 * day) == Stage.WON_BACK
    assert stage(stage=Stage.WON_BACK, stage_changed_at=now - 61 * day) == Stage.ACTIVE
    assert stage(stage=Stage.AT_RISK, last_purchase_at=now - 25 * day) == Stage.AT_RISK


def test_usual_gap_prefers_the_members_own_rhythm_with_a_floor() -> None:
    assert usual_gap_days(5, 12.0, CONFIG, 30.0) == 12.0
    assert usual_gap_days(2, 12.0, CONFIG, 30.0) == 30.0
    assert usual_gap_days(5, None, CONFIG, 30.0) == 30.0
    assert usual_gap_days(9, 0.2, CONFIG, 30.0) == MIN_USUAL_GAP_DAYS


def test_churn_risk_grows_with_the_gap_and_stays_in_bounds() -> None:
    risks = [churn_risk(gap, 10.0, CONFIG) for gap in (0, 5, 20, 30, 40, 400, -1, 13.3)]
    assert risks == [0.0, 0.13, 0.5, 0.75, 1.0, 1.0, 0.0, 0.33]  # hundredths, half up


def test_scores_and_value_tiers() -> None:
    assert [quintile_score(rank, 10) for rank in range(1, 11)] == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert quintile_score(1, 1) == 1
    assert [value_tier(total) for total in (3, 7, 8, 11, 12, 15)] == [
        "low",
        "low",
        "medium",
        "medium",
        "high",
        "high",
    ]


# --- the set-based refresh --------------------------------------------------------------------


_serial = iter(range(1, 10_000_000))


async def add_member(
    session: AsyncSession, now: datetime, purchases: list[tuple[datetime, int]], **fields: Any
) -> Member:
    """A member with these purchases and the aggregates record_purchase would have kept."""
    number = next(_serial)
    times = sorted(when for when, _ in purchases)
    values: dict[str, Any] = {
        "telegram_id": 700_000 + number,
        "member_code": f"S{number:07d}",
        "status": MemberStatus.ACTIVE,
        "marketing_opt_in": True,
        "created_at": now - timedelta(days=800),
        "registered_at": now - timedelta(days=800),
        "purchase_count": len(purchases),
        "total_spent_minor": sum(amount for _, amount in purchases),
        "first_purchase_at": times[0] if times else None,
        "last_purchase_at": times[-1] if times else None,
        "avg_gap_days": (
            days_since(times[0], times[-1]) / (len(times) - 1) if len(times) > 1 else None
        ),
    }
    values.update(fields)
    member = Member(**values)
    session.add(member)
    await session.flush()
    for when, amount in purchases:
        session.add(
            Purchase(
                member_id=member.id, receipt_id=f"P{number}-{when.timestamp()}-{amount}",
                amount_minor=amount, currency="CNY", purchased_at=when, created_at=now,
            )
        )  # fmt: skip
    await session.flush()
    return member


def reference_scores(members: list[Member], keys: dict[int, tuple[Any, int, int]]) -> dict:
    """RFM quintiles the slow, obvious way: rank = 1 + members strictly below."""
    active = [m.id for m in members if keys[m.id][0] is not None]
    scores: dict[int, tuple[int, int, int]] = {}
    for member_id in active:
        triple = []
        for axis in range(3):
            below = sum(1 for other in active if keys[other][axis] < keys[member_id][axis])
            triple.append(quintile_score(below + 1, len(active)))
        scores[member_id] = (triple[0], triple[1], triple[2])
    return scores


async def test_the_sql_refresh_agrees_with_the_pure_rules(
    any_db: Factory, clock: FrozenClock
) -> None:
    rng = random.Random(7)
    now = clock.now()
    stages = [Stage.PROSPECT, Stage.NEW, Stage.ACTIVE, Stage.AT_RISK, Stage.LAPSED, Stage.WON_BACK]
    async with any_db() as session:
        members: list[Member] = []
        for index in range(220):
            count = rng.choice([0, 0, 1, 1, 2, 3, 4, 6, 9])
            rhythm = rng.choice([3, 12, 30, 90])
            last_ago = rng.uniform(0, 400)
            purchases = [
                (
                    now - timedelta(days=last_ago + i * rhythm * rng.uniform(0.5, 1.5),
                                    seconds=rng.randint(0, 86_399)),
                    rng.choice([990, 5_000, 25_000, 120_000, 700_000]),
                )
                for i in range(count)
            ]  # fmt: skip
            members.append(
                await add_member(
                    session,
                    now,
                    purchases,
                    marketing_opt_in=rng.random() > 0.15,
                    blocked_at=now - timedelta(days=2) if rng.random() < 0.07 else None,
                    lifecycle_stage=rng.choice(stages),
                    stage_changed_at=now - timedelta(days=rng.uniform(1, 120)),
                    # A stale spend no receipt sums to: the first refresh writes every member.
                    spend_12m_minor=1,
                    tier_code=rng.choice(["member", "silver", "gold"]),
                    deleted_at=now if index % 50 == 49 else None,
                )
            )
        await session.commit()
        tiers = list(await session.scalars(select(Tier).order_by(Tier.rank)))
        purchases_of = {
            m.id: list(await session.scalars(select(Purchase).where(Purchase.member_id == m.id)))
            for m in members
        }
    before = {m.id: (StageFacts.of(m), m.tier_code, m.tier_changed_at) for m in members}

    stats = await refresh_segments(any_db, CONFIG, clock)

    gaps = sorted(
        m.avg_gap_days
        for m in members
        if m.deleted_at is None and m.purchase_count >= 3 and m.avg_gap_days is not None
    )
    assert stats.shop_gap_days == pytest.approx(gaps[len(gaps) // 2])
    live = [m for m in members if m.deleted_at is None]
    since = now - timedelta(days=365)
    keys = {}
    for m in live:
        recent = [p for p in purchases_of[m.id] if p.purchased_at >= since]
        keys[m.id] = (
            m.last_purchase_at,
            len(recent),
            sum(p.amount_minor for p in recent),
        )
    expected_rfm = reference_scores(live, keys)
    async with any_db() as session:
        fresh = select(Member).execution_options(populate_existing=True)
        after = {m.id: m for m in await session.scalars(fresh)}
    seen_stages: set[str] = set()
    for m in live:
        got = after[m.id]
        old_facts, old_tier, old_tier_at = before[m.id]
        stage = lifecycle_stage(old_facts, now, CONFIG, stats.shop_gap_days)
        seen_stages.add(stage)
        assert got.lifecycle_stage == stage, (m.id, old_facts)
        assert got.stage_changed_at == (
            now if stage != old_facts.stage else old_facts.stage_changed_at
        )
        spend = keys[m.id][2]
        assert got.spend_12m_minor == spend
        tier = tier_for_spend(tiers, spend).code
        assert got.tier_code == tier
        assert got.tier_changed_at == (now if tier != old_tier else old_tier_at)
        if m.purchase_count:
            usual = usual_gap_days(m.purchase_count, m.avg_gap_days, CONFIG, stats.shop_gap_days)
            assert m.last_purchase_at is not None
            risk = churn_risk(days_since(m.last_purchase_at, now), usual, CONFIG)
            # Hundredths on both sides; a float a hair from .xx5 may round either way.
            assert got.churn_risk == pytest.approx(risk, abs=0.0100001)
            assert (got.rfm_r, got.rfm_f, got.rfm_m) == expected_rfm[m.id]
            assert got.value_tier == value_tier(sum(expected_rfm[m.id]))
        else:
            assert (got.rfm_r, got.value_tier, got.churn_risk) == (None, None, None)
        assert got.segments_refreshed_at == now
    # The population really covers every rule (consent is no stage any more).
    assert seen_stages == set(CURRENT_STAGES)
    for m in members:
        if m.deleted_at is not None:
            assert after[m.id].segments_refreshed_at is None
    assert stats.members == len(live)
    assert stats.active_members == len(expected_rfm)
    assert sum(stats.stages.values()) == len(live)
    assert stats.skipped_busy == 0
    assert stats.members_changed == len(live)  # the first refresh gives everyone their values

    clock.advance(hours=1)
    hourly = await refresh_segments(any_db, CONFIG, clock)
    assert hourly.members == len(live) and hourly.skipped_busy == 0
    # An hour later almost nobody's values moved, so almost nobody is rewritten.
    assert 0 < hourly.members_changed < len(live) // 4
    async with any_db() as session:
        rewritten = await session.scalar(
            select(func.count()).where(Member.segments_refreshed_at == clock.now())
        )
    assert rewritten == hourly.members_changed
    assert stats.tier_upgrades > 0 and stats.tier_downgrades > 0


async def test_spend_rolling_out_of_the_window_downgrades_the_tier(
    db: Factory, clock: FrozenClock
) -> None:
    async with db() as session:
        member = await add_member(session, clock.now(), [])
        await record_purchase(session, CONFIG, clock, member_id=member.id, amount_minor=150_000)
        await session.commit()
    assert member.tier_code == "silver"

    clock.advance(days=200)
    first = await refresh_segments(db, CONFIG, clock)
    assert (first.tier_upgrades, first.tier_downgrades) == (0, 0)
    clock.advance(days=166)  # the purchase is now 366 days old
    second = await refresh_segments(db, CONFIG, clock)
    assert second.tier_downgrades == 1
    async with db() as session:
        fresh = await session.get(Member, member.id)
        assert fresh is not None
        assert (fresh.tier_code, fresh.spend_12m_minor) == ("member", 0)
        assert fresh.tier_changed_at == clock.now()
        assert fresh.total_spent_minor == 150_000


async def test_a_stage_change_is_stamped_once(db: Factory, clock: FrozenClock) -> None:
    async with db() as session:
        member = await add_member(session, clock.now(), [])
        for _ in range(4):
            await record_purchase(session, CONFIG, clock, member_id=member.id, amount_minor=5_000)
            clock.advance(days=10)
        await session.commit()
    assert member.lifecycle_stage == Stage.ACTIVE
    clock.advance(days=15)  # 25 days since the last purchase; usual gap 10 → at risk after 20
    turned = await refresh_segments(db, CONFIG, clock)
    turned_at = clock.now()
    assert turned.stages.get(Stage.AT_RISK) == 1 and turned.stage_changes == 1
    clock.advance(days=1)
    again = await refresh_segments(db, CONFIG, clock)
    assert again.stage_changes == 0
    async with db() as session:
        fresh = await session.get(Member, member.id)
        assert fresh is not None
        assert (fresh.lifecycle_stage, fresh.stage_changed_at) == (Stage.AT_RISK, turned_at)
        assert fresh.churn_risk == pytest.approx(26 / 40)
        await record_purchase(session, CONFIG, clock, member_id=member.id, amount_minor=5_000)
        await session.commit()
        assert fresh.lifecycle_stage == Stage.WON_BACK
    clock.advance(days=CONFIG.won_back_days - 1)
    await refresh_segments(db, CONFIG, clock)
    async with db() as session:
        fresh = await session.get(Member, member.id)
        assert fresh is not None
        # Purchases on days 0, 10, 20, 30 and 56: usual gap 14, so 59 days of silence is
        # lapsed again — drifting away outranks the won-back window.
        assert fresh.lifecycle_stage == Stage.LAPSED


async def test_won_back_ends_after_its_window(db: Factory, clock: FrozenClock) -> None:
    now = clock.now()
    async with db() as session:
        days = [now - timedelta(days=d) for d in (1, 8, 15, 22)]
        member = await add_member(
            session, now, [(d, 1_000) for d in days],
            lifecycle_stage=Stage.WON_BACK, stage_changed_at=now - timedelta(days=30),
        )  # fmt: skip
        await session.commit()
    await refresh_segments(db, CONFIG, clock)
    async with db() as session:
        assert (await session.get(Member, member.id)).lifecycle_stage == Stage.WON_BACK  # type: ignore[union-attr]
    clock.advance(days=31)
    async with db() as session:
        await record_purchase(session, CONFIG, clock, member_id=member.id, amount_minor=1_000)
        await session.commit()
    await refresh_segments(db, CONFIG, clock)
    async with db() as session:
        assert (await session.get(Member, member.id)).lifecycle_stage == Stage.ACTIVE  # type: ignore[union-attr]


async def test_a_member_who_buys_during_the_refresh_keeps_that_purchase(
    db: Factory, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with db() as session:
        buyer = await add_member(session, clock.now(), [])
        # Still in the retired "unsubscribed" stage from before consent left the stages.
        bystander = await add_member(
            session, clock.now(), [], marketing_opt_in=False, lifecycle_stage=Stage.UNSUBSCRIBED
        )
        await session.commit()
    collect = segments._collect_stats

    async def purchase_meanwhile(*args: Any) -> dict[str, Any]:
        async with db() as session:  # the till, between snapshot and write-back
            await record_purchase(session, CONFIG, clock, member_id=buyer.id, amount_minor=120_000)
            await session.commit()
        return await collect(*args)

    monkeypatch.setattr(segments, "_collect_stats", purchase_meanwhile)
    stats = await refresh_segments(db, CONFIG, clock)
    assert stats.skipped_busy == 1
    async with db() as session:
        fresh = await session.get(Member, buyer.id)
        assert fresh is not None
        assert (fresh.spend_12m_minor, fresh.tier_code, fresh.lifecycle_stage) == (
            120_000,
            "silver",
            Stage.NEW,
        )
        other = await session.get(Member, bystander.id)
        # Declining offers is no stage: a member who never bought is a prospect.
        assert other is not None and other.lifecycle_stage == Stage.PROSPECT
    assert stats.members_changed == 1


async def test_too_few_rhythms_fall_back_to_the_configured_gap(
    db: Factory, clock: FrozenClock
) -> None:
    async with db() as session:
        await add_member(session, clock.now(), [(clock.now(), 100)] * 1)
        await session.commit()
    config = CareConfig(fallback_gap_days=45.0)
    stats = await refresh_segments(db, config, clock)
    assert stats.shop_gap_days == 45.0
    assert (stats.members, stats.active_members, stats.stages) == (1, 1, {Stage.NEW: 1})


def test_quintile_cuts_give_the_same_scores_as_ranks() -> None:
    rng = random.Random(11)
    for population in (1, 2, 3, 4, 5, 7, 10, 23, 100):
        values = [rng.choice([1, 2, 2, 3, 5, 8, 8, 8, 13]) for _ in range(population)]
        ordered = sorted(values)
        cuts = [ordered[p - 1] for p in quintile_positions(population)]
        for value in values:
            rank = 1 + sum(1 for other in values if other < value)
            assert 1 + sum(value > cut for cut in cuts) == quintile_score(rank, population)


async def test_generated_benchmark_data_is_consistent(tmp_path: Path, clock: FrozenClock) -> None:
    path = tmp_path / "bench.db"
    made = datagen.generate(
        path, members=600, purchases=6_000, now=clock.now(), report=lambda _: None
    )
    assert (made.members, made.purchases) == (600, 6_000)
    with sqlite3.connect(path) as db:
        assert datagen.read_data_now(db) == clock.now()
        mismatched = db.execute(
            """
            SELECT count(*) FROM members m LEFT JOIN (
                SELECT member_id, count(*) n, sum(amount_minor) total,
                       min(purchased_at) first, max(purchased_at) last,
                       sum(CASE WHEN purchased_at >= ? THEN amount_minor ELSE 0 END) recent
                FROM purchases GROUP BY member_id
            ) p ON p.member_id = m.id
            WHERE coalesce(p.n, 0) != m.purchase_count
               OR coalesce(p.total, 0) != m.total_spent_minor
               OR coalesce(p.recent, 0) != m.spend_12m_minor
               OR p.first IS NOT m.first_purchase_at OR p.last IS NOT m.last_purchase_at
               OR m.points_balance != (
                   SELECT coalesce(sum(delta), 0) FROM points_ledger WHERE member_id = m.id)
            """,
            (f"{(clock.now() - timedelta(days=365)):%Y-%m-%d %H:%M:%S.%f}",),
        ).fetchone()[0]
        assert mismatched == 0
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        factory = create_session_factory(engine)
        stats = await refresh_segments(factory, CONFIG, clock)
        assert stats.members == 600 and stats.skipped_busy == 0
        async with factory() as session:
            member = await session.scalar(
                select(Member).where(Member.purchase_count >= 3).limit(1)
            )
            assert member is not None and member.first_purchase_at is not None
            assert member.avg_gap_days == pytest.approx(
                days_since(member.first_purchase_at, member.last_purchase_at)  # type: ignore[arg-type]
                / (member.purchase_count - 1)
            )
            await record_purchase(session, CONFIG, clock, member_id=member.id, amount_minor=100)
    finally:
        await engine.dispose()
