"""Seeding members, offers and survey answers straight into the database, for the console tests."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.db import create_engine, create_session_factory
from storage.enums import MemberStatus
from storage.models import DEFAULT_TIERS, Base, Member, MemberInterest, Offer, Tier

_numbers = itertools.count(1)


@asynccontextmanager
async def schema_session_factory(url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """A session factory over ``url`` with the schema and the default tiers (built if missing)."""
    engine = create_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
        if not await connection.scalar(select(func.count()).select_from(Tier)):
            await connection.execute(insert(Tier), [dict(tier) for tier in DEFAULT_TIERS])
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def seed_member(
    session: AsyncSession, now: datetime, *, interests: tuple[str, ...] = (), **values: Any
) -> Member:
    """A registered, reachable member who opted in to offers, unless ``values`` say otherwise."""
    n = next(_numbers)
    fields: dict[str, Any] = {
        "telegram_id": 700_000 + n,
        "chat_id": 700_000 + n,
        "member_code": f"C{n:07d}",
        "status": MemberStatus.ACTIVE,
        "name": f"Member {n}",
        "locale": "en",
        "timezone": "Asia/Shanghai",
        "marketing_opt_in": True,
        "created_at": now,
        "registered_at": now,
    }
    fields.update(values)
    member = Member(**fields)
    session.add(member)
    await session.flush()
    for category in interests:
        session.add(MemberInterest(member_id=member.id, category=category))
    await session.flush()
    return member


async def seed_offer(session: AsyncSession, now: datetime, **values: Any) -> Offer:
    fields: dict[str, Any] = {
        "title": "Spring sale",
        "kind": "percent_off",
        "value": 10,
        "currency": "CNY",
        "coupon_valid_days": 30,
        "is_active": True,
        "created_at": now,
    }
    fields.update(values)
    offer = Offer(**fields)
    session.add(offer)
    await session.flush()
    return offer
