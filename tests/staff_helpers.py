"""Shared helpers for the staff console tests: members and staff put straight into the DB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from care.core.clock import Clock
from care.core.config import CareConfig
from care.members.membership import TelegramIdentity, create_member
from care.staff.roles import add_staff
from storage.db import create_engine, create_session_factory
from storage.enums import MemberStatus, StaffRole
from storage.models import Member

OWNER_ID = 900001


@asynccontextmanager
async def session_factory(url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(url)
    try:
        yield create_session_factory(engine)
    finally:
        await engine.dispose()


async def make_member(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    telegram_id: int | None,
    name: str = "Li Lei",
    *,
    phone: str | None = None,
    username: str | None = None,
    language_code: str = "zh",
    **fields: Any,
) -> Member:
    """An active member, committed by the caller; extra ``fields`` are set on the row."""
    identity = TelegramIdentity(
        user_id=telegram_id if telegram_id is not None else 0,
        chat_id=telegram_id if telegram_id is not None else 0,
        first_name=name,
        username=username,
        language_code=language_code,
    )
    member = await create_member(session, identity, config, clock, status=MemberStatus.ACTIVE)
    if telegram_id is None:
        member.telegram_id = None
        member.chat_id = None
    member.phone = phone
    for key, value in fields.items():
        setattr(member, key, value)
    await session.flush()
    return member


async def make_staff(
    session: AsyncSession,
    config: CareConfig,
    clock: Clock,
    telegram_id: int,
    role: StaffRole = StaffRole.CASHIER,
    name: str | None = None,
) -> None:
    """Add staff as the default owner would (committed by the caller)."""
    await add_staff(
        session,
        config,
        clock,
        actor_telegram_id=OWNER_ID,
        telegram_id=telegram_id,
        role=role,
        name=name,
    )
