"""Building members and their history directly in the database, for the care-engine tests."""

from __future__ import annotations

import itertools
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import MemberStatus, MessageKind, OutboxStatus
from storage.models import Member, OutboxMessage, Purchase

_ids = itertools.count(1)


async def add_member(session: AsyncSession, now: datetime, **values: Any) -> Member:
    """An active, reachable, consenting member registered at ``now`` unless told otherwise."""
    n = next(_ids)
    birthday: date | None = values.get("birthday")
    defaults: dict[str, Any] = {
        "telegram_id": 500_000 + n,
        "chat_id": 500_000 + n,
        "member_code": f"T{n:07d}",
        "status": MemberStatus.ACTIVE,
        "name": f"Member {n}",
        "locale": "en",
        "timezone": "Asia/Shanghai",
        "marketing_opt_in": True,
        "surveys_opt_in": True,
        "created_at": now,
        "registered_at": now,
        "birthday_md": birthday.month * 100 + birthday.day if birthday else None,
    }
    defaults.update(values)
    member = Member(**defaults)
    session.add(member)
    await session.flush()
    return member


async def add_purchase(
    session: AsyncSession, member: Member, at: datetime, amount_minor: int = 10_000
) -> Purchase:
    purchase = Purchase(
        member_id=member.id,
        receipt_id=f"R{next(_ids)}",
        amount_minor=amount_minor,
        currency="CNY",
        purchased_at=at,
        created_at=at,
    )
    session.add(purchase)
    member.purchase_count = (member.purchase_count or 0) + 1
    member.first_purchase_at = member.first_purchase_at or at
    member.last_purchase_at = at
    await session.flush()
    return purchase


async def add_marketing_message(
    session: AsyncSession, member: Member, at: datetime, status: str = OutboxStatus.SENT
) -> OutboxMessage:
    row = OutboxMessage(
        idempotency_key=f"test:{next(_ids)}",
        member_id=member.id,
        chat_id=member.chat_id or 0,
        kind=MessageKind.MARKETING,
        text="hello",
        status=status,
        not_before=at,
        created_at=at,
    )
    session.add(row)
    await session.flush()
    return row


def days(n: float) -> timedelta:
    return timedelta(days=n)
