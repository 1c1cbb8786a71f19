"""Points: the append-only ledger, chained by ``balance_after`` so its sum is the balance."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from care.core.clock import Clock
from care.core.i18n import Translator
from storage.enums import PointsReason
from storage.models import Member, PointsEntry
from storage.repos.loyalty import PointsRepo


async def add_points(
    session: AsyncSession,
    clock: Clock,
    *,
    member_id: int,
    delta: int,
    reason: PointsReason,
    note: str | None = None,
    purchase_id: int | None = None,
) -> int:
    """Move a member's points by ``delta`` and write the ledger entry; returns the new balance.

    Raises ``ValueError`` for a zero delta, an unknown member, or a balance that would go
    below zero (nothing changes then).
    """
    if isinstance(delta, bool) or not isinstance(delta, int) or delta == 0:
        raise ValueError("a points movement needs a non-zero whole number")
    balance = await PointsRepo(session).move_balance(member_id, delta)
    if balance is None:
        if await session.get(Member, member_id) is None:
            raise ValueError(f"no member {member_id}")
        raise ValueError("not enough points")
    await PointsRepo(session).add_entry(
        PointsEntry(
            member_id=member_id,
            delta=delta,
            balance_after=balance,
            reason=str(reason),
            purchase_id=purchase_id,
            note=note[:200] if note else None,
            created_at=clock.now(),
        )
    )
    return int(balance)


async def points_history(
    session: AsyncSession, member_id: int, limit: int = 10
) -> list[PointsEntry]:
    """The member's latest ledger entries, newest first."""
    return await PointsRepo(session).history(member_id, limit)


def reason_label(reason: str, t: Translator) -> str:
    """A ledger reason in the reader's language."""
    key = f"loyalty.reason.{reason}"
    return t(key) if t.has(key) else reason
