"""The set-based segment refresh: every member's 12-month spend, loyalty tier, RFM scores,
value tier, lifecycle stage and churn risk, recomputed in a handful of SQL statements that apply
the pure rules of ``care.segments.rules`` (a test checks they agree).

A member's first classification (their stage never decided before, by a refresh or a live
purchase) is where they stand, not a change: it is not stamped, so the stage rules do not fire
for a whole imported customer list at once.
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
    bindparam,
    case,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from care.core.clock import Clock
from care.core.config import CareConfig
from care.core.gap_rule import MIN_MEMBERS_FOR_SHOP_GAP, MIN_USUAL_GAP_DAYS
from care.core.sqltime import SECONDS_PER_DAY, EpochDays, Hundredths
from care.segments.quintiles import quintile_cuts, quintile_score_sql
from care.segments.rules import HIGH_VALUE_MIN_RFM, MEDIUM_VALUE_MIN_RFM
from storage.enums import LifecycleStage, ValueTier
from storage.models import Member, MemberValue, Purchase, Tier
from storage.types import UTCDateTime

SPEND_WINDOW = timedelta(days=365)
UPDATE_BATCH_IDS = 25_000


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
    # Members whose stored values the refresh changed.
    members_changed: int
    # Members who bought or blocked the bot while the refresh ran keep what that write made
    # them; the next refresh picks them up.
    skipped_busy: int
    seconds: float


# One row per live member: the facts the rules read, frozen at the start of the refresh.
# Predicted-value quintiles (1–5) at or above which a scored member is high / medium value.
HIGH_VALUE_MIN_QUINTILE = 5
MEDIUM_VALUE_MIN_QUINTILE = 3

_work = Table(
    "segment_work",
    MetaData(),
    Column("id", BigInteger, primary_key=True),
    Column("purchase_count", Integer),
    Column("first_purchase_at", UTCDateTime),
    Column("last_purchase_at", UTCDateTime),
    Column("avg_gap_days", Float),
    Column("blocked_at", UTCDateTime),
    Column("stage_old", String(16)),
    Column("stage_changed_at", UTCDateTime),
    Column("tier_old", String(16)),
    Column("purchases_12m", Integer),
    Column("spend_12m", BigInteger),
    Column("gap_days", Float),
    # False until a member's stage was first decided (by a refresh or a live purchase).
    Column("classified", Boolean),
    # The customer-value model's predicted 12-month value (NULL: not scored).
    Column("value_12m", BigInteger),
    # The decisions, computed once from the facts above.
    Column("tier_new", String(16)),
    Column("stage_new", String(16)),
    Column("rfm_r", SmallInteger),
    Column("rfm_f", SmallInteger),
    Column("rfm_m", SmallInteger),
    Column("value_tier", String(8)),
    Column("churn_risk", Float),
    prefixes=["TEMPORARY"],
)


@dataclass(frozen=True, slots=True)
class _Decisions:
    """The rules as SQL expressions over ``segment_work``: one place, used to count and write."""

    active: ColumnElement[bool]
    tier: ColumnElement[str]
    stage: ColumnElement[str]
    rfm_r: ColumnElement[int]
    rfm_f: ColumnElement[int]
    rfm_m: ColumnElement[int]
    value_tier: ColumnElement[str]
    churn_risk: ColumnElement[float]


async def refresh_segments(
    session_factory: async_sessionmaker[AsyncSession], config: CareConfig, clock: Clock
) -> SegmentStats:
    """Recompute every member's 12-month spend, tier, RFM scores, value tier, stage, churn risk.

    Set-based, in a handful of statements: one INSERT … SELECT snapshots the members with
    their 12-month purchases into a temporary table; three sorts find the RFM quintile cuts;
    one UPDATE evaluates the rules into that table; UPDATE … FROM writes back the members whose
    values moved, in batches of ids, each its own short transaction so the bot's writes never
    wait long. A member who bought (or blocked the bot) meanwhile is left
    as that write made them. Deleted members are not touched.
    """
    started = time.perf_counter()
    now = clock.now()
    async with session_factory() as session:
        engine = session.bind
        tiers = list(await session.scalars(select(Tier).order_by(Tier.rank)))
    if not isinstance(engine, AsyncEngine):
        raise TypeError("refresh_segments needs a session factory bound to an AsyncEngine")
    async with engine.connect() as connection:
        # A pooled connection may still hold the table if a refresh died before its cleanup.
        await connection.run_sync(_work.drop, checkfirst=True)
        await connection.run_sync(_work.create)
        try:
            await connection.execute(_snapshot(now))
            if connection.dialect.name == "postgresql":
                await connection.exec_driver_sql("ANALYZE segment_work")
            shop_gap = await _shop_gap_days(connection, config)
            decisions = await _decide(connection, config, now, shop_gap, tiers)
            await connection.commit()
            stats = await _collect_stats(connection, decisions, tiers)
            changed, busy = await _write_back(connection, decisions, now)
        finally:
            await connection.rollback()
            await connection.run_sync(_work.drop, checkfirst=True)
            await connection.commit()
    return SegmentStats(
        **stats,
        shop_gap_days=shop_gap,
        members_changed=changed,
        skipped_busy=busy,
        seconds=round(time.perf_counter() - started, 3),
    )


def _snapshot(now: datetime) -> Executable:
    """Live members with their purchase count and spend over the last 12 months."""
    recent = (
        select(
            Purchase.member_id.label("member_id"),
            func.count().label("purchases"),
            func.sum(Purchase.amount_minor - Purchase.refunded_minor).label("amount"),  # net
        )
        .where(
            Purchase.purchased_at >= now - SPEND_WINDOW,
            Purchase.member_id.is_not(None),
            Purchase.voided_at.is_(None),  # a voided purchase does not count at all
        )
        .group_by(Purchase.member_id)
        .subquery("recent")
    )
    now_days = literal(now.timestamp() / SECONDS_PER_DAY, Float)
    rows = (
        select(
            Member.id,
            Member.purchase_count,
            Member.first_purchase_at,
            Member.last_purchase_at,
            Member.avg_gap_days,
            Member.blocked_at,
            Member.lifecycle_stage,
            Member.stage_changed_at,
            Member.tier_code,
            func.coalesce(recent.c.purchases, 0),
            func.coalesce(recent.c.amount, 0),
            now_days - EpochDays(Member.last_purchase_at),
            or_(Member.stage_changed_at.is_not(None), Member.segments_refreshed_at.is_not(None)),
            MemberValue.value_12m_minor,
        )
        .select_from(
            Member.__table__.outerjoin(recent, recent.c.member_id == Member.id).outerjoin(
                MemberValue.__table__, MemberValue.member_id == Member.id
            )
        )
        .where(Member.deleted_at.is_(None))
    )
    facts = [column.name for column in _work.columns][: len(rows.selected_columns)]
    return insert(_work).from_select(facts, rows)


async def _shop_gap_days(connection: AsyncConnection, config: CareConfig) -> float:
    """The median of members' own average gaps: the shop's typical rhythm.

    Falls back to ``config.fallback_gap_days`` while too few members have a rhythm of their own.
    """
    w = _work.c
    own_gap = (w.purchase_count >= config.min_purchases_for_own_gap, w.avg_gap_days.is_not(None))
    count = int(await connection.scalar(select(func.count()).where(*own_gap)) or 0)
    if count < MIN_MEMBERS_FOR_SHOP_GAP:
        return config.fallback_gap_days
    median = await connection.scalar(
        select(w.avg_gap_days).where(*own_gap).order_by(w.avg_gap_days).offset(count // 2).limit(1)
    )
    return float(median) if median is not None else config.fallback_gap_days


async def _decisions(
    connection: AsyncConnection,
    config: CareConfig,
    now: datetime,
    shop_gap: float,
    tiers: list[Tier],
) -> _Decisions:
    """The same rules as ``lifecycle_stage``, ``churn_risk``, ``quintile_score`` … in SQL."""
    w = _work.c
    active = and_(w.purchase_count > 0, w.last_purchase_at.is_not(None))
    population = int(await connection.scalar(select(func.count()).where(active)) or 0)
    cuts = [
        await quintile_cuts(connection, value, active, population)
        for value in (w.last_purchase_at, w.purchases_12m, w.spend_12m)
    ]
    rfm_r, rfm_f, rfm_m = (
        quintile_score_sql(value, axis_cuts, active)
        for value, axis_cuts in zip(
            (w.last_purchase_at, w.purchases_12m, w.spend_12m), cuts, strict=True
        )
    )
    rfm_total = rfm_r + rfm_f + rfm_m
    # Where the customer-value model scored the member, the value tier is where their predicted
    # 12-month value falls among the scored members' (top fifth high, next two fifths medium,
    # the rest low); a member it has not scored (bought since the last fit, or no fit yet)
    # keeps the RFM reading.
    scored = and_(active, w.value_12m.is_not(None))
    scored_count = int(await connection.scalar(select(func.count()).where(scored)) or 0)
    value_cuts = await quintile_cuts(connection, w.value_12m, scored, scored_count)
    predicted = quintile_score_sql(w.value_12m, value_cuts, scored)
    by_prediction = (
        [
            (and_(scored, predicted >= HIGH_VALUE_MIN_QUINTILE), ValueTier.HIGH.value),
            (and_(scored, predicted >= MEDIUM_VALUE_MIN_QUINTILE), ValueTier.MEDIUM.value),
            (scored, ValueTier.LOW.value),
        ]
        if value_cuts
        else []
    )
    own_gap = and_(
        w.purchase_count >= config.min_purchases_for_own_gap, w.avg_gap_days.is_not(None)
    )
    raw_gap = case((own_gap, w.avg_gap_days), else_=literal(shop_gap, Float))
    usual_gap = case((raw_gap < MIN_USUAL_GAP_DAYS, MIN_USUAL_GAP_DAYS), else_=raw_gap)
    at_risk_after = config.at_risk_gap_factor * usual_gap
    lapsed_after = config.lapsed_gap_factor * usual_gap
    stage = case(
        (w.blocked_at.is_not(None), LifecycleStage.UNREACHABLE.value),
        (~active, LifecycleStage.PROSPECT.value),
        (w.gap_days > lapsed_after, LifecycleStage.LAPSED.value),
        (w.gap_days > at_risk_after, LifecycleStage.AT_RISK.value),
        (
            w.stage_old.in_([LifecycleStage.AT_RISK.value, LifecycleStage.LAPSED.value]),
            LifecycleStage.WON_BACK.value,
        ),
        (
            and_(
                w.stage_old == LifecycleStage.WON_BACK.value,
                w.stage_changed_at > now - timedelta(days=config.won_back_days),
            ),
            LifecycleStage.WON_BACK.value,
        ),
        (
            and_(
                w.purchase_count <= 1,
                w.first_purchase_at >= now - timedelta(days=config.new_member_days),
            ),
            LifecycleStage.NEW.value,
        ),
        else_=LifecycleStage.ACTIVE.value,
    )
    ratio = w.gap_days / lapsed_after
    return _Decisions(
        active=active,
        tier=case(
            *[(w.spend_12m >= t.min_spend_12m_minor, t.code) for t in reversed(tiers[1:])],
            else_=tiers[0].code,
        ),
        stage=stage,
        rfm_r=rfm_r,
        rfm_f=rfm_f,
        rfm_m=rfm_m,
        value_tier=case(
            (~active, null()),
            *by_prediction,
            (rfm_total >= HIGH_VALUE_MIN_RFM, ValueTier.HIGH.value),
            (rfm_total >= MEDIUM_VALUE_MIN_RFM, ValueTier.MEDIUM.value),
            else_=ValueTier.LOW.value,
        ),
        churn_risk=case(
            (~active, null()),
            (ratio > 1.0, 1.0),
            (ratio < 0.0, 0.0),
            else_=Hundredths(ratio),
        ),
    )


async def _decide(
    connection: AsyncConnection,
    config: CareConfig,
    now: datetime,
    shop_gap: float,
    tiers: list[Tier],
) -> _Decisions:
    """Evaluate the rules once per member into the work table; later steps read the columns."""
    rules = await _decisions(connection, config, now, shop_gap, tiers)
    await connection.execute(
        update(_work).values(
            tier_new=rules.tier,
            stage_new=rules.stage,
            rfm_r=rules.rfm_r,
            rfm_f=rules.rfm_f,
            rfm_m=rules.rfm_m,
            value_tier=rules.value_tier,
            churn_risk=rules.churn_risk,
        )
    )
    w = _work.c
    return _Decisions(
        active=rules.active,
        tier=w.tier_new,
        stage=w.stage_new,
        rfm_r=w.rfm_r,
        rfm_f=w.rfm_f,
        rfm_m=w.rfm_m,
        value_tier=w.value_tier,
        churn_risk=w.churn_risk,
    )


async def _collect_stats(
    connection: AsyncConnection, decide: _Decisions, tiers: list[Tier]
) -> dict[str, Any]:
    """Counts of the decisions, in one pass over the work table."""
    w = _work.c
    # A literal tuple (not a list) so the row type keeps one type per column.
    keys = (
        w.stage_old.label("c0"),
        decide.stage.label("c1"),
        w.tier_old.label("c2"),
        decide.tier.label("c3"),
        decide.value_tier.label("c4"),
        w.classified.label("c5"),
    )
    groups = (
        await connection.execute(select(*keys, func.count()).group_by(*(k.name for k in keys)))
    ).all()
    rank = {tier.code: tier.rank for tier in tiers}
    stats: dict[str, Any] = {
        "members": 0,
        "active_members": 0,
        "stages": {},
        "value_tiers": {},
        "stage_changes": 0,
        "tier_upgrades": 0,
        "tier_downgrades": 0,
    }
    for stage_old, stage, tier_old, tier, value, classified, count in groups:
        n = int(count)
        stats["members"] += n
        stats["stages"][stage] = stats["stages"].get(stage, 0) + n
        if value is not None:
            stats["active_members"] += n
            stats["value_tiers"][value] = stats["value_tiers"].get(value, 0) + n
        if stage != stage_old and classified:
            stats["stage_changes"] += n
        if tier != tier_old:
            up = rank.get(tier, 0) > rank.get(tier_old, 0)
            stats["tier_upgrades" if up else "tier_downgrades"] += n
    return stats


async def _write_back(
    connection: AsyncConnection, decide: _Decisions, now: datetime
) -> tuple[int, int]:
    """Copy the decisions onto ``members`` in id ranges, one short transaction each.

    Only rows whose values move are written (an hourly refresh changes few), and the indexed
    columns (tier, stage, value tier) separately from the rest, because rewriting an index
    entry costs even when its value stays the same. Returns (members changed, members left
    alone because someone wrote to them since the snapshot).
    """
    w = _work.c
    m = Member.__table__.c
    low, high = (await connection.execute(select(func.min(w.id), func.max(w.id)))).one()
    if low is None:
        return 0, 0
    unchanged_since_snapshot = and_(
        m.id == w.id,
        # Whoever wrote to the member since the snapshot knew better: leave them be.
        m.purchase_count == w.purchase_count,
        m.last_purchase_at.is_not_distinct_from(w.last_purchase_at),
        m.blocked_at.is_not_distinct_from(w.blocked_at),
        m.deleted_at.is_(None),
    )
    in_batch = w.id.between(bindparam("start"), bindparam("end"))
    segments_move = or_(
        m.tier_code != decide.tier,
        m.lifecycle_stage != decide.stage,
        m.value_tier.is_distinct_from(decide.value_tier),
    )
    # Its row count is the number of members changed: any moved value lets the row in.
    scores = (
        update(Member.__table__)
        .where(
            unchanged_since_snapshot,
            in_batch,
            or_(
                m.spend_12m_minor != w.spend_12m,
                m.rfm_r.is_distinct_from(decide.rfm_r),
                m.rfm_f.is_distinct_from(decide.rfm_f),
                m.rfm_m.is_distinct_from(decide.rfm_m),
                m.churn_risk.is_distinct_from(decide.churn_risk),
                # The first refresh marks everyone as classified, so the next change counts.
                m.segments_refreshed_at.is_(None),
                segments_move,
            ),
        )
        .values(
            spend_12m_minor=w.spend_12m,
            rfm_r=decide.rfm_r,
            rfm_f=decide.rfm_f,
            rfm_m=decide.rfm_m,
            churn_risk=decide.churn_risk,
            segments_refreshed_at=now,
        )
    )
    segments = (
        update(Member.__table__)
        .where(unchanged_since_snapshot, in_batch, segments_move)
        .values(
            tier_code=decide.tier,
            tier_changed_at=case((decide.tier != w.tier_old, now), else_=m.tier_changed_at),
            value_tier=decide.value_tier,
            lifecycle_stage=decide.stage,
            # A first classification is where the member stands, not a change: stamping it
            # would let every stage rule fire for a whole imported customer list at once.
            stage_changed_at=case(
                (and_(decide.stage != w.stage_old, w.classified.is_(True)), now),
                else_=m.stage_changed_at,
            ),
        )
    )
    changed = 0
    for start in range(int(low), int(high) + 1, UPDATE_BATCH_IDS):
        batch = {"start": start, "end": start + UPDATE_BATCH_IDS - 1}
        changed += int((await connection.execute(scores, batch)).rowcount)
        await connection.execute(segments, batch)
        await connection.commit()
    busy = await connection.scalar(
        select(func.count())
        .select_from(_work.join(Member.__table__, m.id == w.id))
        .where(~unchanged_since_snapshot)
    )
    await connection.commit()
    return changed, int(busy or 0)
