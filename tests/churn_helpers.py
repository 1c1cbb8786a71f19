"""Shops with a purchase history made up for the churn-signal tests: members with their
aggregates and every purchase, inserted in bulk as an imported history would leave them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.enums import MemberStatus
from storage.models import Member, Purchase

START = date(2025, 1, 1)
END = date(2026, 3, 1)  # the day before T0 in shop time
ZONE = ZoneInfo("Asia/Shanghai")


def poisson_shop(customers: int, seed: int) -> dict[int, list[int]]:
    """Customers who buy at their own random rate and may leave after any purchase (the
    BG/NBD story): the model's expected purchases ranks who stopped best."""
    rng = np.random.default_rng(seed)
    rates = rng.gamma(0.6, 1 / (0.6 * 30), customers)
    drop = rng.beta(0.8, 4.0, customers)
    total = (END - START).days
    history: dict[int, list[int]] = {}
    for number in range(customers):
        day, days = float(rng.integers(0, 120)), []
        while day <= total:
            days.append(int(day))
            if len(days) > 1 and rng.random() < drop[number]:
                break
            day += rng.exponential(1 / rates[number])
        history[number] = sorted(set(days))
    return history


def clockwork_shop(customers: int, seed: int) -> dict[int, list[int]]:
    """Customers who each buy on a fixed rhythm of their own and stop one day: the gap rule
    (time since the last purchase against the usual gap) sees them leave first."""
    rng = np.random.default_rng(seed)
    total = (END - START).days
    history: dict[int, list[int]] = {}
    for number in range(customers):
        gap, day = int(rng.integers(7, 45)), int(rng.integers(0, 60))
        stop = int(rng.integers(60, total + 200))
        history[number] = list(range(day, min(total, stop) + 1, gap))
    return history


async def insert_history(
    factory: async_sessionmaker[AsyncSession],
    history: dict[int, list[int]],
    *,
    first_id: int = 10_000,
    amount_minor: int = 5_000,
) -> None:
    """Members without a chat (an imported list), each with their purchases at noon shop time
    and the aggregates a booking leaves."""
    created = datetime(2024, 12, 1, tzinfo=UTC)
    members, purchases = [], []
    for number, days in history.items():
        member_id = first_id + number
        moments = [
            datetime.combine(START + timedelta(days=day), time(12), ZONE).astimezone(UTC)
            for day in days
        ]
        span = (moments[-1] - moments[0]).total_seconds() / 86_400 if len(moments) > 1 else 0
        members.append(
            {
                "id": member_id, "member_code": f"H{member_id}", "status": MemberStatus.ACTIVE,
                "created_at": created, "purchase_count": len(days),
                "total_spent_minor": amount_minor * len(days),
                "first_purchase_at": moments[0], "last_purchase_at": moments[-1],
                "avg_gap_days": span / (len(days) - 1) if len(days) > 1 else None,
            }
        )  # fmt: skip
        purchases += [
            {
                "member_id": member_id, "receipt_id": f"H{member_id}-{index}",
                "amount_minor": amount_minor, "currency": "CNY", "purchased_at": when,
                "created_at": when,
            }
            for index, when in enumerate(moments)
        ]  # fmt: skip
    async with factory() as session:
        await session.execute(insert(Member), members)
        if purchases:
            await session.execute(insert(Purchase), purchases)
        await session.commit()
