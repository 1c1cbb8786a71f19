"""Purchases: idempotent recording by receipt id, and the look-ups around one member."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import CareTouch, Purchase
from storage.repos.upsert import insert_unless_exists

_PURCHASES: Table = Purchase.__table__


class PurchaseRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, purchase_id: int) -> Purchase | None:
        return await self.session.get(Purchase, purchase_id)

    async def by_receipt(self, receipt_id: str) -> Purchase | None:
        return await self.session.scalar(select(Purchase).where(Purchase.receipt_id == receipt_id))

    async def insert_new(self, values: dict[str, Any]) -> int | None:
        """Insert a purchase; None when its receipt id was recorded before (by anyone)."""
        return await insert_unless_exists(self.session, _PURCHASES, values, "receipt_id")

    async def recent_for_member(self, member_id: int, limit: int = 10) -> list[Purchase]:
        rows = await self.session.scalars(
            select(Purchase)
            .where(Purchase.member_id == member_id)
            .order_by(Purchase.purchased_at.desc(), Purchase.id.desc())
            .limit(limit)
        )
        return list(rows)

    async def mark_touches_converted(
        self, member_id: int, purchased_at: datetime, window_start: datetime
    ) -> int:
        """Open care touches decided in ``[window_start, purchased_at]`` now count as converted.

        Both arms: the holdout's conversions are what the treatment's are measured against.
        """
        result = await self.session.execute(
            update(CareTouch)
            .where(
                CareTouch.member_id == member_id,
                CareTouch.converted_at.is_(None),
                CareTouch.decided_at >= window_start,
                CareTouch.decided_at <= purchased_at,
            )
            .values(converted_at=purchased_at)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
