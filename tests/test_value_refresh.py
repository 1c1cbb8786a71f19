"""The value refresh: every live member with purchases gets P(alive), expected purchases,
expected spend and a 12-month value, computed from the same model functions the CDNOW tests
check; deleted members and members without purchases get none; a rerun replaces the table."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import AsyncIterator
from datetime import timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.console.exports import write_export
from care.core.clock import FrozenClock
from care.core.config import CareConfig
from care.segments.refresh import refresh_segments
from care.segments.rules import quintile_positions
from care.segments.rules import value_tier as rfm_value_tier
from care.value.model import bgnbd_log_likelihood, expected_purchases, probability_alive
from care.value.refresh import (
    MIN_CUSTOMERS_TO_FIT,
    compressed_histories,
    fit_sample,
    refresh_value,
    value_totals,
)
from storage.db import create_engine, create_session_factory
from storage.enums import MemberStatus
from storage.models import DEFAULT_TIERS, Base, Member, MemberValue, Tier

Factory = async_sessionmaker[AsyncSession]


@pytest.fixture
async def any_db(any_db_url: str) -> AsyncIterator[Factory]:
    engine = create_engine(any_db_url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
        await connection.execute(insert(Tier), [dict(tier) for tier in DEFAULT_TIERS])
    yield create_session_factory(engine)
    await engine.dispose()


async def add_members(session: AsyncSession, clock: FrozenClock, count: int) -> list[Member]:
    """Members with varied histories: the aggregates are all the refresh reads."""
    rng = random.Random(11)
    now = clock.now()
    members = []
    for number in range(count):
        purchases = rng.choice([0, 1, 1, 2, 3, 5, 8, 13])
        first = now - timedelta(days=rng.uniform(20, 700))
        last = first + (now - first) * rng.random() if purchases > 1 else first
        member = Member(
            telegram_id=800_000 + number,
            member_code=f"V{number:07d}",
            status=MemberStatus.ACTIVE,
            created_at=first - timedelta(days=1),
            purchase_count=purchases,
            total_spent_minor=purchases * rng.randint(2_000, 30_000),
            first_purchase_at=first if purchases else None,
            last_purchase_at=last if purchases else None,
        )
        session.add(member)
        members.append(member)
    await session.flush()
    return members


async def test_refresh_scores_every_member_with_purchases(
    any_db: Factory, clock: FrozenClock
) -> None:
    async with any_db() as session:
        members = await add_members(session, clock, 400)
        gone = next(m for m in members if m.purchase_count > 2)
        gone.deleted_at = clock.now()
        await session.commit()
    buyers = {m.id: m for m in members if m.purchase_count and m.deleted_at is None}

    stats = await refresh_value(any_db, clock)

    assert stats.fitted and stats.customers == len(buyers)
    assert stats.bgnbd is not None and stats.gamma_gamma is not None
    async with any_db() as session:
        rows = {row.member_id: row for row in await session.scalars(select(MemberValue))}
        assert set(rows) == set(buyers)  # nobody without purchases, not the deleted member
        for member_id, row in rows.items():
            member = buyers[member_id]
            x = member.purchase_count - 1
            assert member.first_purchase_at is not None and member.last_purchase_at is not None
            T = (clock.now() - member.first_purchase_at).total_seconds() / 86_400
            t_x = (member.last_purchase_at - member.first_purchase_at).total_seconds() / 86_400
            assert row.p_alive == pytest.approx(
                probability_alive(stats.bgnbd, [x], [t_x], [T])[0], abs=1e-3
            )
            assert row.purchases_90d == pytest.approx(
                expected_purchases(stats.bgnbd, 90, [x], [t_x], [T])[0], abs=1e-3
            )
            assert 0 <= row.purchases_30d <= row.purchases_90d
            assert row.spend_per_purchase_minor > 0
            assert row.refreshed_at == clock.now()
        scored, month, year = await value_totals(session)
    assert scored == len(buyers)
    assert month == pytest.approx(stats.expected_purchases_30d, abs=0.1)
    assert year == stats.predicted_value_12m_minor
    # Someone who bought often and long ago is less likely alive than someone who just did.
    alive = np.array([rows[m].p_alive for m in rows])
    assert alive.min() < 0.9 and alive.max() == pytest.approx(1.0)

    # A month later, with one member deleted meanwhile, a rerun replaces every row.
    clock.advance(timedelta(days=30))
    async with any_db() as session:
        leaving = await session.get(Member, next(iter(buyers)))
        assert leaving is not None
        leaving.deleted_at = clock.now()
        await session.commit()
    again = await refresh_value(any_db, clock)
    async with any_db() as session:
        after = {row.member_id: row for row in await session.scalars(select(MemberValue))}
    assert set(after) == set(buyers) - {next(iter(buyers))}
    assert {row.refreshed_at for row in after.values()} == {clock.now()}
    assert again.customers == len(buyers) - 1


async def test_too_few_customers_leave_the_table_alone(
    any_db: Factory, clock: FrozenClock
) -> None:
    async with any_db() as session:
        await add_members(session, clock, 10)
        await session.commit()
    stats = await refresh_value(any_db, clock)
    assert not stats.fitted and stats.customers < MIN_CUSTOMERS_TO_FIT
    async with any_db() as session:
        assert list(await session.scalars(select(MemberValue))) == []


async def test_value_tiers_come_from_predicted_value_where_the_model_scored(
    any_db: Factory, clock: FrozenClock
) -> None:
    async with any_db() as session:
        await add_members(session, clock, 300)
        await session.commit()
    assert (await refresh_value(any_db, clock)).fitted
    async with any_db() as session:
        # Bought after the fit: not scored yet, so the RFM reading decides their tier.
        session.add(
            Member(
                telegram_id=899_999,
                member_code="VLATE001",
                status=MemberStatus.ACTIVE,
                created_at=clock.now() - timedelta(days=91),
                purchase_count=3,
                total_spent_minor=90_000,
                first_purchase_at=clock.now() - timedelta(days=90),
                last_purchase_at=clock.now() - timedelta(days=2),
            )
        )
        await session.commit()
    await refresh_segments(any_db, CareConfig(), clock)

    async with any_db() as session:
        rows = await session.execute(select(MemberValue.member_id, MemberValue.value_12m_minor))
        predicted = {member_id: value for member_id, value in rows}
        members = {m.id: m for m in await session.scalars(select(Member))}
    values = sorted(predicted.values())
    cuts = [values[position - 1] for position in quintile_positions(len(values))]
    moved_from_rfm = 0
    for member_id, value in predicted.items():
        quintile = 1 + sum(value > cut for cut in cuts)
        expected = "high" if quintile == 5 else "medium" if quintile >= 3 else "low"
        member = members[member_id]
        assert member.value_tier == expected, (member_id, value, quintile)
        rfm = rfm_value_tier((member.rfm_r or 0) + (member.rfm_f or 0) + (member.rfm_m or 0))
        moved_from_rfm += rfm != expected
    assert moved_from_rfm > 0  # the prediction, not RFM under another name
    tiers = [members[i].value_tier for i in predicted]
    assert tiers.count("high") == pytest.approx(len(tiers) / 5, abs=3)
    late_member = next(m for m in members.values() if m.member_code == "VLATE001")
    assert late_member.id not in predicted
    assert late_member.value_tier == rfm_value_tier(
        (late_member.rfm_r or 0) + (late_member.rfm_f or 0) + (late_member.rfm_m or 0)
    )
    nobody = [m for m in members.values() if not m.purchase_count]
    assert nobody and all(m.value_tier is None for m in nobody)


def test_the_fit_reads_a_fixed_sample_of_a_big_shop_and_compressed_histories() -> None:
    assert fit_sample(10, limit=20) == slice(None)
    first, again = fit_sample(1_000, limit=100), fit_sample(1_000, limit=100)
    assert isinstance(first, np.ndarray) and isinstance(again, np.ndarray)
    assert first.tolist() == again.tolist()  # the same shop fits on the same customers
    assert first.size == 100 == np.unique(first).size and bool(np.all(np.diff(first) > 0))

    rng = np.random.default_rng(3)
    x = rng.integers(0, 4, 2_000).astype(np.float64)
    T = rng.integers(1, 60, 2_000).astype(np.float64) + rng.random(2_000) * 0.4
    t_x = np.where(x > 0, np.floor(T * rng.random(2_000)), 0.0)
    cx, ct, cT, weights = compressed_histories(x, t_x, T)
    assert weights.sum() == 2_000 and cx.size < 2_000
    params = np.array([0.5, 10.0, 0.8, 2.5])
    whole = bgnbd_log_likelihood(params, x, np.rint(t_x), np.rint(T)).sum()
    assert float(np.dot(weights, bgnbd_log_likelihood(params, cx, ct, cT))) == pytest.approx(
        float(whole)
    )


async def test_the_members_export_carries_each_members_predicted_value(
    any_db: Factory, clock: FrozenClock
) -> None:
    async with any_db() as session:
        await add_members(session, clock, 300)
        await session.commit()
    await refresh_value(any_db, clock)
    async with any_db() as session:
        scored = await session.get(
            MemberValue, (await session.scalars(select(MemberValue))).first().member_id
        )  # type: ignore[union-attr]
        assert scored is not None
        scored.at_risk, scored.at_risk_since = True, clock.now() - timedelta(days=3)
        await session.commit()
        target = io.BytesIO()
        await write_export(session, CareConfig(), "members", "csv", target)
    rows = list(csv.DictReader(io.StringIO(target.getvalue().decode("utf-8-sig"))))
    by_id = {int(row["id"]): row for row in rows}
    row = by_id[scored.member_id]
    assert float(row["p_alive"]) == pytest.approx(scored.p_alive, abs=1e-3)
    assert float(row["expected_purchases_90d"]) == pytest.approx(scored.purchases_90d, abs=1e-2)
    assert row["predicted_value_12m"] and row["at_risk_by_model"] == "yes"
    zone = CareConfig().default_timezone
    since = (clock.now() - timedelta(days=3)).astimezone(ZoneInfo(zone))
    assert row[f"at_risk_since ({zone})"] == since.strftime("%Y-%m-%d %H:%M:%S")
    unscored = [r for r in rows if int(r["id"]) not in {scored.member_id} and not r["p_alive"]]
    assert unscored, "members without purchases have empty value columns"
