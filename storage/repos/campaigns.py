"""Campaigns (staff broadcasts and coupon issues): their state and the launch bookkeeping.

The launch state changes only through conditional UPDATEs whose row count decides: claiming a
due campaign, moving the launch cursor, finishing. Two launchers (a restarted process, a second
replica, the scheduler beside a "send now") can therefore never both process the same batch.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.enums import CampaignStatus
from storage.models import Campaign, Coupon, OutboxMessage


class CampaignRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, campaign_id: int) -> Campaign | None:
        return await self.session.get(Campaign, campaign_id)

    async def add(self, campaign: Campaign) -> Campaign:
        self.session.add(campaign)
        await self.session.flush()
        return campaign

    async def refresh(self, campaign: Campaign) -> Campaign:
        await self.session.refresh(campaign)
        return campaign

    async def due_ids(self, now: datetime) -> list[int]:
        """Scheduled campaigns whose time has come, and launches that stopped half-way."""
        stopped = (
            (Campaign.status == CampaignStatus.SENDING)
            & Campaign.launched_at.is_(None)
            & or_(Campaign.launch_lease_until.is_(None), Campaign.launch_lease_until <= now)
        )
        query = (
            select(Campaign.id)
            .where(
                or_(
                    (Campaign.status == CampaignStatus.SCHEDULED) & (Campaign.scheduled_at <= now),
                    stopped,
                )
            )
            .order_by(Campaign.id)
        )
        return list(await self.session.scalars(query))

    async def delivering_ids(self) -> list[int]:
        """Campaigns fully queued whose messages the delivery worker may still be sending."""
        query = (
            select(Campaign.id)
            .where(Campaign.status == CampaignStatus.SENDING, Campaign.launched_at.is_not(None))
            .order_by(Campaign.id)
        )
        return list(await self.session.scalars(query))

    async def scheduled(self, limit: int = 10) -> list[Campaign]:
        query = (
            select(Campaign)
            .where(Campaign.status == CampaignStatus.SCHEDULED)
            .order_by(Campaign.scheduled_at, Campaign.id)
            .limit(limit)
        )
        return list(await self.session.scalars(query))

    async def recent(self, limit: int = 5, kind: str | None = None) -> list[Campaign]:
        """The latest launched campaigns, newest first."""
        query = select(Campaign).where(
            Campaign.status.in_((CampaignStatus.SENDING, CampaignStatus.DONE))
        )
        if kind is not None:
            query = query.where(Campaign.kind == kind)
        query = query.order_by(Campaign.started_at.desc(), Campaign.id.desc()).limit(limit)
        return list(await self.session.scalars(query))

    async def claim(self, campaign_id: int, now: datetime) -> bool:
        """Start a due scheduled campaign; False when it was not due or already started."""
        result = await self.session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.status == CampaignStatus.SCHEDULED,
                Campaign.scheduled_at <= now,
            )
            .values(status=CampaignStatus.SENDING, started_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def cancel(self, campaign_id: int) -> bool:
        """Cancel a campaign that has not started yet."""
        result = await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id, Campaign.status == CampaignStatus.SCHEDULED)
            .values(status=CampaignStatus.CANCELLED)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def take_lease(self, campaign_id: int, *, now: datetime, until: datetime) -> bool:
        """Become the one launcher of a started campaign; False while another holds it."""
        result = await self.session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.status == CampaignStatus.SENDING,
                Campaign.launched_at.is_(None),
                or_(Campaign.launch_lease_until.is_(None), Campaign.launch_lease_until <= now),
            )
            .values(launch_lease_until=until)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def release_lease(self, campaign_id: int) -> None:
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(launch_lease_until=None)
            .execution_options(synchronize_session=False)
        )

    async def advance_cursor(
        self, campaign_id: int, *, old: int, new: int, lease_until: datetime
    ) -> bool:
        """Take the batch of members in (old, new] and renew the lease; False when another
        launcher took the batch first."""
        result = await self.session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.status == CampaignStatus.SENDING,
                Campaign.launched_at.is_(None),
                Campaign.launch_cursor == old,
            )
            .values(launch_cursor=new, launch_lease_until=lease_until)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def add_counts(
        self, campaign_id: int, *, queued: int, coupons: int, skipped: dict[str, int]
    ) -> None:
        """Add one batch's numbers (called after ``advance_cursor`` won the batch)."""
        await self.session.execute(
            update(Campaign)
            .where(Campaign.id == campaign_id)
            .values(
                queued=Campaign.queued + queued,
                coupons_issued=Campaign.coupons_issued + coupons,
            )
            .execution_options(synchronize_session=False)
        )
        if skipped:
            current = await self.session.scalar(
                select(Campaign.skipped).where(Campaign.id == campaign_id)
            )
            merged: dict[str, Any] = dict(current or {})
            for reason, count in skipped.items():
                merged[reason] = int(merged.get(reason, 0)) + count
            await self.session.execute(
                update(Campaign)
                .where(Campaign.id == campaign_id)
                .values(skipped=merged)
                .execution_options(synchronize_session=False)
            )

    async def mark_launched(self, campaign_id: int, *, cursor: int, now: datetime) -> bool:
        """Every member is queued; False when another launcher got there first."""
        result = await self.session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.status == CampaignStatus.SENDING,
                Campaign.launched_at.is_(None),
                Campaign.launch_cursor == cursor,
            )
            .values(launched_at=now, launch_lease_until=None)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_done(self, campaign_id: int, now: datetime) -> bool:
        result = await self.session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign_id,
                Campaign.status == CampaignStatus.SENDING,
                Campaign.launched_at.is_not(None),
            )
            .values(status=CampaignStatus.DONE, finished_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def queued_member_ids(self, campaign_id: int, member_ids: Iterable[int]) -> set[int]:
        """Which of ``member_ids`` already have this campaign's message in the outbox."""
        ids = list(member_ids)
        if not ids:
            return set()
        query = select(OutboxMessage.member_id).where(
            OutboxMessage.campaign_id == campaign_id, OutboxMessage.member_id.in_(ids)
        )
        return {member_id for member_id in await self.session.scalars(query) if member_id}

    async def coupon_member_ids(self, campaign_id: int, member_ids: Iterable[int]) -> set[int]:
        """Which of ``member_ids`` already got this campaign's coupon."""
        ids = list(member_ids)
        if not ids:
            return set()
        query = select(Coupon.member_id).where(
            Coupon.campaign_id == campaign_id, Coupon.member_id.in_(ids)
        )
        return set(await self.session.scalars(query))
