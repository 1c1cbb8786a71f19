"""The rewards catalogue and what has been redeemed from it."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Coupon, Reward


def reward_source(reward_id: int) -> str:
    """The ``coupons.source`` of a coupon bought with points: counts redemptions per reward."""
    return f"reward:{reward_id}"


class RewardRepo:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, reward: Reward) -> Reward:
        self.session.add(reward)
        await self.session.flush()
        return reward

    async def get(self, reward_id: int) -> Reward | None:
        return await self.session.get(Reward, reward_id, populate_existing=True)

    async def listed(self, *, active_only: bool) -> list[Reward]:
        """The catalogue, cheapest first (shoppers see what is within reach first)."""
        query = select(Reward).order_by(Reward.points_cost, Reward.id)
        if active_only:
            query = query.where(Reward.is_active.is_(True))
        return list((await self.session.scalars(query)).unique())

    async def redemption_counts(self) -> dict[int, int]:
        """Coupons bought per reward, by reward id (one grouped query)."""
        rows = await self.session.execute(
            select(Coupon.source, func.count())
            .where(Coupon.source.like("reward:%"))
            .group_by(Coupon.source)
        )
        counts: dict[int, int] = {}
        for source, count in rows:
            counts[int(source.split(":", 1)[1])] = int(count)
        return counts
