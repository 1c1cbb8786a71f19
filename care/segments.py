"""Segments: lifecycle stages, churn risk, RFM scores and value tiers, kept current.

The stage rules are written twice on purpose: once as pure functions (the reference, easy to
read and test) and once as set-based SQL that applies the same rules to every member in a few
statements. A test runs both over a varied population and checks they agree.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    ColumnElement,
    Executable,
    Float,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Table,
    and_,
    case,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from care.clock import Clock
from care.config import CareConfig
from storage.enums import LifecycleStage, ValueTier
from storage.models import Member, Purchase, Tier
from storage.types import UTCDateTime

# Nobody is "drifting" two days after buying three times in one afternoon: a usual gap is at
# least a week, whatever the arithmetic says.
MIN_USUAL_GAP_DAYS = 7.0
SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True, slots=True)
class StageFacts:
    """What the stage rules read about one member."""

    blocked: bool
    marketing_opt_in: bool
    purchase_count: int
    first_purchase_at: datetime | None
    last_purchase_at: datetime | None
    avg_gap_days: float | None
    stage: str
    stage_changed_at: datetime | None

    @classmethod
    def of(cls, member: Member) -> StageFacts:
        return cls(
            blocked=member.blocked_at is not None,
            marketing_opt_in=bool(member.marketing_opt_in),
            purchase_count=member.purchase_count or 0,
            first_purchase_at=member.first_purchase_at,
            last_purchase_at=member.last_purchase_at,
            avg_gap_days=member.avg_gap_days,
            stage=member.lifecycle_stage,
            stage_changed_at=member.stage_changed_at,
        )


def usual_gap_days(
    purchase_count: int, avg_gap_days: float | None, config: CareConfig, shop_gap_days: float
) -> float:
    """The gap between purchases that is normal for this member.

    Their own average once they have ``config.min_purchases_for_own_gap`` purchases, else the
    shop-wide typical gap; never below ``MIN_USUAL_GAP_DAYS``.
    """
    if purchase_count >= config.min_purchases_for_own_gap and avg_gap_days is not None:
        gap = avg_gap_days
    else:
        gap = shop_gap_days
    return max(gap, MIN_USUAL_GAP_DAYS)


def days_since(then: datetime, now: datetime) -> float:
    return (now - then).total_seconds() / SECONDS_PER_DAY


def churn_risk(gap_days: float, usual_gap: float, config: CareConfig) -> float:
    """0 right after a purchase, rising linearly to 1 when the member counts as lapsed.

    Half-way (0.5 with the default factors) is where the at-risk stage begins.
    """
    return min(1.0, max(0.0, gap_days / (config.lapsed_gap_factor * usual_gap)))


def base_stage(
    facts: StageFacts, now: datetime, config: CareConfig, shop_gap_days: float
) -> LifecycleStage:
    """The stage from purchases alone (prospect, new, active, at risk, lapsed)."""
    if facts.purchase_count <= 0 or facts.last_purchase_at is None:
        return LifecycleStage.PROSPECT
    usual = usual_gap_days(facts.purchase_count, facts.avg_gap_days, config, shop_gap_days)
    gap = days_since(facts.last_purchase_at, now)
    if gap > config.lapsed_gap_factor * usual:
        return LifecycleStage.LAPSED
    if gap > config.at_risk_gap_factor * usual:
        return LifecycleStage.AT_RISK
    new_since = now - timedelta(days=config.new_member_days)
    if (
        facts.purchase_count <= 1
        and facts.first_purchase_at is not None
        and facts.first_purchase_at >= new_since
    ):
        return LifecycleStage.NEW
    return LifecycleStage.ACTIVE


def lifecycle_stage(
    facts: StageFacts, now: datetime, config: CareConfig, shop_gap_days: float
) -> LifecycleStage:
    """The member's lifecycle stage. The rules, first match wins:

    1. unreachable — the member blocked the bot;
    2. unsubscribed — no marketing consent;
    3. prospect — no purchase yet;
    4. lapsed — days since the last purchase > ``lapsed_gap_factor`` × the usual gap;
    5. at_risk — days since the last purchase > ``at_risk_gap_factor`` × the usual gap;
    6. won_back — buying normally again (new or active below) after being at risk or lapsed,
       for ``won_back_days`` from the moment they came back;
    7. new — one purchase, made within ``new_member_days``;
    8. active — everyone else who buys.
    """
    if facts.blocked:
        return LifecycleStage.UNREACHABLE
    if not facts.marketing_opt_in:
        return LifecycleStage.UNSUBSCRIBED
    stage = base_stage(facts, now, config, shop_gap_days)
    if stage in (LifecycleStage.NEW, LifecycleStage.ACTIVE):
        if facts.stage in (LifecycleStage.AT_RISK, LifecycleStage.LAPSED):
            return LifecycleStage.WON_BACK
        won_back_since = now - timedelta(days=config.won_back_days)
        if (
            facts.stage == LifecycleStage.WON_BACK
            and facts.stage_changed_at is not None
            and facts.stage_changed_at > won_back_since
        ):
            return LifecycleStage.WON_BACK
    return stage


# ---------------------------------------------------------------------------------------------
# The set-based refresh

MIN_MEMBERS_FOR_SHOP_GAP = 20
SPEND_WINDOW = timedelta(days=365)
UPDATE_BATCH_IDS = 20_000
HIGH_VALUE_MIN_RFM = 12
MEDIUM_VALUE_MIN_RFM = 8


def value_tier(rfm_total: int) -> ValueTier:
    """High / medium / low value from the RFM total (3–15)."""
    if rfm_total >= HIGH_VALUE_MIN_RFM:
        return ValueTier.HIGH
    if rfm_total >= MEDIUM_VALUE_MIN_RFM:
        return ValueTier.MEDIUM
    return ValueTier.LOW


def quintile_score(rank: int, population: int) -> int:
    """1–5 from a 1-based rank (ties share the lowest rank) among ``population`` members."""
    return (rank - 1) * 5 // population + 1


@dataclass(frozen=True, slots=True)
class SegmentStats:
    """What one refresh found and changed."""

    members: int
    active_members: int
    shop_gap_days: float
    stages: dict[str, int]
    value_tiers: dict[str, int]
    stage_changes: int
    tier_upgrades: int
    tier_downgrades: int
    # Members who bought or changed consent while the refresh ran keep what that wrote; the
    # next refresh picks them up.
    skipped_busy: int
    seconds: float


class _EpochDays(FunctionElement[float]):
    """Days since 1970-01-01 of a stored timestamp, as a float, on either backend."""

    type = Float()
    inherit_cache = True
    name = "epoch_days"


@compiles(_EpochDays, "sqlite")
def _epoch_days_sqlite(element: _EpochDays, compiler: SQLCompiler, **kw: Any) -> str:
    return f"(julianday({compiler.process(element.clauses, **kw)}) - 2440587.5)"


@compiles(_EpochDays)
def _epoch_days_default(element: _EpochDays, compiler: SQLCompiler, **kw: Any) -> str:
    argument = compiler.process(element.clauses, **kw)
    return f"(CAST(EXTRACT(EPOCH FROM {argument}) AS DOUBLE PRECISION) / 86400.0)"


_work_metadata = MetaData()
_work = Table(
    "segment_work",
    _work_metadata,
    Column("id", BigInteger, primary_key=True),
    Column("purchase_count", Integer),
    Column("last_purchase_at", UTCDateTime),
    Column("blocked_at", UTCDateTime),
    Column("marketing_opt_in", Boolean),
    Column("is_active", Integer),
    Column("spend_12m", BigInteger),
    Column("tier_old", String(16)),
    Column("tier_new", String(16)),
    Column("stage_old", String(16)),
    Column("stage_new", String(16)),
    Column("rfm_r", SmallInteger),
    Column("rfm_f", SmallInteger),
    Column("rfm_m", SmallInteger),
    Column("value_tier", String(8)),
    Column("churn_risk", Float),
    prefixes=["TEMPORARY"],
)


def _max(expression: ColumnElement[Any], floor: float) -> ColumnElement[Any]:
    return case((expression < floor, literal(floor)), else_=expression)


async def refresh_segments(
    session_factory: async_sessionmaker[AsyncSession], config: CareConfig, clock: Clock
) -> SegmentStats:
    """Recompute every member's 12-month spend, tier, RFM scores, value tier, stage, churn risk.

    Set-based: one INSERT … SELECT computes everything into a temporary table (window
    functions rank members for the RFM quintiles), then UPDATE … FROM writes it back in
    batches of ids, committing between batches so the bot's own writes never wait long. A
    member who bought (or changed consent) meanwhile is left as that write made them.
    Deleted members are not touched.
    """
    started = time.perf_counter()
    now = clock.now()
    async with session_factory() as session:
        engine = session.bind
        tiers = list(await session.scalars(select(Tier).order_by(Tier.rank)))
    assert isinstance(engine, AsyncEngine)
    async with engine.connect() as connection:
        shop_gap = await _shop_gap_days(connection, config)
        await connection.run_sync(lambda sync: _work.create(sync))
        try:
            await connection.execute(_fill_work(config, now, shop_gap, tiers))
            if connection.dialect.name == "postgresql":
                await connection.exec_driver_sql("ANALYZE segment_work")
            await connection.commit()
            stats = await _collect_stats(connection, tiers)
            written = await _write_back(connection, now)
        finally:
            await connection.rollback()
            await connection.run_sync(lambda sync: _work.drop(sync))
            await connection.commit()
    return SegmentStats(
        **stats,
        shop_gap_days=shop_gap,
        skipped_busy=stats["members"] - written,
        seconds=round(time.perf_counter() - started, 3),
    )


async def _shop_gap_days(connection: AsyncConnection, config: CareConfig) -> float:
    """The median of members' own average gaps: the shop's typical rhythm.

    Falls back to ``config.fallback_gap_days`` while too few members have a rhythm of their own.
    """
    own_gap = (
        Member.deleted_at.is_(None),
        Member.purchase_count >= config.min_purchases_for_own_gap,
        Member.avg_gap_days.is_not(None),
    )
    count = int(
        await connection.scalar(select(func.count()).select_from(Member).where(*own_gap)) or 0
    )
    if count < MIN_MEMBERS_FOR_SHOP_GAP:
        return config.fallback_gap_days
    median = await connection.scalar(
        select(Member.avg_gap_days)
        .where(*own_gap)
        .order_by(Member.avg_gap_days)
        .offset(count // 2)
        .limit(1)
    )
    return float(median) if median is not None else config.fallback_gap_days


def _fill_work(
    config: CareConfig, now: datetime, shop_gap: float, tiers: list[Tier]
) -> Executable:
    member = Member.__table__
    since = now - SPEND_WINDOW
    spend = (
        select(
            Purchase.member_id.label("member_id"),
            func.count().label("purchases"),
            func.sum(Purchase.amount_minor).label("amount"),
        )
        .where(Purchase.purchased_at >= since, Purchase.member_id.is_not(None))
        .group_by(Purchase.member_id)
        .subquery("spend")
    )
    is_active = case(
        (and_(Member.purchase_count > 0, Member.last_purchase_at.is_not(None)), 1), else_=0
    )
    spend_12m = func.coalesce(spend.c.amount, 0)
    purchases_12m = func.coalesce(spend.c.purchases, 0)
    own_gap = and_(
        Member.purchase_count >= config.min_purchases_for_own_gap,
        Member.avg_gap_days.is_not(None),
    )
    usual_gap = _max(
        case((own_gap, Member.avg_gap_days), else_=literal(shop_gap)), MIN_USUAL_GAP_DAYS
    )
    gap_days = literal(now.timestamp() / SECONDS_PER_DAY) - _EpochDays(Member.last_purchase_at)
    ranked = (
        select(
            Member.id,
            Member.purchase_count,
            Member.first_purchase_at,
            Member.last_purchase_at,
            Member.blocked_at,
            Member.marketing_opt_in,
            Member.tier_code,
            Member.lifecycle_stage,
            Member.stage_changed_at,
            is_active.label("is_active"),
            spend_12m.label("spend_12m"),
            usual_gap.label("usual_gap"),
            gap_days.label("gap_days"),
            func.rank()
            .over(partition_by=is_active, order_by=Member.last_purchase_at)
            .label("r_rank"),
            func.rank().over(partition_by=is_active, order_by=purchases_12m).label("f_rank"),
            func.rank().over(partition_by=is_active, order_by=spend_12m).label("m_rank"),
            func.count().over(partition_by=is_active).label("population"),
        )
        .select_from(member.outerjoin(spend, spend.c.member_id == Member.id))
        .where(Member.deleted_at.is_(None))
        .subquery("ranked")
    )
    r = ranked.c
    active = r.is_active == 1

    def score(rank: ColumnElement[Any]) -> ColumnElement[Any]:
        return case((active, (rank - 1) * 5 // r.population + 1), else_=None)

    scored = select(
        r.id, r.purchase_count, r.first_purchase_at, r.last_purchase_at, r.blocked_at,
        r.marketing_opt_in, r.is_active, r.spend_12m, r.tier_code, r.lifecycle_stage,
        r.stage_changed_at, r.usual_gap, r.gap_days,
        score(r.r_rank).label("rfm_r"),
        score(r.f_rank).label("rfm_f"),
        score(r.m_rank).label("rfm_m"),
    ).subquery("scored")  # fmt: skip
    s = scored.c
    active = s.is_active == 1
    rfm_total = s.rfm_r + s.rfm_f + s.rfm_m
    value = case(
        (~active, None),
        (rfm_total >= HIGH_VALUE_MIN_RFM, ValueTier.HIGH.value),
        (rfm_total >= MEDIUM_VALUE_MIN_RFM, ValueTier.MEDIUM.value),
        else_=ValueTier.LOW.value,
    )
    stage = case(
        (s.blocked_at.is_not(None), LifecycleStage.UNREACHABLE.value),
        (s.marketing_opt_in.is_not(True), LifecycleStage.UNSUBSCRIBED.value),
        (~active, LifecycleStage.PROSPECT.value),
        (s.gap_days > config.lapsed_gap_factor * s.usual_gap, LifecycleStage.LAPSED.value),
        (s.gap_days > config.at_risk_gap_factor * s.usual_gap, LifecycleStage.AT_RISK.value),
        (
            s.lifecycle_stage.in_([LifecycleStage.AT_RISK.value, LifecycleStage.LAPSED.value]),
            LifecycleStage.WON_BACK.value,
        ),
        (
            and_(
                s.lifecycle_stage == LifecycleStage.WON_BACK.value,
                s.stage_changed_at > now - timedelta(days=config.won_back_days),
            ),
            LifecycleStage.WON_BACK.value,
        ),
        (
            and_(
                s.purchase_count <= 1,
                s.first_purchase_at >= now - timedelta(days=config.new_member_days),
            ),
            LifecycleStage.NEW.value,
        ),
        else_=LifecycleStage.ACTIVE.value,
    )
    ratio = s.gap_days / (config.lapsed_gap_factor * s.usual_gap)
    risk = case((~active, None), (ratio > 1.0, 1.0), (ratio < 0.0, 0.0), else_=ratio)
    tier = case(
        *[(s.spend_12m >= t.min_spend_12m_minor, t.code) for t in reversed(tiers[1:])],
        else_=tiers[0].code,
    )
    final = select(
        s.id, s.purchase_count, s.last_purchase_at, s.blocked_at, s.marketing_opt_in, s.is_active,
        s.spend_12m, s.tier_code, tier, s.lifecycle_stage, stage, s.rfm_r, s.rfm_f, s.rfm_m,
        value, risk,
    )  # fmt: skip
    return insert(_work).from_select(
        [
            "id", "purchase_count", "last_purchase_at", "blocked_at", "marketing_opt_in",
            "is_active", "spend_12m", "tier_old", "tier_new", "stage_old", "stage_new",
            "rfm_r", "rfm_f", "rfm_m", "value_tier", "churn_risk",
        ],
        final,
    )  # fmt: skip


async def _collect_stats(connection: AsyncConnection, tiers: list[Tier]) -> dict[str, Any]:
    w = _work.c
    members, active, changes = (
        await connection.execute(
            select(
                func.count(),
                func.coalesce(func.sum(w.is_active), 0),
                func.coalesce(func.sum(case((w.stage_new != w.stage_old, 1), else_=0)), 0),
            )
        )
    ).one()
    stages = dict(
        (await connection.execute(select(w.stage_new, func.count()).group_by(w.stage_new))).all()
    )
    values = dict(
        (
            await connection.execute(
                select(w.value_tier, func.count())
                .where(w.value_tier.is_not(None))
                .group_by(w.value_tier)
            )
        ).all()
    )
    rank = {tier.code: tier.rank for tier in tiers}
    moves = (
        await connection.execute(
            select(w.tier_old, w.tier_new, func.count())
            .where(w.tier_old != w.tier_new)
            .group_by(w.tier_old, w.tier_new)
        )
    ).all()
    upgrades = sum(n for old, new, n in moves if rank.get(new, 0) > rank.get(old, 0))
    return {
        "members": int(members),
        "active_members": int(active),
        "stages": {str(k): int(v) for k, v in stages.items()},
        "value_tiers": {str(k): int(v) for k, v in values.items()},
        "stage_changes": int(changes),
        "tier_upgrades": upgrades,
        "tier_downgrades": sum(n for _, _, n in moves) - upgrades,
    }


async def _write_back(connection: AsyncConnection, now: datetime) -> int:
    """Copy the work table onto ``members`` in id ranges, one short transaction each."""
    w = _work.c
    m = Member.__table__.c
    low, high = (await connection.execute(select(func.min(w.id), func.max(w.id)))).one()
    if low is None:
        return 0
    written = 0
    for start in range(int(low), int(high) + 1, UPDATE_BATCH_IDS):
        result = await connection.execute(
            update(Member.__table__)
            .where(
                m.id == w.id,
                w.id.between(start, start + UPDATE_BATCH_IDS - 1),
                # Whoever wrote to the member since the snapshot knew better: leave them.
                m.purchase_count == w.purchase_count,
                m.last_purchase_at.is_not_distinct_from(w.last_purchase_at),
                m.blocked_at.is_not_distinct_from(w.blocked_at),
                m.marketing_opt_in == w.marketing_opt_in,
                m.deleted_at.is_(None),
            )
            .values(
                spend_12m_minor=w.spend_12m,
                tier_code=w.tier_new,
                tier_changed_at=case((w.tier_new != w.tier_old, now), else_=m.tier_changed_at),
                rfm_r=w.rfm_r,
                rfm_f=w.rfm_f,
                rfm_m=w.rfm_m,
                value_tier=w.value_tier,
                lifecycle_stage=w.stage_new,
                stage_changed_at=case((w.stage_new != w.stage_old, now), else_=m.stage_changed_at),
                churn_risk=w.churn_risk,
                segments_refreshed_at=now,
            )
        )
        written += int(result.rowcount)  # type: ignore[attr-defined]
        await connection.commit()
    return written
